package dev.mobq.core

/** One file of an export, as manifest.json lists it. */
data class ModelFile(val path: String, val role: String, val bytes: Long, val sha256: String)

enum class Role { SYSTEM, USER, ASSISTANT }

data class Turn(val role: Role, val text: String)

/**
 * The chat template reduced to the strings around each turn (manifest runtime.chat_format).
 * `render` is the same algorithm as mobq's Python PromptFormat.render, so the app sends the
 * exact prompt `mobq run` would.
 */
data class ChatFormat(
    val firstUserPrefix: String,
    val userPrefix: String,
    val userSuffix: String,
    val assistantPrefix: String,
    val assistantSuffix: String,
    val systemPrefix: String? = null,
    val systemSuffix: String? = null,
    val assistantPrefixNoThink: String? = null,
    val thinkOpen: String? = null,
    val thinkClose: String? = null,
) {
    fun render(turns: List<Turn>, think: Boolean = true): String {
        val out = StringBuilder()
        turns.forEachIndexed { index, turn ->
            when (turn.role) {
                Role.SYSTEM -> {
                    val prefix = systemPrefix ?: throw ContractError("this model's chat template has no system role")
                    out.append(prefix).append(turn.text).append(systemSuffix ?: "")
                }
                Role.USER -> out.append(if (index == 0) firstUserPrefix else userPrefix).append(turn.text).append(userSuffix)
                Role.ASSISTANT -> out.append(assistantPrefix).append(turn.text).append(assistantSuffix)
            }
        }
        out.append(if (!think && assistantPrefixNoThink != null) assistantPrefixNoThink else assistantPrefix)
        return out.toString()
    }

    companion object {
        fun parse(f: Fields) = ChatFormat(
            firstUserPrefix = f.string("first_user_prefix"),
            userPrefix = f.string("user_prefix"),
            userSuffix = f.string("user_suffix"),
            assistantPrefix = f.string("assistant_prefix"),
            assistantSuffix = f.string("assistant_suffix"),
            systemPrefix = f.stringOrNull("system_prefix"),
            systemSuffix = f.stringOrNull("system_suffix"),
            assistantPrefixNoThink = f.stringOrNull("assistant_prefix_no_think"),
            thinkOpen = f.stringOrNull("think_open"),
            thinkClose = f.stringOrNull("think_close"),
        )
    }
}

/**
 * What the apps need from mobq's manifest.json: file names, the runtime metadata (eos/bos ids,
 * context length, chat format) and the shape of the KV cache. Everything comes from the
 * manifest, never from a file name.
 */
data class ModelManifest(
    val schemaVersion: Int,
    val mobqVersion: String,
    val modelName: String,
    val family: String,
    val scheme: String,
    val ctx: Int,
    val maxSeqLen: Int,
    val maxContextLen: Int,
    val dtype: String,
    val nLayers: Int,
    val nKvHeads: Int,
    val headDim: Int,
    val vocabSize: Int,
    val bosId: Int?,
    val addBos: Boolean,
    val eosIds: List<Int>,
    val chatFormat: ChatFormat?,
    val files: List<ModelFile>,
    val executorchVersion: String?,
    val verificationPassed: Boolean?,
) {
    fun file(role: String): ModelFile =
        files.firstOrNull { it.role == role } ?: throw ContractError("manifest lists no file with role '$role'")

    val program: ModelFile get() = file("program")
    val tokenizer: ModelFile get() = file("tokenizer")

    /** Size of model.pte in MB (10^6 bytes), as `mobq bench` writes model_size_mb. */
    val modelSizeMb: Double get() = program.bytes / BYTES_PER_MB

    /** K and V for every layer at the full context, in the export's dtype. */
    val kvCacheBytes: Long get() = 2L * nLayers * nKvHeads * headDim * maxContextLen * dtypeBytes(dtype)

    /** The text to send for one user message: the chat format when the model has one. */
    fun prompt(userMessage: String, think: Boolean = false, system: String? = null): String {
        val format = chatFormat ?: return userMessage
        val turns = listOfNotNull(system?.let { Turn(Role.SYSTEM, it) }, Turn(Role.USER, userMessage))
        return format.render(turns, think)
    }

    companion object {
        const val FILE_NAME = "manifest.json"
        const val SCHEMA_VERSION = 1
        const val BYTES_PER_MB = 1e6

        fun dtypeBytes(dtype: String): Int = when (dtype) {
            "fp32" -> 4
            "fp16", "bf16" -> 2
            else -> throw ContractError("field 'export.dtype': unknown dtype '$dtype' (expected fp32, fp16 or bf16)")
        }

        fun parse(text: String): ModelManifest = parse(Json.parseObject(text, FILE_NAME))

        fun parse(root: Fields): ModelManifest {
            val version = root.int("schema_version")
            if (version != SCHEMA_VERSION) {
                throw ContractError("field 'schema_version': this app reads version $SCHEMA_VERSION, the manifest is version $version; update the app or re-export")
            }
            val model = root.obj("model")
            val params = model.obj("params")
            val export = root.obj("export")
            val runtime = root.obj("runtime")
            val nHeads = params.int("n_heads")
            val eosIds = runtime.ints("eos_ids")
            if (eosIds.isEmpty()) throw ContractError("field 'runtime.eos_ids': empty; generation would never stop")
            val files = root.objects("files").map {
                ModelFile(it.string("path"), it.string("role"), it.long("bytes"), it.string("sha256"))
            }
            return ModelManifest(
                schemaVersion = version,
                mobqVersion = root.string("mobq_version"),
                modelName = model.string("name"),
                family = model.string("family"),
                scheme = export.string("scheme"),
                ctx = export.int("ctx"),
                maxSeqLen = runtime.int("max_seq_len"),
                maxContextLen = runtime.int("max_context_len"),
                dtype = export.string("dtype"),
                nLayers = params.int("n_layers"),
                nKvHeads = params.intOrNull("n_kv_heads") ?: nHeads,
                headDim = params.intOrNull("head_dim") ?: (params.int("dim") / nHeads),
                vocabSize = runtime.int("vocab_size"),
                bosId = runtime.intOrNull("bos_id"),
                addBos = runtime.bool("add_bos"),
                eosIds = eosIds,
                chatFormat = runtime.objOrNull("chat_format")?.let(ChatFormat::parse),
                files = files,
                executorchVersion = root.objOrNull("versions")?.stringOrNull("executorch"),
                verificationPassed = root.objOrNull("verification")?.boolOrNull("passed"),
            ).also { it.program; it.tokenizer } // an export without these cannot run: fail on load
        }
    }
}
