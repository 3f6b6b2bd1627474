import FerryCore
import FerryImage

// The restorer that walks a FreeBSDRestorePlan. It is OS-neutral: every
// FreeBSD call goes through `FreeBSDTracer`, which FreeBSDPtraceTracer
// implements on FreeBSD (ptrace, PT_SC_REMOTE, the C shim) and the tests
// implement on Linux with a recording double. What the kernel does with
// the calls has not run on FreeBSD (docs/freebsd.md).

/// The FreeBSD kernel as the restorer uses it: one call per operation, on
/// a stopped, traced target.
public protocol FreeBSDTracer: AnyObject {
    /// Writes the stub ELF, starts it under PT_TRACE_ME and waits for the
    /// stop at its first instruction. Returns the process and its thread.
    func spawnStub(_ elf: [UInt8]) throws -> (pid: Int32, thread: Int32)
    /// PT_SC_REMOTE of a Linux syscall in `thread`; the tracer waits for the
    /// stop the call leaves behind. Returns the result and the Linux errno (0: none).
    func remoteLinuxSyscall(pid: Int32, thread: Int32, _ call: InjectedLinuxSyscall, _ args: [UInt64]) throws -> (ret: Int64, errno: Int32)
    /// PT_IO write (read-only pages too).
    func write(pid: Int32, at address: UInt64, _ bytes: [UInt8]) throws
    func setRegisters(thread: Int32, _ regs: FreeBSDReg) throws
    func setBases(thread: Int32, fs: UInt64, gs: UInt64) throws
    /// The CPU as the target sees it: XCR0, XSAVE size and layout, for the XSAVE conversion.
    func cpu() throws -> CPUFeatures
    func setXState(thread: Int32, _ area: [UInt8]) throws
    func detach(pid: Int32) throws
    /// Ends a half-built process (a failed restore leaves nothing behind).
    func kill(pid: Int32)
}

/// Where the pages of the image come from: `range` of the source process,
/// zeros where the image has no page.
public protocol FreeBSDPageSource {
    func contents(of range: AddressRange) throws -> [UInt8]
}

/// A failed step: which one, of which process, and why.
public struct FreeBSDRestoreError: Error, Equatable, Sendable, CustomStringConvertible {
    public var pid: Int32
    public var step: String
    public var reason: String
    public var description: String { "cannot restore process \(pid) on FreeBSD: \(step): \(reason)" }
}

public final class FreeBSDRestorer {
    /// Bytes written per PT_IO request: the memory ferry holds for contents at once.
    public static let writeChunk: UInt64 = 1 << 20
    /// Linux clone flags of a thread (CLONE_VM | FS | FILES | SIGHAND | THREAD | SYSVSEM).
    static let threadCloneFlags: UInt64 = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000
    static let pageSize: UInt64 = 4096

    let tracer: FreeBSDTracer
    let pages: FreeBSDPageSource
    let sourceCPU: CPUFeatures?

    public init(tracer: FreeBSDTracer, pages: FreeBSDPageSource, sourceCPU: CPUFeatures?) {
        self.tracer = tracer; self.pages = pages; self.sourceCPU = sourceCPU
    }

    /// Runs `steps` (FreeBSDRestorePlan.plan of `process`) and returns the
    /// pid of the running process. Any failure kills what was built and
    /// throws a one-line error naming the step.
    public func run(process p: ProcessImage, steps: [FreeBSDRestoreStep]) throws -> Int32 {
        guard case .execStub(let layout)? = steps.first else {
            throw FreeBSDRestoreError(pid: p.pid, step: "plan", reason: "the plan does not start with the stub's exec")
        }
        guard case .detach? = steps.last else {
            throw FreeBSDRestoreError(pid: p.pid, step: "plan", reason: "the plan does not end with the detach")
        }
        let stub = try LinuxStubELF.generate(layout)
        let (pid, main) = try tracer.spawnStub(stub.bytes)
        var state = WalkState(image: p, pid: pid, tids: [main])
        do {
            state.scratch = try scratchPage(&state)
            for step in steps.dropFirst() {
                try perform(step, &state)
            }
            return pid
        } catch let e as FreeBSDRestoreError {
            tracer.kill(pid: pid)
            throw e
        } catch {
            tracer.kill(pid: pid)
            throw FreeBSDRestoreError(pid: p.pid, step: state.current, reason: "\(error)")
        }
    }

