import Foundation
import MobqCore
import UIKit

/// The iOS side of the core's probes.
enum Platform {
    /// phys_footprint: the number jetsam compares with the app's memory limit.
    static func footprintMb() -> Double? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let status = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count) }
        }
        return status == KERN_SUCCESS ? Double(info.phys_footprint) / 1_048_576 : nil
    }

    /// The peak footprint the kernel recorded (ledger high-water mark) where available.
    static func peakFootprintMb() -> Double? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let status = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count) }
        }
        guard status == KERN_SUCCESS else { return nil }
        return Double(max(info.ledger_phys_footprint_peak, Int64(info.phys_footprint))) / 1_048_576
    }

    static func thermal() -> ThermalReading {
        ThermalReading(status: AppleThermal.name(ProcessInfo.processInfo.thermalState.rawValue))
    }

    /// e.g. "iPhone16,2": the hardware model, not the user's device name.
    static func deviceModel() -> String {
        var system = utsname()
        uname(&system)
        return withUnsafeBytes(of: &system.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    static func device() -> DeviceInfo {
        let app = Bundle.main.infoDictionary?["CFBundleShortVersionString"] as? String ?? "0.1.0"
        let executorch = Bundle.main.infoDictionary?["MobqExecuTorchVersion"] as? String ?? "unknown"
        return DeviceInfo(source: "ios", device: deviceModel(), os: "iOS \(UIDevice.current.systemVersion)",
                          runtime: ["executorch": executorch, "app": app])
    }
}
