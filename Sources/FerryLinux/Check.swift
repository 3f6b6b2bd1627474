#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore

// `ferry check`: each kernel/CPU facility ferry uses, probed on this
// machine, with a verdict and what is lost without it. The model and its
// rendering are pure; `CheckProbes` does the probing.

public enum CheckVerdict: String, Sendable, Codable {
    case ok, missing, degraded
}

/// One facility: its verdict, what was seen, and what ferry loses without it.
public struct CheckItem: Sendable, Equatable, Codable {
    public var name: String
    public var verdict: CheckVerdict
    public var detail: String
    public var impact: String
    /// Checkpoint/restore cannot work at all without it.
    public var required: Bool

    public init(name: String, verdict: CheckVerdict, detail: String, impact: String, required: Bool = false) {
        self.name = name; self.verdict = verdict; self.detail = detail; self.impact = impact; self.required = required
    }
}

public struct CheckReport: Sendable, Equatable, Codable {
    public var kernel: String
    public var checks: [CheckItem]

    public init(kernel: String, checks: [CheckItem]) { self.kernel = kernel; self.checks = checks }

    public subscript(_ name: String) -> CheckItem? { checks.first { $0.name == name } }

    /// Every check ferry strictly needs is ok.
    public var requiredOK: Bool { checks.allSatisfy { !$0.required || $0.verdict == .ok } }

    /// The required checks that are not ok.
    public var failedRequired: [CheckItem] { checks.filter { $0.required && $0.verdict != .ok } }

    /// One line per check: verdict, name, what was seen, and (unless ok) what is lost.
    public func rendered() -> String {
        let width = checks.map(\.name.count).max() ?? 0
        return checks.map { c in
            let name = c.name + String(repeating: " ", count: width - c.name.count)
            let verdict = c.verdict.rawValue + String(repeating: " ", count: 8 - c.verdict.rawValue.count)
            let line = "\(verdict) \(name)  \(oneLine(c.detail))"
            return c.verdict == .ok ? line : line + "; without it: " + oneLine(c.impact)
        }.joined(separator: "\n")
    }

    /// `{"checks":[{"name","verdict","detail","impact","required"}...],"kernel":...,"ok":...}`
    public func json() -> String {
        let items = checks.map { c in
            "{\"name\":\(jsonString(c.name)),\"verdict\":\(jsonString(c.verdict.rawValue)),"
                + "\"detail\":\(jsonString(c.detail)),\"impact\":\(jsonString(c.impact)),\"required\":\(c.required)}"
        }
        return "{\"checks\":[\(items.joined(separator: ","))],\"kernel\":\(jsonString(kernel)),\"ok\":\(requiredOK)}"
    }
}

private func oneLine(_ s: String) -> String {
    s.split(whereSeparator: \.isNewline).joined(separator: " ")
}

/// A JSON string literal for `s`.
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20:
            let h = String(u.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}

/// The probes. Each one runs in ferry's process or in short-lived children
/// it reaps; none changes ferry's own state. Call from one thread (ptrace).
public enum CheckProbes {
    public static func run() -> CheckReport {
        let (ptraceItem, vmItem, xstateSize) = ptrace()
        let caps = capabilities()
        return CheckReport(kernel: kernelRelease(), checks: [
            ptraceItem, vmItem, setMMMap(caps: caps), clone3SetTid(caps: caps), userfaultfd(), pagemapScan(),
            dirtyTracking(), softDirty(), cgroupV1(), cgroupV2(), xsave(ptraceSize: xstateSize), kernel(), pidNamespace(),
            kcmp(),
        ])
    }

    // MARK: kcmp

