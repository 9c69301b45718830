package dev.mobq.app

import dev.mobq.core.GenerationStats
import dev.mobq.core.Generator
import dev.mobq.core.StreamingGenerator
import org.pytorch.executorch.extension.llm.LlmCallback
import org.pytorch.executorch.extension.llm.LlmModule

/**
 * ExecuTorch's LLM runner behind the core's Generator interfaces. The runner stops on the
 * eos ids the export wrote into the program (get_eos_ids, from the manifest's model), and
 * generates at most `maxNewTokens` after the prompt, within the export's context.
 */
class Engine(private val model: InstalledModel) : Generator, StreamingGenerator {
    private val module = LlmModule(model.programPath, model.tokenizerPath, 0.0f) // greedy: repeatable benchmarks
    var loadMs: Double = 0.0
        private set

    fun load() {
        val start = System.nanoTime()
        val status = module.load()
        loadMs = (System.nanoTime() - start) / 1e6
        check(status == 0) { "ExecuTorch could not load ${model.programPath} (error $status)" }
    }

    // Prompt lengths in tokens, learned from the runner's stats (the app has no tokenizer of its own).
    private val promptTokens = mutableMapOf<String, Int>()

    /**
     * The runner's seq_len counts prompt + generated tokens. Once a prompt's token count is
     * known (after its first run, e.g. the warm-up) it generates exactly maxNewTokens; before
     * that, the prompt's length in characters bounds its tokens. Always within the context.
     */
    private fun seqLen(prompt: String, maxNewTokens: Int): Int =
        minOf(model.manifest.maxContextLen, maxNewTokens + (promptTokens[prompt] ?: prompt.length))

    override fun generate(prompt: String, maxNewTokens: Int): GenerationStats {
        module.resetContext()
        var stats: String? = null
        val callback = object : LlmCallback {
            override fun onResult(result: String) {}

            override fun onStats(statsJson: String) {
                stats = statsJson
            }
        }
        val status = module.generate(prompt, seqLen(prompt, maxNewTokens), callback, false)
        check(status == 0) { "generate failed with error $status" }
        val parsed = GenerationStats.fromExecuTorchJson(stats ?: error("ExecuTorch reported no stats"))
        promptTokens[prompt] = parsed.promptTokens
        return parsed
    }

    override fun generate(prompt: String, maxNewTokens: Int, onToken: (String) -> Unit) {
        module.resetContext()
        val callback = object : LlmCallback {
            override fun onResult(result: String) = onToken(result)
        }
        module.generate(prompt, seqLen(prompt, maxNewTokens), callback, false)
    }

    /** One chat turn: the whole conversation is re-prefilled from a fresh context. */
    fun chat(prompt: String, callback: LlmCallback) {
        module.resetContext()
        val status = module.generate(prompt, model.manifest.maxContextLen, callback, false)
        check(status == 0) { "generate failed with error $status" }
    }

    override fun stop() = module.stop()

    fun close() = module.resetNative()
}
