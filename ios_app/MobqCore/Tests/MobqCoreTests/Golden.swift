import Foundation

/// docs/schema/examples, the golden files shared with the Python and Kotlin tests.
enum Golden {
    static let dir: URL = {
        if let configured = ProcessInfo.processInfo.environment["MOBQ_GOLDEN"] { return URL(fileURLWithPath: configured) }
        // Tests/MobqCoreTests/Golden.swift -> repo root is five levels up.
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/schema/examples")
    }()

    static func data(_ name: String) throws -> Data { try Data(contentsOf: dir.appendingPathComponent(name)) }

    static func tree(_ data: Data) throws -> NSObject { try JSONSerialization.jsonObject(with: data) as! NSObject }
}
