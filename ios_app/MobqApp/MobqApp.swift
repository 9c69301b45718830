import SwiftUI

@main
struct MobqApp: App {
    var body: some Scene {
        WindowGroup {
            TabView {
                ChatView().tabItem { Label("Chat", systemImage: "bubble.left.and.bubble.right") }
                BenchmarkView().tabItem { Label("Benchmark", systemImage: "speedometer") }
            }
        }
    }
}
