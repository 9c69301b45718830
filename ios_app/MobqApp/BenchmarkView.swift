import MobqCore
import SwiftUI

/// The benchmark: the prompt set with warm-up and repetitions, then optionally sustained
/// decoding (default 5 minutes) sampling tokens/sec and thermal state. The result JSON, in the
/// shared schema, is offered through the share sheet.
struct BenchmarkView: View {
    @State private var warmup = 1
    @State private var repetitions = 3
    @State private var sustainedMinutes = 0
    @State private var log = ""
    @State private var running = false
    @State private var resultURL: URL?

    var body: some View {
        Form {
            Stepper("Warm-up runs: \(warmup)", value: $warmup, in: 0...5)
            Stepper("Repetitions: \(repetitions)", value: $repetitions, in: 1...10)
            Stepper("Sustained minutes: \(sustainedMinutes)", value: $sustainedMinutes, in: 0...30)
            Button(running ? "Running…" : "Run benchmark", action: run).disabled(running)
            if let resultURL { ShareLink("Share result JSON", item: resultURL) }
            Section("Log") { Text(log).font(.footnote.monospaced()).textSelection(.enabled) }
        }
    }

    private func say(_ line: String) { DispatchQueue.main.async { log += line + "\n" } }

    private func run() {
        running = true
        log = ""
        let (warmup, repetitions, minutes) = (warmup, repetitions, sustainedMinutes)
        DispatchQueue.global(qos: .userInitiated).async {
            defer { DispatchQueue.main.async { running = false } }
            do {
                let url = try measure(warmup: warmup, repetitions: repetitions, sustainedS: Double(minutes * 60))
                DispatchQueue.main.async { resultURL = url }
                say("saved \(url.lastPathComponent)")
            } catch {
                say("failed: \(error)")
            }
        }
    }

    private func measure(warmup: Int, repetitions: Int, sustainedS: Double) throws -> URL {
        let model = try InstalledModel.bundled()
        let engine = try Engine(model)
        try engine.load()
        say("loaded \(model.manifest.modelName) in \(Int(engine.loadMs)) ms")
        let summaries = try BenchmarkLoop(warmup: warmup, repetitions: repetitions).run(try model.prompts.rendered(model.manifest), engine) { p, i, n, measured in
            say("\(p.id): run \(i)/\(n)\(measured ? "" : " (warm-up)")")
        }
        // The sustained run decodes the set's first prompt; its series goes with that prompt's result.
        let sustainedPrompt = model.prompts.prompts[0]
        var sustained: Sustained?
        if sustainedS > 0 {
            say("sustained: \(Int(sustainedS)) s")
            let sampler = try SustainedSampler(duration: sustainedS, interval: 5, now: Engine.seconds, thermal: Platform.thermal, memory: Platform.footprintMb)
            let prompt = try model.manifest.prompt(sustainedPrompt.text)
            sustained = try SustainedRun(sampler: sampler, prompt: prompt, maxNewTokens: model.manifest.maxContextLen).run(engine)
        }
        let peak = Platform.peakFootprintMb() ?? 0
        let created = ISO8601DateFormatter().string(from: Date())
        let results = try summaries.map { summary in
            try BenchResult.fromMeasurement(manifest: model.manifest, device: Platform.device(), summary: summary, loadMs: engine.loadMs,
                                            peakMemoryMb: peak, createdAt: created,
                                            sustained: summary.prompt.id == sustainedPrompt.id ? sustained : nil,
                                            promptSet: model.prompts.name)
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mobq-\(Platform.deviceModel())-\(Int(Date().timeIntervalSince1970)).json")
        try BenchResult.json(results).write(to: url, options: .atomic)
        return url
    }
}
