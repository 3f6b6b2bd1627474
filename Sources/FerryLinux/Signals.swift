#if os(Linux)
import Glibc
import FerryImage

/// Signal handlers (rt_sigaction) and process-wide pending signals.
public enum SignalState {
    static let uncatchable: Set<Int32> = [9, 19] // SIGKILL, SIGSTOP

    /// `reading`: only these signals are asked (one injected call each); the
    /// others have the default action (`toReread` leaves out only those).
    static func dumpActions(injector: Injector, scratch: ScratchArea, reading: Set<Int32>? = nil) throws -> [SignalAction] {
        var out: [SignalAction] = []
        for sig in Int32(1)...64 where !uncatchable.contains(sig) {
            if let reading, !reading.contains(sig) { continue }
            // struct kernel_sigaction { handler, flags, restorer, mask }
            try injector.call(SYS.rtSigaction, [UInt64(sig), 0, scratch.data, 8], "rt_sigaction(\(sig))")
            let b = try injector.memory.read(scratch.data, count: 32)
            let w = b.withUnsafeBytes { p in (0..<4).map { p.load(fromByteOffset: $0 * 8, as: UInt64.self) } }
            if w[0] == 0 && w[1] == 0 && w[3] == 0 { continue } // default, nothing to restore
            out.append(SignalAction(signo: sig, handler: w[0], flags: w[1], restorer: w[2], mask: w[3]))
        }
        return out
    }

    /// Signals whose action must be read again when `known` was read earlier
    /// (pre-copy's preliminary capture), from /proc/PID/status: every caught
    /// or ignored one, every one `known` had set, and SIGCHLD (its
    /// SA_NOCLDWAIT/SA_NOCLDSTOP matter with the default action too). Any
    /// other signal has the default action now and had it then; its flags
    /// and mask have no effect.
    static func toReread(status: [String: String], known: [SignalAction]) -> Set<Int32>? {
        guard let cgt = status["SigCgt"].flatMap({ UInt64($0, radix: 16) }),
              let ign = status["SigIgn"].flatMap({ UInt64($0, radix: 16) }) else { return nil }
        var out: Set<Int32> = [SIGCHLD]
        for sig in Int32(1)...64 where (cgt | ign) & (1 << UInt64(sig - 1)) != 0 { out.insert(sig) }
        for k in known { out.insert(k.signo) }
        return out
    }

    static func dumpSharedPending(tid: Int32) throws -> [PendingSignal] {
        try Tracee(tid).pendingSignals(shared: true).map { PendingSignal(signo: $0.signo, info: $0.info) }
    }

    static func restoreActions(_ actions: [SignalAction], injector: Injector, scratch: ScratchArea) throws {
        for a in actions {
            var b = LEBytes()
            b.u64(a.handler); b.u64(a.flags); b.u64(a.restorer); b.u64(a.mask)
            try injector.memory.write(scratch.data, b.bytes)
            try injector.call(SYS.rtSigaction, [UInt64(a.signo), scratch.data, 0, 8], "rt_sigaction(\(a.signo))")
        }
    }

    /// Re-queues pending signals: process-wide with rt_sigqueueinfo from the
    /// main thread, thread-directed with rt_tgsigqueueinfo from the thread
    /// itself (the kernel lets a sender keep a kill()/tgkill() si_code only
    /// when it signals itself). Ids are the ones the process sees (getpid and
    /// gettid injected), so this works inside a fresh pid namespace too.
    /// Run after masks and handlers are in place.
    static func restorePending(process p: ProcessImage, injectors: [Int32: Injector], main: Injector,
                               scratch: ScratchArea) throws {
        let me = UInt64(try main.call(SYS.getpid, [], "getpid"))
        for s in p.sharedPendingSignals {
            try main.memory.write(scratch.data, s.info.value)
            try main.call(SYS.rtSigqueueinfo, [me, UInt64(s.signo), scratch.data], "rt_sigqueueinfo(\(s.signo))")
        }
        for t in p.threads where !t.pendingSignals.isEmpty {
            guard let inj = injectors[t.tid] else { continue }
            let tid = UInt64(try inj.call(SYS.gettid, [], "gettid"))
            for s in t.pendingSignals {
                try inj.memory.write(scratch.data, s.info.value)
                try inj.call(SYS.rtTgsigqueueinfo, [me, tid, UInt64(s.signo), scratch.data],
                             "rt_tgsigqueueinfo(\(s.signo)) for thread \(t.tid)")
            }
        }
    }
}
#endif
