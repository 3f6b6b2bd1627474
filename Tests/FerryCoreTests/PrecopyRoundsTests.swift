import FerryCore
import Testing

@Suite struct PrecopyRoundsTests {
    func last(_ round: Int, _ pages: Int, _ previous: Int?, max: Int = 8, small: Int = 256) -> Bool {
        PrecopyRounds.isLast(round: round, pages: pages, previous: previous, maxRounds: max, smallDirtyPages: small)
    }

    @Test("the first round (everything) never ends pre-copy unless it is the only one allowed")
    func firstRound() {
        #expect(!last(1, 0, nil))
        #expect(!last(1, 100, nil))
        #expect(last(1, 100, nil, max: 1))
    }

    @Test("a small dirty set of the whole tree ends pre-copy")
    func small() {
        #expect(last(2, 256, nil))
        #expect(!last(2, 257, nil))
        #expect(last(3, 10, 5000))
    }

    @Test("a dirty set that stops shrinking by a tenth ends pre-copy; one that shrinks goes on")
    func notShrinking() {
        #expect(last(3, 9000, 10000))
        #expect(last(3, 12000, 10000))
        #expect(!last(3, 8999, 10000))
        #expect(!last(2, 100_000, nil))
    }

    @Test("the round limit ends pre-copy whatever the dirty set")
    func limit() {
        #expect(last(8, 1_000_000, 2_000_000))
        #expect(!last(7, 1_000_000, 2_000_000))
    }
}
