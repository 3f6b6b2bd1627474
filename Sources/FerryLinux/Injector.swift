#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore

/// Another process's memory, through process_vm_readv/writev.
public struct RemoteMemory: Sendable {
    public let pid: Int32

    public init(pid: Int32) { self.pid = pid }

    /// Copies `count` bytes at `remote` into `local`; returns the bytes copied (short at unmapped memory).
    public func read(_ remote: UInt64, into local: UnsafeMutableRawPointer, count: Int) throws -> Int {
        var iov = ferry_iov(local: UInt64(UInt(bitPattern: local)), remote: remote, len: UInt64(count))
        let r = ferry_vm_readv(pid, &iov, 1)
        if r < 0 { throw SystemError("process_vm_readv(\(hex(remote)), \(count))", errno: Int32(-r), "reading memory of \(pid)") }
        return r
    }

    public func read(_ remote: UInt64, count: Int) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        let n = try buf.withUnsafeMutableBytes { try read(remote, into: $0.baseAddress!, count: count) }
        guard n == count else {
            throw SystemError("process_vm_readv(\(hex(remote)), \(count))", errno: EFAULT, "reading memory of \(pid): only \(n) bytes")
        }
        return buf
    }

    public func write(_ remote: UInt64, from local: UnsafeRawPointer, count: Int) throws {
        var iov = ferry_iov(local: UInt64(UInt(bitPattern: local)), remote: remote, len: UInt64(count))
        let r = ferry_vm_writev(pid, &iov, 1)
        if r < 0 { throw SystemError("process_vm_writev(\(hex(remote)), \(count))", errno: Int32(-r), "writing memory of \(pid)") }
        if r != count {
            throw SystemError("process_vm_writev(\(hex(remote)), \(count))", errno: EFAULT, "writing memory of \(pid): only \(r) bytes")
        }
    }

    public func write(_ remote: UInt64, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write(remote, from: $0.baseAddress!, count: $0.count) }
    }

    /// Reads a NUL-terminated string of at most `max` bytes.
    public func readString(_ remote: UInt64, max: Int = 4096) throws -> String {
        let bytes = try read(remote, count: max)
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}

/// Collects page runs and writes them into a process with as few
/// process_vm_writev calls as possible (many runs per call).
final class BatchedWriter {
    let pid: Int32
    private var held: [[UInt8]] = []
    private var iov: [ferry_iov] = []
    private var bytes = 0
    static let maxBytes = 32 << 20, maxRuns = 512

    init(pid: Int32) { self.pid = pid }

    func add(_ address: UInt64, _ data: [UInt8]) throws {
        held.append(data)
        iov.append(ferry_iov(local: 0, remote: address, len: UInt64(data.count)))
        bytes += data.count
        if bytes >= BatchedWriter.maxBytes || iov.count >= BatchedWriter.maxRuns { try flush() }
    }

    func flush() throws {
        guard !iov.isEmpty else { return }
        defer { held.removeAll(keepingCapacity: true); iov.removeAll(keepingCapacity: true); bytes = 0 }
        var total = 0
        for v in iov { total += Int(v.len) }
        var vectors = iov
        // Each array's storage is pinned by nesting withUnsafeBytes over all of them.
        let written = try pinned(0, &vectors) { ferry_vm_writev(pid, $0, $0.count) }
        if written < 0 { throw SystemError("process_vm_writev(\(iov.count) runs)", errno: Int32(-written), "writing memory of \(pid)") }
        if written != total {
            throw SystemError("process_vm_writev(\(iov.count) runs)", errno: EFAULT, "writing memory of \(pid): \(written) of \(total) bytes")
        }
    }

    private func pinned(_ i: Int, _ vectors: inout [ferry_iov], _ body: ([ferry_iov]) throws -> Int) rethrows -> Int {
        if i == held.count { return try body(vectors) }
        return try held[i].withUnsafeBytes { b in
            vectors[i].local = UInt64(UInt(bitPattern: b.baseAddress))
            return try pinned(i + 1, &vectors, body)
        }
    }
}

/// Linux x86-64 syscall numbers ferry injects or calls raw.
enum SYS {
    static let read = 0, write = 1, open = 2, close = 3, lseek = 8, mmap = 9, mprotect = 10, munmap = 11, brk = 12, madvise = 28
    static let rtSigaction = 13, rtSigprocmask = 14, mremap = 25, dup2 = 33, getitimer = 36, setitimer = 38
    static let getpid = 39, setpgid = 109, setsid = 112, clone = 56, fcntl = 72, chdir = 80, umask = 95, prctl = 157, arch_prctl = 158
    static let setresuid = 117, setresgid = 119, setgroups = 116, setfsuid = 122, setfsgid = 123
    static let sigaltstack = 131, gettid = 186, setTidAddress = 218, exitGroup = 231, tgkill = 234
    static let rtSigqueueinfo = 129, rtTgsigqueueinfo = 297, pipe2 = 293, dup3 = 292, openat = 257
    static let rtSigreturn = 15, rseq = 334, clone3 = 435, memfdCreate = 319, pidfdOpen = 434, processMrelease = 448
    static let ioctl = 16, epollCtl = 233, timerfdCreate = 283, timerfdSettime = 286
    static let timerCreate = 222, timerSettime = 223, timerGettime = 224, timerGetoverrun = 225, timerDelete = 226
    static let signalfd4 = 289, eventfd2 = 290, epollCreate1 = 291, kcmp = 312, userfaultfd = 323
}

