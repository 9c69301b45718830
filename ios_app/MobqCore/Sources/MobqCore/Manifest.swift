import Foundation

public struct ModelFile: Equatable {
    public let path: String
    public let role: String
    public let bytes: Int64
    public let sha256: String
}

public enum Role { case system, user, assistant }

public struct Turn: Equatable {
    public let role: Role
    public let text: String
    public init(_ role: Role, _ text: String) { self.role = role; self.text = text }
}

/// The chat template as per-turn strings (manifest runtime.chat_format); `render` is the
/// algorithm of mobq's Python PromptFormat.render, so the app sends the prompt `mobq run` would.
public struct ChatFormat: Equatable {
    public let firstUserPrefix, userPrefix, userSuffix, assistantPrefix, assistantSuffix: String
    public let systemPrefix, systemSuffix, assistantPrefixNoThink, thinkOpen, thinkClose: String?

    public func render(_ turns: [Turn], think: Bool = true) throws -> String {
        var out = ""
        for (index, turn) in turns.enumerated() {
            switch turn.role {
            case .system:
                guard let prefix = systemPrefix else { throw ContractError("this model's chat template has no system role") }
                out += prefix + turn.text + (systemSuffix ?? "")
            case .user:
                out += (index == 0 ? firstUserPrefix : userPrefix) + turn.text + userSuffix
            case .assistant:
                out += assistantPrefix + turn.text + assistantSuffix
            }
        }
        if !think, let noThink = assistantPrefixNoThink { return out + noThink }
        return out + assistantPrefix
    }

    static func parse(_ f: Fields) throws -> ChatFormat {
        ChatFormat(
            firstUserPrefix: try f.string("first_user_prefix"), userPrefix: try f.string("user_prefix"),
            userSuffix: try f.string("user_suffix"), assistantPrefix: try f.string("assistant_prefix"),
            assistantSuffix: try f.string("assistant_suffix"), systemPrefix: try f.stringOrNil("system_prefix"),
            systemSuffix: try f.stringOrNil("system_suffix"),
            assistantPrefixNoThink: try f.stringOrNil("assistant_prefix_no_think"),
            thinkOpen: try f.stringOrNil("think_open"), thinkClose: try f.stringOrNil("think_close"))
    }
}

/// What the app needs from mobq's manifest.json; nothing is taken from a file name.
public struct ModelManifest: Equatable {
    public static let fileName = "manifest.json"
    public static let schemaVersion = 1
    public static let bytesPerMB = 1e6 // model_size_mb as `mobq bench` writes it

    public let mobqVersion, modelName, family, scheme, dtype: String
    public let ctx, maxSeqLen, maxContextLen, nLayers, nKvHeads, headDim, vocabSize: Int
    public let bosId: Int?
    public let addBos: Bool
    public let eosIds: [Int]
    public let chatFormat: ChatFormat?
    public let files: [ModelFile]
    public let executorchVersion: String?

    public func file(_ role: String) throws -> ModelFile {
        guard let f = files.first(where: { $0.role == role }) else { throw ContractError("manifest lists no file with role '\(role)'") }
        return f
    }

    public var modelSizeMb: Double { Double((try? file("program").bytes) ?? 0) / Self.bytesPerMB }

    public var kvCacheBytes: Int64 {
        let width: Int64 = dtype == "fp32" ? 4 : 2
        return 2 * Int64(nLayers) * Int64(nKvHeads) * Int64(headDim) * Int64(maxContextLen) * width
    }

    public func prompt(_ message: String, think: Bool = false, system: String? = nil) throws -> String {
        guard let format = chatFormat else { return message }
        var turns: [Turn] = []
        if let system { turns.append(Turn(.system, system)) }
        turns.append(Turn(.user, message))
        return try format.render(turns, think: think)
    }

    public static func parse(_ data: Data) throws -> ModelManifest {
        let root = try Fields.parse(data, what: fileName)
        let version = try root.int("schema_version")
        guard version == schemaVersion else {
            throw ContractError("field 'schema_version': this app reads version \(schemaVersion), the manifest is version \(version); update the app or re-export")
        }
        let model = try root.obj("model"), params = try model.obj("params")
        let export = try root.obj("export"), runtime = try root.obj("runtime")
        let nHeads = try params.int("n_heads")
        let eos = try runtime.ints("eos_ids")
        guard !eos.isEmpty else { throw ContractError("field 'runtime.eos_ids': empty; generation would never stop") }
        let files = try root.objects("files").map {
            ModelFile(path: try $0.string("path"), role: try $0.string("role"), bytes: Int64(try $0.int("bytes")), sha256: try $0.string("sha256"))
        }
        let manifest = ModelManifest(
            mobqVersion: try root.string("mobq_version"), modelName: try model.string("name"),
            family: try model.string("family"), scheme: try export.string("scheme"), dtype: try export.string("dtype"),
            ctx: try export.int("ctx"), maxSeqLen: try runtime.int("max_seq_len"),
            maxContextLen: try runtime.int("max_context_len"), nLayers: try params.int("n_layers"),
            nKvHeads: try params.intOrNil("n_kv_heads") ?? nHeads,
            headDim: try params.intOrNil("head_dim") ?? (params.int("dim") / nHeads),
            vocabSize: try runtime.int("vocab_size"), bosId: try runtime.intOrNil("bos_id"),
            addBos: try runtime.bool("add_bos"), eosIds: eos,
            chatFormat: try runtime.objOrNil("chat_format").map(ChatFormat.parse), files: files,
            executorchVersion: try root.objOrNil("versions")?.stringOrNil("executorch"))
        _ = try manifest.file("program") // an export without these cannot run: fail on load
        _ = try manifest.file("tokenizer")
        return manifest
    }
}
