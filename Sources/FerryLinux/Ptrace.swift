#if os(Linux)
import Glibc
import CFerryLinux

/// ptrace requests and options ferry uses (linux/ptrace.h).
enum PT {
    static let peekData = 2, pokeData = 5, cont = 7, syscall = 24, kill = 8, getRegs = 12, setRegs = 13, detach = 17
    static let setOptions = 0x4200, getEventMsg = 0x4201, getRegSet = 0x4204, setRegSet = 0x4205
    static let seize = 0x4206, interrupt = 0x4207, peekSigInfo = 0x4209, getSigMask = 0x420a, setSigMask = 0x420b
    static let getRseqConfiguration = 0x420f
    static let oTraceSysGood = 0x1, oTraceFork = 0x2, oTraceClone = 0x8, oExitKill = 0x100000
    static let eventFork = 1, eventClone = 3, eventStop = 128
    static let ntPrstatus = 1, ntX86XState = 0x202
}

/// Linux `struct user_regs_struct`: 27 64-bit words in kernel order.
public struct LinuxRegs: Equatable, Sendable {
    public var words: [UInt64] = Array(repeating: 0, count: 27)
    public init() {}
    public init(words: [UInt64]) { self.words = words }
    public static let names = ["r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
                               "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base",
                               "ds", "es", "fs", "gs"]
    subscript(_ i: Int) -> UInt64 { get { words[i] } set { words[i] = newValue } }
    /// The 216 bytes PTRACE_GETREGS fills.
    var bytes: [UInt8] { words.withUnsafeBytes { Array($0) } }
    init(bytes: [UInt8]) {
        words = bytes.withUnsafeBytes { b in (0..<27).map { b.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) } }
    }
    var rax: UInt64 { get { words[10] } set { words[10] = newValue } }
    var origRax: UInt64 { get { words[15] } set { words[15] = newValue } }
    var rip: UInt64 { get { words[16] } set { words[16] = newValue } }
    var rsp: UInt64 { get { words[19] } set { words[19] = newValue } }
    var rdi: UInt64 { get { words[14] } set { words[14] = newValue } }
    var rsi: UInt64 { get { words[13] } set { words[13] = newValue } }
    var rdx: UInt64 { get { words[12] } set { words[12] = newValue } }
    var r10: UInt64 { get { words[7] } set { words[7] = newValue } }
    var r8: UInt64 { get { words[9] } set { words[9] = newValue } }
    var r9: UInt64 { get { words[8] } set { words[8] = newValue } }
    var rbx: UInt64 { get { words[5] } set { words[5] = newValue } }
    var r12: UInt64 { get { words[3] } set { words[3] = newValue } }
}

/// One traced thread. All calls for one tracee must come from the thread that attached it.
public struct Tracee: Sendable {
    public let tid: Int32

    public init(_ tid: Int32) { self.tid = tid }

    @discardableResult
    func ptrace(_ req: Int, _ addr: UInt64 = 0, _ data: UInt64 = 0, _ what: @autoclosure () -> String) throws -> Int {
        let r = ferry_ptrace(req, tid, addr, data)
        if r < 0 { throw SystemError(what(), errno: Int32(-r), "thread \(tid)") }
        return r
    }

    public func seize(options: Int = 0) throws { try ptrace(PT.seize, 0, UInt64(options), "ptrace(PTRACE_SEIZE)") }
    public func interrupt() throws { try ptrace(PT.interrupt, 0, 0, "ptrace(PTRACE_INTERRUPT)") }
    public func setOptions(_ opts: Int) throws { try ptrace(PT.setOptions, 0, UInt64(opts), "ptrace(PTRACE_SETOPTIONS)") }
    public func cont(signal: Int32 = 0) throws { try ptrace(PT.cont, 0, UInt64(signal), "ptrace(PTRACE_CONT)") }
    /// PTRACE_SYSCALL: runs to the next syscall entry or exit stop.
    public func resumeToSyscall(signal: Int32 = 0) throws { try ptrace(PT.syscall, 0, UInt64(signal), "ptrace(PTRACE_SYSCALL)") }
    public func detach(signal: Int32 = 0) throws { try ptrace(PT.detach, 0, UInt64(signal), "ptrace(PTRACE_DETACH)") }

    public func getRegs() throws -> LinuxRegs {
        var r = LinuxRegs()
        try r.words.withUnsafeMutableBytes { b in
            _ = try ptrace(PT.getRegs, 0, UInt64(UInt(bitPattern: b.baseAddress)), "ptrace(PTRACE_GETREGS)")
        }
        return r
    }

    public func setRegs(_ regs: LinuxRegs) throws {
        var copy = regs.words
        try copy.withUnsafeMutableBytes { b in
            _ = try ptrace(PT.setRegs, 0, UInt64(UInt(bitPattern: b.baseAddress)), "ptrace(PTRACE_SETREGS)")
        }
    }

