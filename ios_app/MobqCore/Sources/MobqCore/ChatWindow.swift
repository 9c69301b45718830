import Foundation

/// Keeps a chat inside the model's context. The app has no tokenizer of its own, so a prompt's
/// size is an upper estimate: its UTF-8 bytes times `tokensPerByte`. A byte-level BPE token
/// spans at least one byte, so 1 is a bound; prompts.json's counts (made by `mobq bundle` with
/// the export's tokenizer) give a tighter figure. The runner itself never decodes past the
/// context, so only the prompt has to fit; `replyTokens` keeps room for an answer.
public struct ChatWindow: Equatable {
    public let contextTokens: Int
    public let replyTokens: Int
    public let tokensPerByte: Double

    public init(contextTokens: Int, replyTokens: Int, tokensPerByte: Double = 1) {
        self.contextTokens = contextTokens; self.replyTokens = replyTokens; self.tokensPerByte = tokensPerByte
    }

    /// The densest rendered prompt of the set, plus a quarter for safety, at most 1 token a byte.
    public static func calibrated(_ manifest: ModelManifest, prompts: PromptSet) throws -> ChatWindow {
        let ratios = try prompts.prompts.compactMap { prompt -> Double? in
            guard let tokens = prompt.promptTokens else { return nil }
            let rendered = try manifest.prompt(prompt.text, think: false)
            return Double(tokens) / Double(max(rendered.utf8.count, 1))
        }
        let perByte = ratios.max().map { min(1, $0 * 1.25) } ?? 1
        return ChatWindow(contextTokens: manifest.maxContextLen, replyTokens: min(256, manifest.maxContextLen / 4), tokensPerByte: perByte)
    }

    public func estimate(_ prompt: String) -> Int { Int((Double(prompt.utf8.count) * tokensPerByte).rounded(.up)) + 1 }

    /// The newest turns whose rendered prompt leaves room for a reply: the oldest exchange goes
    /// first; a system turn and the newest message stay.
    public func trimmed(_ turns: [Turn], render: ([Turn]) throws -> String) rethrows -> [Turn] {
        let system = turns.first.flatMap { $0.role == .system ? [$0] : nil } ?? []
        var rest = Array(turns.dropFirst(system.count))
        while rest.count > 1, try estimate(render(system + rest)) + replyTokens > contextTokens {
            rest.removeFirst(min(2, rest.count - 1))
        }
        return system + rest
    }
}
