import Foundation

/// A manifest, result or prompt file that breaks the contract; the message names the field.
public struct ContractError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Typed, strict reads from a JSON object; every failure names the dotted field path.
public struct Fields {
    let object: [String: Any]
    let path: String

    public init(_ object: [String: Any], path: String = "") {
        self.object = object
        self.path = path
    }

    public static func parse(_ data: Data, what: String) throws -> Fields {
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw ContractError("\(what) is not valid JSON: \(error.localizedDescription)")
        }
        guard let object = value as? [String: Any] else { throw ContractError("\(what) must hold a JSON object") }
        return Fields(object)
    }

    func whereIs(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public var keys: [String] { Array(object.keys) }

    public func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    private func raw(_ key: String) throws -> Any {
        guard let value = object[key] else { throw ContractError("missing field '\(whereIs(key))'") }
        return value
    }

    private func typeError(_ key: String, _ expected: String) -> ContractError {
        ContractError("field '\(whereIs(key))': expected \(expected)")
    }

    /// JSONSerialization gives NSNumber for numbers and booleans alike; a boolean's objCType
    /// is "c" (char) on Darwin and in swift-corelibs-foundation, so this works on Linux too.
    static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    private func number(_ key: String) throws -> NSNumber? {
        guard let n = try raw(key) as? NSNumber, !Fields.isBool(n) else { return nil }
        return n
    }

    public func string(_ key: String) throws -> String {
        guard let s = try raw(key) as? String else { throw typeError(key, "a string") }
        return s
    }

    public func stringOrNil(_ key: String) throws -> String? { has(key) ? try string(key) : nil }

    public func int(_ key: String) throws -> Int {
        guard let n = try number(key), n.doubleValue == n.doubleValue.rounded(), !"\(n)".contains(".") else {
            throw typeError(key, "an integer")
        }
        return n.intValue
    }

    public func intOrNil(_ key: String) throws -> Int? { has(key) ? try int(key) : nil }

    public func double(_ key: String) throws -> Double {
        guard let n = try number(key) else { throw typeError(key, "a number") }
        return n.doubleValue
    }

    public func doubleOrNil(_ key: String) throws -> Double? { has(key) ? try double(key) : nil }

    public func bool(_ key: String) throws -> Bool {
        guard let n = try raw(key) as? NSNumber, Fields.isBool(n) else {
            throw typeError(key, "true or false")
        }
        return n.boolValue
    }

    public func boolOrNil(_ key: String) throws -> Bool? { has(key) ? try bool(key) : nil }

    public func obj(_ key: String) throws -> Fields {
        guard let o = try raw(key) as? [String: Any] else { throw typeError(key, "an object") }
        return Fields(o, path: whereIs(key))
    }

    public func objOrNil(_ key: String) throws -> Fields? { has(key) ? try obj(key) : nil }

    public func objects(_ key: String) throws -> [Fields] {
        guard let items = try raw(key) as? [Any] else { throw typeError(key, "a list") }
        return try items.enumerated().map { index, item in
            guard let o = item as? [String: Any] else {
                throw ContractError("field '\(whereIs(key))[\(index)]': expected an object")
            }
            return Fields(o, path: "\(whereIs(key))[\(index)]")
        }
    }

    public func ints(_ key: String) throws -> [Int] {
        guard let items = try raw(key) as? [Any] else { throw typeError(key, "a list") }
        return try items.enumerated().map { index, item in
            guard let n = item as? NSNumber, !Fields.isBool(n) else {
                throw ContractError("field '\(whereIs(key))[\(index)]': expected an integer")
            }
            return n.intValue
        }
    }

    public func strings(_ key: String) throws -> [String: String] {
        let inner = try obj(key)
        var out: [String: String] = [:]
        for k in inner.keys { out[k] = try inner.string(k) }
        return out
    }

    /// Refuse keys the contract does not know, as the pydantic models do (extra="forbid").
    public func onlyKnown(_ known: Set<String>) throws {
        if let unknown = keys.sorted().first(where: { !known.contains($0) }) {
            throw ContractError("unknown field '\(whereIs(unknown))'")
        }
    }
}
