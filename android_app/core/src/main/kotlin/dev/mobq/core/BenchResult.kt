package dev.mobq.core

/** One point of a sustained run (docs/schema/bench-result.schema.json, SustainedSample). */
data class SustainedSample(
    val tS: Double,
    val tokensPerSec: Double,
    val thermal: String? = null,
    val thermalHeadroom: Double? = null,
    val rssMb: Double? = null,
)

data class Sustained(val durationS: Double, val intervalS: Double, val samples: List<SustainedSample>)

/** The host's decode ceiling (written by `mobq bench`; the apps only read it back). */
data class Ceiling(
    val memoryBandwidthGbS: Double,
    val bytesPerToken: Long,
    val decodeTokensPerSecLimit: Double,
    val fractionOfLimit: Double,
    val method: String,
)

/** Who measured: the result's source, device, os and runtime versions. */
data class DeviceInfo(
    val source: String,
    val device: String,
    val os: String,
    val runtime: Map<String, String>,
    val threads: Int? = null,
)

/**
 * One benchmark result in the schema shared with `mobq bench` and the iOS app
 * (toolchain/mobq/results.py is the contract; docs/schema/bench-result.schema.json its JSON
 * Schema). Field names below are the JSON keys, written in the schema's order.
 */
data class BenchResult(
    val schemaVersion: Int = SCHEMA_VERSION,
    val source: String,
    val createdAt: String,
    val model: String,
    val scheme: String,
    val ctx: Int,
    val modelSizeMb: Double,
    val device: String,
    val os: String,
    val runtime: Map<String, String>,
    val threads: Int?,
    val promptTokens: Int,
    val generatedTokens: Int,
    val warmup: Int,
    val repetitions: Int,
    val loadMs: Double,
    val ttftMs: Double,
    val prefillTokensPerSec: Double,
    val decodeTokensPerSec: Double,
    val peakRssMb: Double,
    val spread: Map<String, Spread> = emptyMap(),
    val ceiling: Ceiling? = null,
    val sustained: Sustained? = null,
    val manifestSha256: String? = null,
    val notes: Map<String, Any?> = emptyMap(),
) {
    init {
        if (source !in SOURCES) throw ContractError("field 'source': '$source' is not one of ${SOURCES.joinToString()}")
    }

    fun toMap(): Map<String, Any?> = linkedMapOf(
        "schema_version" to schemaVersion,
        "source" to source,
        "created_at" to createdAt,
        "model" to model,
        "scheme" to scheme,
        "ctx" to ctx,
        "model_size_mb" to modelSizeMb,
        "device" to device,
        "os" to os,
        "runtime" to runtime,
        "threads" to threads,
        "prompt_tokens" to promptTokens,
        "generated_tokens" to generatedTokens,
        "warmup" to warmup,
        "repetitions" to repetitions,
        "load_ms" to loadMs,
        "ttft_ms" to ttftMs,
        "prefill_tokens_per_sec" to prefillTokensPerSec,
        "decode_tokens_per_sec" to decodeTokensPerSec,
        "peak_rss_mb" to peakRssMb,
        "spread" to spread.mapValues { (_, s) -> linkedMapOf("min" to s.min, "median" to s.median, "max" to s.max) },
        "ceiling" to ceiling?.let {
            linkedMapOf(
                "memory_bandwidth_gb_s" to it.memoryBandwidthGbS,
                "bytes_per_token" to it.bytesPerToken,
                "decode_tokens_per_sec_limit" to it.decodeTokensPerSecLimit,
                "fraction_of_limit" to it.fractionOfLimit,
                "method" to it.method,
            )
        },
        "sustained" to sustained?.let { s ->
            linkedMapOf(
                "duration_s" to s.durationS,
                "interval_s" to s.intervalS,
                "samples" to s.samples.map {
                    linkedMapOf(
                        "t_s" to it.tS,
                        "tokens_per_sec" to it.tokensPerSec,
                        "thermal" to it.thermal,
                        "thermal_headroom" to it.thermalHeadroom,
                        "rss_mb" to it.rssMb,
                    )
                },
            )
        },
        "manifest_sha256" to manifestSha256,
        "notes" to notes,
    )

    fun toJson(): String = Json.write(toMap())

    companion object {
        const val SCHEMA_VERSION = 1
        val SOURCES = setOf("host", "android", "ios")
        private val KEYS = setOf(
            "schema_version", "source", "created_at", "model", "scheme", "ctx", "model_size_mb", "device", "os",
            "runtime", "threads", "prompt_tokens", "generated_tokens", "warmup", "repetitions", "load_ms",
            "ttft_ms", "prefill_tokens_per_sec", "decode_tokens_per_sec", "peak_rss_mb", "spread", "ceiling",
            "sustained", "manifest_sha256", "notes",
        )

        /** A result file holds one object or a list of them, like mobq's load_results. */
        fun parseAll(text: String): List<BenchResult> {
            val trimmed = text.trimStart()
            if (!trimmed.startsWith("[")) return listOf(parse(Json.parseObject(text, "result")))
            val array = org.json.JSONArray(trimmed)
            return (0 until array.length()).map { index ->
                val item = array.opt(index) as? org.json.JSONObject
                    ?: throw ContractError("result entry $index is not an object")
                parse(Fields(item, "[$index]"))
            }
        }

        fun parse(r: Fields): BenchResult {
            r.onlyKnown(KEYS)
            val version = r.intOrNull("schema_version") ?: SCHEMA_VERSION
            if (version != SCHEMA_VERSION) throw ContractError("field '${r.where("schema_version")}': expected $SCHEMA_VERSION, got $version")
            val spreadFields = r.objOrNull("spread")
            return BenchResult(
                schemaVersion = version,
                source = r.string("source"),
                createdAt = r.string("created_at"),
                model = r.string("model"),
                scheme = r.string("scheme"),
                ctx = r.int("ctx"),
                modelSizeMb = r.double("model_size_mb"),
                device = r.string("device"),
                os = r.string("os"),
                runtime = r.strings("runtime"),
                threads = r.intOrNull("threads"),
                promptTokens = r.int("prompt_tokens"),
                generatedTokens = r.int("generated_tokens"),
                warmup = r.int("warmup"),
                repetitions = r.int("repetitions"),
                loadMs = r.double("load_ms"),
                ttftMs = r.double("ttft_ms"),
                prefillTokensPerSec = r.double("prefill_tokens_per_sec"),
                decodeTokensPerSec = r.double("decode_tokens_per_sec"),
                peakRssMb = r.double("peak_rss_mb"),
                spread = spreadFields?.keys()?.associateWith { key ->
                    spreadFields.obj(key).let { Spread(it.double("min"), it.double("median"), it.double("max")) }
                } ?: emptyMap(),
                ceiling = r.objOrNull("ceiling")?.let {
                    Ceiling(
                        it.double("memory_bandwidth_gb_s"),
                        it.long("bytes_per_token"),
                        it.double("decode_tokens_per_sec_limit"),
                        it.double("fraction_of_limit"),
                        it.string("method"),
                    )
                },
                sustained = r.objOrNull("sustained")?.let { s ->
                    Sustained(
                        s.double("duration_s"),
                        s.double("interval_s"),
                        s.objects("samples").map {
                            SustainedSample(
                                it.double("t_s"),
                                it.double("tokens_per_sec"),
                                it.stringOrNull("thermal"),
                                it.doubleOrNull("thermal_headroom"),
                                it.doubleOrNull("rss_mb"),
                            )
                        },
                    )
                },
                manifestSha256 = r.stringOrNull("manifest_sha256"),
                notes = r.objOrNull("notes")?.toMap() ?: emptyMap(),
            )
        }

        /**
         * The result of one benchmarked prompt: model facts from the manifest, figures from the
         * loop, memory and device from the platform. Nothing here is typed in by hand.
         */
        fun fromMeasurement(
            manifest: ModelManifest,
            device: DeviceInfo,
            summary: PromptSummary,
            loadMs: Double,
            peakRssMb: Double,
            createdAt: String,
            sustained: Sustained? = null,
            promptSet: String = PromptSet.DEFAULT.name,
        ) = BenchResult(
            source = device.source,
            createdAt = createdAt,
            model = manifest.modelName,
            scheme = manifest.scheme,
            ctx = manifest.ctx,
            modelSizeMb = round(manifest.modelSizeMb, 2),
            device = device.device,
            os = device.os,
            runtime = device.runtime,
            threads = device.threads,
            promptTokens = summary.promptTokens,
            generatedTokens = summary.generatedTokens,
            warmup = summary.warmup,
            repetitions = summary.repetitions,
            loadMs = round(loadMs, 1),
            ttftMs = round(summary.ttftMs.median, 1),
            prefillTokensPerSec = round(summary.prefillTokensPerSec.median, 2),
            decodeTokensPerSec = round(summary.decodeTokensPerSec.median, 2),
            peakRssMb = round(peakRssMb, 1),
            spread = linkedMapOf(
                "prefill_tokens_per_sec" to summary.prefillTokensPerSec.rounded(2),
                "decode_tokens_per_sec" to summary.decodeTokensPerSec.rounded(2),
                "ttft_ms" to summary.ttftMs.rounded(1),
            ),
            sustained = sustained,
            manifestSha256 = manifest.program.sha256,
            notes = linkedMapOf<String, Any?>("prompt_id" to summary.prompt.id, "prompt_set" to promptSet).also { notes ->
                // Host tokenizer (at bundle time) vs the phone's: a mismatch is a tokenizer bug.
                summary.prompt.promptTokens?.let { expected ->
                    notes["bundle_prompt_tokens"] = expected
                    if (expected != summary.promptTokens) notes["tokenizer_mismatch"] = "the phone counted ${summary.promptTokens} prompt tokens, the export's tokenizer $expected"
                }
                // Worded as `mobq bench` words it (toolchain/mobq/bench.py).
                if (summary.timerFloor) notes["timer_floor"] = "an interval was under the runner's 1 ms resolution"
            },
        )

        private fun round(value: Double, digits: Int): Double {
            val scale = Math.pow(10.0, digits.toDouble())
            return Math.round(value * scale) / scale
        }

        private fun Spread.rounded(digits: Int) = Spread(round(min, digits), round(median, digits), round(max, digits))
    }
}

/** Several results (one per prompt) as the JSON list `mobq report` reads. */
fun resultsToJson(results: List<BenchResult>): String =
    (Json.toJson(results.map { it.toMap() }) as org.json.JSONArray).toString(2) + "\n"
