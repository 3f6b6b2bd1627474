import Testing
import FerryCore
import FerryImage
import FerryImageFixtures
@testable import FerryFreeBSD

/// A FreeBSD kernel as the restorer sees it, in memory: it records every
/// call, keeps the target's mapped ranges and bytes, and fails where told.
final class RecordingTracer: FreeBSDTracer {
    enum Call: Equatable {
        case spawn(Int)
        case syscall(thread: Int32, InjectedLinuxSyscall, [UInt64])
        case write(UInt64, Int)
        case registers(thread: Int32, FreeBSDReg)
        case bases(thread: Int32, fs: UInt64, gs: UInt64)
        case xstate(thread: Int32, Int)
        case detach
        case kill
    }
    var calls: [Call] = []
    var mapped: [AddressRange] = []
    /// Bytes written, by address (one entry per write).
    var memory: [UInt64: [UInt8]] = [:]
    var nextTid: Int32 = 200_001
    let scratchAt: UInt64 = 0x8_0000_0000
    /// Fail the n-th call of this kind with this Linux errno.
    var failing: (InjectedLinuxSyscall, errno: Int32)?
    /// Where a MAP_FIXED mmap lands instead of its address (a broken kernel).
    var misplace: UInt64?
    var target = CPUFeatures(xcr0: 0x7, xsaveSize: 832, flags: [])
    /// The value staged in the scratch page when each injected call was made.
    var stagedAtCall: [[UInt8]] = []

    func spawnStub(_ elf: [UInt8]) throws -> (pid: Int32, thread: Int32) {
        calls.append(.spawn(elf.count))
        return (4242, 200_000)
    }

    func remoteLinuxSyscall(pid: Int32, thread: Int32, _ call: InjectedLinuxSyscall, _ args: [UInt64]) throws -> (ret: Int64, errno: Int32) {
        calls.append(.syscall(thread: thread, call, args))
        stagedAtCall.append(memory[scratchAt] ?? [])
        if let f = failing, f.0 == call { return (-1, f.errno) }
        switch call {
        case .mmap:
            if args[0] == 0 { mapped.append(AddressRange(scratchAt, scratchAt + args[1])); return (Int64(scratchAt), 0) }
            let at = misplace ?? args[0]
            mapped.append(AddressRange(at, at + args[1]))
            return (Int64(bitPattern: at), 0)
        case .munmap:
            mapped.removeAll { $0.start >= args[0] && $0.end <= args[0] + args[1] }
            return (0, 0)
        case .clone:
            nextTid += 1
            return (Int64(nextTid), 0)
        default:
            return (0, 0)
        }
    }

    func write(pid: Int32, at address: UInt64, _ bytes: [UInt8]) throws {
        guard mapped.contains(where: { $0.start <= address && address + UInt64(bytes.count) <= $0.end }) else {
            throw FreeBSDRestoreError(pid: pid, step: "PT_IO", reason: "unmapped \(address)")
        }
        calls.append(.write(address, bytes.count))
        memory[address] = bytes
    }

    func setRegisters(thread: Int32, _ regs: FreeBSDReg) throws { calls.append(.registers(thread: thread, regs)) }
    func setBases(thread: Int32, fs: UInt64, gs: UInt64) throws { calls.append(.bases(thread: thread, fs: fs, gs: gs)) }
    func cpu() throws -> CPUFeatures { target }
    func setXState(thread: Int32, _ area: [UInt8]) throws { calls.append(.xstate(thread: thread, area.count)) }
    func detach(pid: Int32) throws { calls.append(.detach) }
    func kill(pid: Int32) { calls.append(.kill) }

    var syscalls: [(thread: Int32, call: InjectedLinuxSyscall, args: [UInt64])] {
        calls.compactMap { if case .syscall(let t, let c, let a) = $0 { return (t, c, a) }; return nil }
    }
}

/// Pages of the image: each byte is the low byte of its address's page number, so a
/// page written at the wrong place is seen.
struct PatternPages: FreeBSDPageSource {
    var zeroFrom: UInt64 = .max
    func contents(of range: AddressRange) throws -> [UInt8] {
        (range.start..<range.end).map { $0 >= zeroFrom ? 0 : UInt8(truncatingIfNeeded: ($0 >> 12) | 1) }
    }
}

/// A two-thread Linux process: code, data, heap and stack, one thread with a robust list.
func candidate() -> ProcessImage {
    let exe = FileIdentity(path: "/usr/bin/prog", size: 0x3000, mtimeNs: 0)
    var p = ProcessImage(pid: 100, mappings: [
        Mapping(start: 0x55_5555_4000, end: 0x55_5555_6000, protection: [.read, .exec], kind: .privateFile, file: exe),
        Mapping(start: 0x55_5555_6000, end: 0x55_5555_7000, protection: [.read, .write], kind: .privateFile, fileOffset: 0x2000, file: exe),
        Mapping(start: 0x55_5555_9000, end: 0x55_5557_a000, protection: [.read, .write], kind: .heap, name: "[heap]"),
        Mapping(start: 0x7fff_fffd_e000, end: 0x7fff_ffff_f000, protection: [.read, .write], kind: .stack, flags: .growsDown, name: "[stack]"),
    ])
    makeFreeBSDCandidate(&p)
    // The worker's stack lies in the heap, which stays where it is.
    p.threads[1].registers.rsp = 0x55_5556_8000
    return p
}

