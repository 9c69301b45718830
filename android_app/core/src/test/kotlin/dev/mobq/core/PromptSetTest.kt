package dev.mobq.core

import org.junit.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

class PromptSetTest {
    private val manifest = ModelManifest.parse(Golden.text("manifest.json"))

    @Test
    fun defaultSetEqualsTheSharedGoldenFile() {
        assertEquals(PromptSet.parse(Golden.text("prompt-set.json")), PromptSet.DEFAULT)
    }

    @Test
    fun promptsAreRenderedWithTheModelsChatFormat() {
        val rendered = PromptSet.DEFAULT.rendered(manifest)
        assertEquals(PromptSet.DEFAULT.prompts.size, rendered.size)
        rendered.forEach { (prompt, text) ->
            assertTrue(text.startsWith(manifest.chatFormat!!.firstUserPrefix + prompt.text))
            assertTrue(text.endsWith(manifest.chatFormat!!.assistantPrefixNoThink!!))
        }
    }

    @Test
    fun bundledPromptsCarryTokenCounts() {
        val bundled = PromptSet.parse(
            """{"name": "mobq-bench-v1", "prompts": [{"id": "short", "text": "Why is the sky blue?", "max_new_tokens": 64, "prompt_tokens": 17}]}""",
        )
        assertEquals(17, bundled.prompts.single().promptTokens)
        assertEquals(PromptSet.DEFAULT.prompts.first(), bundled.withoutCounts().prompts.single())
    }

    @Test
    fun generationLongerThanTheContextIsRefused() {
        val set = PromptSet("big", listOf(BenchPrompt("x", "hi", 256)))
        val error = assertFailsWith<ContractError> { set.rendered(manifest) }
        assertTrue(error.message!!.contains("context is 256"))
    }
}
