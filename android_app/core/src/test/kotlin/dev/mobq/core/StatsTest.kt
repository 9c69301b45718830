package dev.mobq.core

import org.junit.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith

class StatsTest {
    @Test
    fun spreadOfOddAndEvenCounts() {
        assertEquals(Spread(1.0, 2.0, 9.0), Spread.of(listOf(9.0, 1.0, 2.0)))
        assertEquals(Spread(1.0, 2.5, 4.0), Spread.of(listOf(4.0, 1.0, 3.0, 2.0)))
        assertEquals(Spread(5.0, 5.0, 5.0), Spread.of(listOf(5.0)))
    }

    // The shape of ExecuTorch's stats JSON (LlmCallback.onStats; extension/llm/runner/stats.h).
    private val stats = """
        {"prompt_tokens":100,"generated_tokens":50,"model_load_start_ms":0,"model_load_end_ms":0,
         "inference_start_ms":10000,"token_encode_end_ms":10005,"model_execution_start_ms":10005,
         "model_execution_end_ms":12490,"prompt_eval_end_ms":10500,"first_token_ms":10520,
         "inference_end_ms":12500,"aggregate_sampling_time_ms":30,"SCALING_FACTOR_UNITS_PER_SECOND":1000}
    """.trimIndent()

    @Test
    fun executorchStatsGiveTtftPrefillAndDecodeRates() {
        val parsed = GenerationStats.fromExecuTorchJson(stats)
        assertEquals(100, parsed.promptTokens)
        assertEquals(50, parsed.generatedTokens)
        assertEquals(520.0, parsed.ttftMs, 1e-9)
        assertEquals(200.0, parsed.prefillTokensPerSec, 1e-9) // 100 tokens in 0.5 s
        assertEquals(25.0, parsed.decodeTokensPerSec, 1e-9) // 50 tokens in 2.0 s
    }

    @Test
    fun zeroDurationIsAnErrorNotInfinity() {
        val instant = stats.replace("\"prompt_eval_end_ms\":10500", "\"prompt_eval_end_ms\":10000")
        assertFailsWith<ContractError> { GenerationStats.fromExecuTorchJson(instant) }
    }

    @Test
    fun missingStatsFieldIsNamed() {
        val error = assertFailsWith<ContractError> { GenerationStats.fromExecuTorchJson("{\"prompt_tokens\":1}") }
        assertEquals("missing field 'inference_start_ms'", error.message)
    }

    @Test
    fun procStatusGivesPeakAndCurrentRss() {
        val status = "Name:\tapp\nVmPeak:\t 9000000 kB\nVmHWM:\t  921600 kB\nVmRSS:\t  512000 kB\nThreads:\t12\n"
        assertEquals(ProcMemory(900.0, 500.0), ProcMemory.parse(status))
        assertFailsWith<ContractError> { ProcMemory.parse("Name:\tapp\n") }
    }
}
