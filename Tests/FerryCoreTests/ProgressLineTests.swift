import FerryCore
import Testing

struct ProgressLineTests {
    @Test func rateAndTimeLeftComeFromTheLastInterval() {
        let a = ProgressLine.sample(phase: "restore", bytes: 100 << 20, totalBytes: 1 << 30, seconds: 0.5, previous: nil)
        #expect(a.rate == Double(200 << 20))
        let b = ProgressLine.sample(phase: "restore", bytes: 300 << 20, totalBytes: 1 << 30, seconds: 1.5, previous: a)
        #expect(b.rate == Double(200 << 20))
        #expect(b.etaSeconds == Double((1 << 30) - (300 << 20)) / Double(200 << 20))
        #expect(ProgressLine.text(b) == "restore 300.0 of ~1024.0 MiB, 200.0 MiB/s, 3.6 s left")
        // No total: no time left; past the estimate: 0 left.
        let c = ProgressLine.sample(phase: "checkpoint", bytes: 5 << 20, totalBytes: nil, seconds: 1, previous: nil)
        #expect(c.etaSeconds == nil && ProgressLine.text(c) == "checkpoint 5.0 MiB, 5.0 MiB/s")
        let d = ProgressLine.sample(phase: "checkpoint", bytes: 9 << 20, totalBytes: 8 << 20, seconds: 2, previous: c)
        #expect(d.etaSeconds == 0)
        // The same instant twice keeps the last rate.
        #expect(ProgressLine.sample(phase: "x", bytes: 9 << 20, totalBytes: nil, seconds: 2, previous: d).rate == d.rate)
    }

    @Test func migrationRoundAndDirtySet() {
        var s = ProgressSample(phase: "pre-copy", bytes: 512 << 20, seconds: 1, rate: 0)
        s.round = 2
        s.dirtyBytes = 3 << 20
        #expect(ProgressLine.text(s) == "pre-copy 512.0 MiB, 0.0 MiB/s, round 2, dirty 3.0 MiB")
    }
}
