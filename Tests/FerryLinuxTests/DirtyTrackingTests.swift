import FerryLinux
import Foundation
import Testing
import FerryTestSupport

/// Pre-copy dirty tracking on a live process: a userfaultfd injected into it,
/// PAGEMAP_SCAN from outside (root).
@Suite(.serialized, .enabled(if: getuid() == 0, "ptrace and /proc/PID/pagemap of another process need root"),
       .enabled(if: HostFeatures.dirtyTracking, "\(HostFeatures.noDirtyTracking)"))
struct DirtyTrackingTests {
    @Test("userfaultfd: the pages a running process writes are found, scan after scan, and it passes its own check afterwards",
          .enabled(if: HostFeatures.uffdDirtyTracking, "userfaultfd dirty tracking needs PAGEMAP_SCAN and WP_ASYNC (Linux 6.7+); this is \(HostFeatures.kernelDescription)"))
    func tracksWrites() throws {
        let (p, ctl) = try startAnonPattern()
        defer { p.kill(); p.wait(); try? FileManager.default.removeItem(atPath: ctl) }
        let tracker = try DirtyTracker(pid: p.pid)
        func pages(_ r: [(start: UInt64, end: UInt64)]) -> Int { r.reduce(0) { $0 + Int(($1.end - $1.start) / 4096) } }
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(p.pid)/fd")
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p.pid)/fd/\(tracker.remoteFD)")
        #expect(link.contains("userfaultfd"), "\(fds) \(link)")
        Thread.sleep(forTimeInterval: 1)
        let first = pages(try tracker.scan())
        // 8 MiB/s is 2048 pages a second, plus the counter pages and the generation table.
        #expect(first > 1000 && first < 8000, "pages written in 1 s: \(first)")
        Thread.sleep(forTimeInterval: 0.25)
        let second = pages(try tracker.scan())
        #expect(second > 100 && second < first, "pages written in 0.25 s: \(second)")
        try tracker.stop()
        #expect(!FileManager.default.fileExists(atPath: "/proc/\(p.pid)/fd/\(tracker.remoteFD)"))
        #expect(p.isRunning)
        _ = FileManager.default.createFile(atPath: ctl + "/stop", contents: nil)
        try waitFor(ctl + "/result")
        #expect(try String(contentsOfFile: ctl + "/result", encoding: .utf8) == "PASS\n")
    }
}

extension DirtyTrackingTests {
    @Test("the shared zero page's frame is found (soft-dirty's final scan counts pages mapping it as zero, not as unchanged)")
    func zeroPageFound() {
        let (small, huge) = DirtyTracker.zeroPFNs
        #expect(small != 0, "no PFN for the zero page: /proc/self/pagemap shows no PFNs (not root?)")
        #expect(huge != small)
    }

    @Test("soft-dirty: a scan finds the pages written since the last one and none while frozen; nothing is injected and the process passes",
          .enabled(if: HostFeatures.softDirty, "soft-dirty bits do not work on \(HostFeatures.kernelDescription) (CONFIG_MEM_SOFT_DIRTY off?): `ferry check` says why"))
    func softDirtyTracksWrites() throws {
        let (p, ctl) = try startAnonPattern()
        defer { p.kill(); p.wait(); try? FileManager.default.removeItem(atPath: ctl) }
        let fdsBefore = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(p.pid)/fd").count
        let tracker = try DirtyTracker(pid: p.pid, method: .softDirty)
        #expect(tracker.method == .softDirty)
        #expect(tracker.remoteFD == -1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(p.pid)/fd").count == fdsBefore, "soft-dirty injects nothing")
        func pages(_ r: [(start: UInt64, end: UInt64)]) -> Int { r.reduce(0) { $0 + Int(($1.end - $1.start) / 4096) } }
        let total = pages(tracker.ranges)
        Thread.sleep(forTimeInterval: 1)
        let first = pages(try tracker.scan())
        // 8 MiB/s is 2048 pages a second, plus the counter pages and the generation table; far below all 16 Ki pages.
        #expect(first > 1000 && first < total / 2, "pages written in 1 s: \(first) of \(total)")
        Thread.sleep(forTimeInterval: 0.25)
        let second = pages(try tracker.scan())
        #expect(second > 100 && second < first, "pages written in 0.25 s: \(second)")
        // Frozen, nothing is written: a scan right after a scan finds (almost) nothing.
        let f = Freezer()
        try f.freeze(process: p.pid)
        _ = try tracker.scan(frozen: true)
        let still = pages(try tracker.scan(frozen: true))
        f.thaw()
        #expect(still == 0, "pages written while frozen: \(still)")
        try tracker.stop()
        #expect(p.isRunning)
        _ = FileManager.default.createFile(atPath: ctl + "/stop", contents: nil)
        try waitFor(ctl + "/result")
        #expect(try String(contentsOfFile: ctl + "/result", encoding: .utf8) == "PASS\n")
    }
}

/// `anon_pattern` with 64 MiB, 8 MiB/s of pages rewritten, once ready; its control directory.
private func startAnonPattern() throws -> (Child, String) {
    try WorkloadTests.buildWorkloads()
    let ctl = try FileManager.default.url(for: .itemReplacementDirectory, in: .userDomainMask,
                                          appropriateFor: URL(fileURLWithPath: "/tmp"), create: true).path
    let p = try Child([WorkloadTests.out + "/wl_anon_pattern", ctl, "64", "8"], stdout: .null, stderr: .null)
    do { try waitFor(ctl + "/ready") } catch { p.kill(); p.wait(); throw error }
    return (p, ctl)
}

private func waitFor(_ path: String, seconds: Double = 15) throws {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while !FileManager.default.fileExists(atPath: path) {
        if Date() > deadline { throw DirtyTrackingTimeout(path: path) }
        Thread.sleep(forTimeInterval: 0.05)
    }
}

private struct DirtyTrackingTimeout: Error { var path: String }
