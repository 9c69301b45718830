package dev.mobq.app

import android.app.Activity
import android.content.Intent
import android.os.Bundle
import android.os.Handler
import android.os.Looper
import android.view.ViewGroup.LayoutParams.MATCH_PARENT
import android.view.ViewGroup.LayoutParams.WRAP_CONTENT
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.Spinner
import android.widget.TextView
import dev.mobq.core.GenerationStats
import dev.mobq.core.Role
import dev.mobq.core.Turn
import java.util.concurrent.Executors

/**
 * The chat screen: pick a model, send a message, watch tokens stream, stop at any time.
 * The prompt is the conversation rendered with the model's chat format from its manifest.
 */
class MainActivity : Activity() {
    private val worker = Executors.newSingleThreadExecutor()
    private val main = Handler(Looper.getMainLooper())
    private lateinit var store: ModelStore
    private var models: List<InstalledModel> = emptyList()
    private var engine: Engine? = null
    private var loaded: InstalledModel? = null
    private val turns = mutableListOf<Turn>()

    private lateinit var picker: Spinner
    private lateinit var transcript: TextView
    private lateinit var scroll: ScrollView
    private lateinit var input: EditText
    private lateinit var send: Button
    private lateinit var stop: Button
    private lateinit var status: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        store = ModelStore(this)
        setContentView(layout())
        refreshModels()
    }

    private fun layout(): LinearLayout {
        val root = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(24, 24, 24, 24) }
        picker = Spinner(this)
        status = TextView(this)
        transcript = TextView(this).apply { setTextIsSelectable(true) }
        scroll = ScrollView(this).apply { addView(transcript) }
        input = EditText(this).apply { hint = "Message" }
        send = Button(this).apply { text = "Send"; setOnClickListener { onSend() } }
        stop = Button(this).apply { text = "Stop"; isEnabled = false; setOnClickListener { engine?.stop() } }
        val bench = Button(this).apply { text = "Benchmark"; setOnClickListener { openBenchmark() } }
        val buttons = LinearLayout(this).apply { addView(send); addView(stop); addView(bench) }
        root.addView(picker, LinearLayout.LayoutParams(MATCH_PARENT, WRAP_CONTENT))
        root.addView(status)
        root.addView(scroll, LinearLayout.LayoutParams(MATCH_PARENT, 0, 1f))
        root.addView(input, LinearLayout.LayoutParams(MATCH_PARENT, WRAP_CONTENT))
        root.addView(buttons)
        return root
    }

    private fun refreshModels() {
        worker.execute {
            val found = runCatching { store.all() }
            main.post {
                models = found.getOrDefault(emptyList())
                picker.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, models.map { it.label })
                status.text = found.exceptionOrNull()?.message
                    ?: if (models.isEmpty()) "No model: run `make android-bundle` and rebuild, or `mobq device android push EXPORT`." else ""
                send.isEnabled = models.isNotEmpty()
            }
        }
    }

    private fun openBenchmark() {
        val model = models.getOrNull(picker.selectedItemPosition) ?: return
        startActivity(Intent(this, BenchmarkActivity::class.java).putExtra(dev.mobq.core.DeviceContract.EXTRA_MODEL_DIR, model.dir.absolutePath))
    }

    private fun onSend() {
        val model = models.getOrNull(picker.selectedItemPosition) ?: return
        val message = input.text.toString().trim().ifEmpty { return }
        input.setText("")
        send.isEnabled = false
        stop.isEnabled = true
        transcript.append("\n> $message\n")
        worker.execute { reply(model, message) }
    }

    /** Runs on the worker thread; tokens are posted to the screen as they arrive. */
    private fun reply(model: InstalledModel, message: String) {
        try {
            val current = engineFor(model)
            turns += Turn(Role.USER, message)
            val format = model.manifest.chatFormat
            val prompt = format?.render(turns, think = false) ?: message
            val answer = StringBuilder()
            val stats = current.chat(prompt) { token ->
                answer.append(token)
                main.post { transcript.append(token); scroll.fullScroll(ScrollView.FOCUS_DOWN) }
            }
            turns += Turn(Role.ASSISTANT, answer.toString())
            trimHistory(model, stats)
            main.post {
                stats?.let { status.text = "prompt ${it.promptTokens} tok · ${"%.0f".format(it.prefillTokensPerSec)} tok/s prefill · ${"%.1f".format(it.decodeTokensPerSec)} tok/s decode" }
            }
        } catch (error: Exception) {
            // A turn that failed (e.g. a prompt past the context) must not poison the next one.
            if (turns.lastOrNull()?.role == Role.USER) turns.removeAt(turns.lastIndex)
            main.post { status.text = error.message }
        } finally {
            main.post { send.isEnabled = true; stop.isEnabled = false }
        }
    }

    /** Keep the next prompt inside the context: drop the oldest exchange once 3/4 is used. */
    private fun trimHistory(model: InstalledModel, stats: GenerationStats?) {
        val used = stats?.let { it.promptTokens + it.generatedTokens } ?: return
        if (used > model.manifest.maxContextLen * 3 / 4 && turns.size >= 2) {
            turns.removeAt(0)
            turns.removeAt(0)
        }
    }

    private fun engineFor(model: InstalledModel): Engine {
        if (loaded != model) {
            engine?.close()
            turns.clear()
            engine = Engine(model).also { it.load() }
            loaded = model
            main.post { status.text = "loaded ${model.label} in ${"%.0f".format(engine!!.loadMs)} ms" }
        }
        return engine!!
    }

    override fun onDestroy() {
        engine?.stop()
        worker.execute { engine?.close() }
        worker.shutdown()
        super.onDestroy()
    }
}
