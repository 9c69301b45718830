package dev.mobq.core

/**
 * Peak and current resident memory of this process from /proc/self/status (Linux, Android).
 * VmHWM is the kernel's high-water mark, so a short peak between two samples is not missed.
 */
data class ProcMemory(val peakRssMb: Double, val rssMb: Double) {
    companion object {
        fun parse(status: String): ProcMemory {
            fun kib(field: String): Double {
                val line = status.lineSequence().firstOrNull { it.startsWith("$field:") }
                    ?: throw ContractError("/proc/self/status has no $field line")
                val value = line.substringAfter(':').trim().substringBefore(' ').toDoubleOrNull()
                    ?: throw ContractError("/proc/self/status: cannot read $field from '$line'")
                return value / 1024.0
            }
            return ProcMemory(peakRssMb = kib("VmHWM"), rssMb = kib("VmRSS"))
        }
    }
}
