import FerryImage

// The order in which a restore on FreeBSD rebuilds one Linux process under
// the Linuxulator, as data: the native restorer (FerryFreeBSD) walks the
// steps with ptrace and PT_SC_REMOTE. Every injected call is a Linux
// x86-64 syscall (the target's table), checked by RemoteSyscall.check.
//
//   1. exec the stub (LinuxStubELF) under PT_TRACE_ME, wait for the stop
//   2. rlimits (prlimit64), before any memory: RLIMIT_STACK changes the
//      protections FreeBSD derives from vm_stacktop
//   3. munmap the stub's own ranges, then mmap(MAP_FIXED) every area of
//      the placement plan, the relocated stack included
//   4. PT_IO: the pages' contents
//   5. threads after the first: injected clone
//   6. per thread: PT_SETREGS (RegisterConversion.freeBSD: FreeBSD's
//      selectors, cs 0x43 — Linux's 0x33 is FreeBSD's 32-bit segment),
//      PT_SETFSBASE/PT_SETGSBASE, PT_SETXSTATE (XSAVE checked first)
//   7. per thread: set_tid_address, set_robust_list, signal mask, alt stack
//   8. PT_DETACH
//
// What the plan cannot carry is refused before step 1, by name.

/// One step of a FreeBSD restore. Steps that pass memory to the kernel
/// (rlimits, mask, alt stack) carry the value; the restorer stages it in
/// a scratch page of the target before the injected call.
public enum FreeBSDRestoreStep: Equatable, Sendable {
    case execStub(layout: FreeBSDVMLayout)
    case setRlimit(ResourceLimit)
    case unmap(AddressRange)
    /// mmap(MAP_FIXED) with Linux PROT_* and MAP_* bits.
    case map(AddressRange, prot: UInt64, flags: UInt64)
    /// PT_IO of a mapping's contents (`source`: the image mapping, at `destination`).
    case writeMemory(source: AddressRange, destination: AddressRange)
    /// An injected clone making thread `thread` (index into the image's threads).
    case clone(thread: Int)
    case setRegisters(thread: Int, FreeBSDReg)
    case setBases(thread: Int, fs: UInt64, gs: UInt64)
    case setXState(thread: Int)
    case setTidAddress(thread: Int, UInt64)
    case setRobustList(thread: Int, head: UInt64, length: UInt64)
    case setSignalMask(thread: Int, UInt64)
    case setAltStack(thread: Int, SignalStack)
    case detach

    /// The Linux syscall injected for this step; nil for ptrace-only steps.
    public var injected: InjectedLinuxSyscall? {
        switch self {
        case .setRlimit: return .prlimit64
        case .unmap: return .munmap
        case .map: return .mmap
        case .clone: return .clone
        case .setTidAddress: return .setTidAddress
        case .setRobustList: return .setRobustList
        case .setSignalMask: return .rtSigprocmask
        case .setAltStack: return .sigaltstack
        case .execStub, .writeMemory, .setRegisters, .setBases, .setXState, .detach: return nil
        }
    }
}

public enum FreeBSDRestorePlan {
    // Linux mmap constants (x86-64 UAPI).
    static let mapPrivate: UInt64 = 0x02, mapFixed: UInt64 = 0x10, mapAnonymous: UInt64 = 0x20
    static let mapGrowsDown: UInt64 = 0x100
    /// RLIMIT_STACK, the same number on Linux and in the Linuxulator.
    static let rlimitStack: Int32 = 3

    /// The steps for `process`, placed by `placement` (Placement.planPlacement
    /// for a FreeBSD target). Throws a one-line refusal for what is not
    /// carried to FreeBSD yet.
    public static func plan(process p: ProcessImage, placement: PlacementPlan) throws -> [FreeBSDRestoreStep] {
        func refuse(_ why: String) -> FreeBSDLayoutError {
            FreeBSDLayoutError(description: "cannot restore process \(p.pid) on FreeBSD: \(why)")
        }
        guard !p.threads.isEmpty else { throw refuse("the image has no threads") }
        let layout = try FreeBSDLayoutPlan.fromLinux(p.layout)
        var steps: [FreeBSDRestoreStep] = [.execStub(layout: layout)]

        // 2. Resource limits, RLIMIT_STACK first.
        let stackFirst = p.rlimits.sorted { ($0.resource == rlimitStack ? 0 : 1, $0.resource) < ($1.resource == rlimitStack ? 0 : 1, $1.resource) }
        steps += stackFirst.map { .setRlimit($0) }
        // 3. Memory: the stub's own ranges go, then every planned area is mapped.
        steps.append(.unmap(AddressRange(layout.textStart, layout.textEnd)))
        if layout.dataStart < layout.brk { steps.append(.unmap(AddressRange(layout.dataStart, layout.brk))) }
        var writes: [FreeBSDRestoreStep] = []
        for pm in placement.mappings {
            guard let dest = pm.destination else { continue }
            let m = pm.mapping
            if m.kind == .sharedFile || m.kind == .sharedAnonymous {
                throw refuse("\(m.name.isEmpty ? m.file?.path ?? m.kind.rawValue : m.name) at \(AddressRange(m)) is a shared mapping, which is not carried to FreeBSD yet; restore on Linux")
            }
            let flags = mapPrivate | mapFixed | mapAnonymous | (m.kind == .stack ? mapGrowsDown : 0)
            steps.append(.map(dest, prot: UInt64(m.protection.rawValue), flags: flags))
            writes.append(.writeMemory(source: AddressRange(m), destination: dest))
        }
        // 4. Contents (PT_IO writes read-only pages too).
        steps += writes
        // 5. Threads after the first.
        steps += p.threads.indices.dropFirst().map { .clone(thread: $0) }
        // 6. Registers (the stack pointer follows a moved stack), bases, extended state.
        for (i, t) in p.threads.enumerated() {
            var r = t.registers
            if let move = placement.moves.first(where: { $0.old.contains(r.rsp) }) {
                r.rsp = r.rsp - move.old.start + move.newStart
            }
            steps.append(.setRegisters(thread: i, RegisterConversion.freeBSD(from: r)))
            steps.append(.setBases(thread: i, fs: t.registers.fsBase, gs: t.registers.gsBase))
            if t.extendedState != nil { steps.append(.setXState(thread: i)) }
        }
        // 7. Per-thread kernel state.
        for (i, t) in p.threads.enumerated() {
            steps.append(.setTidAddress(thread: i, t.clearChildTid))
            if let a = t.attributes, a.robustListHead != 0 {
                steps.append(.setRobustList(thread: i, head: a.robustListHead, length: a.robustListLength))
            }
            steps.append(.setSignalMask(thread: i, t.sigmask))
            steps.append(.setAltStack(thread: i, t.sigaltstack))
        }
        steps.append(.detach)
        return steps
    }
}
