import Foundation
import Glibc
import Testing
import FerryImage
@testable import FerryLinux

/// The reader thread of a restore: order, back-pressure and failures on either side.
struct PrefetchTests {
    struct Boom: Error, Equatable { var at: Int }

    static func runs(_ n: Int, pages: Int = 3) -> [PageRun] {
        var out: [PageRun] = []
        for i in 0..<n {
            let data: [UInt8]? = i % 5 == 0 ? nil : [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: pages * 4096)
            out.append(PageRun(pid: 1, address: UInt64(i) * 0x10000, pageCount: pages, data: data))
        }
        return out
    }

    @Test func runsArriveInOrder() throws {
        let all = Self.runs(3000)  // ~29 MiB: more than the queue holds, so the reader waits
        var got: [PageRun] = []
        try Prefetch.run({ body in for r in all { try body(r) } }) { got.append($0) }
        #expect(got == all)
    }

    @Test func readerFailureComesAfterWhatPrecededIt() {
        let all = Self.runs(200)
        var got = 0
        #expect(throws: Boom(at: 150)) {
            try Prefetch.run({ body in
                for (i, r) in all.enumerated() {
                    if i == 150 { throw Boom(at: i) }
                    try body(r)
                }
            }) { _ in got += 1 }
        }
        #expect(got == 150)
    }

    @Test func fillFailureStopsTheReader() {
        let all = Self.runs(5000)
        let produced = Counter()
        #expect(throws: Boom(at: 10)) {
            try Prefetch.run({ body in for r in all { produced.add(); try body(r) } }) { r in
                if r.address == 10 * 0x10000 { throw Boom(at: 10) }
            }
        }
        // The reader stops at its next batch (not waited for): give it a moment.
        usleep(200_000)
        #expect(produced.value < 5000)
    }

    final class Counter: @unchecked Sendable {
        private var n = 0
        private let lock = NSLock()
        func add() { lock.withLock { n += 1 } }
        var value: Int { lock.withLock { n } }
    }
}
