package dev.mobq.core

/**
 * The benchmark figures, defined once: computed from ExecuTorch's runner stats JSON, the
 * string LlmCallback.onStats receives (stats_to_json_string, extension/llm/runner/stats.h,
 * ExecuTorch 1.5). The same rules are toolchain/mobq/stats.py (`mobq bench`) and
 * ios_app/MobqCore/Sources/MobqCore/RunnerStats.swift; all three are tested on the golden
 * files in docs/schema/examples/runner-stats. Generation runs with echo off.
 *
 * - TTFT: inference_start_ms -> first_token_ms.
 * - prefill tokens/s: prompt_tokens over inference_start_ms -> prompt_eval_end_ms.
 * - decode tokens/s: generated_tokens (the runner's decode steps) over prompt_eval_end_ms -> inference_end_ms.
 * - generated tokens: generated_tokens + 1, the token prefill produced included.
 * - an interval under one clock unit counts as one unit and sets timerFloor.
 */
object RunnerStats {
    private const val DEFAULT_UNITS_PER_SECOND = 1000.0 // SCALING_FACTOR_UNITS_PER_SECOND: ms
    val REQUIRED = listOf("prompt_tokens", "generated_tokens", "inference_start_ms", "prompt_eval_end_ms", "first_token_ms", "inference_end_ms")

    fun figures(json: String): GenerationStats = figures(Json.parseObject(json, "runner stats"))

    fun figures(stats: Fields): GenerationStats {
        REQUIRED.forEach { number(stats, it) }
        val perSecond = stats.doubleOrNull("SCALING_FACTOR_UNITS_PER_SECOND") ?: DEFAULT_UNITS_PER_SECOND
        val promptTokens = stats.int("prompt_tokens")
        val decodeSteps = stats.int("generated_tokens")
        val prefill = interval(stats, "inference_start_ms", "prompt_eval_end_ms")
        val ttft = interval(stats, "inference_start_ms", "first_token_ms")
        val decode = interval(stats, "prompt_eval_end_ms", "inference_end_ms")
        return GenerationStats(
            promptTokens = promptTokens,
            generatedTokens = decodeSteps + 1,
            ttftMs = ttft.units * 1000.0 / perSecond,
            prefillTokensPerSec = promptTokens / (prefill.units / perSecond),
            decodeTokensPerSec = if (decodeSteps > 0) decodeSteps / (decode.units / perSecond) else 0.0,
            timerFloor = prefill.floored || ttft.floored || (decode.floored && decodeSteps > 0),
        )
    }

    private class Interval(val units: Double, val floored: Boolean)

    private fun number(stats: Fields, key: String): Double {
        if (!stats.has(key)) throw ContractError("runner stats: missing field '$key'")
        return stats.double(key)
    }

    /** Clock units from `start` to `end`, floored at one unit (flagged when floored). */
    private fun interval(stats: Fields, start: String, end: String): Interval {
        val units = number(stats, end) - number(stats, start)
        if (units < 0) throw ContractError("runner stats: $end is before $start")
        return Interval(maxOf(units, 1.0), units < 1)
    }
}
