import Testing
import FerryImage
@testable import FerryCore

@Test func freeBSDLinuxulatorConstants() {
    let t = TargetLayout.freebsdLinuxulator()
    #expect((t.userLimit, t.stackTop, t.vdsoBase, t.vdsoSize) == (0x8000_0000_0000, 0x7fff_ffff_d000, 0x7fff_ffff_e000, 0x2000))
    #expect(!t.randomized && !t.vdsoMovable)
    let lower = TargetLayout.freebsdLinuxulator(lowerSharedPage: true)
    #expect((lower.userLimit, lower.stackTop, lower.vdsoBase) == (0x7fff_ffff_f000, 0x7fff_ffff_c000, 0x7fff_ffff_d000))
}

let exe = FileIdentity(path: "/usr/bin/app", size: 100_000, mtimeNs: 0)

/// A Linux process as checkpointed with ASLR off: the stack ends at TASK_SIZE.
func linuxProcess(stackEnd: UInt64 = 0x7fff_ffff_f000, vdsoAt: UInt64 = 0x7fff_f7fc_0000) -> ProcessImage {
    var maps = [
        Mapping(start: 0x55_5555_4000, end: 0x55_5555_6000, protection: [.read, .exec], kind: .privateFile, file: exe),
        Mapping(start: 0x55_5555_6000, end: 0x55_5555_7000, protection: [.read, .write], kind: .privateFile, fileOffset: 0x2000, file: exe),
        Mapping(start: 0x55_5555_9000, end: 0x55_5557_a000, protection: [.read, .write], kind: .heap, name: "[heap]"),
    ]
    for a in TargetLayout.linuxVDSOBlock(at: vdsoAt) {
        maps.append(Mapping(start: a.start, end: a.end, protection: a.isCode ? [.read, .exec] : [.read],
                            kind: a.isCode ? .vdso : .vvar, name: a.name))
    }
    maps.append(Mapping(start: stackEnd - 0x21000, end: stackEnd, protection: [.read, .write], kind: .stack,
                        flags: .growsDown, name: "[stack]"))
    maps.append(Mapping(start: 0xffff_ffff_ff60_0000, end: 0xffff_ffff_ff60_1000, protection: [.exec], kind: .vsyscall, name: "[vsyscall]"))
    return ProcessImage(pid: 100, mappings: maps)
}

@Test func linuxToFreeBSDMovesTheStackAndProxiesTheVDSO() throws {
    let p = linuxProcess()
    let plan = try Placement.planPlacement(process: p, target: .freebsdLinuxulator())
    let actions = plan.mappings.map(\.action)
    #expect(actions == [.keep, .keep, .keep,
                        .drop(reason: "old vDSO data is unused once every entry jumps to the target's vDSO"),
                        .drop(reason: "old vDSO data is unused once every entry jumps to the target's vDSO"),
                        .vdso(.proxyImageCode),
                        .move(to: 0x7fff_ffff_d000 - 0x21000),
                        .drop(reason: "the vsyscall page is provided by the target kernel, if at all")])
    #expect(plan.vdso == .proxy)
    #expect(plan.moves == [AreaMove(name: "[stack]", old: AddressRange(0x7fff_fffd_e000, 0x7fff_ffff_f000), newStart: 0x7fff_fffd_c000)])
    #expect(plan.targetVDSOAreas == TargetLayout.freebsdLinuxulator().vdsoAreas)
}

@Test func aRandomisedLinuxStackStaysUnlessAskedToMove() throws {
    let p = linuxProcess(stackEnd: 0x7ffd_4000_0000)
    let keep = try Placement.planPlacement(process: p, target: .freebsdLinuxulator())
    #expect(keep.moves.isEmpty)
    let moved = try Placement.planPlacement(process: p, target: .freebsdLinuxulator(), stackPolicy: .moveToTargetTop)
    #expect(moved.moves.map(\.newStart) == [0x7fff_ffff_d000 - 0x21000])
}

