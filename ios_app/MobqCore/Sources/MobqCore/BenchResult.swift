import Foundation

public struct SustainedSample: Equatable {
    public let tS, tokensPerSec: Double
    public let thermal: String?
    public let thermalHeadroom, rssMb: Double?
}

public struct Sustained: Equatable {
    public let durationS, intervalS: Double
    public let samples: [SustainedSample]
}

public struct DeviceInfo: Equatable {
    public let source, device, os: String
    public let runtime: [String: String]
    public let threads: Int?
    public init(source: String, device: String, os: String, runtime: [String: String], threads: Int? = nil) {
        self.source = source; self.device = device; self.os = os; self.runtime = runtime; self.threads = threads
    }
}

/// One benchmark result in the schema shared with `mobq bench` and the Android app
/// (toolchain/mobq/results.py; docs/schema/bench-result.schema.json). Keys are snake_case JSON.
/// `ceiling` (host only) and `notes` are kept as plain JSON values.
public struct BenchResult {
    public static let keys: Set<String> = [
        "schema_version", "source", "created_at", "model", "scheme", "ctx", "model_size_mb", "device", "os",
        "runtime", "threads", "prompt_tokens", "generated_tokens", "warmup", "repetitions", "load_ms", "ttft_ms",
        "prefill_tokens_per_sec", "decode_tokens_per_sec", "peak_rss_mb", "spread", "ceiling", "sustained",
        "manifest_sha256", "notes",
    ]
    public var values: [String: Any]

    public static func fromMeasurement(manifest: ModelManifest, device: DeviceInfo, summary: PromptSummary,
                                       loadMs: Double, peakMemoryMb: Double, createdAt: String,
                                       sustained: Sustained? = nil, promptSet: String = PromptSet.default.name) throws -> BenchResult {
        func r(_ v: Double, _ digits: Int) -> Double { let s = pow(10, Double(digits)); return (v * s).rounded() / s }
        func spread(_ s: Spread, _ d: Int) -> [String: Any] { ["min": r(s.min, d), "median": r(s.median, d), "max": r(s.max, d)] }
        var values: [String: Any] = [
            "schema_version": 1, "source": device.source, "created_at": createdAt, "model": manifest.modelName,
            "scheme": manifest.scheme, "ctx": manifest.ctx, "model_size_mb": r(manifest.modelSizeMb, 2),
            "device": device.device, "os": device.os, "runtime": device.runtime,
            "threads": orNull(device.threads),
            "prompt_tokens": summary.promptTokens, "generated_tokens": summary.generatedTokens,
            "warmup": summary.warmup, "repetitions": summary.repetitions, "load_ms": r(loadMs, 1),
            "ttft_ms": r(summary.ttftMs.median, 1), "prefill_tokens_per_sec": r(summary.prefillTokensPerSec.median, 2),
            "decode_tokens_per_sec": r(summary.decodeTokensPerSec.median, 2), "peak_rss_mb": r(peakMemoryMb, 1),
            "spread": [
                "prefill_tokens_per_sec": spread(summary.prefillTokensPerSec, 2),
                "decode_tokens_per_sec": spread(summary.decodeTokensPerSec, 2),
                "ttft_ms": spread(summary.ttftMs, 1),
            ],
            "ceiling": NSNull(), "sustained": NSNull(),
            "manifest_sha256": try manifest.file("program").sha256,
            "notes": ["prompt_id": summary.prompt.id, "prompt_set": promptSet],
        ]
        if let sustained { values["sustained"] = encode(sustained) }
        if summary.timerFloor { // worded as `mobq bench` words it
            values["notes"] = ["prompt_id": summary.prompt.id, "prompt_set": promptSet,
                               "timer_floor": "an interval was under the runner's 1 ms resolution"]
        }
        return BenchResult(values: values)
    }

    /// JSON null for a missing value, as the Python and Kotlin writers emit it.
    static func orNull<T>(_ value: T?) -> Any { value.map { $0 as Any } ?? NSNull() }

    static func encode(_ s: Sustained) -> [String: Any] {
        ["duration_s": s.durationS, "interval_s": s.intervalS, "samples": s.samples.map { sample -> [String: Any] in
            ["t_s": sample.tS, "tokens_per_sec": sample.tokensPerSec, "thermal": orNull(sample.thermal),
             "thermal_headroom": orNull(sample.thermalHeadroom), "rss_mb": orNull(sample.rssMb)]
        }]
    }

    /// Strict read of one result: unknown keys, wrong types and missing fields are named.
    public static func parse(_ data: Data) throws -> BenchResult {
        let f = try Fields.parse(data, what: "result")
        try f.onlyKnown(keys)
        for key in ["source", "created_at", "model", "scheme", "device", "os"] { _ = try f.string(key) }
        guard ["host", "android", "ios"].contains(try f.string("source")) else { throw ContractError("field 'source': must be host, android or ios") }
        for key in ["ctx", "prompt_tokens", "generated_tokens", "warmup", "repetitions"] { _ = try f.int(key) }
        for key in ["model_size_mb", "load_ms", "ttft_ms", "prefill_tokens_per_sec", "decode_tokens_per_sec", "peak_rss_mb"] {
            guard try f.double(key) >= 0 else { throw ContractError("field '\(key)': must be >= 0") }
        }
        _ = try f.strings("runtime")
        if let s = try f.objOrNil("sustained") {
            _ = try s.double("duration_s"); _ = try s.double("interval_s")
            for sample in try s.objects("samples") { _ = try sample.double("t_s"); _ = try sample.double("tokens_per_sec") }
        }
        return BenchResult(values: f.object)
    }

    public func json() throws -> Data {
        try JSONSerialization.data(withJSONObject: values, options: [.prettyPrinted, .sortedKeys])
    }

    public static func json(_ results: [BenchResult]) throws -> Data {
        try JSONSerialization.data(withJSONObject: results.map(\.values), options: [.prettyPrinted, .sortedKeys])
    }
}
