import Testing
@testable import FerryLinux

/// The bookkeeping behind filling memory with UFFDIO_COPY: which pages are
/// already there (pre-copy resends them; a later ZERO must clear them).
struct PageFillTests {
    typealias S = PopulatedPages.Segment
    static let a: UInt64 = 0x10000, b: UInt64 = 0x100000

    @Test func rangesAreFoundWhole() {
        let p = PopulatedPages(ranges: [(Self.b, Self.b + 0x10000), (Self.a, Self.a + 0x4000)])
        #expect(p.range(of: Self.a, pages: 4) == 0)
        #expect(p.range(of: Self.a + 0x1000, pages: 4) == nil)  // runs past the end
        #expect(p.range(of: Self.b + 0xf000, pages: 1) == 1)
        #expect(p.range(of: Self.a + 0x4000, pages: 1) == nil)  // the gap
        #expect(p.range(of: 0, pages: 1) == nil)
    }

    @Test func firstWriteIsOneMissingSegment() {
        var p = PopulatedPages(ranges: [(Self.a, Self.a + 0x100000)])
        #expect(p.split(address: Self.a + 0x2000, pages: 3, in: 0, mark: true) == [S(address: Self.a + 0x2000, pages: 3, populated: false)])
    }

    @Test func resendsSplitAtTheBoundaries() {
        var p = PopulatedPages(ranges: [(Self.a, Self.a + 0x100000)])
        _ = p.split(address: Self.a + 0x2000, pages: 2, in: 0, mark: true)     // pages 2, 3
        #expect(p.split(address: Self.a, pages: 6, in: 0, mark: true) == [
            S(address: Self.a, pages: 2, populated: false),
            S(address: Self.a + 0x2000, pages: 2, populated: true),
            S(address: Self.a + 0x4000, pages: 2, populated: false),
        ])
        #expect(p.split(address: Self.a, pages: 6, in: 0, mark: true) == [S(address: Self.a, pages: 6, populated: true)])
    }

    @Test func zeroRunsDoNotMark() {
        var p = PopulatedPages(ranges: [(Self.a, Self.a + 0x100000)])
        #expect(p.split(address: Self.a, pages: 1, in: 0, mark: false) == [S(address: Self.a, pages: 1, populated: false)])
        #expect(p.split(address: Self.a, pages: 1, in: 0, mark: true) == [S(address: Self.a, pages: 1, populated: false)])
    }

    @Test func bitsCrossWordBoundaries() {
        var p = PopulatedPages(ranges: [(Self.a, Self.a + 200 * 0x1000)])
        _ = p.split(address: Self.a + 60 * 0x1000, pages: 10, in: 0, mark: true)  // pages 60…69
        #expect(p.split(address: Self.a + 50 * 0x1000, pages: 150, in: 0, mark: false) == [
            S(address: Self.a + 50 * 0x1000, pages: 10, populated: false),
            S(address: Self.a + 60 * 0x1000, pages: 10, populated: true),
            S(address: Self.a + 70 * 0x1000, pages: 130, populated: false),
        ])
    }

    /// A mapped image's runs are claimed whole: only if no page of theirs was filled, and then all are marked.
    @Test func claimsOnlyUntouchedRuns() {
        var p = PopulatedPages(ranges: [(Self.a, Self.a + 200 * 0x1000)])
        let first = p.claimUntouched(address: Self.a + 60 * 0x1000, pages: 10, in: 0)
        let overlapping = p.claimUntouched(address: Self.a + 69 * 0x1000, pages: 2, in: 0)   // page 69 is taken
        #expect(first && !overlapping)
        #expect(p.split(address: Self.a + 70 * 0x1000, pages: 1, in: 0, mark: false) == [S(address: Self.a + 70 * 0x1000, pages: 1, populated: false)])
        let before = p.claimUntouched(address: Self.a + 50 * 0x1000, pages: 10, in: 0)
        #expect(before)
        #expect(p.split(address: Self.a + 50 * 0x1000, pages: 21, in: 0, mark: false) == [
            S(address: Self.a + 50 * 0x1000, pages: 20, populated: true),
            S(address: Self.a + 70 * 0x1000, pages: 1, populated: false),
        ])
    }

    /// The pre-copy source's map of what the target holds: runs marked whole, pages asked one by one.
    @Test func marksRunsAndAnswersPages() {
        var p = PopulatedPages(ranges: [(Self.b, Self.b + 0x10000), (Self.a, Self.a + 100 * 0x1000)])
        p.mark(address: Self.a + 62 * 0x1000, pages: 4)     // pages 62…65, across a word
        p.mark(address: Self.a + 99 * 0x1000, pages: 2)     // runs past the range: ignored
        p.mark(address: 0x1000, pages: 1)                   // outside every range: ignored
        #expect((0..<100).filter { p.contains(Self.a + UInt64($0) * 0x1000) } == [62, 63, 64, 65])
        #expect(!p.contains(Self.b) && !p.contains(0x1000))
    }
}
