import Foundation
import CFerryLinux

/// What the machine running the tests offers, for tests that need a kernel
/// feature: each is enabled where the feature is there and skipped with the
/// reason printed where it is not (machines of this project's kind differ:
/// Linux 6.18 with cgroup v1 here, Debian 12's 6.1 with cgroup v2 elsewhere).
public enum HostFeatures {
    /// The running kernel's major and minor version.
    public static let kernel: (major: Int, minor: Int) = {
        let release = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? ""
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return (parts.first ?? 0, parts.count > 1 ? parts[1] : 0)
    }()

    public static func kernelAtLeast(_ major: Int, _ minor: Int) -> Bool {
        kernel.major > major || (kernel.major == major && kernel.minor >= minor)
    }

    /// PAGEMAP_SCAN and userfaultfd WP_ASYNC, pre-copy's first method of
    /// dirty tracking (Linux 6.7+).
    public static var uffdDirtyTracking: Bool { kernelAtLeast(6, 7) }

    /// Soft-dirty bits (CONFIG_MEM_SOFT_DIRTY), pre-copy's fallback: probed
    /// on a page of the test process (clear_refs 4, a write, pagemap bit 55).
    public static let softDirty: Bool = ferry_probe_soft_dirty() == 1

    /// Pre-copy can track writes here, by either method.
    public static var dirtyTracking: Bool { uffdDirtyTracking || softDirty }

    /// Why `dirtyTracking` is false, for the skip messages.
    public static var noDirtyTracking: String {
        "pre-copy rounds need dirty tracking: PAGEMAP_SCAN and userfaultfd WP_ASYNC (Linux 6.7+) or soft-dirty bits (CONFIG_MEM_SOFT_DIRTY); \(kernelDescription) has neither"
    }

    /// Running under qemu's TCG emulation (`make guest-test`: CPU model
    /// "QEMU TCG CPU …"), where everything runs many times slower and the
    /// tests' short stall timeouts would fire on a healthy migration.
    public static let emulated: Bool = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains("QEMU TCG")

    public static var kernelDescription: String { "Linux \(kernel.major).\(kernel.minor)" }

    /// /proc/PID/fdinfo shows an eventfd's EFD_SEMAPHORE flag (Linux ~6.5+).
    /// Before that ferry cannot see the flag and restores a semaphore eventfd
    /// as a counter (docs/design-notes.md). Probed on a throwaway eventfd
    /// (python3, as the workload launcher uses: Swift's Glibc has no eventfd).
    public static let eventfdSemaphoreShown: Bool = {
        let probe = "import os; fd = os.eventfd(0, os.EFD_SEMAPHORE); print('eventfd-semaphore' in open(f'/proc/self/fdinfo/{fd}').read())"
        let r = try? Child.run(["/usr/bin/python3", "-c", probe], stderr: .null)
        return r?.stdout.hasPrefix("True") == true
    }()

    /// Why event_fds fails where `eventfdSemaphoreShown` is false, for the
    /// tests that mark it a known issue there.
    public static var semaphoreEventfdIssue: String {
        "\(kernelDescription) does not show EFD_SEMAPHORE in fdinfo (~6.5+): ferry restores event_fds' semaphore eventfd as a counter, a known limit (docs/design-notes.md)"
    }

    /// The cgroup v1 hierarchies the container tests make cgroups in.
    public static var cgroupV1: Bool {
        ["cpu", "memory", "pids", "cpuset"].allSatisfy {
            FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\($0)/cgroup.procs")
        }
    }
}
