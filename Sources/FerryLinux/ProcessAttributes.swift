#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage

/// Kernel attributes programs set and rely on: scheduling policy and nice
/// value, timer slack, parent-death signal and robust futex list (per
/// thread); OOM score, transparent-huge-page opt-out, child subreaper,
/// no_new_privs and loginuid (per process). Dump and restore, and the
/// attributes ferry does not carry yet, refused at checkpoint by name.
enum AttributeState {
    static let prSetPdeathsig: UInt64 = 1, prGetPdeathsig: UInt64 = 2
    static let prSetTimerslack: UInt64 = 29, prGetTimerslack: UInt64 = 30
    static let prSetChildSubreaper: UInt64 = 36, prGetChildSubreaper: UInt64 = 37
    static let prSetNoNewPrivs: UInt64 = 38
    static let prSetTHPDisable: UInt64 = 41, prGetTHPDisable: UInt64 = 42
    static let sysGetpriority = 140, sysSetpriority = 141, sysSchedSetparam = 142, sysSchedGetparam = 143
    static let sysSchedSetscheduler = 144, sysSchedGetscheduler = 145, sysSetRobustList = 273, sysGetRobustList = 274
    static let prioProcess: UInt64 = 0, sysPersonality = 135
    static let unsetLoginUID = UInt32.max

    // MARK: dump

    /// `injector` runs in thread `tid` (the prctl queries answer for the calling thread).
    static func dumpThread(tid: Int32, injector: Injector, scratch: ScratchArea) throws -> ThreadAttributes {
        var a = ThreadAttributes()
        let policy = ferry_syscall6(sysSchedGetscheduler, UInt64(tid), 0, 0, 0, 0, 0)
        if policy < 0 { throw SystemError("sched_getscheduler(\(tid))", errno: Int32(-policy), "reading thread \(tid)") }
        a.schedPolicy = Int32(truncatingIfNeeded: policy)
        var param: Int32 = 0
        let pr = ferry_syscall6(sysSchedGetparam, UInt64(tid), UInt64(UInt(bitPattern: withUnsafeMutablePointer(to: &param) { $0 })), 0, 0, 0, 0)
        if pr < 0 { throw SystemError("sched_getparam(\(tid))", errno: Int32(-pr), "reading thread \(tid)") }
        a.schedPriority = param
        // The raw getpriority returns 20 - nice (1…40).
        let prio = ferry_syscall6(sysGetpriority, prioProcess, UInt64(tid), 0, 0, 0, 0)
        if prio < 0 { throw SystemError("getpriority(\(tid))", errno: Int32(-prio), "reading thread \(tid)") }
        a.nice = 20 - Int32(truncatingIfNeeded: prio)
        try ProcessChecks.refuseSecurebits(tid: tid, injector: injector)
        a.timerSlackNs = UInt64(try injector.call(SYS.prctl, [prGetTimerslack], "prctl(PR_GET_TIMERSLACK)"))
        try injector.call(SYS.prctl, [prGetPdeathsig, scratch.data], "prctl(PR_GET_PDEATHSIG)")
        a.parentDeathSignal = try injector.memory.read(scratch.data, count: 4).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        var head: UInt64 = 0, length: UInt64 = 0
        let rl = withUnsafeMutablePointer(to: &head) { h in
            withUnsafeMutablePointer(to: &length) { l in
                ferry_syscall6(sysGetRobustList, UInt64(tid), UInt64(UInt(bitPattern: h)), UInt64(UInt(bitPattern: l)), 0, 0, 0)
            }
        }
        if rl < 0 { throw SystemError("get_robust_list(\(tid))", errno: Int32(-rl), "reading thread \(tid)") }
        a.robustListHead = head
        a.robustListLength = length
        a.capabilities = try capabilities(tid: tid)
        return a
    }

