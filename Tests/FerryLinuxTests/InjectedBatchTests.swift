import Glibc
import Foundation
import FerryImage
@testable import FerryLinux
import Testing

/// The batched syscall loop, run in a real stopped process (a `sleep`
/// seized by ptrace, with a scratch area as a restore makes one).
/// Needs root (ptrace of another process); CI runs as root.
@Suite(.serialized, .enabled(if: getuid() == 0, "ptrace of another process needs root"))
struct InjectedBatchTests {
    /// Seizes a fresh `sleep`, gives it a scratch area, runs `body`, kills it.
    static func withStoppedProcess(_ body: (Injector, ScratchArea, Int32) throws -> Void) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sleep")
        p.arguments = ["60"]
        try p.run()
        let pid = p.processIdentifier
        defer { kill(pid, SIGKILL); p.waitUntilExit() }
        let t = Tracee(pid)
        try t.seize()
        try t.interrupt()
        _ = try t.wait()
        let regs = try t.getRegs()
        let scratch = try ProcessBuilder.createScratch(tracee: t, regs: regs, pid: pid, avoiding: [])
        try body(Injector(tracee: t, pid: pid, base: regs, trampoline: scratch.address), scratch, pid)
    }

    @Test func runsEveryCallAcrossChunksAndReturnsTheResults() throws {
        try Self.withStoppedProcess { injector, scratch, pid in
            var batch = InjectedBatch()
            // More calls than one chunk of the scratch data holds, strings included.
            for i in 0..<2500 {
                if i % 500 == 0 {
                    batch.add(.init(21 /* access */, [0, 0], string: "/proc/self/status", at: 0, "access #\(i)"))
                } else {
                    batch.add(.init(39 /* getpid */, [], "getpid #\(i)"))
                }
            }
            let results = try batch.run(injector, scratch: scratch)
            #expect(results.count == 2500)
            #expect(results.enumerated().allSatisfy { $0.offset % 500 == 0 ? $0.element == 0 : $0.element == Int64(pid) })
            #expect(batch.isEmpty)
        }
    }

    @Test func theFirstFailureStopsTheLoopAndIsNamed() throws {
        try Self.withStoppedProcess { injector, scratch, pid in
            // A probe page: the call after the failure would unmap it.
            let page = try injector.call(SYS.mmap, [0, 4096, 3, 0x22, UInt64.max, 0], "mmap(probe)")
            var batch = InjectedBatch()
            batch.add(.init(39, [], "getpid"))
            batch.add(.init(SYS.munmap, [1, 4096], "munmap of an unaligned address"))
            batch.add(.init(SYS.munmap, [UInt64(page), 4096], "munmap(probe)"))
            do {
                try batch.run(injector, scratch: scratch)
                Issue.record("the batch succeeded")
            } catch let e as SystemError {
                #expect("\(e)".contains("munmap of an unaligned address"), "\(e)")
                #expect(e.errno == EINVAL)
            }
            let maps = try String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)
            #expect(maps.contains(String(UInt64(page), radix: 16)), "the call after the failure ran")
        }
    }
}
