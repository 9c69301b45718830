package dev.mobq.app

import android.app.Activity
import android.os.Bundle
import android.os.Handler
import android.os.Looper
import android.text.InputType
import android.util.Log
import android.view.WindowManager
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.TextView
import dev.mobq.core.BenchOptions
import dev.mobq.core.BenchResult
import dev.mobq.core.BenchmarkLoop
import dev.mobq.core.DeviceContract
import dev.mobq.core.SustainedRun
import dev.mobq.core.SustainedSampler
import dev.mobq.core.resultsToJson
import java.io.File
import java.time.OffsetDateTime
import java.time.ZoneOffset
import java.time.format.DateTimeFormatter
import java.util.concurrent.Executors

/**
 * The benchmark screen: the fixed prompt set with warm-up and repetitions, then optionally a
 * sustained run. Results go to files/results/<run id>.json in the shared schema, where
 * `mobq device android pull` finds them. Started by hand, or by `mobq device android bench`
 * with its options as intent extras (DeviceContract).
 */
class BenchmarkActivity : Activity() {
    private val worker = Executors.newSingleThreadExecutor()
    private val main = Handler(Looper.getMainLooper())
    private lateinit var log: TextView
    private lateinit var warmup: EditText
    private lateinit var reps: EditText
    private lateinit var sustainedMin: EditText
    private lateinit var start: Button
    private var options = BenchOptions(null, null)

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON) // a dimmed screen changes the governor
        options = runCatching { BenchOptions.fromExtras(extrasMap()) }.getOrElse { error ->
            setContentView(TextView(this).apply { text = error.message })
            return
        }
        setContentView(layout())
        if (options.autorun) startRun(options)
    }

    private fun extrasMap(): Map<String, Any?> {
        val extras = intent.extras ?: return emptyMap()
        @Suppress("DEPRECATION")
        return extras.keySet().associateWith { extras.get(it) }
    }

    private fun number(value: Int) = EditText(this).apply { inputType = InputType.TYPE_CLASS_NUMBER; setText(value.toString()) }

    private fun layout(): LinearLayout {
        val root = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(24, 24, 24, 24) }
        warmup = number(options.warmup)
        reps = number(options.repetitions)
        sustainedMin = number(options.sustainedS / 60)
        start = Button(this).apply {
            text = "Run benchmark"
            setOnClickListener {
                startRun(
                    options.copy(
                        warmup = warmup.text.toString().toIntOrNull() ?: 1,
                        repetitions = reps.text.toString().toIntOrNull() ?: 3,
                        sustainedS = (sustainedMin.text.toString().toIntOrNull() ?: 0) * 60,
                    ),
                )
            }
        }
        log = TextView(this).apply { setTextIsSelectable(true) }
        for ((label, field) in listOf("warm-up runs" to warmup, "repetitions" to reps, "sustained minutes (0 = off, 5 = default sustained mode)" to sustainedMin)) {
            root.addView(TextView(this).apply { text = label })
            root.addView(field)
        }
        root.addView(start)
        root.addView(ScrollView(this).apply { addView(log) }, LinearLayout.LayoutParams(LinearLayout.LayoutParams.MATCH_PARENT, 0, 1f))
        return root
    }

    private fun say(line: String) {
        Log.i(TAG, line)
        main.post { log.append(line + "\n") }
    }

    private fun startRun(chosen: BenchOptions) {
        start.isEnabled = false
        worker.execute {
            try {
                val file = run(chosen)
                say("saved ${file.absolutePath}")
            } catch (error: Exception) {
                say("failed: ${error.message}")
                Log.e(TAG, "benchmark failed", error)
            } finally {
                main.post { start.isEnabled = true }
            }
        }
    }

    private fun run(chosen: BenchOptions): File {
        val store = ModelStore(this)
        val model = chosen.modelDir?.let { store.open(File(it)) } ?: store.all().firstOrNull()
            ?: error("no model: bundle one (make android-bundle) or push one (mobq device android push)")
        val platform = Platform(this)
        say("model ${model.label}")
        val engine = Engine(model)
        try {
            engine.load()
            say("loaded in ${"%.0f".format(engine.loadMs)} ms")
            val promptSet = model.promptSet()
            val prompts = promptSet.rendered(model.manifest)
            val summaries = BenchmarkLoop(chosen.warmup, chosen.repetitions).run(prompts, engine) { prompt, index, total, measured ->
                say("${prompt.id}: run $index/$total${if (measured) "" else " (warm-up)"}")
            }
            // The sustained run decodes the set's first prompt; its series goes with that prompt's result.
            val sustainedPrompt = promptSet.prompts.first()
            val sustained = if (chosen.sustainedS > 0) sustained(engine, model.manifest.prompt(sustainedPrompt.text), model, platform, chosen) else null
            val memory = platform.procMemory()
            say("peak RSS ${"%.0f".format(memory.peakRssMb)} MB, PSS ${"%.0f".format(platform.pssMb())} MB")
            val now = OffsetDateTime.now(ZoneOffset.UTC).withNano(0).format(DateTimeFormatter.ISO_OFFSET_DATE_TIME)
            val results = summaries.map { summary ->
                say("${summary.prompt.id}: prefill ${"%.1f".format(summary.prefillTokensPerSec.median)} tok/s, decode ${"%.2f".format(summary.decodeTokensPerSec.median)} tok/s, TTFT ${"%.0f".format(summary.ttftMs.median)} ms")
                val series = sustained.takeIf { summary.prompt.id == sustainedPrompt.id }
                BenchResult.fromMeasurement(model.manifest, platform.device(), summary, engine.loadMs, memory.peakRssMb, now, series, promptSet.name)
            }
            return write(results, chosen)
        } finally {
            engine.close()
        }
    }

    private fun sustained(engine: Engine, prompt: String, model: InstalledModel, platform: Platform, chosen: BenchOptions): dev.mobq.core.Sustained {
        say("sustained: decoding for ${chosen.sustainedS} s, a sample every ${chosen.intervalS} s")
        val sampler = SustainedSampler(chosen.sustainedS.toDouble(), chosen.intervalS.toDouble(), platform.clock, platform.thermal, platform.memory)
        val series = SustainedRun(sampler, prompt, model.manifest.maxContextLen).run(engine)
        series.samples.lastOrNull()?.let { say("sustained: last ${"%.2f".format(it.tokensPerSec)} tok/s, thermal ${it.thermal}") }
        return series
    }

    /** Atomic: written under a temporary name and renamed, so a pull never sees half a file. */
    private fun write(results: List<BenchResult>, chosen: BenchOptions): File {
        val dir = getExternalFilesDir(DeviceContract.RESULTS_DIR) ?: File(filesDir, DeviceContract.RESULTS_DIR)
        dir.mkdirs()
        val target = File(dir, chosen.resultFileName { OffsetDateTime.now(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")) })
        val partial = File(dir, ".${target.name}.part")
        partial.writeText(resultsToJson(results))
        check(partial.renameTo(target)) { "could not write $target" }
        return target
    }

    override fun onDestroy() {
        worker.shutdownNow()
        super.onDestroy()
    }

    companion object {
        const val TAG = "mobq"
    }
}
