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

/** One generation's figures, from ExecuTorch's stats JSON (extension/llm/runner/stats.h). */
data class GenerationStats(
    val promptTokens: Int,
    val generatedTokens: Int,
    val ttftMs: Double,
    val prefillTokensPerSec: Double,
    val decodeTokensPerSec: Double,
) {
    companion object {
        /**
         * The runner reports timestamps in units of SCALING_FACTOR_UNITS_PER_SECOND (ms).
         * Prefill runs from inference start to the end of prompt evaluation; decode from there
         * to the end, over the generated tokens, which is how ExecuTorch's own report counts.
         */
        fun fromExecuTorchJson(text: String): GenerationStats {
            val s = Json.parseObject(text, "ExecuTorch stats")
            val unitsPerSecond = s.doubleOrNull("SCALING_FACTOR_UNITS_PER_SECOND") ?: 1000.0
            val start = s.double("inference_start_ms")
            val promptEnd = s.double("prompt_eval_end_ms")
            val firstToken = s.double("first_token_ms")
            val end = s.double("inference_end_ms")
            val promptTokens = s.int("prompt_tokens")
            val generated = s.int("generated_tokens")
            return GenerationStats(
                promptTokens = promptTokens,
                generatedTokens = generated,
                ttftMs = (firstToken - start) * 1000.0 / unitsPerSecond,
                prefillTokensPerSec = rate(promptTokens, promptEnd - start, unitsPerSecond, "prefill"),
                decodeTokensPerSec = rate(generated, end - promptEnd, unitsPerSecond, "decode"),
            )
        }

        private fun rate(tokens: Int, units: Double, unitsPerSecond: Double, phase: String): Double {
            if (tokens == 0) return 0.0
            if (units <= 0) {
                throw ContractError("ExecuTorch stats: $phase of $tokens tokens took no measurable time; use a longer prompt or generation")
            }
            return tokens / (units / unitsPerSecond)
        }
    }
}
