package dev.mobq.core

import org.json.JSONArray
import org.json.JSONObject
import org.json.JSONTokener

/**
 * The part of JSON Schema (2020-12) that docs/schema/bench-result.schema.json uses: type,
 * properties, required, additionalProperties, items, anyOf, \$ref to \$defs, const, enum,
 * minimum, exclusiveMinimum. Returns every violation as "path: problem".
 */
class SchemaValidator(schemaText: String) {
    private val root = JSONTokener(schemaText).nextValue() as JSONObject

    fun validate(documentText: String): List<String> {
        val errors = mutableListOf<String>()
        check(JSONTokener(documentText).nextValue(), root, "$", errors)
        return errors
    }

    private fun resolve(schema: JSONObject): JSONObject {
        val ref = schema.optString("\$ref", "")
        if (ref.isEmpty()) return schema
        require(ref.startsWith("#/\$defs/")) { "unsupported \$ref $ref" }
        return root.getJSONObject("\$defs").getJSONObject(ref.removePrefix("#/\$defs/"))
    }

    private fun check(value: Any?, rawSchema: JSONObject, path: String, errors: MutableList<String>) {
        val schema = resolve(rawSchema)
        schema.optJSONArray("anyOf")?.let { options ->
            val matches = (0 until options.length()).any { i ->
                mutableListOf<String>().also { check(value, options.getJSONObject(i), path, it) }.isEmpty()
            }
            if (!matches) errors += "$path: matches none of anyOf"
            return
        }
        if (schema.has("type") && !typeMatches(value, schema.getString("type"))) {
            errors += "$path: expected ${schema.getString("type")}, got ${value?.javaClass?.simpleName}"
            return
        }
        if (schema.has("const") && schema.get("const") != value) errors += "$path: expected const ${schema.get("const")}"
        schema.optJSONArray("enum")?.let { allowed ->
            if ((0 until allowed.length()).none { allowed.get(it) == value }) errors += "$path: $value not in enum"
        }
        if (value is Number) {
            val v = value.toDouble()
            if (schema.has("minimum") && v < schema.getDouble("minimum")) errors += "$path: $v < minimum"
            if (schema.has("exclusiveMinimum") && v <= schema.getDouble("exclusiveMinimum")) errors += "$path: $v <= exclusiveMinimum"
        }
        if (value is JSONObject) checkObject(value, schema, path, errors)
        if (value is JSONArray && schema.has("items")) {
            for (i in 0 until value.length()) check(value.get(i), schema.getJSONObject("items"), "$path[$i]", errors)
        }
    }

    private fun checkObject(value: JSONObject, schema: JSONObject, path: String, errors: MutableList<String>) {
        val properties = schema.optJSONObject("properties") ?: JSONObject()
        schema.optJSONArray("required")?.let { required ->
            for (i in 0 until required.length()) {
                if (!value.has(required.getString(i))) errors += "$path: missing required '${required.getString(i)}'"
            }
        }
        for (key in value.keys()) {
            val child = value.get(key)
            when {
                properties.has(key) -> check(child, properties.getJSONObject(key), "$path.$key", errors)
                schema.opt("additionalProperties") == false -> errors += "$path: unexpected '$key'"
                schema.opt("additionalProperties") is JSONObject ->
                    check(child, schema.getJSONObject("additionalProperties"), "$path.$key", errors)
            }
        }
    }

    private fun typeMatches(value: Any?, type: String): Boolean = when (type) {
        "object" -> value is JSONObject
        "array" -> value is JSONArray
        "string" -> value is String
        "integer" -> value is Int || value is Long
        "number" -> value is Number
        "boolean" -> value is Boolean
        "null" -> value == null || value == JSONObject.NULL
        else -> error("unsupported type $type")
    }
}
