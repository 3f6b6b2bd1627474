import FerryLinux
import Foundation
import Testing
import FerryTestSupport

/// Pre-copy dirty tracking on a live process: a userfaultfd injected into it,
/// PAGEMAP_SCAN from outside (root).
@Suite(.serialized, .enabled(if: getuid() == 0, "ptrace and /proc/PID/pagemap of another process need root"),
       .enabled(if: HostFeatures.dirtyTracking, "dirty tracking needs PAGEMAP_SCAN and userfaultfd WP_ASYNC (Linux 6.7+); this is \(HostFeatures.kernelDescription)"))
struct DirtyTrackingTests {
    @Test("the pages a running process writes are found, scan after scan, and it passes its own check afterwards")
    func tracksWrites() throws {
        try WorkloadTests.buildWorkloads()
        let ctl = try FileManager.default.url(for: .itemReplacementDirectory, in: .userDomainMask,
                                              appropriateFor: URL(fileURLWithPath: "/tmp"), create: true).path
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        // 64 MiB, 8 MiB/s of pages rewritten.
        let p = try Child([WorkloadTests.out + "/wl_anon_pattern", ctl, "64", "8"], stdout: .null, stderr: .null)
        defer { p.kill(); p.wait() }
        try waitFor(ctl + "/ready")
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

private func waitFor(_ path: String, seconds: Double = 15) throws {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while !FileManager.default.fileExists(atPath: path) {
        if Date() > deadline { throw DirtyTrackingTimeout(path: path) }
        Thread.sleep(forTimeInterval: 0.05)
    }
}

private struct DirtyTrackingTimeout: Error { var path: String }
