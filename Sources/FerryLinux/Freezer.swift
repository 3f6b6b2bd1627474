#if os(Linux)
import Glibc
import CFerryLinux

/// Checks done before anything is frozen: the process exists, is a user
/// process, is not a zombie and is not already traced.
public enum Preflight {
    public static func checkCheckpointable(_ pid: Int32) throws {
        guard pid > 0 else { throw FerryError("cannot checkpoint pid \(pid): not a valid pid") }
        guard pid != getpid() else { throw FerryError("cannot checkpoint ferry itself (pid \(pid))") }
        guard ProcFS.exists("/proc/\(pid)") else {
            throw FerryError("cannot checkpoint pid \(pid): no such process")
        }
        let stat = try ProcFS.stat(pid)
        switch stat.state {
        case "Z", "X": throw FerryError("cannot checkpoint pid \(pid) (\(stat.comm)): it is a zombie; its parent has not reaped it")
        default: break
        }
        // PF_KTHREAD = 0x00200000 in the flags field (9).
        if stat.field(9) & 0x0020_0000 != 0 || stat.field(26) == 0 && stat.field(27) == 0 {
            throw FerryError("cannot checkpoint pid \(pid) (\(stat.comm)): it is a kernel thread")
        }
        let status = try ProcFS.status(pid)
        if let tracer = status["TracerPid"], tracer != "0" {
            throw FerryError("cannot checkpoint pid \(pid) (\(stat.comm)): it is already traced by pid \(tracer) (a debugger?); detach it first")
        }
    }
}

/// Holds every thread of a set of processes in ptrace stops
/// (PTRACE_SEIZE + PTRACE_INTERRUPT) and lets them go unchanged.
public final class Freezer {
    /// tid → tgid for every thread held.
    public private(set) var threads: [(tid: Int32, pid: Int32)] = []
    private var seized = Set<Int32>()
    /// Processes with a thread that reported a group stop when frozen (a
    /// stop signal, not SIGTRAP, in its PTRACE_EVENT_STOP): stopped before
    /// ferry came, they stop again when it detaches or dies.
    public private(set) var groupStopped = Set<Int32>()
    /// pid → the signal that stopped it, for each process in `groupStopped`.
    public private(set) var stopSignals: [Int32: Int32] = [:]

    public init() {}

    /// Freezes all threads of `pid`, repeating until no new thread appears.
    public func freeze(process pid: Int32) throws {
        var rounds = 0
        while true {
            let tids = try ProcFS.threads(pid)
            let fresh = tids.filter { !seized.contains($0) }
            if fresh.isEmpty { break }
            rounds += 1
            if rounds > 50 { throw FerryError("process \(pid) keeps creating threads; cannot freeze it") }
            for tid in fresh {
                let t = Tracee(tid)
                do {
                    // TRACESYSGOOD: a syscall stop's code (SIGTRAP | 0x80) is no signal, so a
                    // thread left at one when ferry dies is not sent SIGTRAP by the kernel.
                    try t.seize(options: PT.oTraceSysGood)
                } catch let e as SystemError where e.errno == ESRCH {
                    continue // the thread exited meanwhile
                } catch let e as SystemError where e.errno == EPERM {
                    throw FerryError("cannot freeze thread \(tid) of \(pid): ptrace is not permitted (already traced, or Yama ptrace_scope?)")
                }
                seized.insert(tid)
                threads.append((tid, pid))
                try t.interrupt()
                let sig = try waitForStop(t)
                if sig != SIGTRAP { groupStopped.insert(pid); stopSignals[pid] = sig }
            }
        }
    }

    /// Waits for the interrupt stop; returns its signal (SIGTRAP, or the stop signal of a group stop).
    private func waitForStop(_ t: Tracee) throws -> Int32 {
        while true {
            let st = WaitStatus(try t.wait())
            switch st {
            case .stopped(let sig, let event):
                if event == PT.eventStop { return sig }
                // A signal-delivery stop came before our interrupt: pass the
                // signal on (the process would have received it anyway) and
                // keep waiting for the interrupt stop.
                try t.cont(signal: sig)
            case .exited, .killed:
                throw FerryError("thread \(t.tid) \(st.description) while being frozen")
            }
        }
    }

    /// Lets every thread go; registers must already be as they were.
    public func thaw() {
        for (tid, _) in threads.reversed() { try? Tracee(tid).detach() }
        threads.removeAll()
        seized.removeAll()
        groupStopped.removeAll()
        stopSignals.removeAll()
    }

    /// SIGKILL to every process: none of them runs another instruction (a
    /// fatal signal is never returned from). Their real parent can reap them
    /// once ferry, their tracer, has collected them (`kill`) or exited.
    public func sendKill() {
        for pid in Set(threads.map(\.pid)) { Glibc.kill(pid, SIGKILL) }
    }

    /// Kills the frozen processes and waits for them: ferry, as their tracer,
    /// collects each thread's exit so the real parent can reap the process at
    /// once. Meanwhile ferry frees their memory too (process_mrelease, Linux
    /// 5.15+): a dying process frees its memory on one CPU, ~0.1 s per GiB on
    /// an idle machine; both together take about half that. Errors are
    /// ignored: the process frees it anyway.
    public func kill() {
        let pids = Set(threads.map(\.pid))
        sendKill()
        for pid in pids {
            // The pid stays ours until its threads are collected below, so pidfd_open cannot name another process.
            let pidfd = ferry_syscall6(SYS.pidfdOpen, UInt64(pid), 0, 0, 0, 0, 0)
            if pidfd >= 0 {
                _ = ferry_syscall6(SYS.processMrelease, UInt64(pidfd), 0, 0, 0, 0, 0)
                close(Int32(pidfd))
            }
        }
        for (tid, _) in threads.reversed() {
            var status: Int32 = 0
            _ = ferry_wait(tid, &status, 0)
        }
        threads.removeAll()
        seized.removeAll()
        groupStopped.removeAll()
        stopSignals.removeAll()
    }
}
#endif
