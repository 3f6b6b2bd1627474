import FerryTransport
import Foundation
import Testing
import FerryTestSupport

/// `ferry serve` on a Unix socket on this host with the operator's policy:
/// a real workload migrates as root, and images the policy refuses are
/// refused before anything is created (nothing of them runs on the target,
/// the source runs on and verifies itself).
@Suite(.serialized, .enabled(if: getuid() == 0, "serve on a root-owned Unix socket and ptrace need root"))
struct ServeSecurityTests {
    static let ferry = TestPaths.ferry

    /// `ferry serve --listen unix:PATH --new-pidns --once` with `extra`, its log collected.
    static func serve(_ path: String, _ extra: [String]) throws -> Server {
        try Server(ferry: ferry, netns: nil, args: ["--listen", "unix:" + path, "--new-pidns", "--once", "--timeout", "10"] + extra)
    }

    static func socketPath() -> String { "/tmp/ferry-serve-\(getpid())-\(Int.random(in: 0..<1_000_000)).sock" }

    @Test("a workload migrates over a Unix socket (root checked with SO_PEERCRED) and verifies itself, while a stalled, a half-message and a garbage connection sit there")
    func migratesOverUnixSocket() throws {
        try TestPaths.buildWorkloads()
        let path = Self.socketPath()
        let server = try Self.serve(path, [])
        defer { server.stop() }
        #expect(server.log.contains("listening on unix:\(path) (peers checked by uid: root)"), "\(server.log)")
        let stalled = try RawPeer(unixPath: path)
        let half = try RawPeer(unixPath: path)
        half.send(helloHeader(length: 200) + [UInt8](repeating: 0x7b, count: 20))
        let garbage = try RawPeer(unixPath: path)
        garbage.send([UInt8](repeating: 0x41, count: 64))
        #expect(garbage.closedByPeer(within: 2))
        #expect(server.process.isRunning, "garbage must not end serve: \(server.log)")
        let wl = try Workload(TestPaths.out + "/wl_threads_tls", netns: nil)
        defer { wl.cleanup() }
        let r = try sh([Self.ferry, "migrate", "\(wl.pid)", "--to", "unix:" + path, "--json"])
        #expect(r.status == 0, "migrate: \(r.output)\nserve: \(server.log)")
        guard r.status == 0 else { return }
        try wl.waitForExit(seconds: 10)
        #expect(wl.instances.count == 1, "one copy must run (on the target)")
        #expect(try wl.verdict() == "PASS", "serve: \(server.log)")
        #expect(server.log.contains("dropped unix:\(path): protocol error"), "\(server.log)")
        _ = (stalled, half)
    }

    @Test("serve's policy refuses the image before anything is created; the source runs on", arguments: [
        (["--allow-uids", "12345,12346"], "--allow-uids 12345,12346"),
        (["--allow-exe-prefix", "/nonexistent/bin"], "outside --allow-exe-prefix /nonexistent/bin"),
    ])
    func policyRefuses(_ options: [String], _ expected: String) throws {
        try TestPaths.buildWorkloads()
        let wl = try Workload(TestPaths.out + "/wl_threads_tls", netns: nil)
        defer { wl.cleanup() }
        for mode in [["--no-precopy"], []] {
            let path = Self.socketPath()
            let server = try Self.serve(path, options)
            defer { server.stop() }
            let r = try sh([Self.ferry, "migrate", "\(wl.pid)", "--to", "unix:" + path] + mode)
            #expect(r.status != 0)
            #expect(r.output.contains(expected) && r.output.contains("process \(wl.pid)"), "\(mode): \(r.output)")
            #expect(r.output.split(separator: "\n").filter { !$0.hasPrefix("warning") }.count == 1, "one line: \(r.output)")
            #expect(server.process.wait() == 1, "serve --once fails with the migration")
            #expect(server.log.contains("nothing is left here") && server.log.contains(expected), "\(server.log)")
            #expect(wl.instances == [wl.pid], "nothing of the image may run on the target")
        }
        try wl.expectOnlySourcePasses()
    }

    @Test("restore --allow-uids refuses an image with other uids before anything is created")
    func restoreRefuses() throws {
        try TestPaths.buildWorkloads()
        let wl = try Workload(TestPaths.out + "/wl_threads_tls", netns: nil)
        defer { wl.cleanup() }
        let dir = "/tmp/ferry-policy-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try sh([Self.ferry, "checkpoint", "\(wl.pid)", "-o", dir, "--leave-running"])
        #expect(c.status == 0, "\(c.output)")
        let r = try sh([Self.ferry, "restore", dir, "--new-pidns", "--allow-uids", "12345"])
        #expect(r.status == 1)
        #expect(r.output.contains("runs with real uid 0, which --allow-uids 12345 does not allow"), "\(r.output)")
        try wl.expectOnlySourcePasses()
    }
}
