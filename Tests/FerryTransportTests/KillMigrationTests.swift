import Foundation
import Testing
import FerryTestSupport

/// `ferry migrate` killed at each step of a pre-copy migration (debug build:
/// FERRY_TEST_KILL_AT, docs/kill-safety.md): the source runs on untraced and
/// the target keeps nothing, except in the window the doc names (killed
/// after the target's ACK: the target keeps its copy, "no COMMIT" in its
/// log). The finished migration then moves the process, which verifies itself.
@Suite(.serialized, .enabled(if: getuid() == 0, "migration between network namespaces needs root"))
struct KillMigrationTests {
    typealias M = MigrationTests

    static func untraced(_ pid: Int32) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
        let lines = status.split(separator: "\n")
        let state = lines.first { $0.hasPrefix("State:") } ?? ""
        return lines.contains("TracerPid:\t0") && !state.contains("t (") && !state.contains("T (")
    }

    @Test("killed at every step (and at sampled injections) of a pre-copy migration, the source runs on",
          arguments: [("step", 1), ("injection", 5)])
    func killedMigration(_ kind: String, _ stride: Int) throws {
        try M.buildWorkloads()
        let net = try NetnsPair()
        defer { net.remove() }
        let server = try M.serve(net, tls: nil)
        defer { server.stop() }
        let wl = try Workload(M.out + "/wl_anon_pattern", args: ["32", "4"], netns: net.source)
        defer { wl.cleanup() }
        var n = 1, kills = 0, window = 0
        while true {
            let before = server.log.count
            let r = try M.migrate(net, pid: wl.pid, tls: nil, env: ["FERRY_TEST_KILL_AT=\(kind):\(n)"])
            if r.status != 128 + SIGKILL {
                #expect(r.status == 0, "\(kind):\(n): \(r.output)\nserve: \(server.log)")
                break
            }
            kills += 1
            #expect(wl.isRunning && Self.untraced(wl.pid), "\(kind):\(n): the source must run on untraced")
            // The target notices the closed connection and discards what it built, or (after its ACK) keeps it.
            var settled = false
            for _ in 0..<100 {
                let log = String(server.log.dropFirst(before))
                if log.contains("no COMMIT") {
                    window += 1
                    for p in wl.instances where p != wl.pid { kill(p, SIGKILL) }
                    settled = true
                    break
                }
                if wl.instances == [wl.pid] && (log.contains("fail") || log.contains("abort") || log.contains("error")) { settled = true; break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            if !settled { #expect(wl.instances == [wl.pid], "\(kind):\(n): only the source may run; serve: \(server.log)") }
            n += stride
            if n > 3000 { Issue.record("migrate never finished"); break }
        }
        try wl.waitForExit(seconds: 10)
        #expect(wl.instances.count == 1)
        #expect(try wl.verdict() == "PASS", "serve: \(server.log)")
        print("kill sweep migrate \(kind): \(kills) kills, \(window) in the ACK window")
    }

    @Test("ferry serve killed at sampled injections of its restore: the source runs on and nothing is left on the target")
    func killedServe() throws {
        try M.buildWorkloads()
        let net = try NetnsPair()
        defer { net.remove() }
        let wl = try Workload(M.out + "/wl_anon_pattern", args: ["16", "4"], netns: net.source)
        defer { wl.cleanup() }
        var n = 1, kills = 0
        while true {
            let server = try M.serve(net, tls: nil, extra: ["--new-pidns", "--once"], env: ["FERRY_TEST_KILL_AT=injection:\(n)"])
            let r = try M.migrate(net, pid: wl.pid, tls: nil)
            server.process.wait()  // killed at point n, or (finished) below
            if r.status == 0 {
                server.stop()
                break
            }
            kills += 1
            wl.expectRolledBack(r)
            for _ in 0..<40 where wl.instances != [wl.pid] { Thread.sleep(forTimeInterval: 0.05) }
            #expect(wl.instances == [wl.pid], "injection:\(n): only the source may run; serve: \(server.log)")
            #expect(Self.untraced(wl.pid))
            n += 5
            if n > 3000 { Issue.record("serve never finished"); break }
        }
        try wl.waitForExit(seconds: 10)
        #expect(try wl.verdict() == "PASS")
        print("kill sweep serve: \(kills) kills")
    }
}
