import ExecuTorchLLM
import Foundation
import MobqCore

/// The bundled export (Resources/Model, put there by `mobq bundle ios`) or one the user picked.
struct InstalledModel {
    let dir: URL
    let manifest: ModelManifest
    let prompts: PromptSet

    static func bundled() throws -> InstalledModel {
        guard let dir = Bundle.main.url(forResource: "Model", withExtension: nil) else {
            throw ContractError("no bundled model: run `make ios-bundle` (or `mobq bundle ios EXPORT`) and rebuild")
        }
        return try open(dir)
    }

    static func open(_ dir: URL) throws -> InstalledModel {
        let manifest = try ModelManifest.parse(Data(contentsOf: dir.appendingPathComponent(ModelManifest.fileName)))
        // prompts.json: the benchmark prompts with their token counts, counted by `mobq bundle`
        // with this export's tokenizer (the iOS runner reports no token counts itself).
        let promptsURL = dir.appendingPathComponent(PromptSet.fileName)
        let prompts = FileManager.default.fileExists(atPath: promptsURL.path) ? try PromptSet.parse(Data(contentsOf: promptsURL)) : .default
        return InstalledModel(dir: dir, manifest: manifest, prompts: prompts)
    }

    func path(_ role: String) throws -> String { dir.appendingPathComponent(try manifest.file(role).path).path }
}

/// ExecuTorch's TextRunner behind the core's generator protocols: the app's only file that
/// calls ExecuTorch (docs/apps.md lists each call and the ExecuTorchLLM header it was read
/// from). Stops on the eos ids the export wrote into the program; never generates past the
/// export's context. Echo is off: GenerationConfig.echo defaults to true (irunner.h), which
/// would hand the whole prompt to the token callback before prefill.
final class Engine: Generator, StreamingGenerator {
    let model: InstalledModel
    private let runner: TextRunner
    private(set) var loadMs: Double = 0

    init(_ model: InstalledModel) throws {
        self.model = model
        let tokenizer = try model.path("tokenizer")
        runner = TextRunner(modelPath: try model.path("program"), tokenizerPath: tokenizer,
                            specialTokens: Self.specialTokens(tokenizerPath: tokenizer))
    }

    /// The runner's tokenizer loader reads a tokenizer.json's own added tokens (Qwen, Phi,
    /// Gemma, Llama exports from mobq) and consults this list only for a tiktoken file
    /// (Llama 3's tokenizer.model), which needs Llama 3's names, as ExecuTorch's TextRunnerTest passes.
    static func specialTokens(tokenizerPath: String) -> [String] {
        if tokenizerPath.hasSuffix(".json") { return [] }
        let named = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
                     "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>",
                     "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
        return named + (2..<(2 + 256 - named.count)).map { "<|reserved_special_token_\($0)|>" }
    }

    func load() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        try runner.load()
        loadMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }

    private func config(_ maxNewTokens: Int) -> Config {
        Config {
            // ObjC `echoEnabled` (getter isEchoEnabled), which Swift names isEchoEnabled. Off: the
            // callback then gets generated tokens only; the figures and the transcript depend on it.
            $0.isEchoEnabled = false
            $0.temperature = 0 // greedy: repeatable benchmarks
            $0.maximumNewTokens = maxNewTokens
            $0.sequenceLength = model.manifest.maxContextLen
        }
    }

    /// One benchmark run. TextRunner gives Swift no stats, so ClockStats stamps the runner's
    /// stats keys from this process's clock and RunnerStats computes the shared figures.
    func generate(_ prompt: BenchPrompt, rendered: String) throws -> GenerationStats {
        guard let promptTokens = prompt.promptTokens else {
            throw ContractError("prompts.json has no token count for '\(prompt.id)': bundle the model with `mobq bundle ios`")
        }
        runner.reset()
        var clock = ClockStats(nowMs: Self.milliseconds)
        clock.begin()
        try runner.generate(rendered, config(prompt.maxNewTokens)) { _ in clock.onToken() }
        return try RunnerStats.figures(try clock.finish(promptTokens: promptTokens))
    }

    /// Streams from a fresh context (chat turns, the sustained run); stop() ends it early.
    func stream(_ prompt: String, maxNewTokens: Int, onToken: @escaping (String) -> Void) throws {
        runner.reset()
        try runner.generate(prompt, config(maxNewTokens), tokenCallback: onToken)
    }

    func stop() { runner.stop() }

    static func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    static func milliseconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }
}
