package dev.mobq.core

import org.json.JSONArray
import org.json.JSONObject

/**
 * A manifest, result or stats file that breaks the contract. The message names the field
 * (dotted path), like mobq's Python errors, so a user can fix the file rather than guess.
 */
class ContractError(message: String) : Exception(message)

/**
 * Typed, strict reads from an org.json object. org.json is part of Android itself; the JVM
 * tests use the same implementation (Debian's libandroid-json-java), so both parse alike.
 */
class Fields(private val obj: JSONObject, private val path: String = "") {
    fun where(key: String): String = if (path.isEmpty()) key else "$path.$key"

    fun keys(): List<String> = obj.keys().asSequence().toList()

    fun has(key: String): Boolean = obj.has(key) && !obj.isNull(key)

    private fun raw(key: String): Any {
        if (!obj.has(key)) throw ContractError("missing field '${where(key)}'")
        return obj.get(key)
    }

    private fun typeError(key: String, expected: String): ContractError {
        val got = obj.opt(key)
        val kind = if (got == null || got == JSONObject.NULL) "null" else got.javaClass.simpleName
        return ContractError("field '${where(key)}': expected $expected, got $kind")
    }

    fun string(key: String): String = raw(key) as? String ?: throw typeError(key, "a string")

    fun stringOrNull(key: String): String? = if (has(key)) string(key) else null

    fun long(key: String): Long =
        when (val value = raw(key)) {
            is Int -> value.toLong()
            is Long -> value
            else -> throw typeError(key, "an integer")
        }

    fun int(key: String): Int {
        val value = long(key)
        if (value !in Int.MIN_VALUE..Int.MAX_VALUE) throw typeError(key, "a 32-bit integer")
        return value.toInt()
    }

    fun intOrNull(key: String): Int? = if (has(key)) int(key) else null

    fun double(key: String): Double {
        val value = raw(key) as? Number ?: throw typeError(key, "a number")
        return value.toDouble()
    }

    fun doubleOrNull(key: String): Double? = if (has(key)) double(key) else null

    fun bool(key: String): Boolean = raw(key) as? Boolean ?: throw typeError(key, "true or false")

    fun boolOrNull(key: String): Boolean? = if (has(key)) bool(key) else null

    fun obj(key: String): Fields =
        Fields(raw(key) as? JSONObject ?: throw typeError(key, "an object"), where(key))

    fun objOrNull(key: String): Fields? = if (has(key)) obj(key) else null

    private fun array(key: String): JSONArray = raw(key) as? JSONArray ?: throw typeError(key, "a list")

    fun objects(key: String): List<Fields> {
        val items = array(key)
        return (0 until items.length()).map { index ->
            val item = items.opt(index) as? JSONObject
                ?: throw ContractError("field '${where(key)}[$index]': expected an object")
            Fields(item, "${where(key)}[$index]")
        }
    }

    fun ints(key: String): List<Int> {
        val items = array(key)
        return (0 until items.length()).map { index ->
            when (val item = items.opt(index)) {
                is Int -> item
                else -> throw ContractError("field '${where(key)}[$index]': expected an integer")
            }
        }
    }

    fun strings(key: String): Map<String, String> {
        val inner = obj(key)
        return inner.keys().associateWith { inner.string(it) }
    }

    /** The whole object as plain Kotlin values (maps, lists, numbers, strings, null). */
    @Suppress("UNCHECKED_CAST")
    fun toMap(): Map<String, Any?> = Json.toKotlin(obj) as Map<String, Any?>

    /** Refuse keys the contract does not know, as the pydantic models do (extra="forbid"). */
    fun onlyKnown(known: Set<String>) {
        val unknown = keys().filter { it !in known }
        if (unknown.isNotEmpty()) {
            throw ContractError("unknown field '${where(unknown.first())}' (allowed: ${known.sorted().joinToString()})")
        }
    }
}

/** Conversions between org.json and plain Kotlin values. */
object Json {
    fun parseObject(text: String, what: String): Fields {
        val value = try {
            org.json.JSONTokener(text).nextValue()
        } catch (exc: org.json.JSONException) {
            throw ContractError("$what is not valid JSON: ${exc.message}")
        }
        if (value !is JSONObject) throw ContractError("$what must hold a JSON object")
        return Fields(value)
    }

    fun toKotlin(value: Any?): Any? =
        when (value) {
            null, JSONObject.NULL -> null
            is JSONObject -> value.keys().asSequence().associateWith { toKotlin(value.get(it)) }
            is JSONArray -> (0 until value.length()).map { toKotlin(value.get(it)) }
            else -> value
        }

    fun toJson(value: Any?): Any =
        when (value) {
            null -> JSONObject.NULL
            is Map<*, *> -> JSONObject().also { obj -> value.forEach { (k, v) -> obj.put(k as String, toJson(v)) } }
            is List<*> -> JSONArray().also { array -> value.forEach { array.put(toJson(it)) } }
            is Double -> {
                require(value.isFinite()) { "JSON cannot hold $value" }
                value
            }
            else -> value
        }

    /** Pretty JSON text; org.json keeps insertion order on Android and in this jar alike. */
    fun write(value: Map<String, Any?>): String = (toJson(value) as JSONObject).toString(2) + "\n"
}
