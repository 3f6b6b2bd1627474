import FerryCore
import Testing

struct AddressRangesTests {
    @Test func adjacentAndOverlappingRangesJoin() {
        let r = AddressRanges.coalesced([(0x5000, 0x6000), (0x1000, 0x2000), (0x2000, 0x3000), (0x2800, 0x4000), (0x7000, 0x7000)])
        #expect(r.map(\.start) == [0x1000, 0x5000])
        #expect(r.map(\.end) == [0x4000, 0x6000])
        #expect(AddressRanges.coalesced([]).isEmpty)
        // 20,000 alternating one-page mappings are one range.
        var pages: [(start: UInt64, end: UInt64)] = []
        for i in UInt64(0)..<20_000 {
            let start: UInt64 = 0x10_0000 + i * 4096
            pages.append((start, start + 4096))
        }
        #expect(AddressRanges.coalesced(pages).count == 1)
    }
}
