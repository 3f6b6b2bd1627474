import Testing
import FerryImage
@testable import FerryCore

private let page: UInt64 = 4096
private let segA = SysVSegment(id: 5, key: 0x5f00_1234, mode: 0o640, uid: 1000, gid: 1000, cuid: 1000, cgid: 1000, size: 5000, destroyed: false)
private let segB = SysVSegment(id: 6, key: 0, mode: 0o600, uid: 0, gid: 0, cuid: 0, cgid: 0, size: 3 * page, destroyed: true)

private func attach(_ s: SysVSegment, _ start: UInt64, _ pages: UInt64, offset: UInt64 = 0, prot: Protection = [.read, .write],
                    writable: Bool = true) -> Mapping {
    Mapping(start: start, end: start + pages * page, protection: prot, kind: .sharedAnonymous,
            flags: writable ? [.shared, .mayWrite] : [.shared], fileOffset: offset, name: "/SYSV00000000 (deleted)", sysv: s)
}

@Suite struct SysVShmPlanTests {
    /// A segment attached by a parent, its child (twice, once read-only) and another split by mprotect:
    /// each segment once, each attach once with its base and SHM_RDONLY.
    @Test func segmentsOnceAttachesByBase() throws {
        let parent = ProcessImage(pid: 10, mappings: [attach(segA, 0x10000, 2), attach(segB, 0x20000, 3)])
        let child = ProcessImage(pid: 11, ppid: 10, mappings: [
            attach(segA, 0x10000, 2), attach(segB, 0x20000, 1), attach(segB, 0x21000, 1, offset: page, prot: [.read]),
            attach(segB, 0x22000, 1, offset: 2 * page), attach(segA, 0x30000, 2, prot: [.read], writable: false),
        ])
        #expect(try SysVShmPlan.segments([parent, child]) == [segA, segB])
        let a = try SysVShmPlan.attaches(child)
        #expect(a.map(\.base) == [0x10000, 0x20000, 0x30000])
        #expect(a.map(\.readOnly) == [false, false, true])
        #expect(a[1].mappings.count == 3 && a[1].end == 0x23000)
        #expect(a[0].end == 0x12000, "5000 bytes attach two pages")
    }

    /// A segment partly unmapped (its first or last page gone, or a hole) is refused, named.
    @Test func partialAttachesAreRefused() {
        let p = SysVShmPlan.Piece.init
        #expect(SysVShmPlan.partialPiece([p(0x10000, 0x12000, 0)], size: 5000) == nil)
        #expect(SysVShmPlan.partialPiece([p(0x10000, 0x11000, 0)], size: 5000) == p(0x10000, 0x11000, 0))
        #expect(SysVShmPlan.partialPiece([p(0x11000, 0x12000, page)], size: 5000) == p(0x11000, 0x12000, page))
        #expect(SysVShmPlan.partialPiece([p(0x10000, 0x11000, 0), p(0x12000, 0x13000, 2 * page)], size: 3 * page) != nil)
        #expect(SysVShmPlan.partialPiece([p(0x12000, 0x13000, 2 * page), p(0x10000, 0x12000, 0)], size: 3 * page) == nil)
        let torn = ProcessImage(pid: 12, mappings: [attach(segB, 0x20000, 2)])
        #expect(throws: SharedMemoryPlan.PlanError.self) { try SysVShmPlan.attaches(torn) }
    }

    /// Records that disagree, or of bad extent, are refused at restore with one line.
    @Test func inconsistentOrOutOfBoundsSegmentsAreRefused() {
        var other = segA
        other.mode = 0o600
        let twoViews = [ProcessImage(pid: 10, mappings: [attach(segA, 0x10000, 2)]), ProcessImage(pid: 11, mappings: [attach(other, 0x10000, 2)])]
        #expect(throws: SharedMemoryPlan.PlanError.self) { try SysVShmPlan.segments(twoViews) }
        var huge = segA
        huge.size = UInt64.max
        #expect(throws: SharedMemoryPlan.PlanError.self) { try SysVShmPlan.segments([ProcessImage(pid: 10, mappings: [attach(huge, 0x10000, 2)])]) }
        var negative = segA
        negative.id = -1
        #expect(throws: SharedMemoryPlan.PlanError.self) { try SysVShmPlan.segments([ProcessImage(pid: 10, mappings: [attach(negative, 0x10000, 2)])]) }
        var asObject = attach(segA, 0x10000, 2)
        asObject.sharedObject = 9
        #expect(throws: SharedMemoryPlan.PlanError.self) { try SysVShmPlan.segments([ProcessImage(pid: 10, mappings: [asObject])]) }
        // An attach at an offset past its start address cannot be placed.
        #expect(throws: SharedMemoryPlan.PlanError.self) { try SysVShmPlan.attaches(ProcessImage(pid: 10, mappings: [attach(segB, 0x1000, 1, offset: 2 * page)])) }
    }

    /// A segment already at the image's id is the source's own (adopted) only when its key, size and
    /// removal match and no process outside the image attaches it.
    @Test func anExistingSegmentIsAdoptedOnlyWhenItIsTheSourcesOwn() {
        #expect(SysVShmPlan.existing(segA, key: segA.key, size: 5000, destroyed: false, attaches: 0, attachesByImage: 0) == .adopt)
        #expect(SysVShmPlan.existing(segA, key: segA.key, size: 5000, destroyed: false, attaches: 3, attachesByImage: 3) == .adopt)
        guard case .refuse(let busy) = SysVShmPlan.existing(segA, key: segA.key, size: 5000, destroyed: false, attaches: 2, attachesByImage: 0) else {
            Issue.record("a segment attached outside the image was adopted"); return
        }
        #expect(busy.contains("shmid 5 (key 0x5f001234) exists on this host and 2 process(es) outside the image attach it"), "\(busy)")
        guard case .refuse(let taken) = SysVShmPlan.existing(segA, key: 7, size: 5000, destroyed: false, attaches: 0, attachesByImage: 0) else {
            Issue.record("another key's segment was adopted"); return
        }
        #expect(taken.hasPrefix("cannot restore: System V shared memory shmid 5 (key 0x5f001234) is taken on this host by another segment (key 0x00000007"), "\(taken)")
        #expect(SysVShmPlan.existing(segB, key: 0, size: 3 * page, destroyed: false, attaches: 0, attachesByImage: 0) != .adopt)
    }

    /// Each segment's pages are stored once, through its first mapping, as for other shared objects.
    @Test func pagesAreStoredOnce() {
        let parent = ProcessImage(pid: 10, mappings: [attach(segA, 0x10000, 2)])
        let child = ProcessImage(pid: 11, mappings: [attach(segA, 0x10000, 2), attach(segA, 0x30000, 2, prot: [.read], writable: false)])
        let d = SharedMemoryPlan.dumped([parent, child])
        #expect(d[0] == parent.mappings && d[1].isEmpty)
    }
}
