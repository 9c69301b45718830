// swift-tools-version:5.9
// The iOS app's non-UI logic: manifest, prompt set, statistics, sustained sampling, result
// JSON. Foundation only, so `swift test` runs it on macOS or Linux against the golden files
// in docs/schema/examples (shared with the Python and Kotlin tests).
import PackageDescription

let package = Package(
    name: "MobqCore",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [.library(name: "MobqCore", targets: ["MobqCore"])],
    targets: [
        .target(name: "MobqCore"),
        .testTarget(name: "MobqCoreTests", dependencies: ["MobqCore"]),
    ]
)
