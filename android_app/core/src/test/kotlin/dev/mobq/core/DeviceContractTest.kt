package dev.mobq.core

import org.junit.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith

class DeviceContractTest {
    @Test
    fun extrasFromMobqDeviceBenchBecomeOptions() {
        // What `adb shell am start ... --es model_dir ... --ei warmup 2 ... --ez autorun true` delivers.
        val options = BenchOptions.fromExtras(
            mapOf(
                "model_dir" to "/sdcard/Android/data/dev.mobq.app/files/models/demo",
                "run_id" to "20261124-100000-abcdef",
                "warmup" to 2,
                "repetitions" to 5,
                "sustained_s" to 300,
                "interval_s" to 5,
                "autorun" to true,
            ),
        )
        assertEquals(BenchOptions("/sdcard/Android/data/dev.mobq.app/files/models/demo", "20261124-100000-abcdef", 2, 5, 300, 5, true), options)
        assertEquals("20261124-100000-abcdef.json", options.resultFileName { "unused" })
    }

    @Test
    fun missingExtrasTakeTheDefaults() {
        val options = BenchOptions.fromExtras(emptyMap())
        assertEquals(BenchOptions(null, null), options)
        assertEquals("now.json", options.resultFileName { "now" })
    }

    @Test
    fun badExtrasNameTheKey() {
        val error = assertFailsWith<ContractError> { BenchOptions.fromExtras(mapOf("repetitions" to 0)) }
        assertEquals("extra 'repetitions': must be >= 1, got 0", error.message)
        assertFailsWith<ContractError> { BenchOptions.fromExtras(mapOf("warmup" to "many")) }
    }
}
