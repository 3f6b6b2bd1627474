#if os(Linux)
import Glibc
import CFerryLinux

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
    static let rseq = 334, clone3 = 435, memfdCreate = 319, pidfdOpen = 434, processMrelease = 448
    static let ioctl = 16, epollCtl = 233, timerfdCreate = 283, timerfdSettime = 286
    static let signalfd4 = 289, eventfd2 = 290, epollCreate1 = 291, kcmp = 312, userfaultfd = 323
}

/// The bytes of `syscall; int3`.
let syscallTrap: [UInt8] = [0x0f, 0x05, 0xcc]

/// Runs system calls inside a stopped tracee: registers are pointed at a
/// `syscall; int3` sequence, the thread continues, and the result is read at
/// the int3 stop. The caller restores the thread's registers afterwards.
public final class Injector {
    public let tracee: Tracee
    let memory: RemoteMemory
    /// Registers the injected calls start from (the thread's own, with orig_rax = -1).
    var base: LinuxRegs
    /// Address of `syscall; int3` in the tracee.
    public var trampoline: UInt64

    init(tracee: Tracee, pid: Int32, base: LinuxRegs, trampoline: UInt64) {
        self.tracee = tracee
        self.memory = RemoteMemory(pid: pid)
        var b = base
        b.origRax = UInt64.max
        self.base = b
        self.trampoline = trampoline
    }

    /// Performs syscall `nr` and returns its raw result (negative errno on failure).
    @discardableResult
    public func raw(_ nr: Int, _ args: [UInt64] = []) throws -> Int64 {
        var r = base
        r.rip = trampoline
        r.rax = UInt64(nr)
        r.origRax = UInt64.max
        let a = args + Array(repeating: 0, count: max(0, 6 - args.count))
        r.rdi = a[0]; r.rsi = a[1]; r.rdx = a[2]; r.r10 = a[3]; r.r8 = a[4]; r.r9 = a[5]
        try tracee.setRegs(r)
        try tracee.cont()
        let status = WaitStatus(try tracee.wait())
        guard case .stopped(let sig, let event) = status, sig == SIGTRAP, event == 0 else {
            throw FerryError("thread \(tracee.tid) \(status.description) while running injected syscall \(nr)")
        }
        let after = try tracee.getRegs()
        guard after.rip == trampoline + 3 else {
            throw FerryError("thread \(tracee.tid) stopped at \(hex(after.rip)) instead of after the injected syscall \(nr)")
        }
        return Int64(bitPattern: after.rax)
    }

    /// Performs syscall `nr`, throwing a `SystemError` naming `what` on failure.
    @discardableResult
    public func call(_ nr: Int, _ args: [UInt64] = [], _ what: @autoclosure () -> String) throws -> Int64 {
        let r = try raw(nr, args)
        if r < 0 && r > -4096 { throw SystemError(what(), errno: Int32(-r), "in process \(memory.pid)") }
        return r
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
}
#endif