/// The bytes of `syscall; int3`.
let syscallTrap: [UInt8] = [0x0f, 0x05, 0xcc]

/// Runs system calls inside a stopped tracee, by one of two paths:
///
/// - `.gadget`: the thread is a live program's. A frame below its stack
///   (`ReturnFrame`) holds its own registers, mask and XSAVE state; the
///   thread is pointed at an rt_sigreturn gadget in the program's code
///   (`mov $15, %rax; syscall`, never written) with rsp at the frame, and
///   driven with PTRACE_SYSCALL: at the rt_sigreturn entry stop the syscall
///   number and arguments are replaced (rip back at the gadget), the result
///   is read at the exit stop. If ferry dies at any point the thread runs at
///   most the syscall in flight and then rt_sigreturn: it continues as it was.
/// - `.trap`: registers are pointed at `syscall; int3` and the result is
///   read at the int3 stop (a process ferry built itself, or a program
///   without a gadget).
///
/// `finish()` puts the thread back as it was frozen.
public final class Injector {
    public enum Path: Sendable {
        case trap(UInt64)
        case gadget(UInt64, length: Int)
    }

    public let tracee: Tracee
    let memory: RemoteMemory
    /// Registers the injected calls start from (the thread's own, with orig_rax = -1).
    var base: LinuxRegs
    let path: Path
    /// The thread's own registers, put back by `finish`, and (threads of a
    /// live program, `init(live:)`) its own signal mask.
    private let saved: LinuxRegs
    private var savedMask: UInt64?
    /// The thread sits at a syscall-exit stop (gadget path): `finish` first brings it to an interrupt stop.
    private var atExitStop = false

    init(tracee: Tracee, pid: Int32, base: LinuxRegs, trampoline: UInt64) {
        self.tracee = tracee
        self.memory = RemoteMemory(pid: pid)
        var b = base
        b.origRax = UInt64.max
        self.base = b
        self.saved = base
        self.path = .trap(trampoline)
    }

    /// Takes over a frozen thread of a live program: with `gadget`, a
    /// return frame goes below its stack and the registers point at the
    /// gadget (see the type's comment); without, at `trampoline`. Every
    /// signal is blocked only once the frame holding the thread's own mask
    /// is in place and the registers point at the gadget. Throws
    /// `FrameUnwritable` before changing anything when there can be no
    /// frame (no stack memory below rsp, no XSAVE area, a shadow stack).
    init(live tracee: Tracee, pid: Int32, regs: LinuxRegs, gadget: Gadget?, trampoline: UInt64) throws {
        self.tracee = tracee
        self.memory = RemoteMemory(pid: pid)
        self.saved = regs
        let mask = try tracee.getSigMask()
        var b = regs
        b.origRax = UInt64.max
        if let gadget {
            // rt_sigreturn of a thread with a CET shadow stack checks a token the frame has not got.
            if let features = (try? ProcFS.status(tracee.tid))?["x86_Thread_features"], features.contains("shstk") {
                throw FrameUnwritable(tid: tracee.tid, why: "it runs with a shadow stack (CET), whose rt_sigreturn needs a token")
            }
            guard let xstate = try? tracee.getXState() else {
                throw FrameUnwritable(tid: tracee.tid, why: "its XSAVE area cannot be read (NT_X86_XSTATE)")
            }
            let frame = ReturnFrame.encode(regs: try LinuxUserRegs(bytes: regs.bytes), sigmask: mask, xstate: xstate, gadget: gadget.address)
            do { try memory.write(frame.address, frame.bytes) } catch {
                throw FrameUnwritable(tid: tracee.tid, why: "no writable stack memory at \(hex(frame.address))")
            }
            TestKill.point(.injection)
            b.rip = gadget.address
            b.rsp = frame.entryStackPointer
            try tracee.setRegs(b)
            TestKill.point(.injection)
            self.path = .gadget(gadget.address, length: gadget.length)
        } else {
            self.path = .trap(trampoline)
        }
        self.base = b
        try tracee.setSigMask(ThreadState.blockAll)
        savedMask = mask
        TestKill.point(.injection)
    }

