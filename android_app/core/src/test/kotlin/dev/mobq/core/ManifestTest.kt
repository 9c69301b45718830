package dev.mobq.core

import org.json.JSONObject
import org.junit.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue

class ManifestTest {
    private val golden = ModelManifest.parse(Golden.text("manifest.json"))

    private fun mutated(change: (JSONObject) -> Unit): String =
        JSONObject(Golden.text("manifest.json")).also(change).toString()

    @Test
    fun goldenManifestGivesFilesAndRuntimeMetadata() {
        assertEquals("model.pte", golden.program.path)
        assertEquals(827264L, golden.program.bytes)
        assertEquals("tokenizer.json", golden.tokenizer.path)
        assertEquals(listOf(2, 0), golden.eosIds)
        assertNull(golden.bosId)
        assertEquals(false, golden.addBos)
        assertEquals(256, golden.maxContextLen)
        assertEquals("8da4w", golden.scheme)
        assertEquals("qwen3-tiny", golden.modelName)
        assertEquals("1.5.1", golden.executorchVersion)
        assertEquals(true, golden.verificationPassed)
    }

    @Test
    fun kvCacheSizeFollowsTheModelShape() {
        // K and V x 4 layers x 2 kv heads x head_dim 32 x ctx 256 x fp32.
        assertEquals(2L * 4 * 2 * 32 * 256 * 4, golden.kvCacheBytes)
        assertEquals(0.827264, golden.modelSizeMb, 1e-12)
    }

    @Test
    fun promptRendersLikeMobqPython() {
        // Expected strings are PromptFormat.render's output for the same turns (mobq.metadata).
        assertEquals(
            "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
            golden.prompt("Why is the sky blue?", think = false),
        )
        val turns = listOf(
            Turn(Role.SYSTEM, "Be brief."),
            Turn(Role.USER, "Hi"),
            Turn(Role.ASSISTANT, "Hello"),
            Turn(Role.USER, "Why?"),
        )
        assertEquals(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n",
            golden.chatFormat!!.render(turns, think = true),
        )
    }

    @Test
    fun withoutChatFormatThePromptIsSentAsIs() {
        val text = mutated { it.getJSONObject("runtime").put("chat_format", JSONObject.NULL) }
        assertEquals("plain", ModelManifest.parse(text).prompt("plain"))
    }

    @Test
    fun missingFieldIsNamed() {
        val text = mutated { it.getJSONObject("runtime").remove("eos_ids") }
        val error = assertFailsWith<ContractError> { ModelManifest.parse(text) }
        assertEquals("missing field 'runtime.eos_ids'", error.message)
    }

    @Test
    fun wrongTypeIsNamed() {
        val text = mutated { it.getJSONObject("export").put("ctx", "big") }
        val error = assertFailsWith<ContractError> { ModelManifest.parse(text) }
        assertEquals("field 'export.ctx': expected an integer, got String", error.message)
    }

    @Test
    fun fileEntryErrorsNameTheIndex() {
        val text = mutated { it.getJSONArray("files").getJSONObject(1).remove("sha256") }
        val error = assertFailsWith<ContractError> { ModelManifest.parse(text) }
        assertEquals("missing field 'files[1].sha256'", error.message)
    }

    @Test
    fun manifestWithoutProgramIsRefusedOnLoad() {
        val text = mutated { it.getJSONArray("files").remove(0) }
        val error = assertFailsWith<ContractError> { ModelManifest.parse(text) }
        assertEquals("manifest lists no file with role 'program'", error.message)
    }

    @Test
    fun newerSchemaVersionIsRefused() {
        val error = assertFailsWith<ContractError> { ModelManifest.parse(mutated { it.put("schema_version", 2) }) }
        assertTrue(error.message!!.startsWith("field 'schema_version'"))
    }

    @Test
    fun notJsonIsAClearError() {
        val error = assertFailsWith<ContractError> { ModelManifest.parse("{ nope") }
        assertTrue(error.message!!.startsWith("manifest.json is not valid JSON"))
    }
}