    /// kcmp(KCMP_FILE) tells dups from separate opens; KCMP_EPOLL_TFD checks an epoll watch's file.
    static func kcmp() -> CheckItem {
        let impact = "fds sharing one open file (dup, 2>&1, a log inherited across fork) come back as separate opens with their own offsets, and epoll watches are not checked at checkpoint"
        let me = getpid()
        let a = open("/dev/null", O_RDONLY | O_CLOEXEC), c = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let b = dup(a)
        defer { for fd in [a, b, c] where fd >= 0 { close(fd) } }
        guard a >= 0, b >= 0, c >= 0 else { return CheckItem(name: "kcmp", verdict: .missing, detail: "could not open /dev/null", impact: impact) }
        let same = ferry_syscall6(SYS.kcmp, UInt64(me), UInt64(me), FileState.KCMP_FILE, UInt64(a), UInt64(b), 0)
        if same < 0 {
            return CheckItem(name: "kcmp", verdict: .missing, detail: "kcmp(KCMP_FILE) failed: \(String(cString: strerror(Int32(-same))))", impact: impact)
        }
        let other = ferry_syscall6(SYS.kcmp, UInt64(me), UInt64(me), FileState.KCMP_FILE, UInt64(a), UInt64(c), 0)
        guard same == 0, other > 0 else {
            return CheckItem(name: "kcmp", verdict: .degraded, detail: "kcmp(KCMP_FILE) said \(same) for a dup and \(other) for another open", impact: impact)
        }
        // Glibc's module has no sys/epoll.h: the raw calls (EPOLL_CLOEXEC = O_CLOEXEC).
        let ep = Int32(truncatingIfNeeded: ferry_syscall6(SYS.epollCreate1, UInt64(O_CLOEXEC), 0, 0, 0, 0, 0))
        defer { if ep >= 0 { close(ep) } }
        let event = FileState.epollEvent(events: 1 /* EPOLLIN */, data: 0)
        // /dev/null cannot be watched (EPERM): a pipe can.
        var p: [Int32] = [-1, -1]
        _ = ferry_pipe(&p, O_CLOEXEC)
        defer { for fd in p where fd >= 0 { close(fd) } }
        let added = event.withUnsafeBytes {
            ferry_syscall6(SYS.epollCtl, UInt64(ep), 1 /* ADD */, UInt64(p[0]), UInt64(UInt(bitPattern: $0.baseAddress!)), 0, 0)
        }
        guard ep >= 0, added == 0, FileState.watchIsAtItsFD(me, epoll: ep, watch: p[0]) else {
            return CheckItem(name: "kcmp", verdict: .degraded, detail: "KCMP_FILE works; KCMP_EPOLL_TFD did not confirm an epoll watch (epoll_ctl: \(added))",
                             impact: "epoll watches are not checked at checkpoint")
        }
        return CheckItem(name: "kcmp", verdict: .ok, detail: "KCMP_FILE tells a dup from another open; KCMP_EPOLL_TFD finds an epoll watch's file", impact: impact)
    }

    // MARK: ptrace and process_vm_readv

