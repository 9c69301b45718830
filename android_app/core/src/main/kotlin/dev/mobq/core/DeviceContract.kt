package dev.mobq.core

/**
 * What `mobq device android push|bench|pull` and the app agree on: the package, the benchmark
 * activity, its intent extras and the folders in the app's external files dir (adb may write
 * there and the app reads it without permissions). toolchain/mobq/android_device.py holds the
 * same strings; tests/test_android_device.py keeps them in step.
 */
object DeviceContract {
    const val PACKAGE = "dev.mobq.app"
    const val BENCH_ACTIVITY = ".BenchmarkActivity"
    const val MODELS_DIR = "models"
    const val RESULTS_DIR = "results"
    const val EXTRA_MODEL_DIR = "model_dir"
    const val EXTRA_RUN_ID = "run_id"
    const val EXTRA_WARMUP = "warmup"
    const val EXTRA_REPETITIONS = "repetitions"
    const val EXTRA_SUSTAINED_S = "sustained_s"
    const val EXTRA_INTERVAL_S = "interval_s"
    const val EXTRA_AUTORUN = "autorun"
}

/** The benchmark screen's options, from the launching intent or the screen's own controls. */
data class BenchOptions(
    val modelDir: String?,
    val runId: String?,
    val warmup: Int = 1,
    val repetitions: Int = 3,
    val sustainedS: Int = 0,
    val intervalS: Int = 5,
    val autorun: Boolean = false,
) {
    init {
        if (warmup < 0) throw ContractError("extra '${DeviceContract.EXTRA_WARMUP}': must be >= 0, got $warmup")
        if (repetitions < 1) throw ContractError("extra '${DeviceContract.EXTRA_REPETITIONS}': must be >= 1, got $repetitions")
        if (sustainedS < 0) throw ContractError("extra '${DeviceContract.EXTRA_SUSTAINED_S}': must be >= 0, got $sustainedS")
        if (intervalS <= 0) throw ContractError("extra '${DeviceContract.EXTRA_INTERVAL_S}': must be > 0, got $intervalS")
    }

    /** File name of this run's result in the results folder. */
    fun resultFileName(now: () -> String): String = "${runId ?: now()}.json"

    companion object {
        /** `extras` is Intent.getExtras() seen as a map (an Android-free seam for tests). */
        fun fromExtras(extras: Map<String, Any?>): BenchOptions {
            fun int(key: String, default: Int): Int = when (val v = extras[key]) {
                null -> default
                is Int -> v
                is String -> v.toIntOrNull() ?: throw ContractError("extra '$key': '$v' is not an integer")
                else -> throw ContractError("extra '$key': expected an integer, got ${v.javaClass.simpleName}")
            }
            return BenchOptions(
                modelDir = extras[DeviceContract.EXTRA_MODEL_DIR] as? String,
                runId = extras[DeviceContract.EXTRA_RUN_ID] as? String,
                warmup = int(DeviceContract.EXTRA_WARMUP, 1),
                repetitions = int(DeviceContract.EXTRA_REPETITIONS, 3),
                sustainedS = int(DeviceContract.EXTRA_SUSTAINED_S, 0),
                intervalS = int(DeviceContract.EXTRA_INTERVAL_S, 5),
                autorun = extras[DeviceContract.EXTRA_AUTORUN] as? Boolean ?: false,
            )
        }
    }
}
