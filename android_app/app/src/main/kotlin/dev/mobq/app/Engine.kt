package dev.mobq.app

import dev.mobq.core.BenchPrompt
import dev.mobq.core.GenerationStats
import dev.mobq.core.Generator
import dev.mobq.core.PromptLengths
import dev.mobq.core.RunnerStats
import dev.mobq.core.StreamingGenerator
import dev.mobq.core.TokenBudget
import org.pytorch.executorch.ExecutorchRuntimeException
import org.pytorch.executorch.extension.llm.LlmCallback
import org.pytorch.executorch.extension.llm.LlmModule

/** ExecuTorch failed: what the app asked for, with the runtime's error code in the message. */
class EngineError(message: String, cause: Throwable? = null) : Exception(message, cause)

/**
 * ExecuTorch's LLM runner behind the core's Generator interfaces: the app's only file that
 * calls ExecuTorch (docs/apps.md lists the calls). `make android-core-test` compiles it against
 * stubs of the 1.5 API (android_app/executorch-stubs) with warnings as errors.
 *
 * Every generation starts from a fresh context with echo off, so the token callback sees only
 * generated tokens and the figures come from the runner's stats JSON (RunnerStats). The runner
 * stops on the eos ids the export wrote into the program (get_eos_ids).
 */
class Engine(private val model: InstalledModel) : Generator, StreamingGenerator, AutoCloseable {
    private val module = LlmModule(model.programPath, model.tokenizerPath, 0.0f) // greedy: repeatable benchmarks
    private val lengths = PromptLengths(model.manifest.maxContextLen)
    var loadMs: Double = 0.0
        private set

    fun load() {
        val start = System.nanoTime()
        runtime("load ${model.programPath}") { module.load() }
        loadMs = (System.nanoTime() - start) / 1e6
    }

    /** One benchmark run: exactly prompt.maxNewTokens tokens, measured by the runner itself. */
    override fun generate(prompt: BenchPrompt, rendered: String): GenerationStats {
        val budget = TokenBudget(prompt.maxNewTokens)
        val seqLen = lengths.seqLen(rendered, prompt.maxNewTokens, prompt.promptTokens)
        val stats = run(rendered, seqLen) { if (budget.onToken()) module.stop() }
            ?: throw EngineError("ExecuTorch reported no stats for prompt '${prompt.id}'")
        return RunnerStats.figures(stats).also { lengths.record(rendered, it.promptTokens) }
    }

    /** Streams up to maxNewTokens tokens (the sustained run); stop() ends it early. */
    override fun generate(prompt: String, maxNewTokens: Int, onToken: (String) -> Unit) {
        val budget = TokenBudget(maxNewTokens)
        run(prompt, lengths.seqLen(prompt, maxNewTokens, bundled = null)) { token ->
            onToken(token)
            if (budget.onToken()) module.stop()
        }
    }

    /**
     * One chat turn: the whole conversation, rendered, is prefilled from a fresh context and
     * the answer may fill the rest of it. Returns the turn's figures when the runner gave stats.
     */
    fun chat(prompt: String, onToken: (String) -> Unit): GenerationStats? =
        run(prompt, model.manifest.maxContextLen, onToken)?.let(RunnerStats::figures)

    override fun stop() = module.stop()

    override fun close() = module.close()

    /** generate() from a fresh context, echo off; returns the stats JSON the runner reported. */
    private fun run(prompt: String, seqLen: Int, onToken: (String) -> Unit): String? {
        var statsJson: String? = null
        val callback = object : LlmCallback {
            override fun onResult(result: String) = onToken(result)

            override fun onStats(stats: String) {
                statsJson = stats
            }
        }
        runtime("reset the context") { module.resetContext() }
        // A failed generate() also reaches onError; the exception carries the same code.
        runtime("generate") { module.generate(prompt, seqLen, callback, false) }
        return statsJson
    }

    /** ExecuTorch >= 1.3 throws instead of returning a status; say what failed and its code. */
    private inline fun runtime(what: String, call: () -> Unit) {
        try {
            call()
        } catch (error: ExecutorchRuntimeException) {
            throw EngineError("ExecuTorch could not $what: error 0x${error.errorCode.toString(16)} (${error.message})", error)
        }
    }
}
