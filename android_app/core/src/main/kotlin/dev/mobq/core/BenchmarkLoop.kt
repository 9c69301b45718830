package dev.mobq.core

/**
 * Runs one generation of `rendered` (the prompt in the model's chat format) from a fresh
 * context, at most `prompt.maxNewTokens` tokens; the app adapts ExecuTorch's LlmModule to it.
 */
fun interface Generator {
    fun generate(prompt: BenchPrompt, rendered: String): GenerationStats
}

/** A prompt's measured repetitions, summarised. Warm-up runs are not in it. */
data class PromptSummary(
    val prompt: BenchPrompt,
    val promptTokens: Int,
    val generatedTokens: Int,
    val ttftMs: Spread,
    val prefillTokensPerSec: Spread,
    val decodeTokensPerSec: Spread,
    val warmup: Int,
    val repetitions: Int,
    val timerFloor: Boolean = false, // a measured run had an interval under the runner's clock unit
)

/**
 * Warm-up then measured repetitions per prompt. Warm-up runs page the weights in and let the
 * CPU governor ramp up; the headline figure is the median of the repetitions, with the spread.
 */
class BenchmarkLoop(val warmup: Int = 1, val repetitions: Int = 3) {
    init {
        require(warmup >= 0) { "warmup must be >= 0, got $warmup" }
        require(repetitions >= 1) { "repetitions must be >= 1, got $repetitions" }
    }

    fun interface Listener {
        fun onRun(prompt: BenchPrompt, index: Int, total: Int, measured: Boolean)
    }

    fun run(
        prompts: List<Pair<BenchPrompt, String>>,
        generator: Generator,
        listener: Listener = Listener { _, _, _, _ -> },
    ): List<PromptSummary> = prompts.map { (prompt, text) -> measure(prompt, text, generator, listener) }

    private fun measure(prompt: BenchPrompt, text: String, generator: Generator, listener: Listener): PromptSummary {
        val total = warmup + repetitions
        val runs = (0 until total).map { index ->
            listener.onRun(prompt, index + 1, total, measured = index >= warmup)
            generator.generate(prompt, text)
        }.drop(warmup)
        val promptTokens = runs.map { it.promptTokens }.distinct()
        if (promptTokens.size != 1) {
            throw ContractError("prompt '${prompt.id}' tokenized to different lengths across runs: $promptTokens")
        }
        return PromptSummary(
            prompt = prompt,
            promptTokens = promptTokens.single(),
            // An early eos can shorten a run; the median keeps one odd run from defining it.
            generatedTokens = Spread.of(runs.map { it.generatedTokens.toDouble() }).median.toInt(),
            ttftMs = Spread.of(runs.map { it.ttftMs }),
            prefillTokensPerSec = Spread.of(runs.map { it.prefillTokensPerSec }),
            decodeTokensPerSec = Spread.of(runs.map { it.decodeTokensPerSec }),
            warmup = warmup,
            repetitions = repetitions,
            timerFloor = runs.any { it.timerFloor },
        )
    }
}
