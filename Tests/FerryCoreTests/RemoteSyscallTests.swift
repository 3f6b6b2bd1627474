import Testing
@testable import FerryCore

@Test func remoteSyscallRefusesTheIndirectionNumbersForEveryABI() {
    for abi in SyscallABI.allCases {
        for n: UInt32 in [0, 198] {
            let r = RemoteSyscall.check(number: n, argumentCount: 3, abi: abi, tableSize: 500)
            #expect(r != nil && r!.description.contains("indirection"), "\(n) \(abi)")
        }
    }
    let read = RemoteSyscall.check(number: 0, argumentCount: 3, abi: .linux64, tableSize: 500)
    #expect(read?.description.contains("Linux read cannot be injected; use pread64") == true)
}

@Test func remoteSyscallBoundsTheNumberByTheTargetTable() {
    #expect(RemoteSyscall.check(number: 312, argumentCount: 0, abi: .linux64, tableSize: 313) == nil)
    let past = RemoteSyscall.check(number: 313, argumentCount: 0, abi: .linux64, tableSize: 313)
    #expect(past?.description.contains("SIGSYS") == true)
    #expect(RemoteSyscall.check(number: UInt32.max, argumentCount: 0, abi: .freebsd64, tableSize: 600) != nil)
    #expect(RemoteSyscall.check(number: 9, argumentCount: 9, abi: .linux64, tableSize: 313) != nil)
    #expect(RemoteSyscall.check(number: 9, argumentCount: -1, abi: .linux64, tableSize: 313) != nil)
    #expect(RemoteSyscall.check(number: 9, argumentCount: 8, abi: .linux64, tableSize: 313) == nil)
}

/// Every syscall a FreeBSD restore injects can be sent to the smallest
/// linux64 table, and none of them is an indirection number.
@Test func everyInjectedLinuxSyscallPassesTheCheck() {
    for s in InjectedLinuxSyscall.allCases {
        #expect(RemoteSyscall.check(number: s.rawValue, argumentCount: 6, abi: .linux64,
                                    tableSize: RemoteSyscall.linux64TableSizeFloor) == nil, "\(s)")
    }
}

/// The numbers are Linux x86-64's, checked against this machine's kernel
/// headers (asm/unistd_64.h), when it has them.
@Test func injectedLinuxSyscallNumbersMatchTheLinuxHeaders() throws {
    let header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    guard let text = ProcLayout.read(header) else { return }
    var nr: [String: UInt32] = [:]
    for line in text.split(separator: "\n") {
        let w = line.split(separator: " ")
        if w.count == 3, w[0] == "#define", w[1].hasPrefix("__NR_"), let n = UInt32(w[2]) { nr[String(w[1].dropFirst(5))] = n }
    }
    let names: [InjectedLinuxSyscall: String] = [
        .close: "close", .lseek: "lseek", .mmap: "mmap", .mprotect: "mprotect", .munmap: "munmap", .brk: "brk",
        .rtSigaction: "rt_sigaction", .rtSigprocmask: "rt_sigprocmask", .pread64: "pread64", .mremap: "mremap",
        .madvise: "madvise", .dup2: "dup2", .getpid: "getpid", .clone: "clone", .exit: "exit",
        .sigaltstack: "sigaltstack", .prctl: "prctl", .archPrctl: "arch_prctl", .setrlimit: "setrlimit",
        .gettid: "gettid", .setTidAddress: "set_tid_address", .openat: "openat",
        .setRobustList: "set_robust_list", .dup3: "dup3", .prlimit64: "prlimit64",
    ]
    #expect(names.count == InjectedLinuxSyscall.allCases.count)
    for s in InjectedLinuxSyscall.allCases {
        let want = try #require(names[s].flatMap { nr[$0] }, "\(s) is not in \(header)")
        #expect(s.rawValue == want, "\(s)")
    }
    #expect(nr["read"] == 0 && nr["lremovexattr"] == 198)
}