    static func dumpProcess(pid: Int32, status: [String: String], injector: Injector, scratch: ScratchArea) throws -> ProcessAttributes {
        var a = ProcessAttributes()
        let oom = try ProcFS.text("/proc/\(pid)/oom_score_adj").trimmingWhitespace()
        guard let score = Int32(oom) else { throw FerryError("cannot checkpoint \(pid): /proc/\(pid)/oom_score_adj says \"\(oom)\"") }
        a.oomScoreAdj = score
        a.thpDisabled = try injector.call(SYS.prctl, [prGetTHPDisable], "prctl(PR_GET_THP_DISABLE)") != 0
        try injector.call(SYS.prctl, [prGetChildSubreaper, scratch.data], "prctl(PR_GET_CHILD_SUBREAPER)")
        a.childSubreaper = try injector.memory.read(scratch.data, count: 4).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } != 0
        a.noNewPrivs = status["NoNewPrivs"] == "1"
        a.loginUID = UInt32((try? ProcFS.text("/proc/\(pid)/loginuid"))?.trimmingWhitespace() ?? "") ?? unsetLoginUID
        a.membarrierRegistrations = try MembarrierState.dump(injector: injector)
        return a
    }

    /// What the kernel shows about `pid` that ferry does not carry: refused
    /// in one line naming it and the way out. `root` is the tree's root
    /// (its parent is outside the tree).
    static func refuseUncarried(pid: Int32, comm: String, status: [String: String], mappings: [Mapping], root: Bool,
                                threads: [ThreadImage]) throws {
        let who = "process \(pid) (\(comm))"
        if let mode = status["Seccomp"], mode != "0" {
            throw FerryError("cannot checkpoint \(who): it runs under seccomp (mode \(mode)); ferry does not carry seccomp filters: run it without seccomp")
        }
        _ = try PosixTimerState.entries(pid: pid, comm: comm, threads: threads.isEmpty ? try ProcFS.threads(pid) : threads.map(\.tid))
        if let aio = mappings.first(where: { $0.name.hasPrefix("/[aio]") }) {
            throw FerryError("cannot checkpoint \(who): it has an AIO context (io_setup) mapped at \(hex(aio.start)); ferry does not carry AIO contexts: let its I/O finish and io_destroy it first")
        }
        if let t = threads.first(where: { ($0.attributes?.schedPolicy ?? 0) & 0xff == 6 }) {
            throw FerryError("cannot checkpoint \(who): thread \(t.tid) runs under SCHED_DEADLINE; ferry does not carry deadline parameters yet: run it under another policy")
        }
        if root, let t = threads.first(where: { ($0.attributes?.parentDeathSignal ?? 0) != 0 }) {
            throw FerryError("cannot checkpoint \(who): thread \(t.tid) asked for signal \(t.attributes?.parentDeathSignal ?? 0) when its parent dies (PR_SET_PDEATHSIG), and its parent is outside the tree: the restored process would get it as soon as the restoring ferry exits; checkpoint its parent's tree instead")
        }
    }

    static let capabilitySets = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]

    /// A thread's capability sets, in `capabilitySets` order.
    static func capabilities(tid: Int32) throws -> [String] {
        let status = try ProcFS.status(tid)
        return capabilitySets.map { status[$0] ?? "?" }
    }

    static func bits(_ hex: String) -> UInt64? { UInt64(hex, radix: 16) }

    nonisolated(unsafe) private static var own: [UInt64]?

    /// ferry's own capability sets, read once.
    static func ownCapabilities() throws -> [UInt64] {
        if let own { return own }
        let sets = try capabilities(tid: getpid()).map { bits($0) ?? 0 }
        own = sets
        return sets
    }

    /// Capability sets no restore by this ferry can give back, refused:
    /// permitted, effective or ambient capabilities of a thread whose uid is
    /// not 0 (kept across a uid change: a restore sets the uid first, which
    /// clears them), and any capability ferry itself does not hold.
    static func refuseCapabilities(pid: Int32, tid: Int32, comm: String, euid: UInt32, have: [String]) throws {
        let mine = try ownCapabilities()
        let who = "process \(pid) (\(comm)): thread \(tid)"
        for (i, name) in capabilitySets.enumerated() {
            guard i < have.count, let set = bits(have[i]) else { continue }
            if euid != 0, [1, 2, 4].contains(i), set != 0 {
                throw FerryError("cannot checkpoint \(who) of uid \(euid) holds capabilities (\(name) \(have[i])); ferry restores the uid first, which clears them: run it without capabilities kept across its uid change")
            }
            let ceiling = i == 3 ? mine[3] : mine[1]
            if set & ~ceiling != 0 {
                throw FerryError("cannot checkpoint \(who) has \(name) \(have[i]), capabilities ferry does not hold itself (\(String(ceiling, radix: 16))); run ferry with them")
            }
        }
    }

    /// After credentials: every thread has the capability sets it had.
    static func checkCapabilities(_ a: ThreadAttributes?, tid: Int32, liveTid: Int32) throws {
        guard let want = a?.capabilities else { return }
        let have = try capabilities(tid: liveTid)
        for (i, name) in capabilitySets.enumerated() where i < want.count && have[i] != want[i] {
            throw FerryError("cannot restore: thread \(tid) would have \(name) \(have[i]) where it had \(want[i]); restore with a ferry that holds those capabilities")
        }
    }

    static let sysCapset = 126, prCapbsetDrop: UInt64 = 24, prCapAmbient: UInt64 = 47
    static let ambientRaise: UInt64 = 2, ambientClearAll: UInt64 = 4

    /// capset for the calling thread: `_LINUX_CAPABILITY_VERSION_3`, two
    /// 32-bit halves of (effective, permitted, inheritable).
    static func capset(effective: UInt64, permitted: UInt64, inheritable: UInt64, tid: Int32,
                       injector: Injector, scratch: ScratchArea) throws {
        var b = LEBytes()
        b.i32(0x2008_0522); b.i32(0)
        for half in [UInt64(0), 32] {
            for v in [effective, permitted, inheritable] { b.i32(Int32(bitPattern: UInt32(truncatingIfNeeded: v >> half))) }
        }
        try injector.memory.write(scratch.data, b.bytes)
        try injector.call(sysCapset, [scratch.data, scratch.data + 8], "capset (thread \(tid))")
    }

    /// The image's five sets as numbers, nil when it has none; damaged sets
    /// are refused (never skipped, which would leave the restorer's).
    static func wantedCapabilities(_ a: ThreadAttributes?, tid: Int32) throws -> [UInt64]? {
        guard let strings = a?.capabilities else { return nil }
        let sets = strings.compactMap(bits)
        guard strings.count == capabilitySets.count, sets.count == strings.count else {
            throw FerryError("cannot restore: thread \(tid)'s capability sets in the image are damaged (\(strings.prefix(5).joined(separator: " ")))")
        }
        return sets
    }

    /// Before credentials, in each thread while it still holds every
    /// capability ferry has: its bounding set lowered to the image's, its
    /// inheritable set made the image's (a uid change keeps both).
    static func restoreCapabilitiesBeforeCredentials(_ a: ThreadAttributes?, tid: Int32, liveTid: Int32,
                                                     injector: Injector, scratch: ScratchArea) throws {
        guard let want = try wantedCapabilities(a, tid: tid) else { return }
        let have = try capabilities(tid: liveTid).map { bits($0) ?? 0 }
        var drop = have[3] & ~want[3]
        while drop != 0 {
            let cap = UInt64(drop.trailingZeroBitCount)
            try injector.call(SYS.prctl, [prCapbsetDrop, cap], "prctl(PR_CAPBSET_DROP, \(cap)) (thread \(tid))")
            drop &= drop - 1
        }
        if have[0] != want[0] {
            try capset(effective: have[2], permitted: have[1], inheritable: want[0], tid: tid, injector: injector, scratch: scratch)
        }
    }

    /// After credentials: permitted and effective lowered to the image's,
    /// the ambient set raised, and every set checked.
    static func restoreCapabilitiesAfterCredentials(_ a: ThreadAttributes?, tid: Int32, liveTid: Int32,
                                                    injector: Injector, scratch: ScratchArea) throws {
        guard let want = try wantedCapabilities(a, tid: tid) else { return }
        let have = try capabilities(tid: liveTid).map { bits($0) ?? 0 }
        if have[1] != want[1] || have[2] != want[2] {
            try capset(effective: want[2], permitted: want[1], inheritable: want[0], tid: tid, injector: injector, scratch: scratch)
        }
        if have[4] != want[4] {
            try injector.call(SYS.prctl, [prCapAmbient, ambientClearAll, 0, 0, 0], "prctl(PR_CAP_AMBIENT_CLEAR_ALL) (thread \(tid))")
            var raise = want[4]
            while raise != 0 {
                let cap = UInt64(raise.trailingZeroBitCount)
                try injector.call(SYS.prctl, [prCapAmbient, ambientRaise, cap, 0, 0], "prctl(PR_CAP_AMBIENT_RAISE, \(cap)) (thread \(tid))")
                raise &= raise - 1
            }
        }
        try checkCapabilities(a, tid: tid, liveTid: liveTid)
    }



    /// kcmp types of what CLONE_FS, CLONE_SIGHAND and CLONE_VM share
    /// between processes (not threads); CLONE_FILES is carried (`FileTableState`).
    static let sharedResources: [(kcmp: UInt64, what: String, flag: String)] = [
        (3, "cwd, root and umask", "CLONE_FS"),
        (4, "signal handlers", "CLONE_SIGHAND"), (1, "address space", "CLONE_VM (vfork)"),
    ]

    /// Processes of one tree sharing a table clone() can share: refused,
    /// ferry restores each process with its own.
    static func refuseSharedResources(_ pids: [Int32]) throws {
        for (i, a) in pids.enumerated() {
            for b in pids[(i + 1)...] {
                for r in sharedResources where ferry_syscall6(SYS.kcmp, UInt64(a), UInt64(b), r.kcmp, 0, 0, 0) == 0 {
                    throw FerryError("cannot checkpoint: processes \(a) and \(b) share one \(r.what) (\(r.flag)); ferry restores each process with its own, so it does not take them yet")
                }
            }
        }
    }

    // MARK: restore

    /// Per thread, in the thread itself: robust list and timer slack.
    static func restoreInside(_ a: ThreadAttributes?, tid: Int32, injector: Injector) throws {
        guard let a else { return }
        if a.robustListHead != 0 {
            try injector.call(sysSetRobustList, [a.robustListHead, a.robustListLength], "set_robust_list (thread \(tid))")
        }
        try injector.call(SYS.prctl, [prSetTimerslack, a.timerSlackNs], "prctl(PR_SET_TIMERSLACK, \(a.timerSlackNs)) (thread \(tid))")
    }

    /// What credentials would reset or forbid comes after them: the
    /// parent-death signal (cleared by a uid change), no_new_privs (set last),
    /// and scheduling from outside (`liveTid`: the thread's tid as ferry sees it).
    static func restoreAfterCredentials(_ a: ThreadAttributes?, tid: Int32, liveTid: Int32, noNewPrivs: Bool, injector: Injector) throws {
        if let a {
            if a.parentDeathSignal != 0 {
                try injector.call(SYS.prctl, [prSetPdeathsig, UInt64(a.parentDeathSignal)], "prctl(PR_SET_PDEATHSIG) (thread \(tid))")
            }
            var param = a.schedPriority
            let r = withUnsafeMutablePointer(to: &param) {
                ferry_syscall6(sysSchedSetscheduler, UInt64(liveTid), UInt64(UInt32(bitPattern: a.schedPolicy)), UInt64(UInt(bitPattern: $0)), 0, 0, 0)
            }
            if r < 0 { throw SystemError("sched_setscheduler(policy \(a.schedPolicy), priority \(a.schedPriority))", errno: Int32(-r), "restoring thread \(tid)") }
            let n = ferry_syscall6(sysSetpriority, prioProcess, UInt64(liveTid), UInt64(bitPattern: Int64(a.nice)), 0, 0, 0)
            if n < 0 { throw SystemError("setpriority(nice \(a.nice))", errno: Int32(-n), "restoring thread \(tid)") }
        }
        if noNewPrivs { try injector.call(SYS.prctl, [prSetNoNewPrivs, 1, 0, 0, 0], "prctl(PR_SET_NO_NEW_PRIVS) (thread \(tid))") }
    }

    /// Per process, before credentials: loginuid (only the process itself
    /// may write it, and it needs CAP_AUDIT_CONTROL), THP, subreaper, OOM score.
    static func restoreProcess(_ a: ProcessAttributes?, personality: UInt32, pid: Int32, injector: Injector, scratch: ScratchArea) throws {
        let currentPersonality = UInt32((try? ProcFS.text("/proc/\(pid)/personality"))?.trimmingWhitespace() ?? "0", radix: 16) ?? 0
        if personality != currentPersonality {
            try injector.call(sysPersonality, [UInt64(personality)], "personality(0x\(String(personality, radix: 16)))")
        }
        guard let a else { return }
        let current = UInt32((try? ProcFS.text("/proc/\(pid)/loginuid"))?.trimmingWhitespace() ?? "") ?? unsetLoginUID
        if a.loginUID != current {
            let path = try ProcessMisc.put("/proc/self/loginuid", injector: injector, scratch: scratch)
            let value = Array(String(a.loginUID).utf8)
            try injector.memory.write(scratch.data + 256, value)
            let fd = try injector.call(SYS.open, [path, UInt64(O_WRONLY | O_CLOEXEC), 0], "open(/proc/self/loginuid)")
            let w = try injector.raw(SYS.write, [UInt64(fd), scratch.data + 256, UInt64(value.count)])
            try injector.call(SYS.close, [UInt64(fd)], "close")
            if w < 0 { throw SystemError("write(/proc/self/loginuid, \(a.loginUID))", errno: Int32(-w), "in process \(pid)") }
        }
        if a.thpDisabled { try injector.call(SYS.prctl, [prSetTHPDisable, 1, 0, 0, 0], "prctl(PR_SET_THP_DISABLE)") }
        if a.childSubreaper { try injector.call(SYS.prctl, [prSetChildSubreaper, 1], "prctl(PR_SET_CHILD_SUBREAPER)") }
        try MembarrierState.restore(a.membarrierRegistrations, injector: injector)
        let path = "/proc/\(pid)/oom_score_adj"
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(\(path))", errno: errno, "restoring process \(pid)") }
        defer { close(fd) }
        let text = Array(String(a.oomScoreAdj).utf8)
        if write(fd, text, text.count) != text.count {
            throw SystemError("write(\(path), \(a.oomScoreAdj))", errno: errno, "restoring process \(pid)")
        }
    }
}
#endif