func plannedRestore(_ p: ProcessImage) throws -> [FreeBSDRestoreStep] {
    try FreeBSDRestorePlan.plan(process: p, placement: try Placement.planPlacement(process: p, target: .freebsdLinuxulator()))
}

func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

@Test func restorerWalksThePlanThroughTheTracer() throws {
    let p = candidate()
    let steps = try plannedRestore(p)
    let t = RecordingTracer()
    let pid = try FreeBSDRestorer(tracer: t, pages: PatternPages(), sourceCPU: nil).run(process: p, steps: steps)
    #expect(pid == 4242)
    guard case .spawn(let size)? = t.calls.first else { Issue.record("no stub first: \(t.calls.prefix(2))"); return }
    let stub = try LinuxStubELF.generate(try FreeBSDLayoutPlan.fromLinux(p.layout))
    #expect(size == stub.bytes.count)
    #expect(t.calls.last == .detach)
    #expect(!t.calls.contains(.kill))

    // The scratch page comes first and goes last; every mapping of the plan is placed at its address.
    let sc = t.syscalls
    #expect(sc.first?.call == .mmap && sc.first?.args[0] == 0)
    #expect(sc.last?.call == .munmap && sc.last?.args[0] == t.scratchAt)
    let planned = steps.compactMap { s -> AddressRange? in if case .map(let r, _, _) = s { return r }; return nil }
    #expect(Set(t.mapped) == Set(planned), "what stays mapped is what the plan maps")

    // Contents: each destination holds its source's bytes (the stack moved; its bytes follow it).
    for s in steps {
        guard case .writeMemory(let src, let dst) = s else { continue }
        let want = try PatternPages().contents(of: src)
        var got: [UInt8] = []
        var a = dst.start
        while a < dst.end, let chunk = t.memory[a] { got += chunk; a += UInt64(chunk.count) }
        #expect(got == want, "contents of \(src) at \(dst)")
    }

    // Threads: the clone's tid receives thread 1's registers and its per-thread calls.
    let clone = try #require(sc.first { $0.call == .clone })
    #expect(clone.args[0] == 0x50f00, "CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM")
    let regs = t.calls.compactMap { c -> (Int32, FreeBSDReg)? in if case .registers(let th, let r) = c { return (th, r) }; return nil }
    #expect(regs.map(\.0) == [200_000, 200_002])
    #expect(regs[1].1.rsp == 0x55_5556_8000 && regs[0].1.cs == 0x43)
    #expect(sc.contains { $0.thread == 200_002 && $0.call == .setRobustList && $0.args == [0x7f00_0100_09a0, 24] })
    #expect(sc.contains { $0.thread == 200_000 && $0.call == .setTidAddress && $0.args == [0x7f00_0000_0a10] })
    #expect(t.calls.contains(.bases(thread: 200_000, fs: 0x7f00_0000_0740, gs: 0)))
}

@Test func restorerStagesTheValuesInjectedCallsPointAt() throws {
    let p = candidate()
    let t = RecordingTracer()
    _ = try FreeBSDRestorer(tracer: t, pages: PatternPages(), sourceCPU: nil).run(process: p, steps: try plannedRestore(p))
    let sc = t.syscalls
    func staged(_ call: InjectedLinuxSyscall, thread: Int32 = 200_000) -> [[UInt8]] {
        sc.indices.filter { sc[$0].call == call && sc[$0].thread == thread }.map { t.stagedAtCall[$0] }
    }
    // prlimit64(0, RLIMIT_STACK, &{cur, max}, NULL), RLIMIT_STACK first.
    let limits = sc.filter { $0.call == .prlimit64 }
    #expect(limits.map { $0.args[1] } == [3, 7])
    #expect(limits.allSatisfy { $0.args[0] == 0 && $0.args[2] == t.scratchAt && $0.args[3] == 0 })
    #expect(staged(.prlimit64) == [le64(8 << 20) + le64(.max), le64(1024) + le64(4096)])
    // rt_sigprocmask(SIG_SETMASK, &mask, NULL, 8).
    #expect(sc.first { $0.call == .rtSigprocmask }?.args == [2, t.scratchAt, 0, 8])
    #expect(staged(.rtSigprocmask) == [le64(0x4000)])
    // sigaltstack(&{sp, flags, size}, NULL) in Linux's stack_t layout.
    #expect(staged(.sigaltstack) == [le64(0x55_5556_0000) + le64(0) + le64(0x4000)])
    #expect(staged(.sigaltstack, thread: 200_002) == [le64(0) + le64(2) + le64(0)], "SS_DISABLE for the worker")
}

