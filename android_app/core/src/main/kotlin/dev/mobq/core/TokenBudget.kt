package dev.mobq.core

/**
 * The seq_len handed to ExecuTorch's LlmModule.generate. It counts prompt + generated tokens
 * (GenerationConfig.resolve_max_new_tokens, extension/llm/runner/irunner.h), so the prompt's
 * length in tokens must be known to generate exactly maxNewTokens. It comes from the runner's
 * own stats of an earlier run of the same text, else from prompts.json (counted by `mobq
 * bundle` with the export's tokenizer). With neither, seq_len is the whole context and the
 * token callback stops the runner once the budget is spent (TokenBudget).
 */
class PromptLengths(private val contextLen: Int) {
    private val learned = mutableMapOf<String, Int>()

    /** The runner's own count for `rendered` (stats' prompt_tokens) wins from now on. */
    fun record(rendered: String, promptTokens: Int) {
        learned[rendered] = promptTokens
    }

    fun known(rendered: String, bundled: Int?): Int? = learned[rendered] ?: bundled

    fun seqLen(rendered: String, maxNewTokens: Int, bundled: Int?): Int =
        known(rendered, bundled)?.let { minOf(contextLen, it + maxNewTokens) } ?: contextLen
}

/**
 * Counts the pieces the token callback receives (echo off: one per token, the first from
 * prefill) and says when `maxNewTokens` have arrived, so the caller can stop the runner.
 * A fallback only: Android's JNI holds back a token that ends inside a UTF-8 character and
 * hands it on with the next, so pieces can undercount tokens and such a run may go a little
 * longer. The figures stay true either way: they come from the runner's stats.
 */
class TokenBudget(val maxNewTokens: Int) {
    init {
        require(maxNewTokens >= 1) { "maxNewTokens must be >= 1, got $maxNewTokens" }
    }

    var received: Int = 0
        private set

    /** Counts one token; true once the budget is spent. */
    fun onToken(): Boolean {
        received += 1
        return received >= maxNewTokens
    }
}
