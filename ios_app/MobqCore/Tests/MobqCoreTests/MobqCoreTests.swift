import XCTest
@testable import MobqCore

final class ManifestTests: XCTestCase {
    func testGoldenManifestGivesFilesAndRuntimeMetadata() throws {
        let m = try ModelManifest.parse(Golden.data("manifest.json"))
        XCTAssertEqual(try m.file("program").path, "model.pte")
        XCTAssertEqual(try m.file("tokenizer").path, "tokenizer.json")
        XCTAssertEqual(m.eosIds, [2, 0])
        XCTAssertNil(m.bosId)
        XCTAssertEqual(m.maxContextLen, 256)
        XCTAssertEqual(m.kvCacheBytes, 2 * 4 * 2 * 32 * 256 * 4)
        XCTAssertEqual(m.modelSizeMb, 0.827264, accuracy: 1e-12)
    }

    func testPromptRendersLikeMobqPython() throws {
        let m = try ModelManifest.parse(Golden.data("manifest.json"))
        XCTAssertEqual(try m.prompt("Why is the sky blue?"),
                       "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
        let turns = [Turn(.system, "Be brief."), Turn(.user, "Hi"), Turn(.assistant, "Hello"), Turn(.user, "Why?")]
        XCTAssertEqual(try m.chatFormat!.render(turns, think: true),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n")
    }

    func testMissingFieldIsNamed() throws {
        var raw = try JSONSerialization.jsonObject(with: Golden.data("manifest.json")) as! [String: Any]
        var runtime = raw["runtime"] as! [String: Any]
        runtime.removeValue(forKey: "eos_ids")
        raw["runtime"] = runtime
        let data = try JSONSerialization.data(withJSONObject: raw)
        XCTAssertThrowsError(try ModelManifest.parse(data)) { error in
            XCTAssertEqual((error as? ContractError)?.description, "missing field 'runtime.eos_ids'")
        }
    }
}

final class PromptAndStatsTests: XCTestCase {
    func testDefaultPromptSetEqualsTheSharedGoldenFile() throws {
        XCTAssertEqual(try PromptSet.parse(Golden.data("prompt-set.json")), PromptSet.default)
    }

    func testSpread() {
        XCTAssertEqual(Spread.of([9, 1, 2]), Spread(min: 1, median: 2, max: 9))
        XCTAssertEqual(Spread.of([4, 1, 3, 2]), Spread(min: 1, median: 2.5, max: 4))
    }

    /// The golden runner-stats cases shared with mobq.stats (Python) and RunnerStats.kt.
    func testGoldenRunnerStatsGiveTheSameFiguresAsPythonAndKotlin() throws {
        let dir = Golden.dir.appendingPathComponent("runner-stats")
        let cases = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertGreaterThanOrEqual(cases.count, 5)
        for name in cases {
            let data = try Data(contentsOf: dir.appendingPathComponent(name))
            let file = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            let stats = file["stats"] as! [String: Any], expected = file["expected"] as! [String: Any]
            if let error = expected["error"] as? String {
                XCTAssertThrowsError(try RunnerStats.figures(stats), name) { XCTAssertTrue("\($0)".contains(error), "\(name): \($0)") }
                continue
            }
            let got = try RunnerStats.figures(stats)
            XCTAssertEqual(got.promptTokens, expected["prompt_tokens"] as? Int, name)
            XCTAssertEqual(got.generatedTokens, expected["generated_tokens"] as? Int, name)
            for (key, value) in [("ttft_ms", got.ttftMs), ("prefill_tokens_per_sec", got.prefillTokensPerSec), ("decode_tokens_per_sec", got.decodeTokensPerSec)] {
                let want = (expected[key] as! NSNumber).doubleValue
                XCTAssertEqual(value, want, accuracy: 1e-9 * max(want, 1), "\(name) \(key)")
            }
            XCTAssertEqual(got.timerFloor, expected["timer_floor"] as? Bool, name)
        }
    }

    func testClockStatsStampWhatTheRunnerWouldWithEchoOff() throws {
        var t = 1000.0
        var clock = ClockStats(nowMs: { t })
        clock.begin()
        for stamp in [1120.0, 1150, 1180] { t = stamp; clock.onToken() } // prefill's token, then 2 decode steps
        t = 1180
        let figures = try RunnerStats.figures(try clock.finish(promptTokens: 24))
        XCTAssertEqual(figures.generatedTokens, 3)
        XCTAssertEqual(figures.ttftMs, 120, accuracy: 1e-9)
        XCTAssertEqual(figures.prefillTokensPerSec, 200, accuracy: 1e-9)
        XCTAssertEqual(figures.decodeTokensPerSec, 2 / 0.06, accuracy: 1e-9)
        XCTAssertThrowsError(try ClockStats(nowMs: { 0 }).finish(promptTokens: 1))
    }

    func testChatWindowDropsTheOldestExchangeFirst() throws {
        let window = ChatWindow(contextTokens: 40, replyTokens: 10, tokensPerByte: 1)
        let turns = [Turn(.system, "sys"), Turn(.user, "0123456789"), Turn(.assistant, "0123456789"), Turn(.user, "last")]
        let render = { (t: [Turn]) in t.map(\.text).joined() }
        // 3 + 10 + 10 + 4 = 27 bytes -> 28 tokens + 10 reply > 40? no: all kept.
        XCTAssertEqual(window.trimmed(turns, render: render), turns)
        let tight = ChatWindow(contextTokens: 20, replyTokens: 10, tokensPerByte: 1)
        XCTAssertEqual(tight.trimmed(turns, render: render), [Turn(.system, "sys"), Turn(.user, "last")])
        let never = ChatWindow(contextTokens: 1, replyTokens: 10, tokensPerByte: 1)
        XCTAssertEqual(never.trimmed(turns, render: render).last, Turn(.user, "last")) // the newest message stays
    }

    final class Scripted: Generator {
        var calls = 0
        let decode: [Double]
        init(_ decode: [Double]) { self.decode = decode }
        func generate(_ prompt: BenchPrompt, rendered: String) throws -> GenerationStats {
            defer { calls += 1 }
            return GenerationStats(promptTokens: 10, generatedTokens: 8, ttftMs: 100, prefillTokensPerSec: 50, decodeTokensPerSec: decode[calls])
        }
    }

    func testWarmupIsDiscardedAndMedianIsTheHeadline() throws {
        let p = BenchPrompt(id: "p", text: "hi", maxNewTokens: 8)
        let generator = Scripted([1, 30, 10, 20])
        let (summary) = try BenchmarkLoop(warmup: 1, repetitions: 3).run([(p, "x")], generator)[0]
        XCTAssertEqual(generator.calls, 4)
        XCTAssertEqual(summary.decodeTokensPerSec, Spread(min: 10, median: 20, max: 30))
    }
}

final class SustainedTests: XCTestCase {
    final class FakeModel: StreamingGenerator {
        var clock: Double = 0
        private var stopped = false
        func stream(_ prompt: String, maxNewTokens: Int, onToken: @escaping (String) -> Void) throws {
            stopped = false
            clock += 0.5 // prefill
            for i in 0..<maxNewTokens {
                if i > 0 { clock += clock < 10 ? 0.05 : 0.1 } // throttles after 10 s
                onToken("t")
                if stopped { return }
            }
        }
        func stop() { stopped = true }
    }

    func testSamplesShowThrottlingAndThermalState() throws {
        let model = FakeModel()
        let sampler = try SustainedSampler(duration: 20, interval: 5, now: { model.clock },
                                           thermal: { ThermalReading(status: model.clock < 10.5 ? "nominal" : "fair") }, memory: { 700 })
        let series = try SustainedRun(sampler: sampler, prompt: "p", maxNewTokens: 40).run(model)
        XCTAssertEqual(series.samples.count, 4)
        XCTAssertEqual(series.samples[0].tokensPerSec, 20, accuracy: 1.5)
        XCTAssertEqual(series.samples[3].tokensPerSec, 10, accuracy: 1.0)
        XCTAssertEqual(series.samples.map(\.thermal), ["nominal", "nominal", "fair", "fair"])
        XCTAssertEqual(AppleThermal.name(2), "serious")
    }
}

final class BenchResultTests: XCTestCase {
    func testGoldenResultsParseAndRoundTrip() throws {
        for name in ["bench-result-android-sustained.json", "bench-result-host.json", "bench-result-ios.json"] {
            let data = try Golden.data(name)
            let result = try BenchResult.parse(data)
            XCTAssertEqual(try Golden.tree(result.json()), try Golden.tree(data), name)
        }
    }

    func testResultFromTheGoldenManifestHasTheGoldenShape() throws {
        let manifest = try ModelManifest.parse(Golden.data("manifest.json"))
        let summary = PromptSummary(prompt: PromptSet.default.prompts[0], promptTokens: 17, generatedTokens: 64, warmup: 1, repetitions: 3,
                                    ttftMs: Spread(min: 80, median: 90, max: 95), prefillTokensPerSec: Spread(min: 180, median: 190, max: 200),
                                    decodeTokensPerSec: Spread(min: 26, median: 27.5, max: 28))
        let device = DeviceInfo(source: "ios", device: "iPhone16,2", os: "iOS 18.2", runtime: ["executorch": "1.5.1", "app": "0.1.0"])
        let result = try BenchResult.fromMeasurement(manifest: manifest, device: device, summary: summary, loadMs: 950,
                                                     peakMemoryMb: 760, createdAt: "2026-11-24T10:00:00+00:00")
        let golden = try JSONSerialization.jsonObject(with: Golden.data("bench-result-ios.json")) as! [String: Any]
        XCTAssertEqual(Set(result.values.keys), Set(golden.keys))
        let reparsed = try BenchResult.parse(result.json())
        XCTAssertEqual(reparsed.values["model"] as? String, "qwen3-tiny")
        XCTAssertEqual(reparsed.values["decode_tokens_per_sec"] as? Double, 27.5)
    }
}
