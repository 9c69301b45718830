import Foundation

public struct Spread: Equatable {
    public let min, median, max: Double
    public init(min: Double, median: Double, max: Double) { self.min = min; self.median = median; self.max = max }

    public static func of(_ values: [Double]) -> Spread {
        precondition(!values.isEmpty, "no values to summarise")
        let s = values.sorted(), mid = s.count / 2
        return Spread(min: s.first!, median: s.count % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2, max: s.last!)
    }
}

/// One generation's figures; RunnerStats.figures computes them from the runner's stats.
/// `timerFloor`: an interval was under the clock's unit and was counted as one unit.
public struct GenerationStats: Equatable {
    public let promptTokens, generatedTokens: Int
    public let ttftMs, prefillTokensPerSec, decodeTokensPerSec: Double
    public let timerFloor: Bool

    public init(promptTokens: Int, generatedTokens: Int, ttftMs: Double, prefillTokensPerSec: Double, decodeTokensPerSec: Double,
                timerFloor: Bool = false) {
        self.promptTokens = promptTokens; self.generatedTokens = generatedTokens; self.ttftMs = ttftMs
        self.prefillTokensPerSec = prefillTokensPerSec; self.decodeTokensPerSec = decodeTokensPerSec; self.timerFloor = timerFloor
    }
}

/// Runs one generation from a fresh context; the app adapts ExecuTorch's TextRunner to it.
public protocol Generator {
    func generate(_ prompt: BenchPrompt, rendered: String) throws -> GenerationStats
}

public struct PromptSummary: Equatable {
    public let prompt: BenchPrompt
    public let promptTokens, generatedTokens, warmup, repetitions: Int
    public let ttftMs, prefillTokensPerSec, decodeTokensPerSec: Spread
    public var timerFloor = false // a measured run had an interval under the clock's unit
}

/// Warm-up then measured repetitions per prompt; the headline is the median, with the spread.
public struct BenchmarkLoop {
    public let warmup, repetitions: Int

    public init(warmup: Int = 1, repetitions: Int = 3) throws {
        guard warmup >= 0, repetitions >= 1 else { throw ContractError("need warmup >= 0 and repetitions >= 1, got \(warmup) and \(repetitions)") }
        self.warmup = warmup; self.repetitions = repetitions
    }

    public func run(_ prompts: [(BenchPrompt, String)], _ generator: Generator,
                    onRun: (BenchPrompt, Int, Int, Bool) -> Void = { _, _, _, _ in }) throws -> [PromptSummary] {
        try prompts.map { (item: (BenchPrompt, String)) -> PromptSummary in
            let (prompt, text) = item
            let total = warmup + repetitions
            var runs: [GenerationStats] = []
            for index in 0..<total {
                onRun(prompt, index + 1, total, index >= warmup)
                let stats = try generator.generate(prompt, rendered: text)
                if index >= warmup { runs.append(stats) }
            }
            let lengths = Set(runs.map(\.promptTokens))
            guard lengths.count == 1 else { throw ContractError("prompt '\(prompt.id)' tokenized to different lengths across runs: \(lengths.sorted())") }
            return PromptSummary(
                prompt: prompt, promptTokens: lengths.first!,
                generatedTokens: Int(Spread.of(runs.map { Double($0.generatedTokens) }).median),
                warmup: warmup, repetitions: repetitions,
                ttftMs: .of(runs.map(\.ttftMs)), prefillTokensPerSec: .of(runs.map(\.prefillTokensPerSec)),
                decodeTokensPerSec: .of(runs.map(\.decodeTokensPerSec)), timerFloor: runs.contains { $0.timerFloor })
        }
    }
}
