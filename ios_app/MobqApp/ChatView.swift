import MobqCore
import SwiftUI

/// Chat: streamed tokens, a stop button; the prompt is rendered with the manifest's chat format.
struct ChatView: View {
    @State private var transcript = ""
    @State private var input = ""
    @State private var status = ""
    @State private var busy = false
    @State private var engine: Engine?
    @State private var turns: [Turn] = []

    var body: some View {
        VStack(alignment: .leading) {
            Text(status).font(.footnote).foregroundStyle(.secondary)
            ScrollView { Text(transcript).frame(maxWidth: .infinity, alignment: .leading).textSelection(.enabled) }
            HStack {
                TextField("Message", text: $input).textFieldStyle(.roundedBorder).disabled(busy)
                Button("Send", action: send).disabled(busy || input.isEmpty)
                Button("Stop") { engine?.stop() }.disabled(!busy)
            }
        }
        .padding()
    }

    private static func loadBundled() throws -> Engine {
        let engine = try Engine(InstalledModel.bundled())
        try engine.load()
        return engine
    }

    private func send() {
        let message = input
        input = ""
        busy = true
        transcript += "\n> \(message)\n"
        let existing = engine, previous = turns
        DispatchQueue.global(qos: .userInitiated).async {
            do {
                let current = try existing ?? Self.loadBundled()
                DispatchQueue.main.async { engine = current; status = "\(current.model.manifest.modelName) · loaded in \(Int(current.loadMs)) ms" }
                // Oldest exchanges go first once the prompt would crowd out the answer.
                let manifest = current.model.manifest
                let window = try ChatWindow.calibrated(manifest, prompts: current.model.prompts)
                let render = { (turns: [Turn]) throws -> String in try manifest.chatFormat?.render(turns, think: false) ?? message }
                var history = try window.trimmed(previous + [Turn(.user, message)], render: render)
                let prompt = try render(history)
                var answer = ""
                try current.stream(prompt, maxNewTokens: manifest.maxContextLen) { token in
                    answer += token
                    DispatchQueue.main.async { transcript += token }
                }
                history.append(Turn(.assistant, answer))
                DispatchQueue.main.async { turns = history; busy = false }
            } catch {
                DispatchQueue.main.async { status = "\(error)"; busy = false }
            }
        }
    }
}
