import Testing
import FerryImage
import FerryImageFixtures
@testable import FerryCore

/// A two-thread Linux process (linuxProcess's maps) with its layout fields.
func freeBSDCandidate() -> ProcessImage {
    var p = linuxProcess()
    makeFreeBSDCandidate(&p)
    return p
}

@Test func freeBSDRestoreStepsComeInTheRequiredOrder() throws {
    let p = freeBSDCandidate()
    let placement = try Placement.planPlacement(process: p, target: .freebsdLinuxulator())
    let steps = try FreeBSDRestorePlan.plan(process: p, placement: placement)
    func first(_ match: (FreeBSDRestoreStep) -> Bool) -> Int { steps.firstIndex(where: match) ?? -1 }
    func last(_ match: (FreeBSDRestoreStep) -> Bool) -> Int { steps.lastIndex(where: match) ?? -1 }
    func isRlimit(_ s: FreeBSDRestoreStep) -> Bool { if case .setRlimit = s { return true }; return false }
    func isMap(_ s: FreeBSDRestoreStep) -> Bool { if case .map = s { return true }; if case .unmap = s { return true }; return false }
    func isWrite(_ s: FreeBSDRestoreStep) -> Bool { if case .writeMemory = s { return true }; return false }
    func isClone(_ s: FreeBSDRestoreStep) -> Bool { if case .clone = s { return true }; return false }
    func isRegs(_ s: FreeBSDRestoreStep) -> Bool { if case .setRegisters = s { return true }; return false }
    func isThreadState(_ s: FreeBSDRestoreStep) -> Bool {
        switch s { case .setTidAddress, .setRobustList, .setSignalMask, .setAltStack: return true; default: return false }
    }

    #expect(steps.first == .execStub(layout: try FreeBSDLayoutPlan.fromLinux(p.layout)))
    #expect(steps.last == .detach)
    #expect(steps[1] == .setRlimit(ResourceLimit(resource: 3, soft: 8 << 20, hard: .max)), "RLIMIT_STACK before anything else")
    #expect(last(isRlimit) < first(isMap))
    #expect(last(isMap) < first(isWrite))
    #expect(last(isWrite) < first(isClone))
    #expect(steps.filter(isClone) == [.clone(thread: 1)])
    #expect(last(isClone) < first(isRegs))
    #expect(last(isRegs) < first(isThreadState))
    // Every injected call is one PT_SC_REMOTE may carry to a linux64 target.
    for s in steps {
        guard let call = s.injected else { continue }
        #expect(RemoteSyscall.check(number: call.rawValue, argumentCount: 6, abi: .linux64,
                                    tableSize: RemoteSyscall.linux64TableSizeFloor) == nil, "\(s)")
    }
}

@Test func freeBSDRestoreWritesFreeBSDSelectorsAndFollowsTheMovedStack() throws {
    let p = freeBSDCandidate()
    let placement = try Placement.planPlacement(process: p, target: .freebsdLinuxulator())
    let steps = try FreeBSDRestorePlan.plan(process: p, placement: placement)
    let regs = steps.compactMap { s -> FreeBSDReg? in if case .setRegisters(_, let r) = s { return r }; return nil }
    #expect(regs.count == 2)
    for r in regs { #expect((r.cs, r.ss, r.ds, r.es, r.fs, r.gs) == (0x43, 0x3b, 0x3b, 0x3b, 0x13, 0x1b)) }
    // The main thread's stack moved under the Linuxulator's stack top.
    let move = try #require(placement.moves.first)
    #expect(regs[0].rsp == 0x7fff_ffff_e000 - move.old.start + move.newStart)
    #expect(regs[0].rip == 0x55_5555_4100 && regs[1].rsp == 0x7f00_0100_0000)
    #expect(steps.contains(.setBases(thread: 0, fs: 0x7f00_0000_0740, gs: 0)))
    #expect(steps.contains(.setRobustList(thread: 1, head: 0x7f00_0100_09a0, length: 24)))
    #expect(steps.contains(.setSignalMask(thread: 0, 0x4000)))
    // The stack is mapped at its new place, growing down.
    #expect(steps.contains(.map(move.new, prot: 3, flags: 0x02 | 0x10 | 0x20 | 0x100)))
}

@Test func freeBSDRestoreRefusesSharedMappingsByName() throws {
    var p = freeBSDCandidate()
    p.mappings.append(Mapping(start: 0x7f00_2000_0000, end: 0x7f00_2000_1000, protection: [.read, .write], kind: .sharedFile,
                              file: FileIdentity(path: "/var/db/shared.map", size: 4096, mtimeNs: 0)))
    let placement = try Placement.planPlacement(process: p, target: .freebsdLinuxulator())
    #expect { try FreeBSDRestorePlan.plan(process: p, placement: placement) } throws: { e in
        "\(e)".contains("/var/db/shared.map") && "\(e)".contains("shared mapping")
    }
}
