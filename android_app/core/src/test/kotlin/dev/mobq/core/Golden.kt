package dev.mobq.core

import java.io.File

/** The golden files in docs/schema/examples, shared with the Python and Swift tests. */
object Golden {
    val dir: File by lazy {
        val configured = System.getProperty("mobq.golden") ?: "docs/schema/examples"
        File(configured).also { require(it.isDirectory) { "golden dir $it not found: run from the repo root or set -Dmobq.golden" } }
    }

    fun text(name: String): String = File(dir, name).readText()

    val schema: String get() = File(dir.parentFile, "bench-result.schema.json").readText()

    val results: List<String> get() = dir.listFiles()!!.map { it.name }.filter { it.startsWith("bench-result-") }.sorted()

    /** A JSON tree with every number as a Double, so 512 and 512.0 compare equal. */
    fun tree(text: String): Any? = normalise(Json.toKotlin(org.json.JSONTokener(text).nextValue()))

    private fun normalise(value: Any?): Any? = when (value) {
        is Map<*, *> -> value.mapValues { normalise(it.value) }
        is List<*> -> value.map(::normalise)
        is Number -> value.toDouble()
        else -> value
    }
}
