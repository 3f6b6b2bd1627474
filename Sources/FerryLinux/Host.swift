#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage

/// What this machine is: recorded in images as their source, and offered to
/// migration peers as the target's capabilities.
public enum Host {
    public static func describe() -> SourceHost {
        var u = utsname()
        uname(&u)
        func field<T>(_ v: T) -> String {
            withUnsafeBytes(of: v) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        }
        return SourceHost(os: "linux", kernelRelease: field(u.release), arch: field(u.machine), pageSize: UInt32(sysconf(Int32(_SC_PAGESIZE))),
                          cpu: cpu(), hostname: field(u.nodename), createdAt: now(), clocks: clocks())
    }

    public static func clocks() -> SourceClocks {
        SourceClocks(realtimeNs: clockNs(CLOCK_REALTIME), monotonicNs: clockNs(CLOCK_MONOTONIC), boottimeNs: clockNs(CLOCK_BOOTTIME))
    }

    /// Clock `c` now, in ns.
    static func clockNs(_ c: clockid_t) -> Int64 {
        var ts = timespec()
        clock_gettime(c, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// Time-namespace offsets (ns) that make this host's CLOCK_MONOTONIC and
    /// CLOCK_BOOTTIME read the source's values plus the wall time elapsed
    /// since they were taken (never less than zero elapsed).
    public static func clockOffsets(from source: SourceClocks) -> (monotonic: Int64, boottime: Int64) {
        let here = clocks()
        let elapsed = max(0, here.realtimeNs - source.realtimeNs)
        return (source.monotonicNs + elapsed - here.monotonicNs, source.boottimeNs + elapsed - here.boottimeNs)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// This CPU's features (read once: /proc/cpuinfo is long on big machines
    /// and a restore asks once per thread).
    public static func cpu() -> CPUFeatures { thisCPU }

    private static let thisCPU = readCPU()

    private static func readCPU() -> CPUFeatures {
        let xcr0 = ferry_xgetbv0()
        var r: [UInt32] = [0, 0, 0, 0]
        ferry_cpuid(0xd, 0, &r)
        let size = xcr0 == 0 ? 512 : r[1]
        var flags: [String] = []
        var vendor = "", model = ""
        if let text = try? ProcFS.text("/proc/cpuinfo") {
            for line in text.split(separator: "\n") {
                if line.hasPrefix("flags"), flags.isEmpty, let c = line.firstIndex(of: ":") {
                    flags = line[line.index(after: c)...].split(separator: " ").map(String.init)
                } else if line.hasPrefix("vendor_id"), vendor.isEmpty, let c = line.firstIndex(of: ":") {
                    vendor = line[line.index(after: c)...].trimmingWhitespace()
                } else if line.hasPrefix("model name"), model.isEmpty, let c = line.firstIndex(of: ":") {
                    model = line[line.index(after: c)...].trimmingWhitespace()
                }
            }
        }
        return CPUFeatures(xcr0: xcr0, xsaveSize: size, flags: flags.sorted(), vendor: vendor, model: model,
                           xsaveLayout: xsaveLayout(xcr0: xcr0))
    }

    /// Offset and size of every extended user component XCR0 enables
    /// (CPUID 0xD sub-leaf n: EAX size, EBX offset in the standard format;
    /// ECX bit 0 marks supervisor components, which ptrace never shows).
    static func xsaveLayout(xcr0: UInt64) -> [XSaveExtent] {
        var out: [XSaveExtent] = []
        for n in 2..<64 where xcr0 & (1 << UInt64(n)) != 0 {
            var r: [UInt32] = [0, 0, 0, 0]
            ferry_cpuid(0xd, UInt32(n), &r)
            if r[2] & 1 == 0 && r[0] != 0 { out.append(XSaveExtent(component: n, offset: Int(r[1]), size: Int(r[0]))) }
        }
        return out
    }
}
#endif
