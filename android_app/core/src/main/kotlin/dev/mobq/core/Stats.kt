package dev.mobq.core

/** min / median / max over the measured repetitions (the result's `spread`). */
data class Spread(val min: Double, val median: Double, val max: Double) {
    companion object {
        fun of(values: List<Double>): Spread {
            require(values.isNotEmpty()) { "no values to summarise" }
            val sorted = values.sorted()
            val mid = sorted.size / 2
            val median = if (sorted.size % 2 == 1) sorted[mid] else (sorted[mid - 1] + sorted[mid]) / 2
            return Spread(sorted.first(), median, sorted.last())
        }
    }
}

/**
 * One generation's figures; RunnerStats.figures computes them from ExecuTorch's stats JSON.
 * `timerFloor`: an interval was under the runner's clock unit and was counted as one unit.
 */
data class GenerationStats(
    val promptTokens: Int,
    val generatedTokens: Int,
    val ttftMs: Double,
    val prefillTokensPerSec: Double,
    val decodeTokensPerSec: Double,
    val timerFloor: Boolean = false,
)