    /// Runs `body` with an injector for a frozen thread of a live process
    /// whose scratch area exists, then puts the thread back. The return
    /// frame path when the process has a gadget and the frame can be
    /// written, else the scratch area's `syscall; int3`.
    static func session<T>(_ tracee: Tracee, pid: Int32, regs: LinuxRegs, scratch: ScratchArea,
                           _ body: (Injector) throws -> T) throws -> T {
        let inj: Injector
        do {
            inj = try Injector(live: tracee, pid: pid, regs: regs, gadget: scratch.gadget, trampoline: scratch.address)
        } catch let e as FrameUnwritable {
            warnOnce("ferry: warning: \(e); thread \(tracee.tid) runs injected syscalls from the scratch area, which is not kill-safe")
            inj = try Injector(live: tracee, pid: pid, regs: regs, gadget: nil, trampoline: scratch.address)
        }
        do {
            let r = try body(inj)
            try inj.finish()
            return r
        } catch {
            try? inj.finish()
            throw error
        }
    }

    /// Performs syscall `nr` and returns its raw result (negative errno on failure).
    @discardableResult
    public func raw(_ nr: Int, _ args: [UInt64] = []) throws -> Int64 {
        let a = args + Array(repeating: 0, count: max(0, 6 - args.count))
        switch path {
        case .trap(let trampoline): return try viaTrap(nr, a, trampoline)
        case .gadget(let gadget, let length): return try viaGadget(nr, a, gadget, length)
        }
    }

    private static func setArgs(_ r: inout LinuxRegs, _ nr: Int, _ a: [UInt64]) {
        r.rax = UInt64(nr)
        r.rdi = a[0]; r.rsi = a[1]; r.rdx = a[2]; r.r10 = a[3]; r.r8 = a[4]; r.r9 = a[5]
    }

    private func viaTrap(_ nr: Int, _ a: [UInt64], _ trampoline: UInt64) throws -> Int64 {
        var r = base
        r.rip = trampoline
        r.origRax = UInt64.max
        Injector.setArgs(&r, nr, a)
        let after = try runToTrap(r, endingAt: trampoline + 3, "injected syscall \(nr)")
        return Int64(bitPattern: after.rax)
    }

    /// Loads `r`, resumes the thread and returns its registers at the
    /// int3 that ends the injected code, which must leave rip at `end`.
    private func runToTrap(_ r: LinuxRegs, endingAt end: UInt64, _ what: @autoclosure () -> String) throws -> LinuxRegs {
        try tracee.setRegs(r)
        try tracee.cont()
        TestKill.point(.injection)
        let status = WaitStatus(try tracee.wait())
        guard case .stopped(let sig, let event) = status, sig == SIGTRAP, event == 0 else {
            throw FerryError("thread \(tracee.tid) \(status.description) while running \(what())")
        }
        let after = try tracee.getRegs()
        guard after.rip == end else {
            throw FerryError("thread \(tracee.tid) stopped at \(hex(after.rip)) instead of after \(what())")
        }
        return after
    }

    private func viaGadget(_ nr: Int, _ a: [UInt64], _ gadget: UInt64, _ length: Int) throws -> Int64 {
        TestKill.point(.injection)
        var r = try resumeToSyscallStop(while: "reaching the rt_sigreturn gadget for syscall \(nr)")
        guard r.origRax == UInt64(SYS.rtSigreturn), r.rip == gadget + UInt64(length) else {
            throw FerryError("thread \(tracee.tid) stopped at \(hex(r.rip)) in syscall \(Int64(bitPattern: r.origRax)) instead of the rt_sigreturn gadget at \(hex(gadget))")
        }
        r.origRax = UInt64(nr)
        Injector.setArgs(&r, nr, a)
        r.rip = gadget
        try tracee.setRegs(r)
        TestKill.point(.injection)
        let after = try resumeToSyscallStop(while: "running injected syscall \(nr)", inFlight: true)
        atExitStop = true
        return Int64(bitPattern: after.rax)
    }

    /// PTRACE_SYSCALL until the next syscall stop; interrupt and group stops
    /// in between are resumed, SIGSTOP is passed on (every other signal is
    /// blocked: a signal-delivery stop for one is a fault, reported).
    private func resumeToSyscallStop(while what: @autoclosure () -> String, inFlight: Bool = false) throws -> LinuxRegs {
        var signal: Int32 = 0
        while true {
            try tracee.resumeToSyscall(signal: signal)
            if inFlight { TestKill.point(.injection) }
            signal = 0
            let status = WaitStatus(try tracee.wait())
            guard case .stopped(let sig, let event) = status else {
                throw FerryError("thread \(tracee.tid) \(status.description) while \(what())")
            }
            if sig == SIGTRAP | 0x80 { return try tracee.getRegs() }
            if event != 0 { continue }
            guard sig == SIGSTOP else {
                throw FerryError("thread \(tracee.tid) got signal \(sig) while \(what())")
            }
            signal = sig
        }
    }

