#if os(Linux)
import Glibc
import FerryImage

/// Signal handlers (rt_sigaction) and process-wide pending signals.
public enum SignalState {
    static let uncatchable: Set<Int32> = [9, 19] // SIGKILL, SIGSTOP

    static func dumpActions(injector: Injector, scratch: ScratchArea) throws -> [SignalAction] {
        var out: [SignalAction] = []
        for sig in Int32(1)...64 where !uncatchable.contains(sig) {
            // struct kernel_sigaction { handler, flags, restorer, mask }
            try injector.call(SYS.rtSigaction, [UInt64(sig), 0, scratch.data, 8], "rt_sigaction(\(sig))")
            let b = try injector.memory.read(scratch.data, count: 32)
            let w = b.withUnsafeBytes { p in (0..<4).map { p.load(fromByteOffset: $0 * 8, as: UInt64.self) } }
            if w[0] == 0 && w[1] == 0 && w[3] == 0 { continue } // default, nothing to restore
            out.append(SignalAction(signo: sig, handler: w[0], flags: w[1], restorer: w[2], mask: w[3]))
        }
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

    /// Re-queues pending signals: thread-directed with rt_tgsigqueueinfo,
    /// process-wide with rt_sigqueueinfo. Run after masks are set.
    static func restorePending(process p: ProcessImage, pid: Int32, tidMap: [Int32: Int32], injector: Injector,
                               scratch: ScratchArea) throws {
        for s in p.sharedPendingSignals {
            try injector.memory.write(scratch.data, s.info.value)
            try injector.call(SYS.rtSigqueueinfo, [UInt64(pid), UInt64(s.signo), scratch.data], "rt_sigqueueinfo(\(s.signo))")
        }
        for t in p.threads {
            for s in t.pendingSignals {
                try injector.memory.write(scratch.data, s.info.value)
                let tid = tidMap[t.tid] ?? t.tid
                try injector.call(SYS.rtTgsigqueueinfo, [UInt64(pid), UInt64(tid), UInt64(s.signo), scratch.data],
                                  "rt_tgsigqueueinfo(\(s.signo)) for thread \(tid)")
            }
        }
    }
}
#endif
