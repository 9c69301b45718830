package dev.mobq.core

/**
 * One benchmark prompt: the user message and how many tokens to generate for it.
 * `promptTokens` is the rendered prompt's length that `mobq bundle` counted with the export's
 * tokenizer (prompts.json); the app compares it with what the on-device tokenizer reports.
 */
data class BenchPrompt(val id: String, val text: String, val maxNewTokens: Int, val promptTokens: Int? = null)

/**
 * The fixed prompt set both apps benchmark with. Its canonical copy is
 * docs/schema/examples/prompt-set.json; the Kotlin and Swift tests check they equal it.
 */
data class PromptSet(val name: String, val prompts: List<BenchPrompt>) {
    /** Drops the bundle's token counts: what remains is the set itself. */
    fun withoutCounts(): PromptSet = copy(prompts = prompts.map { it.copy(promptTokens = null) })

    /** Rendered with the model's chat format (thinking off, so decode measures the answer). */
    fun rendered(manifest: ModelManifest): List<Pair<BenchPrompt, String>> {
        prompts.forEach { prompt ->
            if (prompt.maxNewTokens >= manifest.maxContextLen) {
                throw ContractError("prompt '${prompt.id}' asks for ${prompt.maxNewTokens} new tokens but the model's context is ${manifest.maxContextLen}; export with a larger --ctx")
            }
        }
        return prompts.map { it to manifest.prompt(it.text, think = false) }
    }

    companion object {
        const val FILE_NAME = "prompts.json" // written next to the model by `mobq bundle`

        val DEFAULT = PromptSet(
            name = "mobq-bench-v1",
            prompts = listOf(
                BenchPrompt("short", "Why is the sky blue?", 64),
                BenchPrompt(
                    "medium",
                    "Explain, step by step, how a bill becomes a law in a parliamentary democracy, and name two ways it can fail along the way.",
                    64,
                ),
                BenchPrompt(
                    "long",
                    "Summarise the following notes in three bullet points. Notes: the team met on Monday to plan the release; testing found two crashes on older phones; the memory use of the model grew after the last update; the designers asked for a darker theme; the launch date moved by a week; marketing wants benchmark numbers from at least three devices; the support team asked for a way to export logs.",
                    64,
                ),
            ),
        )

        fun parse(text: String): PromptSet {
            val root = Json.parseObject(text, "prompt set")
            return PromptSet(
                name = root.string("name"),
                prompts = root.objects("prompts").map {
                    BenchPrompt(it.string("id"), it.string("text"), it.int("max_new_tokens"), it.intOrNull("prompt_tokens"))
                },
            )
        }
    }
}
