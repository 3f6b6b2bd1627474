// Which system calls a tracer may inject into a stopped thread with
// FreeBSD's PT_SC_REMOTE, decided before the request is made.
//
// PT_SC_REMOTE looks the number up in the *target's* syscall table: a
// Linux-ABI (Linuxulator) target takes Linux x86-64 numbers. Two numbers
// are special for every ABI: the request treats 0 and 198 as FreeBSD's
// syscall(2)/__syscall(2) indirection (the real number is then the first
// argument; FreeBSD-SA-26:21 is about exactly this path). So Linux `read`
// (0) and `lremovexattr` (198) can never be injected. ferry plans around
// them: it reads target memory with PT_IO, and reads from a target fd with
// `pread64` (17), never `read`. A number at or past the end of the table
// runs `nosys`, which sends SIGSYS to the target: refused here as well.

/// The syscall table a remote syscall is looked up in.
public enum SyscallABI: String, Codable, Sendable, CaseIterable {
    /// FreeBSD's Linuxulator, linux64 (Linux x86-64 numbers).
    case linux64
    /// Native FreeBSD amd64.
    case freebsd64
}

/// A remote syscall that must not be sent, with the reason in one line.
public struct RemoteSyscallRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    public var number: UInt32
    public var abi: SyscallABI
    public var reason: String
    public var description: String { "cannot inject syscall \(number) (\(abi.rawValue)) with PT_SC_REMOTE: \(reason)" }
}

/// The Linux x86-64 syscalls a FreeBSD restore injects, by number.
public enum InjectedLinuxSyscall: UInt32, CaseIterable, Sendable {
    case close = 3
    case lseek = 8
    case mmap = 9
    case mprotect = 10
    case munmap = 11
    case brk = 12
    case rtSigaction = 13
    case rtSigprocmask = 14
    /// Used instead of `read` (0), which PT_SC_REMOTE cannot carry.
    case pread64 = 17
    case mremap = 25
    case madvise = 28
    case dup2 = 33
    case getpid = 39
    case clone = 56
    case exit = 60
    case sigaltstack = 131
    case prctl = 157
    case archPrctl = 158
    case setrlimit = 160
    case gettid = 186
    case setTidAddress = 218
    case openat = 257
    case setRobustList = 273
    case dup3 = 292
    case prlimit64 = 302
}

public enum RemoteSyscall {
    /// Numbers PT_SC_REMOTE resolves through syscall(2)/__syscall(2)
    /// indirection, whatever the target's ABI.
    public static let indirectionNumbers: Set<UInt32> = [0, 198]
    /// Arguments PT_SC_REMOTE accepts (the size of the kernel's argument
    /// array on amd64; the shim copies at most this many).
    public static let maxArguments = 8
    /// Entries in the Linuxulator's linux64 table that every FreeBSD 14
    /// has: `LINUX_SYS_MAXSYSCALL` was already 313 in an older tree read
    /// (sys/amd64/linux/linux_syscall.h) and only grows. Used when the
    /// target does not report its own size; every `InjectedLinuxSyscall` is below it.
    public static let linux64TableSizeFloor: UInt32 = 313

    /// Nil when `number` with `argumentCount` arguments may be sent to a
    /// target whose `abi` table has `tableSize` entries; else why not.
    public static func check(number: UInt32, argumentCount: Int, abi: SyscallABI,
                             tableSize: UInt32) -> RemoteSyscallRefusal? {
        func refuse(_ why: String) -> RemoteSyscallRefusal { RemoteSyscallRefusal(number: number, abi: abi, reason: why) }
        if indirectionNumbers.contains(number) {
            let linuxName = number == 0 ? "read" : "lremovexattr"
            return refuse(abi == .linux64
                ? "the kernel takes \(number) as syscall(2) indirection for every ABI, so Linux \(linuxName) cannot be injected; use \(number == 0 ? "pread64 or PT_IO" : "another call")"
                : "the kernel takes \(number) as syscall(2) indirection; inject the real number")
        }
        if number >= tableSize {
            return refuse("the target's table has \(tableSize) entries; a number past it runs nosys and sends SIGSYS to the target")
        }
        if argumentCount < 0 || argumentCount > maxArguments {
            return refuse("\(argumentCount) arguments; PT_SC_REMOTE takes 0 to \(maxArguments)")
        }
        return nil
    }
}
