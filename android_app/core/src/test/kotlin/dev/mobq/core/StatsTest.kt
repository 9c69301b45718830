package dev.mobq.core

import org.junit.Test
import java.io.File
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

class StatsTest {
    @Test
    fun spreadOfOddAndEvenCounts() {
        assertEquals(Spread(1.0, 2.0, 9.0), Spread.of(listOf(9.0, 1.0, 2.0)))
        assertEquals(Spread(1.0, 2.5, 4.0), Spread.of(listOf(4.0, 1.0, 3.0, 2.0)))
        assertEquals(Spread(5.0, 5.0, 5.0), Spread.of(listOf(5.0)))
    }

    /** The golden runner-stats cases shared with mobq.stats (Python) and RunnerStats.swift. */
    @Test
    fun goldenRunnerStatsGiveTheSameFiguresAsPythonAndSwift() {
        val cases = File(Golden.dir, "runner-stats").listFiles { f -> f.name.endsWith(".json") }!!.sortedBy { it.name }
        assertTrue(cases.size >= 5, "expected the shared golden cases, found ${cases.size}")
        for (file in cases) {
            val case = Json.parseObject(file.readText(), file.name)
            val stats = case.obj("stats").toMap()
            val expected = case.obj("expected")
            val json = org.json.JSONObject(stats).toString()
            if (expected.has("error")) {
                val error = assertFailsWith<ContractError>(file.name) { RunnerStats.figures(json) }
                assertTrue(expected.string("error") in error.message!!, "${file.name}: ${error.message}")
                continue
            }
            val got = RunnerStats.figures(json)
            assertEquals(expected.int("prompt_tokens"), got.promptTokens, file.name)
            assertEquals(expected.int("generated_tokens"), got.generatedTokens, file.name)
            assertEquals(expected.double("ttft_ms"), got.ttftMs, 1e-9 * expected.double("ttft_ms"), file.name)
            assertEquals(expected.double("prefill_tokens_per_sec"), got.prefillTokensPerSec, 1e-9 * expected.double("prefill_tokens_per_sec"), file.name)
            assertEquals(expected.double("decode_tokens_per_sec"), got.decodeTokensPerSec, 1e-9 * expected.double("decode_tokens_per_sec"), file.name)
            assertEquals(expected.bool("timer_floor"), got.timerFloor, file.name)
        }
    }

    @Test
    fun timerFloorReachesTheResultNotes() {
        val manifest = ModelManifest.parse(Golden.text("manifest.json"))
        val one = Spread(1.0, 1.0, 1.0)
        val summary = PromptSummary(BenchPrompt("short", "hi", 8), 3, 8, one, one, one, 0, 1, timerFloor = true)
        val device = DeviceInfo("android", "phone", "Android 15", mapOf("executorch" to "1.5.1"))
        val result = BenchResult.fromMeasurement(manifest, device, summary, 1.0, 1.0, "2026-12-06T00:00:00+00:00")
        assertEquals("an interval was under the runner's 1 ms resolution", result.notes["timer_floor"])
    }

    @Test
    fun procStatusGivesPeakAndCurrentRss() {
        val status = "Name:\tapp\nVmPeak:\t 9000000 kB\nVmHWM:\t  921600 kB\nVmRSS:\t  512000 kB\nThreads:\t12\n"
        assertEquals(ProcMemory(900.0, 500.0), ProcMemory.parse(status))
        assertFailsWith<ContractError> { ProcMemory.parse("Name:\tapp\n") }
    }
}
