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

/// ExecuTorch's TextRunner behind the core's generator protocols. Stops on the eos ids the
/// export wrote into the program; never generates past the export's context.
final class Engine: Generator, StreamingGenerator {
    let model: InstalledModel
    private let runner: TextRunner
    private(set) var loadMs: Double = 0

    init(_ model: InstalledModel) throws {
        self.model = model
        runner = TextRunner(modelPath: try model.path("program"), tokenizerPath: try model.path("tokenizer"))
    }

    func load() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        try runner.load()
        loadMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }

    private func config(_ maxNewTokens: Int) -> Config {
        Config {
            $0.temperature = 0 // greedy: repeatable benchmarks
            $0.maximumNewTokens = maxNewTokens
            $0.sequenceLength = model.manifest.maxContextLen
        }
    }

    func generate(_ prompt: BenchPrompt, rendered: String) throws -> GenerationStats {
        guard let promptTokens = prompt.promptTokens else {
            throw ContractError("prompts.json has no token count for '\(prompt.id)': bundle the model with `mobq bundle ios`")
        }
        runner.reset()
        var stamps: [Double] = []
        let start = Self.seconds()
        try runner.generate(rendered, config(prompt.maxNewTokens)) { _ in stamps.append(Self.seconds()) }
        return try GenerationStats.fromTimestamps(start: start, tokens: stamps, promptTokens: promptTokens)
    }

    func stream(_ prompt: String, maxNewTokens: Int, onToken: @escaping (String) -> Void) throws {
        runner.reset()
        try runner.generate(prompt, config(maxNewTokens), tokenCallback: onToken)
    }

    func stop() { runner.stop() }

    static func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
