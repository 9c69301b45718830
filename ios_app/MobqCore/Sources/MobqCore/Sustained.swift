import Foundation

public struct ThermalReading: Equatable {
    public let status: String?
    public let headroom: Double?
    public init(status: String?, headroom: Double? = nil) { self.status = status; self.headroom = headroom }
}

/// ProcessInfo.ThermalState under the names the result files use.
public enum AppleThermal {
    public static func name(_ rawValue: Int) -> String {
        ["nominal", "fair", "serious", "critical"].indices.contains(rawValue) ? ["nominal", "fair", "serious", "critical"][rawValue] : "unknown(\(rawValue))"
    }
}

/// Samples decode speed and thermal state every `interval` seconds for `duration` seconds,
/// fed by the token callback; each restart's prefill (beginPrompt to first token) is excluded.
public final class SustainedSampler {
    public let duration, interval: Double
    private let now: () -> Double // monotonic seconds
    private let thermal: () -> ThermalReading
    private let memory: () -> Double?
    private var start: Double?
    private var windowStart = 0.0, windowExcluded = 0.0
    private var windowTokens = 0
    private var prefillStart: Double?
    private var samples: [SustainedSample] = []

    public init(duration: Double = 300, interval: Double = 5, now: @escaping () -> Double,
                thermal: @escaping () -> ThermalReading, memory: @escaping () -> Double?) throws {
        guard duration > 0, interval > 0, interval <= duration else { throw ContractError("need 0 < interval <= duration, got \(interval) and \(duration)") }
        self.duration = duration; self.interval = interval; self.now = now; self.thermal = thermal; self.memory = memory
    }

    public func begin() { start = now(); windowStart = start! }

    public var done: Bool { start.map { now() - $0 >= duration } ?? false }

    public func beginPrompt() { prefillStart = now() }

    public func onToken(_ count: Int = 1) {
        let t = now()
        if let p = prefillStart { windowExcluded += t - Swift.max(p, windowStart) }
        prefillStart = nil
        windowTokens += count
        if t - windowStart >= interval { closeWindow(t) }
    }

    private func closeWindow(_ t: Double) {
        let decode = t - windowStart - windowExcluded
        let reading = thermal()
        samples.append(SustainedSample(tS: t - (start ?? t), tokensPerSec: decode > 0 ? Double(windowTokens) / decode : 0,
                                       thermal: reading.status, thermalHeadroom: reading.headroom, rssMb: memory()))
        windowStart = t; windowTokens = 0; windowExcluded = 0
    }

    public func finish() -> Sustained {
        let t = now()
        if windowTokens > 0 && t > windowStart { closeWindow(t) }
        return Sustained(durationS: duration, intervalS: interval, samples: samples)
    }
}

public protocol StreamingGenerator: AnyObject {
    func stream(_ prompt: String, maxNewTokens: Int, onToken: @escaping (String) -> Void) throws
    func stop()
}

/// Decodes continuously until the duration is over, restarting when the context fills.
public struct SustainedRun {
    let sampler: SustainedSampler
    let prompt: String
    let maxNewTokens: Int

    public init(sampler: SustainedSampler, prompt: String, maxNewTokens: Int) {
        self.sampler = sampler; self.prompt = prompt; self.maxNewTokens = maxNewTokens
    }

    public func run(_ generator: StreamingGenerator) throws -> Sustained {
        sampler.begin()
        while !sampler.done {
            sampler.beginPrompt()
            var tokens = 0
            try generator.stream(prompt, maxNewTokens: maxNewTokens) { _ in
                tokens += 1
                sampler.onToken()
                if sampler.done { generator.stop() }
            }
            if tokens == 0 { throw ContractError("the sustained prompt generated no tokens; the model stops at once on it") }
        }
        return sampler.finish()
    }
}
