import Foundation

public struct BenchPrompt: Equatable {
    public let id: String
    public let text: String
    public let maxNewTokens: Int
    /// Tokens of the rendered prompt, when `mobq bundle` counted them with the export's
    /// tokenizer (prompts.json next to the model): iOS's runner reports no stats of its own.
    public let promptTokens: Int?

    public init(id: String, text: String, maxNewTokens: Int, promptTokens: Int? = nil) {
        self.id = id; self.text = text; self.maxNewTokens = maxNewTokens; self.promptTokens = promptTokens
    }
}

/// The fixed benchmark prompt set; canonical copy docs/schema/examples/prompt-set.json.
public struct PromptSet: Equatable {
    public let name: String
    public let prompts: [BenchPrompt]

    public static let fileName = "prompts.json"

    public static let `default` = PromptSet(name: "mobq-bench-v1", prompts: [
        BenchPrompt(id: "short", text: "Why is the sky blue?", maxNewTokens: 64),
        BenchPrompt(id: "medium", text: "Explain, step by step, how a bill becomes a law in a parliamentary democracy, and name two ways it can fail along the way.", maxNewTokens: 64),
        BenchPrompt(id: "long", text: "Summarise the following notes in three bullet points. Notes: the team met on Monday to plan the release; testing found two crashes on older phones; the memory use of the model grew after the last update; the designers asked for a darker theme; the launch date moved by a week; marketing wants benchmark numbers from at least three devices; the support team asked for a way to export logs.", maxNewTokens: 64),
    ])

    public static func parse(_ data: Data) throws -> PromptSet {
        let root = try Fields.parse(data, what: "prompt set")
        return PromptSet(name: try root.string("name"), prompts: try root.objects("prompts").map {
            BenchPrompt(id: try $0.string("id"), text: try $0.string("text"), maxNewTokens: try $0.int("max_new_tokens"),
                        promptTokens: try $0.intOrNil("prompt_tokens"))
        })
    }

    /// Rendered with the model's chat format, thinking off; refuses generations past the context.
    public func rendered(_ manifest: ModelManifest) throws -> [(BenchPrompt, String)] {
        for p in prompts where p.maxNewTokens >= manifest.maxContextLen {
            throw ContractError("prompt '\(p.id)' asks for \(p.maxNewTokens) new tokens but the model's context is \(manifest.maxContextLen); export with a larger --ctx")
        }
        return try prompts.map { ($0, try manifest.prompt($0.text, think: false)) }
    }
}
