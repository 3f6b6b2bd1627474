import Testing
import FerryImage
@testable import FerryCore

private func anon(_ start: UInt64, _ pages: UInt64, _ prot: Protection = [.read, .write], kind: MappingKind = .anonymous) -> Mapping {
    Mapping(start: start, end: start + pages * 4096, protection: prot, kind: kind)
}

private let P = CopyOnWritePlan.present, page: UInt64 = 4096

@Suite struct CopyOnWritePlanTests {
    @Test func samePresentAnonymousFrameIsShared() {
        let child: [UInt64] = [
            P | 100, P | 101,                   // shared, one run
            P | 102,                            // the parent has another frame
            0,                                  // not present
            P | CopyOnWritePlan.fileOrShared | 104, // a file's page-cache page: not COW
            P | CopyOnWritePlan.exclusive | 105, // mapped once only
            P,                                  // PFN hidden (not root)
            P | 107,                            // shared again
        ]
        let parent: [UInt64] = [P | 100, P | 101, P | 902, P | 103, P | CopyOnWritePlan.fileOrShared | 104, P | 105, P, P | 107]
        let got = CopyOnWritePlan.sharedPages(start: 0x10000, child: child, parent: parent)
        #expect(got == [PageRange(start: 0x10000, end: 0x10000 + 2 * page), PageRange(start: 0x10000 + 7 * page, end: 0x10000 + 8 * page)])
    }

    @Test func swappedOrAbsentInTheParentIsNotShared() {
        let child: [UInt64] = [P | 5, P | 6]
        let parent: [UInt64] = [CopyOnWritePlan.swapped | 5, 6]
        #expect(CopyOnWritePlan.sharedPages(start: 0, child: child, parent: parent).isEmpty)
    }

    @Test func onlyIdenticalPrivateMappingsAreInheritable() {
        var file = Mapping(start: 0x50000, end: 0x52000, protection: [.read, .write], kind: .privateFile, fileOffset: 0x1000,
                           file: FileIdentity(path: "/lib/x.so", size: 10, mtimeNs: 1))
        var moved = file
        moved.fileOffset = 0x2000
        let parent = [anon(0x10000, 4), anon(0x20000, 4), anon(0x30000, 2, [.read]), file,
                      Mapping(start: 0x60000, end: 0x61000, protection: [.read, .write], kind: .sharedAnonymous, flags: [.shared], sharedObject: 3)]
        let child = [anon(0x10000, 4),          // identical
                     anon(0x20000, 3),          // smaller in the child
                     anon(0x30000, 2),          // other protection
                     moved,                     // other offset
                     parent[4]]                 // shared memory is not COW
        #expect(CopyOnWritePlan.inheritable(child: child, parent: parent) == [anon(0x10000, 4)])
        file.flags = [.wipeOnFork]
        #expect(CopyOnWritePlan.inheritable(child: [file], parent: [file]).isEmpty)
        #expect(CopyOnWritePlan.inheritable(child: [parent[3]], parent: [parent[3]]) == [parent[3]])
    }

    @Test func keptMappingsHoldTheInheritedPagesOrRefuse() throws {
        let parent = ProcessImage(pid: 10, mappings: [anon(0x10000, 4), anon(0x20000, 4), anon(0x30000, 4)])
        var child = ProcessImage(pid: 11, ppid: 10, mappings: [anon(0x10000, 4), anon(0x20000, 4), anon(0x30000, 2)])
        child.inheritedPages = [PageRange(start: 0x10000, end: 0x11000), PageRange(start: 0x12000, end: 0x14000),
                                PageRange(start: 0x21000, end: 0x22000)]
        #expect(try CopyOnWritePlan.keptMappings(child: child, parent: parent) == [anon(0x10000, 4), anon(0x20000, 4)])
        child.inheritedPages = [PageRange(start: 0x30000, end: 0x31000)] // the parent's mapping there is larger
        #expect(throws: CopyOnWriteRefusal(child: 11, parent: 10, range: PageRange(start: 0x30000, end: 0x31000))) {
            try CopyOnWritePlan.keptMappings(child: child, parent: parent)
        }
        child.inheritedPages = [PageRange(start: 0x1f000, end: 0x21000)] // across two mappings
        #expect(throws: CopyOnWriteRefusal.self) { try CopyOnWritePlan.keptMappings(child: child, parent: parent) }
        child.inheritedPages = nil
        #expect(try CopyOnWritePlan.keptMappings(child: child, parent: parent).isEmpty)
    }

    @Test func notInheritedIsTheRestOfTheMapping() {
        let m = anon(0x10000, 8)
        let inherited = [PageRange(start: 0x10000, end: 0x12000), PageRange(start: 0x14000, end: 0x15000), PageRange(start: 0x40000, end: 0x41000)]
        #expect(CopyOnWritePlan.notInherited(in: m, inherited: inherited)
                == [PageRange(start: 0x12000, end: 0x14000), PageRange(start: 0x15000, end: 0x18000)])
        #expect(CopyOnWritePlan.notInherited(in: m, inherited: []) == [PageRange(start: 0x10000, end: 0x18000)])
        #expect(CopyOnWritePlan.notInherited(in: m, inherited: [PageRange(start: 0, end: 0x20000)]).isEmpty)
    }

    @Test func containsAndMerged() {
        let r = CopyOnWritePlan.merged([PageRange(start: 0x3000, end: 0x4000), PageRange(start: 0x1000, end: 0x2000), PageRange(start: 0x2000, end: 0x3000),
                                        PageRange(start: 0x8000, end: 0x9000)])
        #expect(r == [PageRange(start: 0x1000, end: 0x4000), PageRange(start: 0x8000, end: 0x9000)])
        #expect(CopyOnWritePlan.contains(r, 0x1000))
        #expect(CopyOnWritePlan.contains(r, 0x3fff))
        #expect(!CopyOnWritePlan.contains(r, 0x4000))
        #expect(!CopyOnWritePlan.contains(r, 0))
        #expect(CopyOnWritePlan.contains(r, 0x8000))
        #expect(!CopyOnWritePlan.contains(r, 0x9000))
        #expect(!CopyOnWritePlan.contains([], 0x1000))
    }

    @Test func inheritorsAndTheirDescendantsAreForkedLate() {
        var b = ProcessImage(pid: 3, ppid: 1)
        b.inheritedPages = [PageRange(start: 0x1000, end: 0x2000)]
        let tree = [ProcessImage(pid: 1), ProcessImage(pid: 2, ppid: 1), b, ProcessImage(pid: 4, ppid: 3), ProcessImage(pid: 5, ppid: 4),
                    ProcessImage(pid: 6, ppid: 2)]
        #expect(CopyOnWritePlan.lateForked(tree) == [3, 4, 5])
        #expect(CopyOnWritePlan.lateForked([ProcessImage(pid: 1), ProcessImage(pid: 2, ppid: 1)]).isEmpty)
    }
}
