#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore

/// The SIGSTOP that holds a frozen tree through a ferry death while a
/// connection is in TCP repair mode (docs/kill-safety.md, "The repair
/// guard's race"). Before the first socket goes into repair mode, every
/// process of the tree that is not group-stopped gets a SIGSTOP queued
/// (the repair guard told first, `RepairGuard.hold`). Every thread is in a
/// ptrace stop then, so none takes it; should ferry die, each thread the
/// kernel detaches sees it pending on its way back to user mode (a thread
/// leaving a ptrace stop recomputes its pending signals) and the process
/// group-stops before any thread runs an instruction of its own, until the
/// guard, done with the sockets, sends SIGCONT. Ferry alive takes it back
/// (`release`) before anything resumes a thread of that process: before
/// each process's injected syscalls (`ScratchSession`) and before the tree
/// is let go (`TCPRepair.leave`); not before the SIGKILL of a finished
/// checkpoint or migration.
enum RepairStop {
    /// The processes of the frozen tree that are not group-stopped, each with
    /// the thread that takes the SIGSTOP back (set by `CheckpointSession`).
    nonisolated(unsafe) static var tree: [(pid: Int32, tid: Int32)] = []
    /// Processes with ferry's SIGSTOP queued and not yet taken back.
    nonisolated(unsafe) static var queued: [Int32] = []

    /// Queues a SIGSTOP to every process of the tree that holds none, each
    /// announced to the repair guard first (it sends SIGCONT if ferry dies).
    static func hold() throws {
        guard let guardian = InetSocket.TCPRepair.guardian, !TestKill.repairStopDisabled else { return }
        for p in tree where !queued.contains(p.pid) {
            let ctx = "holding process \(p.pid) stopped should ferry die while a connection is in repair mode"
            try guardian.hold(p.pid, ctx)
            queued.append(p.pid)
            try checkLibc(kill(p.pid, SIGSTOP), "kill(\(p.pid), SIGSTOP)", ctx)
        }
    }

    /// Takes ferry's SIGSTOP back from `pid` (every process when nil), then
    /// tells the guard it has nothing to continue there.
    static func release(_ pid: Int32? = nil) throws {
        for p in tree where queued.contains(p.pid) && (pid == nil || pid == p.pid) {
            try takeBack(pid: p.pid, tid: p.tid)
            queued.removeAll { $0 == p.pid }
            try InetSocket.TCPRepair.guardian?.send(.unhold(pid: p.pid), "letting the repair guard know process \(p.pid) holds no SIGSTOP of ferry's")
        }
    }

    /// Thread `tid`, in a ptrace stop inside get_signal (the interrupt stop
    /// of the freeze or after injected syscalls), is resumed with no signal:
    /// it takes the SIGSTOP from the queue and reports it (signal-delivery
    /// stop, no group stop begins); PTRACE_INTERRUPT, then resumed with no
    /// signal, it drops it and stops again at an interrupt trap before it
    /// could reach user mode. Signals pending for it that it would take
    /// first are blocked for that instant (its mask put back after); one
    /// arriving meanwhile is blocked and handed back, which requeues it.
    /// Should ferry die in between, the thread goes on (repair mode is
    /// off by then) and the guard's SIGCONT finds nothing to continue.
    static func takeBack(pid: Int32, tid: Int32) throws {
        let t = Tracee(tid)
        let ctx = "taking back the SIGSTOP that held process \(pid) while a connection was in repair mode"
        let mask = try t.getSigMask()
        let status = ProcFS.parseStatus((try? ProcFS.text("/proc/\(pid)/task/\(tid)/status")) ?? "")
        func bits(_ key: String) -> UInt64 { status[key].flatMap { UInt64($0, radix: 16) } ?? 0 }
        var blocked = mask | RepairGuardPlan.blockedForTakingBack(sigPnd: bits("SigPnd"), shdPnd: bits("ShdPnd"), mask: mask)
        if blocked != mask { try t.setSigMask(blocked) }
        defer { if blocked != mask { try? t.setSigMask(mask) } }
        try t.cont(signal: 0)
        var interrupted = false
        while true {
            let st = WaitStatus(try t.wait())
            guard case .stopped(let sig, let event) = st else {
                throw FerryError("\(ctx): thread \(tid) \(st.description)")
            }
            if event != 0 {
                if interrupted { return }
                try t.cont(signal: 0)
            } else if sig == SIGSTOP {
                if !interrupted {
                    TestKill.point(.repair)
                    try t.interrupt()
                    interrupted = true
                }
                try t.cont(signal: 0)
            } else {
                guard sig > 0 && sig <= 64 else { throw FerryError("\(ctx): thread \(tid) \(st.description)") }
                // A signal that came after the status was read: blocked, it is queued again.
                blocked |= 1 << UInt64(sig - 1)
                try t.setSigMask(blocked)
                try t.cont(signal: sig)
            }
        }
    }
}
#endif