    /// PTRACE_SEIZE + PTRACE_INTERRUPT (+ GETREGS, NT_X86_XSTATE) on a
    /// `/bin/sleep 5` started with posix_spawn, and process_vm_readv of its stack.
    static func ptrace() -> (CheckItem, CheckItem, Int?) {
        let impact = "ferry cannot stop, read or drive a process: no checkpoint and no restore"
        let vmImpact = "ferry cannot copy a process's memory: no checkpoint"
        func fail(_ why: String) -> (CheckItem, CheckItem, Int?) {
            (CheckItem(name: "ptrace", verdict: .missing, detail: why, impact: impact, required: true),
             CheckItem(name: "process_vm_readv", verdict: .missing, detail: "not probed: \(why)", impact: vmImpact, required: true), nil)
        }
        let path = "/bin/sleep"
        var pid: pid_t = 0
        let rc = withCStrings([path, "5"]) { argv in
            withCStrings([]) { envp in posix_spawn(&pid, path, nil, nil, argv, envp) }
        }
        guard rc == 0 else { return fail("posix_spawn(\(path)) failed: \(String(cString: strerror(rc)))") }
        defer {
            kill(pid, SIGKILL)
            var st: Int32 = 0
            for _ in 0..<8 {
                if ferry_wait(pid, &st, 0) < 0 { break }
                if case .stopped = WaitStatus(st) { continue }
                break
            }
        }
        let t = Tracee(pid)
        var steps: [String] = []
        do {
            try t.seize()
            try t.interrupt()
            let st = WaitStatus(try t.wait())
            guard case .stopped(_, let event) = st, event == PT.eventStop else {
                return fail("PTRACE_INTERRUPT on \(path) (pid \(pid)): it \(st.description), not a PTRACE_EVENT_STOP")
            }
            steps.append("PTRACE_SEIZE + PTRACE_INTERRUPT stopped \(path) (pid \(pid)) with PTRACE_EVENT_STOP")
        } catch {
            return fail("\(error)")
        }
        var regs = LinuxRegs()
        var xsize: Int? = nil
        do {
            regs = try t.getRegs()
            steps.append("GETREGS rip \(hex(regs.rip))")
            xsize = try t.getXState().count
            steps.append("NT_X86_XSTATE \(xsize!) bytes")
        } catch {
            let item = CheckItem(name: "ptrace", verdict: .degraded, detail: steps.joined(separator: "; ") + "; \(error)",
                                 impact: "registers cannot be read or set: no checkpoint and no restore", required: true)
            return (item, CheckItem(name: "process_vm_readv", verdict: .missing, detail: "not probed: no registers",
                                    impact: vmImpact, required: true), nil)
        }
        let ptraceItem = CheckItem(name: "ptrace", verdict: .ok, detail: steps.joined(separator: "; "), impact: impact, required: true)
        // process_vm_readv of 8 bytes at its stack pointer, compared with PEEKDATA.
        var word: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &word) { b -> Int in
            var iov = ferry_iov(local: UInt64(UInt(bitPattern: b.baseAddress)), remote: regs.rsp, len: 8)
            return ferry_vm_readv(pid, &iov, 1)
        }
        let vmItem: CheckItem
        if n < 0 {
            vmItem = CheckItem(name: "process_vm_readv", verdict: .missing,
                               detail: "process_vm_readv failed: \(String(cString: strerror(Int32(-n))))", impact: vmImpact, required: true)
        } else if let peeked = try? t.peek(regs.rsp), peeked != word {
            vmItem = CheckItem(name: "process_vm_readv", verdict: .degraded,
                               detail: "read \(hex(word)) at \(hex(regs.rsp)) but PEEKDATA says \(hex(peeked))", impact: vmImpact, required: true)
        } else {
            vmItem = CheckItem(name: "process_vm_readv", verdict: .ok,
                               detail: "read 8 bytes at the traced child's stack pointer, equal to PTRACE_PEEKDATA", impact: vmImpact, required: true)
        }
        return (ptraceItem, vmItem, xsize)
    }

    // MARK: capabilities

    struct Capabilities {
        var effective: UInt64
        func has(_ bit: Int) -> Bool { effective & (1 << UInt64(bit)) != 0 }
        static let sysAdmin = 21, sysResource = 24, checkpointRestore = 40
    }

    static func capabilities() -> Capabilities {
        let hexText = (try? ProcFS.status(getpid()))?["CapEff"] ?? "0"
        return Capabilities(effective: UInt64(hexText.trimmingWhitespace(), radix: 16) ?? 0)
    }

    // MARK: PR_SET_MM_MAP

    /// PR_SET_MM_MAP_SIZE, then a real PR_SET_MM_MAP with unchanged values in a child.
    static func setMMMap(caps: Capabilities) -> CheckItem {
        let impact = "the restored process keeps the fresh process's brk, stack and argv/env bounds (wrong /proc/PID/cmdline, heap growth from the wrong brk): no restore"
        var size: UInt32 = 0
        let q = withUnsafeMutableBytes(of: &size) { b in
            ferry_prctl(35 /* PR_SET_MM */, 15 /* PR_SET_MM_MAP_SIZE */, UInt64(UInt(bitPattern: b.baseAddress)), 0, 0)
        }
        if q < 0 {
            return CheckItem(name: "PR_SET_MM_MAP", verdict: .missing,
                             detail: "prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE) failed: \(String(cString: strerror(Int32(-q)))) (CONFIG_CHECKPOINT_RESTORE off?)",
                             impact: impact, required: true)
        }
        let r = ferry_probe_set_mm_map()
        let resource = caps.has(Capabilities.sysResource) ? "CAP_SYS_RESOURCE present" : "without CAP_SYS_RESOURCE"
        if r != 0 {
            let why = r == -EPROTO ? "the child could not read its own /proc/self/stat" : String(cString: strerror(-r))
            return CheckItem(name: "PR_SET_MM_MAP", verdict: .missing,
                             detail: "MAP_SIZE \(size); PR_SET_MM_MAP with unchanged values in a child failed: \(why) (\(resource))",
                             impact: impact, required: true)
        }
        return CheckItem(name: "PR_SET_MM_MAP", verdict: .ok,
                         detail: "PR_SET_MM_MAP_SIZE \(size) bytes; a real PR_SET_MM_MAP with the child's own values (from /proc/self/stat, brk(0)) succeeded in a short-lived child (\(resource))",
                         impact: impact, required: true)
    }

    // MARK: clone3 set_tid

    static func freePid(after skip: Int32 = 0) -> Int32? {
        let maxPid = Int32((try? ProcFS.text("/proc/sys/kernel/pid_max"))?.trimmingWhitespace() ?? "") ?? 32768
        let last = Int32((try? ProcFS.text("/proc/sys/kernel/ns_last_pid"))?.trimmingWhitespace() ?? "") ?? 300
        var candidate = last + 1000 + skip
        for _ in 0..<1000 {
            if candidate >= maxPid { candidate = 301 + candidate % 1000 }
            if kill(candidate, 0) != 0 && errno == ESRCH && !ProcFS.exists("/proc/\(candidate)") { return candidate }
            candidate += 7
        }
        return nil
    }

    /// clone3 with set_tid = a free pid (child exits at once), and set_tid {1, free pid} with CLONE_NEWPID.
    static func clone3SetTid(caps: Capabilities) -> CheckItem {
        let impact = "restored processes get whatever pid the kernel hands out (programs that remember their pid break); restore --new-pidns cannot place them either"
        let capText = "CapEff: CAP_SYS_ADMIN \(caps.has(Capabilities.sysAdmin) ? "yes" : "no"), CAP_CHECKPOINT_RESTORE \(caps.has(Capabilities.checkpointRestore) ? "yes" : "no")"
        var got: pid_t = -EEXIST
        var wanted: Int32 = 0
        for attempt in 0..<3 where got == -EEXIST {
            guard let p = freePid(after: Int32(attempt) * 97) else { break }
            wanted = p
            var tid = [p]
            got = tid.withUnsafeMutableBufferPointer { ferry_clone3_exit($0.baseAddress, 1, 0) }
        }
        if wanted == 0 {
            return CheckItem(name: "clone3_set_tid", verdict: .missing, detail: "found no free pid to ask for (\(capText))", impact: impact)
        }
        if got < 0 {
            return CheckItem(name: "clone3_set_tid", verdict: .missing,
                             detail: "clone3(set_tid=\(wanted)) failed: \(String(cString: strerror(-got))) (\(capText))", impact: impact)
        }
        if got != wanted {
            return CheckItem(name: "clone3_set_tid", verdict: .degraded,
                             detail: "clone3(set_tid=\(wanted)) gave pid \(got) (\(capText))", impact: impact)
        }
        var detail = "clone3(set_tid=\(wanted)) gave that pid"
        var verdict = CheckVerdict.ok
        var nsGot: pid_t = -EEXIST
        for attempt in 0..<3 where nsGot == -EEXIST {
            guard let p = freePid(after: 500 + Int32(attempt) * 97) else { break }
            var tids: [pid_t] = [1, p]
            nsGot = tids.withUnsafeMutableBufferPointer { ferry_clone3_exit($0.baseAddress, 2, 1) }
            if nsGot >= 0 && nsGot != p { nsGot = -ESRCH }
        }
        if nsGot < 0 {
            verdict = .degraded
            detail += "; with CLONE_NEWPID and set_tid {1, host pid} it failed: \(String(cString: strerror(-nsGot)))"
        } else {
            detail += "; with CLONE_NEWPID and set_tid {1, \(nsGot)} too"
        }
        return CheckItem(name: "clone3_set_tid", verdict: verdict, detail: "\(detail) (\(capText))", impact: impact)
    }

    // MARK: userfaultfd, PAGEMAP_SCAN, dirty tracking, soft-dirty

    static let uffdFeatureNames: [(UInt64, String)] = [
        (1 << 0, "PAGEFAULT_FLAG_WP"), (1 << 1, "EVENT_FORK"), (1 << 2, "EVENT_REMAP"), (1 << 3, "EVENT_REMOVE"),
        (1 << 4, "MISSING_HUGETLBFS"), (1 << 5, "MISSING_SHMEM"), (1 << 6, "EVENT_UNMAP"), (1 << 7, "SIGBUS"),
        (1 << 8, "THREAD_ID"), (1 << 9, "MINOR_HUGETLBFS"), (1 << 10, "MINOR_SHMEM"), (1 << 11, "EXACT_ADDRESS"),
        (1 << 12, "WP_HUGETLBFS_SHMEM"), (1 << 13, "WP_UNPOPULATED"), (1 << 14, "POISON"), (1 << 15, "WP_ASYNC"),
        (1 << 16, "MOVE"),
    ]
    static let uffdFeatureWPAsync: UInt64 = 1 << 15

    public static func describeUffdFeatures(_ mask: UInt64) -> String {
        var names = uffdFeatureNames.filter { mask & $0.0 != 0 }.map(\.1)
        let known = uffdFeatureNames.reduce(0) { $0 | $1.0 }
        for bit in 0..<64 where mask & ~known & (1 << UInt64(bit)) != 0 { names.append("bit \(bit)") }
        return names.isEmpty ? "none" : names.joined(separator: ", ")
    }

    /// UFFDIO_API with features 0: the kernel answers with every feature it has.
    static func userfaultfd() -> CheckItem {
        let impact = "no write-protect dirty tracking: no pre-copy (the process stays stopped for the whole memory copy) and no lazy restore"
        let fd = ferry_uffd_open(O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            return CheckItem(name: "userfaultfd", verdict: .missing,
                             detail: "userfaultfd failed: \(String(cString: strerror(-fd)))", impact: impact)
        }
        defer { close(fd) }
        var api: (UInt64, UInt64, UInt64) = (0xAA /* UFFD_API */, 0, 0)
        let r = withUnsafeMutableBytes(of: &api) { b in
            ferry_ioctl(fd, 0xC018_AA3F /* UFFDIO_API */, UInt64(UInt(bitPattern: b.baseAddress)))
        }
        if r < 0 {
            return CheckItem(name: "userfaultfd", verdict: .missing,
                             detail: "UFFDIO_API failed: \(String(cString: strerror(Int32(-r))))", impact: impact)
        }
        let features = api.1
        let text = "UFFDIO_API features \(hex(features)): \(describeUffdFeatures(features))"
        if features & uffdFeatureWPAsync == 0 {
            return CheckItem(name: "userfaultfd", verdict: .degraded, detail: "no WP_ASYNC; " + text, impact: impact)
        }
        return CheckItem(name: "userfaultfd", verdict: .ok, detail: "WP_ASYNC present; " + text, impact: impact)
    }

    /// A probe that counts pages: failed (-errno), counted `expected`, or something else.
    static func counted(_ name: String, _ result: Int, expected: Int, probe: String, ok: String, hint: (Int32) -> String = { _ in "" },
                        impact: String) -> CheckItem {
        if result < 0 {
            let e = Int32(-result)
            return CheckItem(name: name, verdict: .missing, detail: "\(probe) failed: \(String(cString: strerror(e)))\(hint(e))", impact: impact)
        }
        if result != expected {
            return CheckItem(name: name, verdict: .degraded, detail: "\(probe) counted \(result) pages, expected \(expected)", impact: impact)
        }
        return CheckItem(name: name, verdict: .ok, detail: "\(probe): \(ok)", impact: impact)
    }

    /// PAGEMAP_SCAN (category PAGE_IS_PRESENT) over 8 touched pages of our own.
    static func pagemapScan() -> CheckItem {
        let pages = 8
        return counted("PAGEMAP_SCAN", ferry_probe_pagemap_scan(pages), expected: pages,
                       probe: "ioctl(PAGEMAP_SCAN) on /proc/self/pagemap", ok: "all \(pages) touched pages present",
                       hint: { $0 == ENOTTY || $0 == EINVAL ? " (kernel before 6.7?)" : "" },
                       impact: "dirty pages must be found by reading /proc/PID/pagemap page by page; with soft-dirty missing too, no pre-copy")
    }

    /// The pre-copy mechanism end to end: uffd WP_ASYNC + PAGEMAP_SCAN WP_MATCHING sees exactly the pages written.
    static func dirtyTracking() -> CheckItem {
        let pages = 64, writes = 5
        return counted("dirty_tracking", ferry_probe_wp_scan(pages, writes), expected: writes,
                       probe: "userfaultfd WP_ASYNC + PAGEMAP_SCAN (PM_SCAN_WP_MATCHING)",
                       ok: "exactly the \(writes) pages written of \(pages) reported",
                       impact: "pre-copy falls back to soft-dirty bits (each scan freezes the process briefly); with neither, memory is copied only while the process is stopped")
    }

    static func softDirty() -> CheckItem {
        let impact = DirtyTrackingMethod.available == .userfaultfd
            ? "none while uffd-wp + PAGEMAP_SCAN work: pre-copy uses those instead of soft-dirty"
            : "pre-copy uses soft-dirty where uffd-wp + PAGEMAP_SCAN are missing; with neither, no pre-copy"
        let r = ferry_probe_soft_dirty()
        if r < 0 {
            return CheckItem(name: "soft_dirty", verdict: .missing,
                             detail: "clear_refs/pagemap: \(String(cString: strerror(-r)))", impact: impact)
        }
        if r == 0 {
            return CheckItem(name: "soft_dirty", verdict: .missing,
                             detail: "after writing 4 to /proc/self/clear_refs and writing a page, pagemap bit 55 stays 0 (CONFIG_MEM_SOFT_DIRTY off)",
                             impact: impact)
        }
        return CheckItem(name: "soft_dirty", verdict: .ok,
                         detail: "pagemap bit 55 set after clear_refs 4 and a write", impact: impact)
    }

    // MARK: cgroups

    struct Mount { var point: String; var type: String; var options: [String] }

    static func mounts() -> [Mount] {
        let text = (try? ProcFS.text("/proc/self/mounts")) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count >= 4 else { return nil }
            let point = String(f[1]).replacingOctal()
            return Mount(point: point, type: String(f[2]), options: f[3].split(separator: ",").map(String.init))
        }
    }

    static let v1Controllers: Set<String> = [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio", "perf_event", "net_prio",
        "hugetlb", "pids", "rdma", "misc",
    ]

    static func cgroupV1() -> CheckItem {
        let impact = "`ferry container` cannot read or apply v1 limits (cpu, memory, pids …) of the process's cgroups"
        var found: [String] = []
        for m in mounts() where m.type == "cgroup" {
            let names = m.options.filter { v1Controllers.contains($0) || $0.hasPrefix("name=") }
            found.append("\(names.joined(separator: ",")) at \(m.point)")
        }
        if found.isEmpty {
            return CheckItem(name: "cgroup_v1", verdict: .missing, detail: "no cgroup v1 hierarchy mounted", impact: impact)
        }
        return CheckItem(name: "cgroup_v1", verdict: .ok, detail: found.joined(separator: "; "), impact: impact)
    }

    static func cgroupV2() -> CheckItem {
        let impact = "`ferry container` cannot read or apply v2 limits, and cgroup.freeze/cgroup.kill are unavailable"
        let v2 = mounts().filter { $0.type == "cgroup2" }
        if v2.isEmpty {
            return CheckItem(name: "cgroup_v2", verdict: .missing, detail: "no cgroup2 hierarchy mounted", impact: impact)
        }
        let parts = v2.map { m -> String in
            let controllers = ((try? ProcFS.text(m.point + "/cgroup.controllers")) ?? "").trimmingWhitespace()
            return "\(m.point) with controllers: \(controllers.isEmpty ? "none" : controllers)"
        }
        return CheckItem(name: "cgroup_v2", verdict: .ok, detail: parts.joined(separator: "; "), impact: impact)
    }

    // MARK: XSAVE, kernel, pid namespaces

    static func xsave(ptraceSize: Int?) -> CheckItem {
        let impact = "only x87/SSE state (FXSAVE) is saved: AVX and wider registers are lost across checkpoint/restore"
        let cpu = Host.cpu()
        if cpu.xcr0 == 0 {
            return CheckItem(name: "xsave", verdict: .degraded, detail: "no OSXSAVE: XCR0 unreadable", impact: impact)
        }
        var detail = "XCR0 \(hex(cpu.xcr0)): \(XSaveComponent.describe(cpu.xcr0)); XSAVE area \(cpu.xsaveSize) bytes (CPUID 0xD)"
        if let ptraceSize { detail += ", NT_X86_XSTATE \(ptraceSize) bytes" }
        return CheckItem(name: "xsave", verdict: .ok, detail: detail, impact: impact)
    }

    public static func kernelRelease() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: u.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }

    /// (major, minor) of a release string like "6.18.44-fc".
    public static func kernelVersion(_ release: String) -> (Int, Int)? {
        let nums = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return nums.count == 2 ? (nums[0], nums[1]) : nil
    }

    static func kernel() -> CheckItem {
        let release = kernelRelease()
        let impact = "before 6.7 there is no PAGEMAP_SCAN and no userfaultfd WP_ASYNC: no exact pre-copy dirty tracking"
        guard let (major, minor) = kernelVersion(release) else {
            return CheckItem(name: "kernel", verdict: .degraded, detail: "Linux \(release) (version unreadable)", impact: impact)
        }
        let recent = major > 6 || (major == 6 && minor >= 7)
        return CheckItem(name: "kernel", verdict: recent ? .ok : .degraded,
                         detail: "Linux \(release)" + (recent ? " (6.7+)" : " (older than 6.7)"), impact: impact)
    }

    static func pidNamespace() -> CheckItem {
        let impact = "restore --new-pidns is impossible: a restored process needs its old pid free on this host"
        let r = ferry_probe_newpid()
        if r != 0 {
            let why = r == -EPROTO ? "the first child of the new namespace was not pid 1" : String(cString: strerror(-r))
            return CheckItem(name: "pid_namespace", verdict: .missing,
                             detail: "unshare(CLONE_NEWPID) in a child: \(why)", impact: impact)
        }
        return CheckItem(name: "pid_namespace", verdict: .ok,
                         detail: "unshare(CLONE_NEWPID) in a child works; its first child is pid 1 there", impact: impact)
    }
}

private extension String {
    /// /proc/self/mounts escapes space, tab, newline and backslash as \ooo.
    func replacingOctal() -> String {
        guard contains("\\") else { return self }
        var out: [UInt8] = []
        let b = Array(utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count,
               let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else {
                out.append(b[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
#endif