@Test func codeInTheReservedAreaIsAnError() {
    var p = linuxProcess(stackEnd: 0x7ffd_4000_0000)
    p.mappings.append(Mapping(start: 0x7fff_ffff_d000, end: 0x7fff_ffff_e000, protection: [.read, .exec], kind: .privateFile,
                              file: FileIdentity(path: "/lib/libjit.so", size: 1, mtimeNs: 0)))
    #expect(throws: PlacementError(description: "cannot restore /lib/libjit.so at 0x7fffffffd000–0x7fffffffe000 on freebsd-linuxulator: it overlaps the target's shared page at 0x7fffffffd000–0x7fffffffe000, and only the stack can be moved")) {
        try Placement.planPlacement(process: p, target: .freebsdLinuxulator())
    }
}

@Test func freeBSDImageOnLinuxCannotKeepItsVDSO() {
    var p = ProcessImage(pid: 1)
    p.mappings = [Mapping(start: 0x7fff_ffff_e000, end: 0x8000_0000_0000, protection: [.read, .exec], kind: .vdso, name: "[vdso]")]
    let target = TargetLayout.linux(stackTop: 0x7ffe_0000_0000, vdsoAreas: linuxBlock)
    #expect(throws: PlacementError.self) { try Placement.planPlacement(process: p, target: target) }
}

@Test func freeBSDToFreeBSDReusesTheVDSO() throws {
    var p = ProcessImage(pid: 1)
    p.mappings = [Mapping(start: 0x7fff_ffff_e000, end: 0x8000_0000_0000, protection: [.read, .exec], kind: .vdso, name: "[vdso]"),
                  Mapping(start: 0x7fff_fffd_c000, end: 0x7fff_ffff_d000, protection: [.read, .write], kind: .stack, name: "[stack]")]
    let plan = try Placement.planPlacement(process: p, target: .freebsdLinuxulator())
    #expect(plan.mappings.map(\.action) == [.vdso(.reuseTarget), .keep])
    #expect(plan.vdso == .moveTogether(to: [0x7fff_ffff_e000]))
}

@Test func linuxToLinuxMovesTheTargetBlockOntoTheImages() throws {
    let p = linuxProcess(stackEnd: 0x7ffd_4000_0000, vdsoAt: 0x7ffd_4001_0000)
    let target = TargetLayout.linux(stackTop: 0x7ffe_0000_0000, vdsoAreas: linuxBlock)
    let plan = try Placement.planPlacement(process: p, target: target)
    #expect(plan.moves.isEmpty)
    #expect(plan.mappings[3...5].map(\.action) == [.vdso(.moveTargetHere), .vdso(.moveTargetHere), .vdso(.moveTargetHere)])
    #expect(plan.targetVDSOAreas == TargetLayout.linuxVDSOBlock(at: 0x7ffd_4001_0000))
}

@Test func aTargetVDSOInTheWayIsMovedUnderAProxy() throws {
    var p = linuxProcess(stackEnd: 0x7ffd_4000_0000)
    p.mappings.removeAll { $0.kind == .vvar }          // an image with another vDSO layout
    p.mappings.append(Mapping(start: 0x7fff_f7f0_0000, end: 0x7fff_f800_0000, protection: [.read, .write], kind: .anonymous))
    let target = TargetLayout.linux(stackTop: 0x7ffe_0000_0000, vdsoAreas: linuxBlock)
    let plan = try Placement.planPlacement(process: p, target: target)
    #expect(plan.vdso == .proxy)
    let span = AddressRange(plan.targetVDSOAreas[0].start, plan.targetVDSOAreas[2].end)
    #expect(span.size == 0x8000)
    #expect(span.end <= 0x7ffe_0000_0000)
    #expect(!plan.mappings.compactMap(\.destination).contains { $0.overlaps(span) })
}
