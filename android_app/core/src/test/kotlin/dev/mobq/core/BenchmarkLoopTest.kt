package dev.mobq.core

import org.junit.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith

class BenchmarkLoopTest {
    /** Returns scripted figures in call order, so the test knows which runs were warm-up. */
    private class Scripted(private val decode: List<Double>, private val promptTokens: List<Int> = emptyList()) : Generator {
        val prompts = mutableListOf<String>()

        override fun generate(prompt: BenchPrompt, rendered: String): GenerationStats {
            val i = prompts.size
            prompts += rendered
            return GenerationStats(
                promptTokens = promptTokens.getOrElse(i) { 10 },
                generatedTokens = prompt.maxNewTokens,
                ttftMs = 100.0 + i,
                prefillTokensPerSec = 50.0 * (i + 1),
                decodeTokensPerSec = decode[i],
            )
        }
    }

    private val prompt = BenchPrompt("p", "hello", 8)

    @Test
    fun warmupRunsAreDiscardedAndTheMedianIsTheHeadline() {
        val generator = Scripted(decode = listOf(1.0, 30.0, 10.0, 20.0))
        val (summary) = BenchmarkLoop(warmup = 1, repetitions = 3).run(listOf(prompt to "rendered"), generator)
        assertEquals(List(4) { "rendered" }, generator.prompts)
        assertEquals(Spread(10.0, 20.0, 30.0), summary.decodeTokensPerSec)
        assertEquals(Spread(101.0, 102.0, 103.0), summary.ttftMs)
        assertEquals(Spread(100.0, 150.0, 200.0), summary.prefillTokensPerSec)
        assertEquals(8, summary.generatedTokens)
        assertEquals(1, summary.warmup)
        assertEquals(3, summary.repetitions)
    }

    @Test
    fun listenerSeesEveryRunAndWhetherItCounts() {
        val seen = mutableListOf<Pair<Int, Boolean>>()
        BenchmarkLoop(warmup = 2, repetitions = 1).run(listOf(prompt to "x"), Scripted(List(3) { 5.0 })) { _, index, total, measured ->
            assertEquals(3, total)
            seen += index to measured
        }
        assertEquals(listOf(1 to false, 2 to false, 3 to true), seen)
    }

    @Test
    fun promptThatTokenizesDifferentlyAcrossRunsIsAnError() {
        val generator = Scripted(decode = List(3) { 5.0 }, promptTokens = listOf(10, 10, 11))
        assertFailsWith<ContractError> { BenchmarkLoop(warmup = 0, repetitions = 3).run(listOf(prompt to "x"), generator) }
    }

    @Test
    fun badCountsAreRejected() {
        assertFailsWith<IllegalArgumentException> { BenchmarkLoop(warmup = 0, repetitions = 0) }
        assertFailsWith<IllegalArgumentException> { BenchmarkLoop(warmup = -1, repetitions = 1) }
    }
}
