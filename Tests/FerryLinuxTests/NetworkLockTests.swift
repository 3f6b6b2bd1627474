import Foundation
import Testing
import FerryTestSupport

/// The network lock of established connections: while the tree is frozen,
/// segments the peer sends are not acknowledged by the source (they would be
/// acknowledged bytes the image lacks), and once the source goes on
/// (`--leave-running`) the peer's retransmission brings them. Needs root and
/// a debug build of ferry (its test pause hook).
@Suite(.serialized, .enabled(if: getuid() == 0, "checkpoint needs root"))
struct NetworkLockTests {
    typealias W = WorkloadTests

    /// The start of a python workload: connects to the port in DIR/port,
    /// reads 2000 bytes (byte i is i % 251; a wrong one ends it with
    /// "BAD byte N" in DIR/result) and creates DIR/ready after the first 1000.
    static let readsTwoThousand = """
        import socket, os, time, sys
        d = sys.argv[1]
        while not os.path.exists(d + '/port'): time.sleep(0.01)
        s = socket.create_connection(('127.0.0.1', int(open(d + '/port').read())))
        got = 0
        while got < 2000:
            b = s.recv(4096)
            if not b: break
            for x in b:
                if x != got % 251:
                    open(d + '/result', 'w').write('BAD byte %d' % got); sys.exit(1)
                got += 1
            if got >= 1000 and not os.path.exists(d + '/ready'): open(d + '/ready', 'w').close()

        """

    @Test func bytesSentDuringTheFreezeAreNotAcknowledgedAndArriveAfterwards() throws {
        let dir = try ServerTests.tempDir("ferry_netlock")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The peer, outside the tree: 1000 bytes, then (while ferry pauses
        // with the tree frozen, after reading the connection) 1000 more, and
        // what its kernel still holds unacknowledged 0.3 s later.
        let peer = """
            import socket, os, time, fcntl, struct, termios, sys
            d = sys.argv[1]
            def has(n): return os.path.exists(d + '/' + n)
            l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
            open(d + '/port.tmp', 'w').write(str(l.getsockname()[1])); os.rename(d + '/port.tmp', d + '/port')
            c, _ = l.accept()
            c.sendall(bytes(i % 251 for i in range(1000)))
            while not has('paused'): time.sleep(0.01)
            c.sendall(bytes(i % 251 for i in range(1000, 2000)))
            time.sleep(0.3)
            n = struct.unpack('i', fcntl.ioctl(c, termios.TIOCOUTQ, b'\\0' * 4))[0]
            open(d + '/unacked', 'w').write(str(n))
            while not has('end'): time.sleep(0.05)
            """
        // The workload, checkpointed: reads 2000 bytes and checks each.
        let workload = Self.readsTwoThousand + """
            open(d + '/result', 'w').write('OK %d' % got)
            """
        try peer.write(toFile: dir + "/peer.py", atomically: true, encoding: .utf8)
        try workload.write(toFile: dir + "/w.py", atomically: true, encoding: .utf8)
        let py = try ServerTests.pythonExecutable()
        let p = try Child([py, dir + "/peer.py", dir], stdout: .null, stderr: .null)
        defer { FileManager.default.createFile(atPath: dir + "/end", contents: nil); p.kill(); _ = p.wait() }
        let w = try Child(["/usr/bin/python3", W.workloads + "/launch.py", py, dir + "/w.py", dir], stdout: .null, stderr: .null)
        defer { w.kill(); _ = w.wait() }
        #expect(ServerTests.waitFor(dir + "/ready", seconds: 15), "the workload did not read the first 1000 bytes")
        let ck = try Child.run([W.ferry, "checkpoint", "\(w.pid)", "-o", dir + "/image", "--leave-running"],
                               env: ["FERRY_TEST_PAUSE_AT": "repair", "FERRY_TEST_PAUSE_FILE": dir + "/paused", "FERRY_TEST_PAUSE_MS": "1500"])
        #expect(ck.status == 0, "checkpoint: \(ck.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/paused"), "ferry did not pause at the connection (is it a debug build?)")
        #expect(ServerTests.waitFor(dir + "/unacked", seconds: 5), "the peer did not report")
        let unacked = (try? String(contentsOfFile: dir + "/unacked", encoding: .utf8)) ?? ""
        #expect(unacked == "1000", "bytes the peer sent during the freeze were acknowledged by the frozen source (unacknowledged: \(unacked))")
        #expect(ServerTests.waitFor(dir + "/result", seconds: 20), "the workload did not get the bytes sent during the freeze after it went on")
        let result = (try? String(contentsOfFile: dir + "/result", encoding: .utf8)) ?? ""
        #expect(result == "OK 2000", "\(result)")
    }
}
