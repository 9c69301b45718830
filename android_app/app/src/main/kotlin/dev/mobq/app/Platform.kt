package dev.mobq.app

import android.content.Context
import android.os.Build
import android.os.Debug
import android.os.PowerManager
import android.os.SystemClock
import dev.mobq.core.AndroidThermal
import dev.mobq.core.Clock
import dev.mobq.core.DeviceInfo
import dev.mobq.core.MemoryProbe
import dev.mobq.core.ProcMemory
import dev.mobq.core.ThermalProbe
import dev.mobq.core.ThermalReading
import java.io.File

/** The Android side of the core's probes: clock, memory of this process, thermal state. */
class Platform(context: Context) {
    private val power = context.getSystemService(Context.POWER_SERVICE) as PowerManager

    val clock = Clock { SystemClock.elapsedRealtimeNanos() / 1e6 }

    /** This process's memory (VmHWM / VmRSS), not the system-wide figure other apps show. */
    fun procMemory(): ProcMemory = ProcMemory.parse(File("/proc/self/status").readText())

    /** Proportional set size in MiB: shared pages split among the processes that map them. */
    fun pssMb(): Double = Debug.MemoryInfo().also { Debug.getMemoryInfo(it) }.totalPss / 1024.0

    val memory = MemoryProbe { runCatching { procMemory().rssMb }.getOrNull() }

    /** THERMAL_STATUS_* from API 29, the headroom forecast (1.0 = severe) from API 30. */
    val thermal = ThermalProbe {
        val status = if (Build.VERSION.SDK_INT >= 29) AndroidThermal.name(power.currentThermalStatus) else null
        val headroom = if (Build.VERSION.SDK_INT >= 30) power.getThermalHeadroom(HEADROOM_FORECAST_S).toDouble().takeIf { it.isFinite() } else null
        ThermalReading(status, headroom)
    }

    fun device(threads: Int? = null) = DeviceInfo(
        source = "android",
        device = "${Build.MANUFACTURER} ${Build.MODEL}".trim(),
        os = "Android ${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT})",
        runtime = mapOf(
            "executorch" to BuildConfig.EXECUTORCH_VERSION,
            "app" to BuildConfig.VERSION_NAME,
            "abi" to (Build.SUPPORTED_ABIS.firstOrNull() ?: "unknown"),
        ),
        threads = threads,
    )

    companion object {
        const val HEADROOM_FORECAST_S = 10
    }
}
