#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage
import FerryCore

/// Per-process odds and ends: credentials, rlimits, cwd, umask, interval
/// timers, name, personality.
public enum ProcessMisc {
    static func credentials(_ pid: Int32) throws -> Credentials {
        let st = try ProcFS.status(pid)
        func ids(_ key: String) -> [UInt32] { (st[key] ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { UInt32($0) } }
        let u = ids("Uid"), g = ids("Gid")
        guard u.count == 4, g.count == 4 else { throw FerryError("cannot read the credentials of \(pid)") }
        return Credentials(uid: u[0], euid: u[1], suid: u[2], fsuid: u[3], gid: g[0], egid: g[1], sgid: g[2], fsgid: g[3],
                           groups: ids("Groups"))
    }

    /// The 16 limits, from /proc/PID/limits (prlimit on another user's
    /// process needs CAP_SYS_RESOURCE, which root may lack in a container).
    static func rlimits(_ pid: Int32) throws -> [ResourceLimit] {
        try parseLimits(try ProcFS.text("/proc/\(pid)/limits"), pid: pid)
    }

    /// /proc/PID/limits: a header, then one line per resource in RLIMIT_*
    /// order: the name in 26 columns, then the soft and hard limits
    /// ("unlimited" or a number) and the unit.
    static func parseLimits(_ text: String, pid: Int32) throws -> [ResourceLimit] {
        let lines = text.split(separator: "\n").dropFirst()
        guard lines.count >= 16 else { throw FerryError("cannot read the limits of \(pid): /proc/\(pid)/limits has \(lines.count) lines") }
        return try lines.prefix(16).enumerated().map { i, line in
            let fields = line.dropFirst(26).split(separator: " ")
            func value(_ f: Substring?) throws -> UInt64 {
                if f == "unlimited" { return .max }
                guard let f, let v = UInt64(f) else { throw FerryError("cannot read the limits of \(pid): \"\(line)\"") }
                return v
            }
            return ResourceLimit(resource: Int32(i), soft: try value(fields.first), hard: try value(fields.dropFirst().first))
        }
    }

    /// Applies limits from the tracer (prlimit on the new process). A hard
    /// limit above ours cannot be raised without CAP_SYS_RESOURCE: it is
    /// lowered to ours and reported.
    static func restoreRlimits(_ limits: [ResourceLimit], pid: Int32) throws -> [String] {
        var notes: [String] = []
        for l in limits {
            var cur: [UInt64] = [0, 0]
            _ = ferry_prlimit(pid, l.resource, nil, &cur)
            let new: [UInt64] = [l.soft, l.hard]
            let r = ferry_prlimit(pid, l.resource, new, nil)
            if r == -EPERM && l.hard > cur[1] {
                notes.append("rlimit \(l.resource): hard limit \(l.hard) kept at \(cur[1]) (raising needs CAP_SYS_RESOURCE)")
                _ = ferry_prlimit(pid, l.resource, [min(l.soft, cur[1]), cur[1]], nil)
            } else if r < 0 {
                throw SystemError("prlimit(\(l.resource))", errno: -r, "restoring the limits of \(pid)")
            }
        }
        return notes
    }

    static func dumpTimers(injector: Injector, scratch: ScratchArea) throws -> [IntervalTimer] {
        var out: [IntervalTimer] = []
        for which in Int32(0)...2 {
            try injector.call(SYS.getitimer, [UInt64(which), scratch.data], "getitimer(\(which))")
            let w = try injector.memory.read(scratch.data, count: 32).withUnsafeBytes { p in (0..<4).map { p.load(fromByteOffset: $0 * 8, as: UInt64.self) } }
            let interval = w[0] * 1_000_000_000 + w[1] * 1000, value = w[2] * 1_000_000_000 + w[3] * 1000
            if interval != 0 || value != 0 { out.append(IntervalTimer(which: which, intervalNs: interval, valueNs: value)) }
        }
        return out
    }

    static func restoreTimers(_ timers: [IntervalTimer], injector: Injector, scratch: ScratchArea) throws {
        for t in timers {
            var b = LEBytes()
            b.u64(t.intervalNs / 1_000_000_000); b.u64(t.intervalNs % 1_000_000_000 / 1000)
            // A timer that was about to fire must still fire: never load 0 (which disarms).
            let value = max(t.valueNs, 1000)
            b.u64(value / 1_000_000_000); b.u64(value % 1_000_000_000 / 1000)
            try injector.memory.write(scratch.data, b.bytes)
            try injector.call(SYS.setitimer, [UInt64(bitPattern: Int64(t.which)), scratch.data, 0], "setitimer(\(t.which))")
        }
    }

    static func restoreCredentials(_ c: Credentials, injector: Injector, scratch: ScratchArea) throws {
        if c == Credentials(groups: c.groups) && c.groups.isEmpty { return }
        var b = LEBytes()
        for g in c.groups { b.i32(Int32(bitPattern: g)) }
        if !b.bytes.isEmpty { try injector.memory.write(scratch.data, b.bytes) }
        try injector.call(SYS.setgroups, [UInt64(c.groups.count), scratch.data], "setgroups")
        try injector.call(SYS.setresgid, [UInt64(c.gid), UInt64(c.egid), UInt64(c.sgid)], "setresgid")
        try injector.call(SYS.setfsgid, [UInt64(c.fsgid)], "setfsgid")
        try injector.call(SYS.setresuid, [UInt64(c.uid), UInt64(c.euid), UInt64(c.suid)], "setresuid")
        try injector.call(SYS.setfsuid, [UInt64(c.fsuid)], "setfsuid")
    }

    /// arch_prctl codes for dynamic XSAVE components (Linux 5.16+).
    static let archGetXCompPerm: UInt64 = 0x1022, archReqXCompPerm: UInt64 = 0x1023

    /// The XSAVE components the process may use, or nil where the kernel
    /// has no ARCH_GET_XCOMP_PERM.
    static func dumpXCompPermission(injector: Injector, scratch: ScratchArea) throws -> UInt64? {
        let r = try injector.raw(SYS.arch_prctl, [archGetXCompPerm, scratch.data])
        guard r == 0 else { return nil }
        return try injector.memory.read(scratch.data, count: 8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }

    /// Asks again for AMX tile data where the process had been granted it,
    /// so its tile state can be loaded and its later AMX use works.
    static func restoreXCompPermission(_ permitted: UInt64?, injector: Injector) throws {
        guard let permitted, permitted & XSaveComponent.amxTiledata.bit != 0 else { return }
        try injector.call(SYS.arch_prctl, [archReqXCompPerm, UInt64(XSaveComponent.amxTiledata.rawValue)],
                          "arch_prctl(ARCH_REQ_XCOMP_PERM, AMX tile data)")
    }

    /// Writes a NUL-terminated string into scratch and returns its address.
    static func put(_ s: String, injector: Injector, scratch: ScratchArea, at offset: Int = 0) throws -> UInt64 {
        let bytes = Array(s.utf8) + [0]
        guard bytes.count + offset <= scratch.dataSize else { throw FerryError("path too long for ferry's scratch area: \(s)") }
        try injector.memory.write(scratch.data + UInt64(offset), bytes)
        return scratch.data + UInt64(offset)
    }
}
#endif