    /// The XSAVE area (NT_X86_XSTATE).
    public func getXState(maxSize: Int = 64 << 10) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: maxSize)
        var iov = (UInt64(0), UInt64(maxSize))
        let n: Int = try buf.withUnsafeMutableBytes { b in
            iov.0 = UInt64(UInt(bitPattern: b.baseAddress))
            return try withUnsafeMutableBytes(of: &iov) { i in
                _ = try ptrace(PT.getRegSet, UInt64(PT.ntX86XState), UInt64(UInt(bitPattern: i.baseAddress)),
                               "ptrace(PTRACE_GETREGSET, NT_X86_XSTATE)")
                return Int(i.load(fromByteOffset: 8, as: UInt64.self))
            }
        }
        return Array(buf[0..<n])
    }

    public func setXState(_ area: [UInt8]) throws {
        var buf = area
        try buf.withUnsafeMutableBytes { b in
            var iov = (UInt64(UInt(bitPattern: b.baseAddress)), UInt64(b.count))
            try withUnsafeMutableBytes(of: &iov) { i in
                _ = try ptrace(PT.setRegSet, UInt64(PT.ntX86XState), UInt64(UInt(bitPattern: i.baseAddress)),
                               "ptrace(PTRACE_SETREGSET, NT_X86_XSTATE)")
            }
        }
    }

    /// The thread's own mask: for a thread inside a wait with a temporary
    /// mask (sigsuspend, ppoll, pselect6, epoll_pwait) the kernel returns
    /// the saved one, and PTRACE_SETSIGMASK sets the current mask and drops
    /// the saved one (docs/kill-safety.md).
    public func getSigMask() throws -> UInt64 {
        var mask: UInt64 = 0
        try withUnsafeMutableBytes(of: &mask) { b in
            _ = try ptrace(PT.getSigMask, 8, UInt64(UInt(bitPattern: b.baseAddress)), "ptrace(PTRACE_GETSIGMASK)")
        }
        return mask
    }

    public func setSigMask(_ mask: UInt64) throws {
        var m = mask
        try withUnsafeMutableBytes(of: &m) { b in
            _ = try ptrace(PT.setSigMask, 8, UInt64(UInt(bitPattern: b.baseAddress)), "ptrace(PTRACE_SETSIGMASK)")
        }
    }

    /// (rseq_abi_pointer, rseq_abi_size, signature) or nil when none is registered.
    public func rseqConfiguration() throws -> (address: UInt64, size: UInt32, signature: UInt32)? {
        var conf = [UInt64](repeating: 0, count: 4)
        try conf.withUnsafeMutableBytes { b in
            _ = try ptrace(PT.getRseqConfiguration, 32, UInt64(UInt(bitPattern: b.baseAddress)),
                           "ptrace(PTRACE_GET_RSEQ_CONFIGURATION)")
        }
        // struct: u64 rseq_abi_pointer; u32 rseq_abi_size; u32 signature; u32 flags; u32 pad
        let size = UInt32(truncatingIfNeeded: conf[1])
        let sig = UInt32(truncatingIfNeeded: conf[1] >> 32)
        return conf[0] == 0 ? nil : (conf[0], size, sig)
    }

    /// Pending signals with their siginfo (128 bytes each); `shared` reads the process-wide queue.
    public func pendingSignals(shared: Bool) throws -> [(signo: Int32, info: [UInt8])] {
        var out: [(Int32, [UInt8])] = []
        var buf = [UInt8](repeating: 0, count: 128)
        while true {
            // struct ptrace_peeksiginfo_args { u64 off; u32 flags; s32 nr; }
            var args: (UInt64, UInt32, Int32) = (UInt64(out.count), shared ? 1 : 0, 1)
            let n = try buf.withUnsafeMutableBytes { b in
                try withUnsafeMutableBytes(of: &args) { a in
                    try ptrace(PT.peekSigInfo, UInt64(UInt(bitPattern: a.baseAddress)), UInt64(UInt(bitPattern: b.baseAddress)),
                               "ptrace(PTRACE_PEEKSIGINFO)")
                }
            }
            if n == 0 { break }
            let signo = buf.withUnsafeBytes { $0.load(as: Int32.self) }
            out.append((signo, buf))
            if out.count > 4096 { break }
        }
        return out
    }

    public func eventMessage() throws -> UInt64 {
        var v: UInt64 = 0
        try withUnsafeMutableBytes(of: &v) { b in
            _ = try ptrace(PT.getEventMsg, 0, UInt64(UInt(bitPattern: b.baseAddress)), "ptrace(PTRACE_GETEVENTMSG)")
        }
        return v
    }

    public func peek(_ address: UInt64) throws -> UInt64 {
        let r = ferry_ptrace(PT.peekData, tid, address, 0)
        if r < 0 && r > -4096 { throw SystemError("ptrace(PTRACE_PEEKDATA, \(hex(address)))", errno: Int32(-r), "thread \(tid)") }
        return UInt64(bitPattern: Int64(r))
    }

    public func poke(_ address: UInt64, _ value: UInt64) throws {
        try ptrace(PT.pokeData, address, value, "ptrace(PTRACE_POKEDATA, \(hex(address)))")
    }

    /// Waits for this thread's next stop; returns the raw wait status.
    public func wait() throws -> Int32 {
        var status: Int32 = 0
        let r = ferry_wait(tid, &status, 0)
        if r < 0 { throw SystemError("waitpid", errno: Int32(-r), "waiting for thread \(tid)") }
        return status
    }
}

/// Decoded wait status.
enum WaitStatus {
    case exited(Int32)
    case killed(Int32)
    case stopped(signal: Int32, event: Int)

    init(_ s: Int32) {
        if s & 0x7f == 0 { self = .exited((s >> 8) & 0xff) }
        else if s & 0xff == 0x7f { self = .stopped(signal: (s >> 8) & 0xff, event: Int((s >> 16) & 0xffff)) }
        else { self = .killed(s & 0x7f) }
    }

    var description: String {
        switch self {
        case .exited(let c): return "exited with status \(c)"
        case .killed(let s): return "was killed by signal \(s)"
        case .stopped(let s, let e): return "stopped by signal \(s)" + (e != 0 ? " (event \(e))" : "")
        }
    }
}
#endif
