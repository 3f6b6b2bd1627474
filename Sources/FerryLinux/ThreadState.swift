#if os(Linux)
import Glibc
import FerryCore
import FerryImage

/// Per-thread state: registers, XSAVE, signal mask, sigaltstack, rseq,
/// pending signals, clear_child_tid and the syscall it was stopped in.
public enum ThreadState {
    // MARK: dump

    /// `regs` are the thread's registers as frozen (before any injection).
    /// Every signal but SIGKILL and SIGSTOP, blocked while ferry works in a thread.
    static let blockAll: UInt64 = ~UInt64(0) & ~(UInt64(1) << 8) & ~(UInt64(1) << 18)

    static func dump(tid: Int32, regs: LinuxRegs, sigmask mask: UInt64, injector: Injector, scratch: ScratchArea) throws -> ThreadImage {
        let t = Tracee(tid)
        let xstate = try t.getXState()
        let xcr0 = xstate.count >= 472 ? xstate.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 464, as: UInt64.self) } : 0
        // The two bytes before rip are checked to be `syscall` before a restart is recorded.
        let before = Int64(bitPattern: regs.origRax) >= 0 ? try? injector.memory.read(regs.rip &- 2, count: 2) : nil
        let state = try SyscallRestartRules.normalize(linux: try LinuxUserRegs(bytes: regs.bytes), bytesBeforeRIP: before)
        let (neutral, syscall) = (state.registers, state.syscall)
        let rseq = try t.rseqConfiguration().map { RseqArea(address: $0.address, length: $0.size, signature: $0.signature) }
        let pending = try t.pendingSignals(shared: false).map { PendingSignal(signo: $0.signo, info: $0.info) }

        // sigaltstack(NULL, &old) and prctl(PR_GET_TID_ADDRESS, &addr) run in the thread itself.
        try injector.call(SYS.sigaltstack, [0, scratch.data], "sigaltstack")
        let ss = try injector.memory.read(scratch.data, count: 24)
        let altstack = ss.withUnsafeBytes {
            SignalStack(sp: $0.load(as: UInt64.self), size: $0.load(fromByteOffset: 16, as: UInt64.self),
                        flags: $0.load(fromByteOffset: 8, as: Int32.self))
        }
        try injector.call(SYS.prctl, [40 /* PR_GET_TID_ADDRESS */, scratch.data], "prctl(PR_GET_TID_ADDRESS)")
        let tidAddress = try injector.memory.read(scratch.data, count: 8).withUnsafeBytes { $0.load(as: UInt64.self) }
        try t.setRegs(regs)

        let name = (try? ProcFS.text("/proc/\(injector.memory.pid)/task/\(tid)/comm"))?.trimmingWhitespace() ?? ""
        let nsLine = (try? ProcFS.status(tid))?["NSpid"] ?? "\(tid)"
        let nsTids = nsLine.split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { Int32($0) }
        return ThreadImage(tid: tid, nsTids: nsTids, registers: neutral,
                           extendedState: ExtendedState(xcr0: xcr0, area: xstate), sigmask: mask, sigaltstack: altstack,
                           rseq: rseq, syscall: syscall, pendingSignals: pending, clearChildTid: tidAddress, name: name)
    }

    // MARK: restore

    /// Restores what must be set from inside the thread (sigaltstack, rseq,
    /// clear_child_tid) by injected syscalls. The mask is set at release.
    static func restoreInside(_ thread: ThreadImage, injector: Injector, scratch: ScratchArea) throws {
        let ss = thread.sigaltstack
        var buf = LEBytes()
        buf.u64(ss.sp); buf.i32(ss.flags); buf.i32(0); buf.u64(ss.size)
        try injector.memory.write(scratch.data, buf.bytes)
        if ss.flags & 2 == 0 { // not SS_DISABLE
            try injector.call(SYS.sigaltstack, [scratch.data, 0], "sigaltstack (thread \(thread.tid))")
        }
        if thread.clearChildTid != 0 {
            try injector.call(SYS.setTidAddress, [thread.clearChildTid], "set_tid_address (thread \(thread.tid))")
        }
        if let r = thread.rseq {
            try injector.call(SYS.rseq, [r.address, UInt64(r.length), 0, UInt64(r.signature)],
                              "rseq registration at \(hex(r.address)) (thread \(thread.tid))")
        }
    }

    /// Loads the final registers and XSAVE state.
    /// `source` is the CPU the image was taken on, `permitted` its process's
    /// XSAVE permissions (ARCH_GET_XCOMP_PERM).
    static func restoreRegisters(_ thread: ThreadImage, tracee: Tracee, source: CPUFeatures, permitted: UInt64?) throws {
        try tracee.setSigMask(thread.sigmask)
        if let x = thread.extendedState {
            // In this CPU's size and layout; components it lacks were checked unused.
            try tracee.setXState(try XSave.forLinux(x, tid: thread.tid, source: source, permitted: permitted, target: Host.cpu()))
        }
        let live = try tracee.getRegs()
        var regs = LinuxRegs(bytes: SyscallRestartRules.linuxRegisters(resuming: thread.registers, syscall: thread.syscall).bytes)
        for i in [17, 20, 23, 24, 25, 26] { regs[i] = live[i] } // this kernel's cs ss ds es fs gs, never the image's
        try tracee.setRegs(regs)
    }
}

/// Little-endian builder for structs passed to injected syscalls.
struct LEBytes {
    var bytes: [UInt8] = []
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
}
#endif
