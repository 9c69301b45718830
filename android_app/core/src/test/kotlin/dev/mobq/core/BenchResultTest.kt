package dev.mobq.core

import org.json.JSONObject
import org.junit.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

class BenchResultTest {
    private val validator = SchemaValidator(Golden.schema)
    private val manifest = ModelManifest.parse(Golden.text("manifest.json"))
    private val android = DeviceInfo("android", "Google Pixel 8 Pro", "Android 15 (API 35)", mapOf("executorch" to "1.5.1", "app" to "0.1.0", "abi" to "arm64-v8a"), threads = 4)

    private fun measured(sustained: Sustained? = null): BenchResult {
        val summary = PromptSummary(
            prompt = PromptSet.DEFAULT.prompts[0],
            promptTokens = 17,
            generatedTokens = 64,
            ttftMs = Spread(80.0, 90.123, 95.0),
            prefillTokensPerSec = Spread(180.0, 190.0, 200.0),
            decodeTokensPerSec = Spread(20.8, 21.3, 21.9),
            warmup = 1,
            repetitions = 3,
        )
        return BenchResult.fromMeasurement(manifest, android, summary, loadMs = 1830.04, peakRssMb = 905.0, createdAt = "2026-11-24T10:00:00+00:00", sustained = sustained)
    }

    @Test
    fun everyGoldenResultRoundTripsExactly() {
        assertEquals(listOf("bench-result-android-sustained.json", "bench-result-host.json", "bench-result-ios.json"), Golden.results)
        for (name in Golden.results) {
            val text = Golden.text(name)
            val (result) = BenchResult.parseAll(text)
            assertEquals(Golden.tree(text), Golden.tree(result.toJson()), name)
            assertEquals(emptyList(), validator.validate(result.toJson()), name)
        }
    }

    @Test
    fun resultBuiltFromTheGoldenManifestValidatesAgainstTheSchema() {
        val result = measured()
        assertEquals(emptyList(), validator.validate(result.toJson()))
        assertEquals("qwen3-tiny", result.model)
        assertEquals("8da4w", result.scheme)
        assertEquals(256, result.ctx)
        assertEquals(0.83, result.modelSizeMb)
        assertEquals(manifest.program.sha256, result.manifestSha256)
        assertEquals(21.3, result.decodeTokensPerSec)
        assertEquals(90.1, result.ttftMs)
        assertEquals(1830.0, result.loadMs)
        assertEquals(Spread(20.8, 21.3, 21.9), result.spread["decode_tokens_per_sec"])
    }

    @Test
    fun sustainedSeriesIsWrittenInTheGoldenShape() {
        val (golden) = BenchResult.parseAll(Golden.text("bench-result-android-sustained.json"))
        val result = measured(sustained = golden.sustained)
        assertEquals(emptyList(), validator.validate(result.toJson()))
        val written = Golden.tree(result.toJson()) as Map<*, *>
        val expected = Golden.tree(Golden.text("bench-result-android-sustained.json")) as Map<*, *>
        assertEquals(expected["sustained"], written["sustained"])
        assertEquals(expected.keys, written.keys)
    }

    @Test
    fun tokenizerMismatchWithTheBundleIsNoted() {
        val summary = PromptSummary(PromptSet.DEFAULT.prompts[0].copy(promptTokens = 18), 17, 64, Spread(1.0, 1.0, 1.0), Spread(1.0, 1.0, 1.0), Spread(1.0, 1.0, 1.0), 0, 1)
        val result = BenchResult.fromMeasurement(manifest, android, summary, 1.0, 1.0, "2026-11-24T10:00:00+00:00")
        assertEquals(18, result.notes["bundle_prompt_tokens"])
        assertTrue((result.notes["tokenizer_mismatch"] as String).contains("17"))
        assertEquals(emptyList(), validator.validate(result.toJson()))
    }

    @Test
    fun listOfResultsIsOneFile() {
        val text = resultsToJson(listOf(measured(), measured()))
        assertEquals(2, BenchResult.parseAll(text).size)
        assertTrue(text.trimStart().startsWith("["))
    }

    @Test
    fun validatorCatchesWhatPydanticWouldRefuse() {
        fun broken(change: (JSONObject) -> Unit) = JSONObject(measured().toJson()).also(change).toString()
        assertTrue(validator.validate(broken { it.remove("decode_tokens_per_sec") }).single().contains("decode_tokens_per_sec"))
        assertTrue(validator.validate(broken { it.put("ctx", 0) }).single().contains("ctx"))
        assertTrue(validator.validate(broken { it.put("source", "desktop") }).isNotEmpty())
        assertTrue(validator.validate(broken { it.put("speed", 1) }).single().contains("speed"))
        assertTrue(validator.validate(broken { it.getJSONObject("spread").put("x", JSONObject().put("min", 1)) }).isNotEmpty())
    }

    @Test
    fun parserRefusesUnknownFieldsAndBadSources() {
        val extra = JSONObject(measured().toJson()).put("speed", 1).toString()
        val error = assertFailsWith<ContractError> { BenchResult.parseAll(extra) }
        assertTrue(error.message!!.startsWith("unknown field 'speed'"))
        val source = JSONObject(measured().toJson()).put("source", "desktop").toString()
        assertFailsWith<ContractError> { BenchResult.parseAll(source) }
    }
}
