import Foundation
import Testing
import FerryTestSupport

/// The hold of a killed tree's TCP connections between `ferry checkpoint`
/// and a restore on the same host (docs/sockets.md, "The hold"): the peer
/// sends while the tree is gone, sees no reset, and every byte arrives
/// after the restore; `ferry release` and `--hold-seconds` end a hold no
/// restore ends. Needs root. FERRY_TEST_NO_TCP_HOLD=1 in the environment
/// (debug build) turns the hold off: the first test then fails.
@Suite(.serialized, .enabled(if: getuid() == 0, "checkpoint needs root"))
struct TCPHoldTests {
    typealias W = WorkloadTests

    /// The peer, outside the tree: writes the workload's port, sends 1000
    /// bytes, then (once `killed` exists) 1000 more and waits 1.5 s (its
    /// retransmissions meanwhile find the held socket or a reset), writes
    /// `sent`; it writes `reset` if the connection is reset, `gotx` when the
    /// workload's answer arrives.
    static let peer = """
        import socket, os, time, sys
        d = sys.argv[1]
        def has(n): return os.path.exists(d + '/' + n)
        def put(n, t=''): open(d + '/' + n + '.tmp', 'w').write(t); os.rename(d + '/' + n + '.tmp', d + '/' + n)
        l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
        put('port', str(l.getsockname()[1]))
        c, a = l.accept()
        put('wport', str(a[1]))
        c.sendall(bytes(i % 251 for i in range(1000)))
        while not has('killed'): time.sleep(0.01)
        c.sendall(bytes(i % 251 for i in range(1000, 2000)))
        time.sleep(1.5)
        put('sent')
        c.settimeout(0.05)
        while not has('end'):
            try:
                b = c.recv(16)
                if b == b'x': put('gotx')
                elif not b: put('closed'); break
            except socket.timeout: pass
            except OSError as e: put('reset', str(e)); break
        """
    /// The workload, checkpointed: reads 2000 bytes and checks each, then
    /// answers "x" (a reset connection ends it with no result).
    static let workload = NetworkLockTests.readsTwoThousand + """
        s.sendall(b'x')
        open(d + '/result', 'w').write('OK %d' % got)
        time.sleep(3)
        """

    /// A peer and a workload connected to it, the workload having read the first 1000 bytes.
    struct Pair {
        let dir: String, peer: Child, workload: Child
        func end() {
            FileManager.default.createFile(atPath: dir + "/end", contents: nil)
            workload.kill(); _ = workload.wait()
            peer.kill(); _ = peer.wait()
            try? FileManager.default.removeItem(atPath: dir)
        }
        func read(_ name: String) -> String { (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? "" }
        /// /proc/net/tcp read to its end (String(contentsOfFile:) may stop after the first page of a /proc file).
        func tcpTable() -> String { (try? Child.run(["/bin/cat", "/proc/net/tcp"]).stdout) ?? "" }
        /// Whether the workload's end of the connection is in this namespace's TCP table (any state but TIME_WAIT).
        func workloadSocketExists() -> Bool {
            guard let port = UInt16(read("wport")) else { return false }
            let text = tcpTable()
            let local = String(format: "0100007F:%04X", port)
            return text.split(separator: "\n").contains { line in
                let f = line.split(separator: " ")
                return f.count > 3 && f[1] == local && f[3] != "06"
            }
        }
    }

    static func start(_ prefix: String) throws -> Pair {
        let dir = try ServerTests.tempDir(prefix)
        try peer.write(toFile: dir + "/peer.py", atomically: true, encoding: .utf8)
        try workload.write(toFile: dir + "/w.py", atomically: true, encoding: .utf8)
        let py = try ServerTests.pythonExecutable()
        let p = try Child([py, dir + "/peer.py", dir], stdout: .null, stderr: .null)
        let w = try Child(["/usr/bin/python3", W.workloads + "/launch.py", py, dir + "/w.py", dir], stdout: .null, stderr: .null)
        let pair = Pair(dir: dir, peer: p, workload: w)
        guard ServerTests.waitFor(dir + "/ready", seconds: 15), ServerTests.waitFor(dir + "/wport", seconds: 5) else {
            pair.end()
            throw ServerTests.SetupFailure(description: "the workload did not read the first 1000 bytes")
        }
        return pair
    }