@Test func restorerSkipsZeroChunksAndBoundsWhatItHolds() throws {
    var p = candidate()
    // A 3 MiB anonymous area whose last 2 MiB are zero: one 1 MiB write, no more.
    p.mappings.append(Mapping(start: 0x7f10_0000_0000, end: 0x7f10_0030_0000, protection: [.read, .write], kind: .anonymous))
    let t = RecordingTracer()
    _ = try FreeBSDRestorer(tracer: t, pages: PatternPages(zeroFrom: 0x7f10_0010_0000), sourceCPU: nil)
        .run(process: p, steps: try plannedRestore(p))
    let writes = t.calls.compactMap { c -> (UInt64, Int)? in if case .write(let a, let n) = c { return (a, n) }; return nil }
    #expect(writes.filter { $0.0 >= 0x7f10_0000_0000 && $0.0 < 0x7f10_0030_0000 }.map(\.1) == [1 << 20])
    #expect(writes.allSatisfy { UInt64($0.1) <= FreeBSDRestorer.writeChunk })
}

@Test func aFailedStepKillsTheStubAndNamesTheStep() throws {
    let p = candidate()
    let steps = try plannedRestore(p)
    for (call, errno, words) in [(InjectedLinuxSyscall.clone, Int32(11), ["clone of thread 1", "errno 11"]),
                                 (.setRobustList, 22, ["set_robust_list of thread 1", "errno 22"]),
                                 (.prlimit64, 1, ["prlimit64(resource 3)", "errno 1"])] {
        let t = RecordingTracer()
        t.failing = (call, errno)
        #expect { try FreeBSDRestorer(tracer: t, pages: PatternPages(), sourceCPU: nil).run(process: p, steps: steps) } throws: { e in
            let text = "\(e)"
            return words.allSatisfy(text.contains) && text.hasPrefix("cannot restore process 100 on FreeBSD")
        }
        #expect(t.calls.last == .kill && !t.calls.contains(.detach), "\(call)")
    }
}

@Test func aMappingTheKernelPlacesElsewhereIsRefused() throws {
    let p = candidate()
    let t = RecordingTracer()
    t.misplace = 0x1234_5000
    #expect { try FreeBSDRestorer(tracer: t, pages: PatternPages(), sourceCPU: nil).run(process: p, steps: try plannedRestore(p)) } throws: { e in
        "\(e)".contains("placed it at 0x12345000")
    }
    #expect(t.calls.last == .kill)
}

@Test func xsaveStateIsConvertedForTheTargetOrRefused() throws {
    var p = candidate()
    // x87, SSE and AVX in use (XSTATE_BV 0x7) on a source whose XCR0 is 0x7.
    var area = [UInt8](repeating: 0, count: 832)
    area.replaceSubrange(512..<520, with: le64(0x7))
    p.threads[0].extendedState = ExtendedState(xcr0: 0x7, area: area)
    let source = CPUFeatures(xcr0: 0x7, xsaveSize: 832, flags: [])
    let t = RecordingTracer()
    _ = try FreeBSDRestorer(tracer: t, pages: PatternPages(), sourceCPU: source).run(process: p, steps: try plannedRestore(p))
    #expect(t.calls.contains(.xstate(thread: 200_000, 832)))

    // A target without AVX: the thread's AVX state has nowhere to go.
    let t2 = RecordingTracer()
    t2.target = CPUFeatures(xcr0: 0x3, xsaveSize: 576, flags: [])
    #expect { try FreeBSDRestorer(tracer: t2, pages: PatternPages(), sourceCPU: source).run(process: p, steps: try plannedRestore(p)) } throws: { e in
        "\(e)".contains("XSAVE state of thread 0") && "\(e)".contains("AVX")
    }
    #expect(t2.calls.last == .kill)
}

@Test func malformedPlansAreRefusedBeforeAnythingStarts() throws {
    let p = candidate()
    let steps = try plannedRestore(p)
    let t = RecordingTracer()
    let r = FreeBSDRestorer(tracer: t, pages: PatternPages(), sourceCPU: nil)
    #expect { try r.run(process: p, steps: Array(steps.dropFirst())) } throws: { "\($0)".contains("stub") }
    #expect { try r.run(process: p, steps: Array(steps.dropLast())) } throws: { "\($0)".contains("detach") }
    #expect(t.calls.isEmpty)
    // Threads cloned out of order, or a step for a thread that does not exist.
    var bad = steps
    bad.insert(.setRegisters(thread: 5, FreeBSDReg()), at: bad.count - 1)
    #expect { try r.run(process: p, steps: bad) } throws: { "\($0)".contains("thread 5 does not exist") }
    #expect(t.calls.last == .kill)
}
