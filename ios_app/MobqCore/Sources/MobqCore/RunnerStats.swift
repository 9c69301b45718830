import Foundation

/// The benchmark figures, defined once: computed from ExecuTorch's runner stats JSON (the keys
/// of `stats_to_json_string`, extension/llm/runner/stats.h, ExecuTorch 1.5). The same rules are
/// toolchain/mobq/stats.py (`mobq bench`) and android_app/core/.../RunnerStats.kt; all three are
/// tested on the golden files in docs/schema/examples/runner-stats. Generation runs with echo off.
///
/// - TTFT: inference_start_ms -> first_token_ms.
/// - prefill tokens/s: prompt_tokens over inference_start_ms -> prompt_eval_end_ms.
/// - decode tokens/s: generated_tokens (the runner's decode steps) over prompt_eval_end_ms -> inference_end_ms.
/// - generated tokens: generated_tokens + 1, the token prefill produced included.
/// - an interval under one clock unit counts as one unit and sets timerFloor.
public enum RunnerStats {
    public static let required = ["prompt_tokens", "generated_tokens", "inference_start_ms", "prompt_eval_end_ms", "first_token_ms", "inference_end_ms"]
    static let defaultUnitsPerSecond = 1000.0 // SCALING_FACTOR_UNITS_PER_SECOND: milliseconds

    public static func figures(_ json: Data) throws -> GenerationStats {
        guard let stats = try JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw ContractError("runner stats: expected a JSON object")
        }
        return try figures(stats)
    }

    public static func figures(_ stats: [String: Any]) throws -> GenerationStats {
        for key in required { _ = try number(stats, key) }
        let perSecond = stats["SCALING_FACTOR_UNITS_PER_SECOND"].flatMap(double) ?? defaultUnitsPerSecond
        let promptTokens = Int(try number(stats, "prompt_tokens"))
        let decodeSteps = Int(try number(stats, "generated_tokens"))
        let prefill = try interval(stats, from: "inference_start_ms", to: "prompt_eval_end_ms")
        let ttft = try interval(stats, from: "inference_start_ms", to: "first_token_ms")
        let decode = try interval(stats, from: "prompt_eval_end_ms", to: "inference_end_ms")
        return GenerationStats(
            promptTokens: promptTokens, generatedTokens: decodeSteps + 1, ttftMs: ttft.units * 1000 / perSecond,
            prefillTokensPerSec: Double(promptTokens) / (prefill.units / perSecond),
            decodeTokensPerSec: decodeSteps > 0 ? Double(decodeSteps) / (decode.units / perSecond) : 0,
            timerFloor: prefill.floored || ttft.floored || (decode.floored && decodeSteps > 0))
    }

    private static func number(_ stats: [String: Any], _ key: String) throws -> Double {
        guard let value = stats[key], !(value is NSNull) else { throw ContractError("runner stats: missing field '\(key)'") }
        guard let number = double(value) else { throw ContractError("runner stats: field '\(key)' should be a number") }
        return number
    }

    /// A JSON number (NSNumber from JSONSerialization) or a Swift Int/Double (ClockStats).
    private static func double(_ value: Any) -> Double? {
        if let number = value as? Double { return number }
        if let number = value as? Int { return Double(number) }
        return (value as? NSNumber)?.doubleValue
    }

    /// Clock units from `start` to `end`, floored at one unit (flagged when floored).
    private static func interval(_ stats: [String: Any], from start: String, to end: String) throws -> (units: Double, floored: Bool) {
        let units = try number(stats, end) - number(stats, start)
        guard units >= 0 else { throw ContractError("runner stats: \(end) is before \(start)") }
        return (max(units, 1), units < 1)
    }
}

/// The stats keys filled from the app's own clock. ExecuTorchLLM's TextRunner (1.5) hands Swift
/// tokens but no stats, so the engine stamps the moments the C++ runner would: the call's start,
/// the first token (the runner ends prompt evaluation and takes the first token at the same
/// point, just before handing that token over), and the call's end. With echo off the first
/// callback is the token prefill produced; the rest are decode steps. Prompt tokens come from
/// prompts.json, counted by `mobq bundle` with the export's tokenizer.
public struct ClockStats {
    private let nowMs: () -> Double
    private var start: Double?
    private var firstToken: Double?
    private(set) public var tokens = 0

    public init(nowMs: @escaping () -> Double) { self.nowMs = nowMs }

    public mutating func begin() { start = nowMs(); firstToken = nil; tokens = 0 }

    public mutating func onToken() {
        if firstToken == nil { firstToken = nowMs() }
        tokens += 1
    }

    /// The stats JSON the C++ runner would have reported, for RunnerStats.figures.
    public func finish(promptTokens: Int) throws -> [String: Any] {
        let end = nowMs()
        guard let start, let firstToken else { throw ContractError("the model generated no tokens; nothing to time") }
        return ["prompt_tokens": promptTokens, "generated_tokens": tokens - 1, "inference_start_ms": start,
                "prompt_eval_end_ms": firstToken, "first_token_ms": firstToken, "inference_end_ms": end,
                "SCALING_FACTOR_UNITS_PER_SECOND": 1000]
    }
}