    @Test func thePeerSeesNoResetBetweenCheckpointAndRestoreAndEveryByteArrives() throws {
        let t = try Self.start("ferry_hold")
        defer { t.end() }
        let ck = try Child.run([W.ferry, "checkpoint", "\(t.workload.pid)", "-o", t.dir + "/image"])
        #expect(ck.status == 0, "checkpoint: \(ck.stderr)")
        #expect(ck.stderr.contains("holding 1 TCP connection(s) for 60 s"), "\(ck.stderr)")
        _ = t.workload.wait()
        FileManager.default.createFile(atPath: t.dir + "/killed", contents: nil)
        #expect(ServerTests.waitFor(t.dir + "/sent", seconds: 10), "the peer did not send after the kill")
        #expect(t.read("reset").isEmpty && !FileManager.default.fileExists(atPath: t.dir + "/reset"),
                "the peer's connection was reset between the kill and the restore: \(t.read("reset"))")
        let rs = try Child.run([W.ferry, "restore", t.dir + "/image"])
        #expect(rs.status == 0, "restore: \(rs.stderr)")
        let restored = rs.stdout.split(separator: "\n").compactMap { $0.hasPrefix("restored pid ") ? Int32($0.split(separator: " ")[2]) : nil }.first
        defer { if let restored { kill(restored, SIGKILL) } }
        #expect(ServerTests.waitFor(t.dir + "/result", seconds: 20), "the restored workload gave no result")
        #expect(t.read("result") == "OK 2000", "\(t.read("result"))")
        #expect(ServerTests.waitFor(t.dir + "/gotx", seconds: 10), "the peer did not get the restored workload's answer (reset: \(t.read("reset")))")
        #expect(!FileManager.default.fileExists(atPath: t.dir + "/reset"), "\(t.read("reset"))")
    }

    @Test func ferryReleaseLetsGoOfAHoldNoRestoreEnds() throws {
        let t = try Self.start("ferry_hold_release")
        defer { t.end() }
        let ck = try Child.run([W.ferry, "checkpoint", "\(t.workload.pid)", "-o", t.dir + "/image"])
        #expect(ck.status == 0, "checkpoint: \(ck.stderr)")
        _ = t.workload.wait()
        #expect(t.workloadSocketExists(), "the killed workload's connection (port \(t.read("wport"))) is not held: \(ck.stderr)")
        let r = try Child.run([W.ferry, "release", t.dir + "/image"])
        #expect(r.status == 0 && r.stdout.contains("released the TCP connections"), "release: \(r.stdout) \(r.stderr)")
        #expect(!t.workloadSocketExists(), "the connection is still held after `ferry release`")
        let again = try Child.run([W.ferry, "release", t.dir + "/image"])
        #expect(again.status == 0 && again.stdout.contains("nothing held"), "second release: \(again.stdout) \(again.stderr)")
        // The port is free: the peer's next segment gets a reset, and a restore would take it.
        FileManager.default.createFile(atPath: t.dir + "/killed", contents: nil)
        #expect(ServerTests.waitFor(t.dir + "/reset", seconds: 10), "the peer's connection was not reset once the hold ended")
    }

    /// A ferry killed during the restore, or a restore on another host, releases nothing: the hold ends by its time.
    @Test func theHoldEndsByItsTime() throws {
        let t = try Self.start("ferry_hold_time")
        defer { t.end() }
        let ck = try Child.run([W.ferry, "checkpoint", "\(t.workload.pid)", "-o", t.dir + "/image", "--hold-seconds", "1"])
        #expect(ck.status == 0, "checkpoint: \(ck.stderr)")
        _ = t.workload.wait()
        #expect(t.workloadSocketExists(), "the killed workload's connection (port \(t.read("wport"))) is not held: \(ck.stderr)")
        usleep(2_000_000)
        #expect(!t.workloadSocketExists(), "the connection is still held 2 s into a 1 s hold")
        let r = try Child.run([W.ferry, "release", t.dir + "/image"])
        #expect(r.status == 0 && r.stdout.contains("nothing held"), "release: \(r.stdout) \(r.stderr)")
    }
}

extension TCPHoldTests {
    /// A streamed checkpoint piped into a restore: the image's SOURCE record
    /// (written first) names the hold, and the restore's request waits until
    /// the guard holds and ferry has exited. Without the name there it failed
    /// with EADDRNOTAVAIL at the connect (the guard kept the 4-tuple).
    @Test func aStreamedCheckpointIntoARestoreHandsTheConnectionOver() throws {
        try W.buildWorkloads()
        let r = try W.run(["/bin/bash", W.workloads + "/run_cr.sh", W.ferry, W.out, "tcp_echo"],
                          env: ["STREAM": "1", "RESTORE_ARGS": "--new-pidns"])
        #expect(r.status == 0, "\(r.output)")
    }
}