    struct WalkState {
        let image: ProcessImage
        let pid: Int32
        /// FreeBSD thread ids, by the image's thread index.
        var tids: [Int32]
        /// A page of the target for the values injected calls point at.
        var scratch: UInt64 = 0
        var current = "start"
    }

    /// An anonymous page of the target, mapped where the kernel likes:
    /// the stub's placement leaves the image's ranges free, and the page is
    /// unmapped before the detach.
    func scratchPage(_ s: inout WalkState) throws -> UInt64 {
        s.current = "scratch page"
        let prot: UInt64 = 0x1 | 0x2, flags: UInt64 = 0x02 | 0x20  // PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
        let address = try inject(&s, thread: 0, .mmap, [0, Self.pageSize, prot, flags, UInt64.max, 0])
        guard address % Self.pageSize == 0, address != 0 else {
            throw FreeBSDRestoreError(pid: s.image.pid, step: s.current, reason: "mmap returned \(hex(address)), not a page")
        }
        return address
    }

    func perform(_ step: FreeBSDRestoreStep, _ s: inout WalkState) throws {
        switch step {
        case .execStub:
            throw FreeBSDRestoreError(pid: s.image.pid, step: "plan", reason: "a second stub exec in the plan")
        case .setRlimit(let l):
            s.current = "prlimit64(resource \(l.resource))"
            try stage(&s, le64(l.soft) + le64(l.hard))
            _ = try inject(&s, thread: 0, .prlimit64, [0, UInt64(UInt32(bitPattern: l.resource)), s.scratch, 0])
        case .unmap(let r):
            s.current = "munmap \(r)"
            guard r.end > r.start else { return }
            _ = try inject(&s, thread: 0, .munmap, [r.start, r.size])
        case .map(let r, let prot, let flags):
            s.current = "mmap \(r)"
            // Mapped with the image's protection: PT_IO writes read-only
            // pages too (proc_rwmem forces the write, as for breakpoints).
            guard r.end > r.start, r.start % Self.pageSize == 0, r.size % Self.pageSize == 0 else {
                throw FreeBSDRestoreError(pid: s.image.pid, step: s.current, reason: "the range is not whole pages")
            }
            let got = try inject(&s, thread: 0, .mmap, [r.start, r.size, prot, flags, UInt64.max, 0])
            guard got == r.start else {
                throw FreeBSDRestoreError(pid: s.image.pid, step: s.current, reason: "the kernel placed it at \(hex(got))")
            }
        case .writeMemory(let source, let destination):
            s.current = "contents of \(source) at \(destination)"
            guard source.size == destination.size else {
                throw FreeBSDRestoreError(pid: s.image.pid, step: s.current, reason: "source and destination differ in size")
            }
            var offset: UInt64 = 0
            while offset < source.size {
                let n = min(Self.writeChunk, source.size - offset)
                let bytes = try pages.contents(of: AddressRange(source.start + offset, source.start + offset + n))
                guard UInt64(bytes.count) == n else {
                    throw FreeBSDRestoreError(pid: s.image.pid, step: s.current, reason: "the image gave \(bytes.count) bytes for \(n)")
                }
                if bytes.contains(where: { $0 != 0 }) {
                    try tracer.write(pid: s.pid, at: destination.start + offset, bytes)
                }
                offset += n
            }
        case .clone(let thread):
            s.current = "clone of thread \(thread)"
            guard thread == s.tids.count, thread < s.image.threads.count else {
                throw FreeBSDRestoreError(pid: s.image.pid, step: s.current, reason: "threads are cloned in order; \(s.tids.count) exist")
            }
            // The new thread starts stopped with the process (it is traced
            // and stopped); its registers are set before the detach. Its
            // stack pointer is the scratch page's end until then.
            let tid = try inject(&s, thread: 0, .clone, [Self.threadCloneFlags, s.scratch + Self.pageSize, 0, 0, 0])
            guard tid > 0, tid <= UInt64(Int32.max) else {
                throw FreeBSDRestoreError(pid: s.image.pid, step: s.current, reason: "clone returned \(tid)")
            }
            s.tids.append(Int32(tid))
        case .setRegisters(let thread, let regs):
            s.current = "registers of thread \(thread)"
            try tracer.setRegisters(thread: try tid(s, thread), regs)
        case .setBases(let thread, let fs, let gs):
            s.current = "fs/gs bases of thread \(thread)"
            try tracer.setBases(thread: try tid(s, thread), fs: fs, gs: gs)
        case .setXState(let thread):
            s.current = "XSAVE state of thread \(thread)"
            guard let x = s.image.threads[thread].extendedState else { return }
            let area = try XSave.forFreeBSD(x, tid: s.image.threads[thread].tid, source: sourceCPU,
                                            permitted: s.image.xcompPermitted, target: try tracer.cpu())
            try tracer.setXState(thread: try tid(s, thread), area)
        case .setTidAddress(let thread, let address):
            s.current = "set_tid_address of thread \(thread)"
            _ = try inject(&s, thread: thread, .setTidAddress, [address])
        case .setRobustList(let thread, let head, let length):
            s.current = "set_robust_list of thread \(thread)"
            _ = try inject(&s, thread: thread, .setRobustList, [head, length])
        case .setSignalMask(let thread, let mask):
            s.current = "signal mask of thread \(thread)"
            try stage(&s, le64(mask))
            _ = try inject(&s, thread: thread, .rtSigprocmask, [2 /* SIG_SETMASK */, s.scratch, 0, 8])
        case .setAltStack(let thread, let stack):
            s.current = "sigaltstack of thread \(thread)"
            // Linux stack_t: ss_sp, ss_flags (int, padded to 8), ss_size.
            try stage(&s, le64(stack.sp) + le64(UInt64(UInt32(bitPattern: stack.flags))) + le64(stack.size))
            _ = try inject(&s, thread: thread, .sigaltstack, [s.scratch, 0])
        case .detach:
            s.current = "scratch page unmap"
            _ = try inject(&s, thread: 0, .munmap, [s.scratch, Self.pageSize])
            s.current = "detach"
            try tracer.detach(pid: s.pid)
        }
    }

    func tid(_ s: WalkState, _ thread: Int) throws -> Int32 {
        guard thread >= 0, thread < s.tids.count else {
            throw FreeBSDRestoreError(pid: s.image.pid, step: s.current, reason: "thread \(thread) does not exist yet")
        }
        return s.tids[thread]
    }

    func stage(_ s: inout WalkState, _ bytes: [UInt8]) throws {
        try tracer.write(pid: s.pid, at: s.scratch, bytes)
    }

    /// An injected call; a Linux errno becomes the step's error.
    func inject(_ s: inout WalkState, thread: Int, _ call: InjectedLinuxSyscall, _ args: [UInt64]) throws -> UInt64 {
        let r = try tracer.remoteLinuxSyscall(pid: s.pid, thread: try tid(s, thread), call, args)
        if r.errno != 0 {
            throw FreeBSDRestoreError(pid: s.image.pid, step: s.current, reason: "Linux syscall \(call.rawValue) (\(call)) failed with errno \(r.errno)")
        }
        return UInt64(bitPattern: r.ret)
    }

    func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
