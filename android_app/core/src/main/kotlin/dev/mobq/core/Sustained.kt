package dev.mobq.core

/** A monotonic clock in milliseconds (SystemClock.elapsedRealtime on Android; fake in tests). */
fun interface Clock {
    fun nowMs(): Double
}

/** Thermal state as the platform names it, plus Android's headroom forecast where available. */
data class ThermalReading(val status: String?, val headroom: Double?)

fun interface ThermalProbe {
    fun read(): ThermalReading
}

fun interface MemoryProbe {
    /** Current resident memory of this process in MiB, or null where the platform hides it. */
    fun rssMb(): Double?
}

/** Android's PowerManager.THERMAL_STATUS_* codes under the names the result files use. */
object AndroidThermal {
    private val NAMES = listOf("none", "light", "moderate", "severe", "critical", "emergency", "shutdown")

    fun name(status: Int): String = NAMES.getOrElse(status) { "unknown($status)" }
}

/**
 * Samples decode speed and thermal state every `intervalS` seconds for `durationS` seconds.
 *
 * Fed by the token callback. The sustained run restarts generation whenever the context fills;
 * the prefill of each restart is excluded (from `beginPrompt` to the first token), so a sample
 * measures decode throughput, which is what throttling lowers.
 */
class SustainedSampler(
    val durationS: Double = 300.0,
    val intervalS: Double = 5.0,
    private val clock: Clock,
    private val thermal: ThermalProbe,
    private val memory: MemoryProbe,
) {
    init {
        require(durationS > 0) { "duration must be > 0 s, got $durationS" }
        require(intervalS > 0 && intervalS <= durationS) { "interval must be in (0, duration], got $intervalS" }
    }

    private val samples = mutableListOf<SustainedSample>()
    private var startMs = Double.NaN
    private var windowStartMs = 0.0
    private var windowTokens = 0
    private var windowExcludedMs = 0.0
    private var prefillStartMs: Double? = null

    val started: Boolean get() = !startMs.isNaN()

    fun start() {
        startMs = clock.nowMs()
        windowStartMs = startMs
    }

    private fun elapsedS(now: Double): Double = (now - startMs) / 1000.0

    val done: Boolean get() = started && elapsedS(clock.nowMs()) >= durationS

    /** Generation is about to start (prefill): time until the next token is not decode time. */
    fun beginPrompt() {
        check(started) { "start() the sampler first" }
        prefillStartMs = clock.nowMs()
    }

    fun onToken(count: Int = 1) {
        check(started) { "start() the sampler first" }
        val now = clock.nowMs()
        prefillStartMs?.let { windowExcludedMs += now - maxOf(it, windowStartMs) }
        prefillStartMs = null
        windowTokens += count
        if ((now - windowStartMs) / 1000.0 >= intervalS) closeWindow(now)
    }

    private fun closeWindow(now: Double) {
        val decodeS = (now - windowStartMs - windowExcludedMs) / 1000.0
        val reading = thermal.read()
        samples += SustainedSample(
            tS = elapsedS(now),
            tokensPerSec = if (decodeS > 0) windowTokens / decodeS else 0.0,
            thermal = reading.status,
            thermalHeadroom = reading.headroom,
            rssMb = memory.rssMb(),
        )
        windowStartMs = now
        windowTokens = 0
        windowExcludedMs = 0.0
    }

    /** The time series for the result; a last partial window counts if it holds tokens. */
    fun finish(): Sustained {
        check(started) { "start() the sampler first" }
        val now = clock.nowMs()
        if (windowTokens > 0 && now > windowStartMs) closeWindow(now)
        return Sustained(durationS = durationS, intervalS = intervalS, samples = samples.toList())
    }
}

/** Streams tokens from a fresh context; `stop` ends the current generation early. */
interface StreamingGenerator {
    fun generate(prompt: String, maxNewTokens: Int, onToken: (String) -> Unit)

    fun stop()
}

/**
 * Decodes continuously until the sampler's duration is over: each generation runs to the
 * context limit, then the context is reset and the prompt starts again.
 */
class SustainedRun(private val sampler: SustainedSampler, private val prompt: String, private val maxNewTokens: Int) {
    fun run(generator: StreamingGenerator): Sustained {
        sampler.start()
        while (!sampler.done) {
            sampler.beginPrompt()
            var tokens = 0
            generator.generate(prompt, maxNewTokens) {
                tokens += 1
                sampler.onToken()
                if (sampler.done) generator.stop()
            }
            // A model that stops at once would spin here without decoding anything.
            if (tokens == 0) throw ContractError("the sustained prompt generated no tokens; the model stops at once on it")
        }
        return sampler.finish()
    }
}