    /// Puts the thread back as frozen: its own registers and mask (gadget
    /// path: first an interrupt stop, so the kernel's syscall-restart logic
    /// sees the restored registers on resume as it would have at the freeze;
    /// the mask before the registers, so the frame covers a death in between).
    public func finish() throws {
        guard let mask = savedMask else { try tracee.setRegs(saved); return }
        if atExitStop {
            try tracee.interrupt()
            TestKill.point(.injection)
            while true {
                try tracee.resumeToSyscall(signal: 0)
                let status = WaitStatus(try tracee.wait())
                guard case .stopped(_, let event) = status else {
                    throw FerryError("thread \(tracee.tid) \(status.description) while being stopped after injected syscalls")
                }
                if event == PT.eventStop { break }
            }
            atExitStop = false
        }
        try tracee.setSigMask(mask)
        TestKill.point(.injection)
        try tracee.setRegs(saved)
        savedMask = nil
    }

    /// Runs `InjectedBatch`'s loop at `entry` over `count` table entries at
    /// `table` and returns the calls left (r12) at its int3. Trap path only.
    func runLoop(entry: UInt64, table: UInt64, count: Int) throws -> UInt64 {
        guard case .trap = path else {
            throw FerryError("thread \(tracee.tid): batched syscalls run only in a process ferry builds")
        }
        var r = base
        r.rip = entry
        r.origRax = UInt64.max
        r.rbx = table
        r.r12 = UInt64(count)
        return try runToTrap(r, endingAt: entry + UInt64(InjectedBatch.code.count), "\(count) injected syscalls").r12
    }

    /// Performs syscall `nr`, throwing a `SystemError` naming `what` on failure.
    @discardableResult
    public func call(_ nr: Int, _ args: [UInt64] = [], _ what: @autoclosure () -> String) throws -> Int64 {
        let r = try raw(nr, args)
        if r < 0 && r > -4096 { throw SystemError(what(), errno: Int32(-r), "in process \(memory.pid)") }
        return r
    }
}

/// The return frame could not be written below a thread's stack.
struct FrameUnwritable: Error, CustomStringConvertible {
    var tid: Int32
    var why: String
    var description: String { "no return frame for thread \(tid): \(why)" }
}

nonisolated(unsafe) private var warned = Set<String>()

/// Prints `message` on stderr, once per distinct message.
func warnOnce(_ message: String) {
    guard warned.insert(message).inserted else { return }
    let line = Array((message + "\n").utf8)
    _ = line.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// An rt_sigreturn gadget (`mov $15, %rax; syscall`) in a process's code.
public struct Gadget: Sendable {
    public let address: UInt64
    public let length: Int

    /// Searches the executable mappings (the C library's first) with
    /// process_vm_readv; nil when the process has none (e.g. a static binary
    /// without signal code).
    public static func find(pid: Int32) -> Gadget? {
        // The byte parser of maps: a process of 50,000 mappings has a few executable ones.
        guard let maps = try? ProcFS.maps(pid, withFlags: false) else { return nil }
        var ranges: [(start: UInt64, end: UInt64, libc: Bool)] = []
        for e in maps where e.exec && e.path != "[vsyscall]" {
            ranges.append((e.start, e.end, e.path.contains("/libc.") || e.path.contains("/libc-") || e.path.contains("ld-musl")))
        }
        let memory = RemoteMemory(pid: pid)
        for r in ranges.filter(\.libc) + ranges.filter({ !$0.libc }) {
            var at = r.start
            while at < r.end {
                let n = Int(min(r.end - at, 1 << 20))
                guard let code = try? memory.read(at, count: n) else { break }
                if let hit = ReturnFrame.findGadget(in: code) {
                    return Gadget(address: at + UInt64(hit.offset), length: hit.length)
                }
                if at + UInt64(n) >= r.end { break }
                at += UInt64(n) - 8  // a gadget across the chunk boundary is found in the next chunk
            }
        }
        return nil
    }
}

/// A region in the tracee ferry owns while it works: `syscall; int3` at its
/// start and scratch space for syscall arguments after it.
public struct ScratchArea: Sendable {
    public let address: UInt64
    public let size: Int
    public static let defaultSize = 64 << 10
    /// Where argument data starts (after the code).
    public var data: UInt64 { address + 64 }
    public var dataSize: Int { size - 64 }
    /// The process's rt_sigreturn gadget, when it has one (live processes).
    public var gadget: Gadget?

    public init(address: UInt64, size: Int, gadget: Gadget? = nil) {
        self.address = address; self.size = size; self.gadget = gadget
    }
}
#endif
