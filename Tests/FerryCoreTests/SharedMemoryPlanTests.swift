import Testing
import FerryImage
@testable import FerryCore

private func shared(_ start: UInt64, _ pages: UInt64, object: UInt64?, offset: UInt64 = 0, kind: MappingKind = .sharedAnonymous) -> Mapping {
    Mapping(start: start, end: start + pages * 4096, protection: [.read, .write], kind: kind, flags: [.shared],
            fileOffset: offset, name: "/dev/zero (deleted)", sharedObject: object)
}

@Suite struct SharedMemoryPlanTests {
    @Test func oneObjectPerIdSizedByItsFurthestMapping() throws {
        // Parent maps pages 0-3 of object 7; the child maps pages 2-5 (another offset) and object 7 twice;
        // object 9 only in the child. Mappings without an object are not planned.
        let parent = ProcessImage(pid: 10, mappings: [shared(0x10000, 4, object: 7), shared(0x40000, 1, object: nil)])
        let child = ProcessImage(pid: 11, ppid: 10, mappings: [
            shared(0x20000, 4, object: 7, offset: 2 * 4096), shared(0x30000, 1, object: 7), shared(0x50000, 2, object: 9),
        ])
        let plan = try SharedMemoryPlan.make([parent, child])
        let page: UInt64 = 4096
        let want: [SharedMemoryPlan.Object] = [.init(id: 7, size: 6 * page, slot: 0), .init(id: 9, size: 2 * page, slot: 1)]
        #expect(plan.objects == want)
        #expect(plan.object(9)?.slot == 1)
        #expect(plan.object(8) == nil)
    }

    /// Files whose contents the image holds are objects first; a memfd's shared mappings map that object
    /// (a mapping naming a deleted file's contents is refused), and their pages are not dumped.
    @Test func fileContentsAreObjectsAndTheirMappingsAreNotDumped() throws {
        let c = FileContents(id: 7, kind: .memfd, name: "buf", mode: 0o600, bytes: [UInt8](repeating: 1, count: 5000))
        var m = shared(0x10000, 2, object: 7)
        m.memfd = MemfdIdentity(name: "buf", size: 5000, allowsSealing: true)
        let p = ProcessImage(pid: 10, mappings: [m, shared(0x40000, 1, object: 9)])
        let plan = try SharedMemoryPlan.make([p], contents: [c])
        #expect(plan.objects.map(\.id) == [7, 9])
        #expect(plan.objects[0].size == 5000 && plan.objects[0].contents == c)
        #expect(SharedMemoryPlan.dumped([p], carried: [7]) == [[p.mappings[1]]])
        var ghost = c
        ghost.kind = .deleted
        #expect(throws: SharedMemoryPlan.PlanError.self) { try SharedMemoryPlan.make([p], contents: [ghost]) }
        m.memfd?.name = "other"
        #expect(throws: SharedMemoryPlan.PlanError.self) { try SharedMemoryPlan.make([ProcessImage(pid: 10, mappings: [m])], contents: [c]) }
    }

    @Test func eachObjectPageIsDumpedOnce() {
        let page: UInt64 = 4096
        let privateMap = shared(0x90000, 2, object: nil, kind: .anonymous)
        // Parent: object 7 pages 0-3, then a private mapping. Child: object 7 pages 2-5 (dumps 4-5),
        // object 7 page 1 again (nothing left), object 7 pages 0-7 (dumps 6-7), object 9 pages 0-1 (all).
        let parent = ProcessImage(pid: 10, mappings: [shared(0x10000, 4, object: 7), privateMap])
        let child = ProcessImage(pid: 11, ppid: 10, mappings: [
            shared(0x20000, 4, object: 7, offset: 2 * page), shared(0x30000, 1, object: 7, offset: page),
            shared(0x40000, 8, object: 7), shared(0x50000, 2, object: 9),
        ])
        let d = SharedMemoryPlan.dumped([parent, child])
        #expect(d.count == 2)
        #expect(d[0] == parent.mappings)
        let ranges = d[1].map { [$0.start, $0.end, $0.fileOffset] }
        #expect(ranges == [[0x22000, 0x24000, 4 * page], [0x46000, 0x48000, 6 * page], [0x50000, 0x52000, 0]])
    }

    @Test func aMemfdKeepsItsNameAndSizeAndIsNotStoredPastItsEnd() throws {
        let page: UInt64 = 4096
        var a = shared(0x10000, 4, object: 3)
        a.memfd = MemfdIdentity(name: "buf", size: 2 * page + 100, allowsSealing: true)
        var b = a
        b.start = 0x20000; b.end = 0x21000
        let plan = try SharedMemoryPlan.make([ProcessImage(pid: 1, mappings: [a, b])])
        #expect(plan.objects.count == 1 && plan.objects[0].size == 2 * page + 100 && plan.objects[0].memfd?.name == "buf")
        // Pages 0-2 are stored (page 2 holds the last 100 bytes); page 3 lies past the end.
        let d = SharedMemoryPlan.dumped([ProcessImage(pid: 1, mappings: [a, b])])
        #expect(d[0].map { [$0.start, $0.end] } == [[0x10000, 0x13000]])
        // Two mappings that describe one object differently: refused.
        var c = b
        c.memfd = MemfdIdentity(name: "other", size: page, allowsSealing: false)
        #expect(throws: SharedMemoryPlan.PlanError.self) { try SharedMemoryPlan.make([ProcessImage(pid: 1, mappings: [a, c])]) }
    }

    @Test func noSharedObjectsNoPlan() throws {
        let p = ProcessImage(pid: 1, mappings: [shared(0x10000, 1, object: nil), shared(0x20000, 1, object: nil, kind: .anonymous)])
        #expect(try SharedMemoryPlan.make([p]).objects.isEmpty)
    }

    @Test("hostile mappings are refused with one line", arguments: [
        shared(0x10000, 1, object: 1, kind: .anonymous),                 // an object on private memory
        shared(0x10000, 1, object: 1, offset: UInt64.max - 100),          // offset + size overflows
        shared(0x10000, 1, object: 1, offset: 1 << 47),                   // beyond the size limit
        shared(0x10000, 1, object: 1, offset: 100),                       // unaligned offset
        Mapping(start: 0x20000, end: 0x10000, protection: [.read], kind: .sharedAnonymous, sharedObject: 1), // end before start
    ])
    func hostileMappingsAreRefused(_ m: Mapping) {
        #expect(throws: SharedMemoryPlan.PlanError.self) { try SharedMemoryPlan.make([ProcessImage(pid: 1, mappings: [m])]) }
        do {
            _ = try SharedMemoryPlan.make([ProcessImage(pid: 1, mappings: [m])])
        } catch {
            #expect(error.description.hasPrefix("cannot restore: process 1 ") && !error.description.contains("\n"))
        }
    }
}
