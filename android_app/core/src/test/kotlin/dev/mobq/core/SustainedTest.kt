package dev.mobq.core

import org.junit.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

class SustainedTest {
    private class FakeClock(var now: Double = 0.0) : Clock {
        override fun nowMs() = now
    }

    /** 500 ms of prefill, then one token every `msPerToken(now)`: throttles after 10 s. */
    private class FakeModel(private val clock: FakeClock) : StreamingGenerator {
        var generations = 0
        private var stopped = false

        fun msPerToken() = if (clock.now < 10_000) 50.0 else 100.0

        override fun generate(prompt: String, maxNewTokens: Int, onToken: (String) -> Unit) {
            generations += 1
            stopped = false
            clock.now += 500.0
            for (i in 0 until maxNewTokens) {
                if (i > 0) clock.now += msPerToken()
                onToken("t")
                if (stopped) return
            }
        }

        override fun stop() {
            stopped = true
        }
    }

    private fun sampler(clock: FakeClock) = SustainedSampler(
        durationS = 20.0,
        intervalS = 5.0,
        clock = clock,
        // The phone reports "light" a little after it starts throttling (at 10 s).
        thermal = { ThermalReading(if (clock.now < 10_500) "none" else "light", clock.now / 20_000) },
        memory = { 900.0 },
    )

    @Test
    fun samplesShowThrottlingWithThermalStateAndExcludePrefill() {
        val clock = FakeClock()
        val model = FakeModel(clock)
        val result = SustainedRun(sampler(clock), "prompt", maxNewTokens = 40).run(model)
        assertEquals(20.0, result.durationS)
        assertEquals(5.0, result.intervalS)
        assertEquals(4, result.samples.size, "one sample per 5 s over 20 s: ${result.samples}")
        assertTrue(model.generations > 1, "the context filled and generation restarted")
        val (a, b, c, d) = result.samples
        // Decode-only rates: 20 tok/s before the throttle, 10 after (prefill gaps excluded).
        listOf(a, b).forEach { assertEquals(20.0, it.tokensPerSec, 1.5) }
        listOf(c, d).forEach { assertEquals(10.0, it.tokensPerSec, 1.0) }
        assertEquals(listOf("none", "none", "light", "light"), result.samples.map { it.thermal })
        // A window closes on the first token after 5 s (a prefill gap can push it later);
        // the last one is cut short where the run ends.
        assertTrue(listOf(a, b, c).zipWithNext().all { (x, y) -> y.tS - x.tS in 5.0..5.7 }, "${result.samples}")
        assertEquals(900.0, d.rssMb)
        assertTrue(d.tS >= 20.0 && d.tS < 20.7) // a sample closes on the first token after its interval
    }

    @Test
    fun partialLastWindowIsKept() {
        val clock = FakeClock()
        val s = sampler(clock)
        s.start()
        s.beginPrompt()
        clock.now = 1_000.0
        s.onToken()
        clock.now = 3_000.0
        s.onToken(20)
        val result = s.finish()
        assertEquals(1, result.samples.size)
        assertEquals(3.0, result.samples[0].tS)
        assertEquals(21 / 2.0, result.samples[0].tokensPerSec, 1e-9) // prefill second excluded
    }

    @Test
    fun modelThatGeneratesNothingIsAnErrorNotAHang() {
        val clock = FakeClock()
        val silent = object : StreamingGenerator {
            override fun generate(prompt: String, maxNewTokens: Int, onToken: (String) -> Unit) {
                clock.now += 10.0
            }

            override fun stop() {}
        }
        assertFailsWith<ContractError> { SustainedRun(sampler(clock), "p", 8).run(silent) }
    }

    @Test
    fun androidThermalCodesHaveTheResultNames() {
        assertEquals("none", AndroidThermal.name(0))
        assertEquals("severe", AndroidThermal.name(3))
        assertEquals("shutdown", AndroidThermal.name(6))
        assertEquals("unknown(9)", AndroidThermal.name(9))
    }

    @Test
    fun invalidIntervalsAreRejected() {
        val clock = FakeClock()
        assertFailsWith<IllegalArgumentException> { SustainedSampler(5.0, 10.0, clock, { ThermalReading(null, null) }, { null }) }
        assertFailsWith<IllegalArgumentException> { SustainedSampler(0.0, 1.0, clock, { ThermalReading(null, null) }, { null }) }
    }
}
