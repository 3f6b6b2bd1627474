import Foundation
import Testing
import FerryTestSupport

/// TCP and UDP sockets: the inet_sockets workload (listeners and UDP
/// sockets with options, one listener shared with a child), the states ferry
/// refuses by name, and real servers checkpointed while idle and restored,
/// then asked for what they held. Needs root.
@Suite(.serialized, .enabled(if: getuid() == 0, "checkpoint/restore needs root"))
struct ServerTests {
    typealias W = WorkloadTests

    /// (run_cr.sh environment, workload argument): "established" adds a
    /// connection (both ends in the process, unread bytes each way) carried through TCP_REPAIR.
    @Test("inet_sockets: checkpoint → restore → self-check",
          arguments: [("", ""), ("LEAVE_RUNNING", ""), ("", "established"), ("LEAVE_RUNNING", "established")])
    func inetSockets(_ mode: String, _ arg: String) throws {
        try W.buildWorkloads()
        let r = try W.run(["/bin/bash", W.workloads + "/run_cr.sh", W.ferry, W.out, "inet_sockets"] + (arg.isEmpty ? [] : [arg]),
                          env: mode.isEmpty ? [:] : [mode: "1"])
        #expect(r.output.hasPrefix("PASS"), "\(mode) \(arg): \(r.output)")
    }

    /// A connection waiting in a listener's accept queue: refused at
    /// checkpoint with one line naming the fd; the process runs on and still
    /// passes its own checks.
    @Test(arguments: [("pending", "fd 3: TCP IPv4 socket 127.0.0.1:"), ("pending", "waiting to be accepted")])
    func refusedByName(_ mode: String, _ fragment: String) throws {
        try W.buildWorkloads()
        let ctl = try Self.tempDir("ferry_inet")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let w = try Child(["/usr/bin/python3", W.workloads + "/launch.py", W.out + "/wl_inet_sockets", ctl, mode], stdout: .null, stderr: .null)
        defer { w.kill(); _ = w.wait() }
        #expect(Self.waitFor(ctl + "/ready", seconds: 10), "no ready")
        let r = try Child.run([W.ferry, "checkpoint", "\(w.pid)", "-o", ctl + "/image"])
        #expect(r.status != 0, "checkpoint accepted a \(mode) connection")
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(fragment), "\(r.stderr)")
        #expect(kill(w.pid, 0) == 0, "the refused process is gone")
        let check = try Child.run([W.ferry, "check", "\(w.pid)"])
        #expect(check.stdout.contains("NOT carried") && check.stdout.contains(": carried"), "\(check.stdout)")
        FileManager.default.createFile(atPath: ctl + "/stop", contents: nil)
        #expect(Self.waitFor(ctl + "/result", seconds: 15), "no result")
    }

    /// Runs `setUp` (Python, given the working directory) in a process of
    /// its own, checkpoints it and returns ferry's stderr after checking
    /// that the checkpoint failed and the process runs on.
    static func refusedCheckpoint(_ name: String, _ setUp: (String) -> String) throws -> String {
        let dir = try tempDir(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try (setUp(dir) + "\nopen('\(dir)/ready', 'w').close()\nimport time\ntime.sleep(60)\n").write(toFile: dir + "/q.py", atomically: true, encoding: .utf8)
        let p = try Child(["/usr/bin/python3", W.workloads + "/launch.py", try pythonExecutable(), dir + "/q.py"], stdout: .null, stderr: .null)
        defer { p.kill(); _ = p.wait() }
        #expect(waitFor(dir + "/ready", seconds: 10), "no ready")
        let r = try Child.run([W.ferry, "checkpoint", "\(p.pid)", "-o", dir + "/image"])
        #expect(r.status != 0 && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(kill(p.pid, 0) == 0, "the refused process is gone")
        return r.stderr
    }

    /// A UDP socket with a datagram (here a zero-length one) not read yet is refused by name.
    @Test func queuedDatagramIsRefused() throws {
        let e = try Self.refusedCheckpoint("ferry_udpq") { _ in """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'', s.getsockname())
            """ }
        #expect(e.contains("UDP IPv4 socket 127.0.0.1:") && e.contains("datagrams waiting"), "\(e)")
    }

    /// A unix datagram socket holding a datagram from a named socket closed
    /// since (no socket of the tree has that name to send it again) is
    /// refused by name, and the process runs on.
    @Test func unixDatagramFromAClosedNamedSenderIsRefused() throws {
        let e = try Self.refusedCheckpoint("ferry_dgq") { _ in """
            import os, socket
            r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); r.bind('\\0ferry-r-%d' % os.getpid())
            t = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); t.bind('\\0ferry-s-%d' % os.getpid())
            t.sendto(b'x', '\\0ferry-r-%d' % os.getpid()); t.close()
            """ }
        #expect(e.contains("one from @ferry-s-") && e.contains("which no socket of the tree holds"), "\(e)")
    }

    /// A checkpoint refused after an established connection was put in
    /// repair mode (a queued datagram on a later fd) takes it out again: the
    /// connection carries bytes both ways afterwards.
    @Test func refusedCheckpointLeavesConnectionsWorking() throws {
        let dir = try Self.tempDir("ferry_undo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
        import socket, os, time
        l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
        c = socket.create_connection(l.getsockname()); a, _ = l.accept()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0))
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'q', u.getsockname())
        open('\(dir)/ready', 'w').close()
        while not os.path.exists('\(dir)/go'): time.sleep(0.05)
        c.sendall(b'ping'); assert a.recv(4) == b'ping'
        a.sendall(b'pong'); assert c.recv(4) == b'pong'
        open('\(dir)/result', 'w').write('OK')
        """
        try script.write(toFile: dir + "/undo.py", atomically: true, encoding: .utf8)
        let p = try Child(["/usr/bin/python3", W.workloads + "/launch.py", try Self.pythonExecutable(), dir + "/undo.py"], stdout: .null, stderr: .null)
        defer { p.kill(); _ = p.wait() }
        #expect(Self.waitFor(dir + "/ready", seconds: 10), "no ready")
        let r = try Child.run([W.ferry, "checkpoint", "\(p.pid)", "-o", dir + "/image"])
        #expect(r.status != 0 && r.stderr.contains("datagrams waiting"), "\(r.stderr)")
        FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        #expect(Self.waitFor(dir + "/result", seconds: 10), "the connection no longer works after the refused checkpoint")
    }

    /// A redis client stays connected across the checkpoint and restore and
    /// goes on on the same connection (TCP_REPAIR on the server's end; the
    /// client, outside the tree, sees a pause).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server"), "redis-server is not installed (make deps installs it)"))
    func redisClientAcrossCheckpoint() throws {
        let port = try Self.freePort()
        let dir = try Self.tempDir("ferry_redis")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            import socket,os,time
            s=socket.create_connection(('127.0.0.1',\(port)))
            s.sendall(b'SET ferrykey across\\r\\n'); print(s.recv(100).decode().strip(), flush=True)
            while not os.path.exists('\(dir)/go'): time.sleep(0.05)
            s.sendall(b'GET ferrykey\\r\\n'); print(s.recv(100).decode().split('\\r\\n')[1], flush=True)
            s.sendall(b'PING\\r\\n'); print(s.recv(100).decode().strip(), flush=True)
            """
        var client: Child?
        defer { client?.kill(); _ = client?.wait() }
        try Self.checkpointRestore(["/usr/bin/redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                    "--dir", dir, "--daemonize", "no"], port: port) {
            let c = try Child(["/usr/bin/env", "python3", "-c", script], stderr: .null)
            client = c
            #expect(c.readLine() == "+OK")
        } after: {
            FileManager.default.createFile(atPath: dir + "/go", contents: nil)
            #expect(client?.readLine() == "across", "the value read on the connection kept across the restore")
            #expect(client?.readLine() == "+PONG")
        }
    }

    /// Two listeners sharing a port through SO_REUSEPORT, one of which
    /// turned it off after bind (zdtm socket-tcp-reuseport), and UDP sockets
    /// bound with IP_FREEBIND to an address this host lacks, kept on or turned
    /// off after bind (zdtm sk-freebind, sk-freebind-false): after restore each
    /// has its port, address and options as before and the listeners accept.
    @Test func reusePortAndFreebindAreRestored() throws {
        let port = try Self.freePort()
        let script = """
            import socket, os, sys, time
            SO_REUSEPORT, IP_FREEBIND = 15, 15
            def listener():
                l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, SO_REUSEPORT, 1)
                l.bind(('127.0.0.1', \(port))); l.listen(4); return l
            a, b = listener(), listener()
            a.setsockopt(socket.SOL_SOCKET, SO_REUSEPORT, 0)
            def freebound(port, keep):
                u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                u.bind(('2001:db8::ff00:42:8329', port))
                if not keep: u.setsockopt(socket.SOL_IP, IP_FREEBIND, 0)
                return u
            off, on = freebound(\(port), False), freebound(\(port) + 1, True)
            open(sys.argv[1] + '/ready', 'w').close()
            while not os.path.exists(sys.argv[1] + '/go'): time.sleep(0.05)
            bad = []
            if a.getsockopt(socket.SOL_SOCKET, SO_REUSEPORT) != 0: bad.append('a has SO_REUSEPORT')
            if b.getsockopt(socket.SOL_SOCKET, SO_REUSEPORT) != 1: bad.append('b lost SO_REUSEPORT')
            if a.getsockname()[1] != \(port) or b.getsockname()[1] != \(port): bad.append('listener port')
            if off.getsockopt(socket.SOL_IP, IP_FREEBIND) != 0 or on.getsockopt(socket.SOL_IP, IP_FREEBIND) != 1: bad.append('IP_FREEBIND')
            if off.getsockname()[:2] != ('2001:db8::ff00:42:8329', \(port)): bad.append('freebind address %r' % (off.getsockname(),))
            a.setblocking(False); b.setblocking(False)
            got = 0
            for i in range(8):
                c = socket.create_connection(('127.0.0.1', \(port))); time.sleep(0.05)
                for l in (a, b):
                    try: l.accept()[0].close(); got += 1
                    except BlockingIOError: pass
                c.close()
            if got != 8: bad.append('accepted %d of 8' % got)
            open(sys.argv[1] + '/result', 'w').write('PASS' if not bad else 'FAIL ' + ', '.join(bad))
            """
        let got = try Self.scriptAcrossRestore(script)
        #expect(got == "PASS", "\(got)")
    }

    /// A socket sharing its port through SO_REUSEPORT with a socket outside
    /// the tree (held by the test itself) is refused by name at checkpoint.
    @Test func reusePortWithAnOutsideSocketIsRefused() throws {
        let port = try Self.freePort()
        let outside = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(outside) }
        var one: Int32 = 1
        setsockopt(outside, SOL_SOCKET, 15, &one, 4)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET); a.sin_port = port.bigEndian; a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(outside, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(bound == 0 && listen(outside, 1) == 0)
        let dir = try Self.tempDir("ferry_reuse_out")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            import socket, sys, time
            l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, 15, 1); l.bind(('127.0.0.1', \(port))); l.listen(4)
            open(sys.argv[1] + '/ready', 'w').close()
            time.sleep(60)
            """
        try script.write(toFile: dir + "/s.py", atomically: true, encoding: .utf8)
        let p = try Child(["/usr/bin/python3", W.workloads + "/launch.py", try Self.pythonExecutable(), dir + "/s.py", dir], stdout: .null, stderr: .null)
        defer { p.kill(); _ = p.wait() }
        #expect(Self.waitFor(dir + "/ready", seconds: 10), "no ready")
        let r = try Child.run([W.ferry, "checkpoint", "\(p.pid)", "-o", dir + "/image"])
        #expect(r.status != 0 && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("127.0.0.1:\(port)") && r.stderr.contains("SO_REUSEPORT") && r.stderr.contains("outside the tree"), "\(r.stderr)")
        #expect(kill(p.pid, 0) == 0, "the refused process is gone")
    }

    /// Unix sockets connected to servers outside the tree (a stream
    /// connection to a listener's path, a datagram socket connected to a
    /// bound path): refused by name without `--ext-unix-sk`, naming the
    /// option; with it, connected to the same paths again on restore, and
    /// what the restored process sends on them reaches the servers.
    @Test func externalUnixPeersAreReconnectedWithExtUnixSk() throws {
        let dir = try Self.tempDir("ferry_extunix")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = """
            import socket, sys, threading
            d = sys.argv[1]
            L = socket.socket(socket.AF_UNIX); L.bind(d + '/srv.sock'); L.listen(8)
            G = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); G.bind(d + '/dg.sock')
            log = open(d + '/log', 'a', buffering=1)
            def conn(c):
                while True:
                    b = c.recv(100)
                    if not b: return
                    log.write('stream ' + b.decode() + '\\n')
            def acc():
                while True:
                    c, _ = L.accept(); threading.Thread(target=conn, args=(c,), daemon=True).start()
            threading.Thread(target=acc, daemon=True).start()
            open(d + '/srv-ready', 'w').close()
            while True:
                log.write('dgram ' + G.recv(100).decode() + '\\n')
            """
        let client = """
            import socket, sys, os, time
            d = sys.argv[1]
            s = socket.socket(socket.AF_UNIX); s.connect(d + '/srv.sock'); s.sendall(b'before')
            g = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); g.connect(d + '/dg.sock'); g.send(b'before')
            open(d + '/ready', 'w').close()
            while not os.path.exists(d + '/go'): time.sleep(0.05)
            bad = []
            if s.getpeername() != d + '/srv.sock': bad.append('stream peer %r' % s.getpeername())
            if g.getpeername() != d + '/dg.sock': bad.append('dgram peer %r' % g.getpeername())
            s.sendall(b'after'); g.send(b'after')
            time.sleep(0.3)
            open(d + '/result', 'w').write('PASS' if not bad else 'FAIL ' + ', '.join(bad))
            """
        try server.write(toFile: dir + "/server.py", atomically: true, encoding: .utf8)
        try client.write(toFile: dir + "/s.py", atomically: true, encoding: .utf8)
        let srv = try Child(["/usr/bin/python3", W.workloads + "/launch.py", try Self.pythonExecutable(), dir + "/server.py", dir], stdout: .null, stderr: .null)
        defer { srv.kill(); _ = srv.wait() }
        #expect(Self.waitFor(dir + "/srv-ready", seconds: 10), "the server did not start")
        // Without the option: refused, naming it.
        let p = try Child(["/usr/bin/python3", W.workloads + "/launch.py", try Self.pythonExecutable(), dir + "/s.py", dir], stdout: .null, stderr: .null)
        #expect(Self.waitFor(dir + "/ready", seconds: 10), "no ready")
        let r = try Child.run([W.ferry, "checkpoint", "\(p.pid)", "-o", dir + "/refused"])
        #expect(r.status != 0 && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("outside the tree") && r.stderr.contains("--ext-unix-sk") && r.stderr.contains(dir + "/srv.sock"), "\(r.stderr)")
        p.kill(); _ = p.wait()
        try? FileManager.default.removeItem(atPath: dir + "/ready")
        let got = try Self.scriptAcrossRestore(client, in: dir, checkpointArgs: ["--ext-unix-sk"])
        #expect(got == "PASS", "\(got)")
        let log = (try? String(contentsOfFile: dir + "/log", encoding: .utf8)) ?? ""
        #expect(log.contains("stream after") && log.contains("dgram after"), "\(log)")
    }

    /// Connections a Unix listener of the process accepted (a path
    /// listener, one whose path was removed after bind, an abstract one,
    /// stream and seqpacket), with bytes queued each way: after restore each
    /// end has its names (getsockname/getpeername), reads its bytes, and new
    /// bytes flow both ways; the listeners accept new clients.
    @Test func unixAcceptedConnectionsAreRestored() throws {
        let script = """
            import socket, os, sys, time
            d = sys.argv[1]
            S, Q = socket.SOCK_STREAM, socket.SOCK_SEQPACKET
            def serve(name, kind):
                l = socket.socket(socket.AF_UNIX, kind); l.bind(name); l.listen(4)
                c = socket.socket(socket.AF_UNIX, kind); c.connect(name); a, _ = l.accept()
                c.send(b'to-server ' + name.encode(errors='replace')); a.send(b'to-client')
                return l, c, a
            setups = [(d + '/path.sock', S), (d + '/gone.sock', S), ('\\0ferry-abs-%d' % os.getpid(), S), (d + '/seq.sock', Q)]
            conns = [serve(n, k) + (n, k) for n, k in setups]
            os.unlink(d + '/gone.sock')
            open(d + '/ready', 'w').close()
            while not os.path.exists(d + '/go'): time.sleep(0.05)
            bad = []
            for l, c, a, n, k in conns:
                want = n.encode() if n.startswith('\\0') else n
                if a.getsockname() != want or c.getpeername() != want: bad.append('%r names %r %r' % (n, a.getsockname(), c.getpeername()))
                if a.recv(100) != b'to-server ' + n.encode(errors='replace') or c.recv(100) != b'to-client': bad.append('%r queued bytes' % n)
                c.send(b'x'); a.send(b'y')
                if a.recv(10) != b'x' or c.recv(10) != b'y': bad.append('%r new bytes' % n)
                if n.endswith('gone.sock'):
                    if os.path.exists(n): bad.append('the removed path is back')
                    continue
                m = socket.socket(socket.AF_UNIX, k); m.connect(n); l.accept()
            open(d + '/result', 'w').write('PASS' if not bad else 'FAIL ' + '; '.join(bad))
            """
        let got = try Self.scriptAcrossRestore(script)
        #expect(got == "PASS", "\(got)")
    }

    /// Connections waiting in the accept queue of unix listeners (a path
    /// stream listener, an abstract seqpacket one, a stream one whose path
    /// was removed, a seqpacket one bound to a relative path), two per listener, the first client bound to an abstract
    /// name and shut down for writing, after one connection already
    /// accepted: after restore the program accepts them in the same order,
    /// sees the first client's name and its end of data, and bytes flow both ways.
    @Test func unixQueuedConnectionsAreRestored() throws {
        let script = """
            import socket, os, sys, time
            d = sys.argv[1]
            os.chdir(d)
            S, Q = socket.SOCK_STREAM, socket.SOCK_SEQPACKET
            def setup(name, kind, i):
                l = socket.socket(socket.AF_UNIX, kind); l.bind(name); l.listen(4)
                c0 = socket.socket(socket.AF_UNIX, kind); c0.connect(name); a0, _ = l.accept()
                c1 = socket.socket(socket.AF_UNIX, kind); c1.bind('\\0ferry-q%d-%d' % (i, os.getpid())); c1.connect(name); c1.shutdown(socket.SHUT_WR)
                c2 = socket.socket(socket.AF_UNIX, kind); c2.connect(name)
                return l, c0, a0, c1, c2
            names = [(d + '/q.sock', S), ('\\0ferry-ql-%d' % os.getpid(), Q), (d + '/gone.sock', S), ('rel.sock', Q)]
            sets = [setup(n, k, i) + (n, k, i) for i, (n, k) in enumerate(names)]
            os.unlink(d + '/gone.sock')
            open(d + '/ready', 'w').close()
            while not os.path.exists(d + '/go'): time.sleep(0.05)
            bad = []
            for l, c0, a0, c1, c2, n, k, i in sets:
                if l.getsockname() != (n.encode() if n.startswith('\\0') else n): bad.append('%r: listener named %r' % (n, l.getsockname()))
                c0.send(b'old'); bad += [] if a0.recv(10) == b'old' else ['%r: accepted connection' % n]
                l.setblocking(False)
                try:
                    a1, p1 = l.accept(); a2, p2 = l.accept()
                except OSError as e:
                    bad.append('%r: accept: %s' % (n, e)); continue
                want = ('\\0ferry-q%d-%d' % (i, os.getpid())).encode()
                if p1 != want: bad.append('%r: first queued client is %r' % (n, p1))
                if a1.recv(10) != b'': bad.append('%r: no end of data from the first client' % n)
                a1.send(b'a1'); c2.send(b'c2'); a2.send(b'a2')
                if c1.recv(10) != b'a1' or a2.recv(10) != b'c2' or c2.recv(10) != b'a2': bad.append('%r: bytes' % n)
                try:
                    l.accept(); bad.append('%r: a third connection' % n)
                except BlockingIOError:
                    pass
            if os.path.exists(d + '/gone.sock'): bad.append('the removed path is back')
            open(d + '/result', 'w').write('PASS' if not bad else 'FAIL ' + '; '.join(bad))
            """
        let got = try Self.scriptAcrossRestore(script)
        #expect(got == "PASS", "\(got)")
    }

    /// A TCP connection (both ends in the tree) whose writer filled the
    /// send buffer while its peer did not read: megabytes written and never
    /// sent (SIOCOUTQNSD > 0, checked before the checkpoint). After restore
    /// the reader gets every byte in order, and the connection goes on.
    @Test func tcpBytesNotYetSentAreSentAfterRestore() throws {
        let script = """
            import socket, os, sys, time, fcntl, struct
            d = sys.argv[1]
            l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
            c = socket.create_connection(l.getsockname()); a, _ = l.accept()
            a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.setblocking(False)
            big = bytes(range(251)) * 300
            n = 0
            while True:
                try:
                    n += c.send(big[n % 251:n % 251 + 65536])
                except BlockingIOError:
                    time.sleep(0.2)
                    try:
                        n += c.send(big[n % 251:n % 251 + 65536])
                    except BlockingIOError:
                        break
            unsent = struct.unpack('i', fcntl.ioctl(c, 0x894B, struct.pack('i', 0)))[0]
            open(d + '/unsent', 'w').write(str(unsent))
            open(d + '/ready', 'w').close()
            while not os.path.exists(d + '/go'): time.sleep(0.05)
            a.settimeout(20)
            got = bytearray()
            try:
                while len(got) < n:
                    b = a.recv(1 << 20)
                    if not b: break
                    got += b
            except OSError as e:
                pass
            bad = []
            if len(got) != n: bad.append('read %d of %d bytes' % (len(got), n))
            elif any(got[i:i + 251] != big[:251][:len(got[i:i + 251])] for i in range(0, len(got), 251)): bad.append('bytes out of order')
            c.setblocking(True); c.sendall(b'end'); a.sendall(b'back')
            if a.recv(3) != b'end' or c.recv(4) != b'back': bad.append('no bytes after')
            open(d + '/result', 'w').write('PASS' if not bad else 'FAIL %s (unsent at checkpoint %s)' % ('; '.join(bad), open(d + '/unsent').read()))
            """
        let dir = try Self.tempDir("ferry_tcpbuf")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let got = try Self.scriptAcrossRestore(script, in: dir)
        let unsent = Int((try? String(contentsOfFile: dir + "/unsent", encoding: .utf8)) ?? "") ?? 0
        #expect(unsent > 0, "the test needs bytes not yet sent at checkpoint")
        #expect(got == "PASS", "\(got)")
    }

    /// Netlink route sockets (one bound by the kernel and joined to the link
    /// and IPv4 address groups, one never bound) and a generic one: after
    /// restore the port id and groups are the same and both route sockets
    /// answer a link dump (RTM_GETLINK).
    @Test func netlinkRouteAndGenericSocketsAreRestored() throws {
        let script = """
            import socket, os, sys, time, struct
            d = sys.argv[1]
            r = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); r.bind((0, 1 | 16))
            u = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
            g = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16); g.bind((0, 0))
            before = (r.getsockname(), r.getsockopt(270, 9, 4)[:4], g.getsockname())
            open(d + '/ready', 'w').close()
            while not os.path.exists(d + '/go'): time.sleep(0.05)
            bad = []
            after = (r.getsockname(), r.getsockopt(270, 9, 4)[:4], g.getsockname())
            if after != before: bad.append('names/groups %r, were %r' % (after, before))
            for s in (r, u):
                s.settimeout(5)
                s.send(struct.pack('=IHHII', 32, 18, 0x301, 1, 0) + struct.pack('=BBHiII', 0, 0, 0, 0, 0, 0))
                t = struct.unpack('=IHH', s.recv(65536)[:8])[1]
                if t != 16: bad.append('link dump answered with type %d' % t)
            open(d + '/result', 'w').write('PASS' if not bad else 'FAIL ' + '; '.join(bad))
            """
        let got = try Self.scriptAcrossRestore(script)
        #expect(got == "PASS", "\(got)")
    }

    /// A client that sent bytes on a connection not yet accepted (the bytes
    /// sit in the server end no process holds) is refused by name, as is a
    /// queued connection whose client is outside the tree.
    @Test func unixQueuedConnectionsWithDataOrOutsideClientAreRefused() throws {
        let e = try Self.refusedCheckpoint("ferry_uqd") { d in """
            import socket
            l = socket.socket(socket.AF_UNIX); l.bind('\(d)/l.sock'); l.listen(4)
            c = socket.socket(socket.AF_UNIX); c.connect('\(d)/l.sock'); c.send(b'early')
            """ }
        #expect(e.contains("sent data") && e.contains("has not accepted yet"), "\(e)")
        let dir = try Self.tempDir("ferry_uqo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            import socket, sys, time
            l = socket.socket(socket.AF_UNIX); l.bind(sys.argv[1] + '/l.sock'); l.listen(4)
            open(sys.argv[1] + '/ready', 'w').close()
            time.sleep(60)
            """
        try script.write(toFile: dir + "/s.py", atomically: true, encoding: .utf8)
        let p = try Child(["/usr/bin/python3", W.workloads + "/launch.py", try Self.pythonExecutable(), dir + "/s.py", dir], stdout: .null, stderr: .null)
        defer { p.kill(); _ = p.wait() }
        #expect(Self.waitFor(dir + "/ready", seconds: 10), "no ready")
        let outside = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(outside) }
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &a.sun_path) { b in for (i, c) in (dir + "/l.sock").utf8.enumerated() { b[i] = c } }
        let r0 = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(outside, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(r0 == 0)
        let r = try Child.run([W.ferry, "checkpoint", "\(p.pid)", "-o", dir + "/image"])
        #expect(r.status != 0 && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("waiting to be accepted from socket:[") && r.stderr.contains("no process of the tree holds"), "\(r.stderr)")
        #expect(kill(p.pid, 0) == 0, "the refused process is gone")
    }

    // MARK: real servers

    @Test("python3 -m http.server serves a page after restore")
    func pythonHTTPServer() throws {
        let dir = try Self.tempDir("ferry_http")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let page = "ferry page \(getpid())\n"
        try page.write(toFile: dir + "/page.html", atomically: true, encoding: .utf8)
        let port = try Self.freePort()
        let fetch = "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:\(port)/page.html',timeout=10).read().decode())"
        try Self.checkpointRestore([try Self.pythonExecutable(), "-m", "http.server", "\(port)", "--bind", "127.0.0.1", "--directory", dir], port: port) {
            let got = try Self.python(fetch)
            #expect(got == page)
        } after: {
            let got = try Self.python(fetch)
            #expect(got == page)
        }
    }

    @Test("nginx (master + 2 workers) serves a page after restore",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx"), "nginx is not installed (make deps installs nginx-light)"))
    func nginx() throws {
        let dir = try Self.tempDir("ferry_nginx")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let page = "nginx page \(getpid())\n"
        try page.write(toFile: dir + "/index.html", atomically: true, encoding: .utf8)
        chmod(dir, 0o755)
        let port = try Self.freePort()
        let temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map { "\($0)_temp_path \(dir)/\($0);" }.joined(separator: " ")
        let conf = """
            daemon off; master_process on; worker_processes 2;
            pid \(dir)/nginx.pid; error_log \(dir)/error.log;
            events { worker_connections 64; }
            http { access_log off; \(temp)
                   server { listen 127.0.0.1:\(port); root \(dir); } }
            """
        try conf.write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
        let fetch = "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:\(port)/index.html',timeout=10).read().decode())"
        try Self.checkpointRestore(["/usr/sbin/nginx", "-c", dir + "/nginx.conf", "-p", dir], port: port) {
            let got = try Self.python(fetch)
            #expect(got == page)
            #expect(Self.workers(ofPidFile: dir + "/nginx.pid") == 2, "nginx did not start 2 workers")
        } after: {
            // Several fetches: both workers may take them.
            for _ in 0..<4 {
                let got = try Self.python(fetch)
                #expect(got == page)
            }
            #expect(Self.workers(ofPidFile: dir + "/nginx.pid") == 2, "the restored master has not its 2 workers")
        }
    }

    /// The children of the process whose pid `file` holds.
    static func workers(ofPidFile file: String) -> Int {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return -1 }
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").count
    }

    @Test("memcached -t 4 returns a key set before the checkpoint",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/memcached"), "memcached is not installed (make deps installs it)"))
    func memcached() throws {
        let port = try Self.freePort()
        let set = "import socket;s=socket.create_connection(('127.0.0.1',\(port)));s.sendall(b'set ferrykey 0 0 5\\r\\nhello\\r\\n');print(s.recv(100).decode().strip())"
        let get = "import socket;s=socket.create_connection(('127.0.0.1',\(port)));s.sendall(b'get ferrykey\\r\\n');print(s.recv(100).decode().split('\\r\\n')[1])"
        try Self.checkpointRestore(["/usr/bin/memcached", "-u", "root", "-t", "4", "-p", "\(port)", "-l", "127.0.0.1", "-U", "0"], port: port) {
            let got = try Self.python(set)
            #expect(got == "STORED\n")
        } after: {
            let got = try Self.python(get)
            #expect(got == "hello\n")
        }
    }

    @Test("redis-server returns a key written before the checkpoint",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server"), "redis-server is not installed (make deps installs it)"))
    func redis() throws {
        let port = try Self.freePort()
        let dir = try Self.tempDir("ferry_redis")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cli = ["/usr/bin/redis-cli", "-p", "\(port)"]
        try Self.checkpointRestore(["/usr/bin/redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                    "--dir", dir, "--daemonize", "no"], port: port) {
            let got = try Child.run(cli + ["set", "ferrykey", "kept"]).stdout
            #expect(got == "OK\n")
        } after: {
            let got = try Child.run(cli + ["get", "ferrykey"]).stdout
            #expect(got == "kept\n")
        }
    }

    // MARK: helpers

    struct SetupFailure: Error, CustomStringConvertible { var description: String }

    /// Starts `args`, waits for `port` to accept, runs `before`, checkpoints
    /// (which kills it), restores, runs `after`, and kills the restored server.
    static func checkpointRestore(_ args: [String], port: UInt16, before: () throws -> Void, after: () throws -> Void) throws {
        let img = try tempDir("ferry_server")
        defer { try? FileManager.default.removeItem(atPath: img) }
        // launch.py: no fd, mask or disposition of the test runner's.
        let server = try Child(["/usr/bin/python3", W.workloads + "/launch.py"] + args, stdout: .null, stderr: .null)
        var serverAlive = true
        // Its children too (nginx's workers outlive a killed master), taken
        // before the master goes (it would start new ones for killed ones).
        defer {
            if serverAlive {
                let children = descendants(server.pid)
                server.kill(); _ = server.wait()
                for c in children { kill(c, SIGKILL) }
            }
        }
        guard waitForPort(port, seconds: 15) else { Issue.record("\(args[0]) does not listen on \(port)"); return }
        try before()
        usleep(300_000)
        let children = descendants(server.pid)
        let ck = try Child.run([W.ferry, "checkpoint", "\(server.pid)", "-o", img + "/image"])
        guard ck.status == 0 else { Issue.record("checkpoint of \(args.joined(separator: " ")): \(ck.stderr)"); return }
        _ = server.wait()
        serverAlive = false
        // Its children (nginx's workers) are reaped by init: their pids must be free for the restore.
        for _ in 0..<100 where children.contains(where: { kill($0, 0) == 0 }) { usleep(50_000) }
        let rs = try Child.run([W.ferry, "restore", img + "/image"])
        let restored = rs.stdout.split(separator: "\n").first { $0.hasPrefix("restored pid ") }
            .flatMap { Int32($0.dropFirst("restored pid ".count).prefix { $0.isNumber }) }
        guard rs.status == 0, let pid = restored else { Issue.record("restore: \(rs.stdout) \(rs.stderr)"); return }
        defer {
            let children = descendants(pid)
            kill(pid, SIGKILL)
            for c in children { kill(c, SIGKILL) }
        }
        #expect(waitForPort(port, seconds: 5), "the restored server does not accept on \(port)")
        try after()
    }

    /// Runs a python `script` (its argv[1]: a directory) that writes `ready`
    /// there, checkpoints and restores it, writes `go`, and returns what the
    /// restored script wrote to `result` ("" when nothing came).
    static func scriptAcrossRestore(_ script: String, in given: String? = nil, checkpointArgs: [String] = []) throws -> String {
        let dir = try given ?? tempDir("ferry_script")
        defer { if given == nil { try? FileManager.default.removeItem(atPath: dir) } }
        try script.write(toFile: dir + "/s.py", atomically: true, encoding: .utf8)
        let p = try Child(["/usr/bin/python3", W.workloads + "/launch.py", try pythonExecutable(), dir + "/s.py", dir], stdout: .null, stderr: .null)
        var alive = true
        defer { if alive { p.kill(); _ = p.wait() } }
        guard waitFor(dir + "/ready", seconds: 10) else { Issue.record("the script did not start"); return "" }
        let ck = try Child.run([W.ferry, "checkpoint", "\(p.pid)", "-o", dir + "/image"] + checkpointArgs)
        guard ck.status == 0 else { Issue.record("checkpoint: \(ck.stderr)"); return "" }
        _ = p.wait()
        alive = false
        let rs = try Child.run([W.ferry, "restore", dir + "/image"])
        let restored = rs.stdout.split(separator: "\n").first { $0.hasPrefix("restored pid ") }
            .flatMap { Int32($0.dropFirst("restored pid ".count).prefix { $0.isNumber }) }
        guard rs.status == 0, let pid = restored else { Issue.record("restore: \(rs.stdout) \(rs.stderr)"); return "" }
        defer { kill(pid, SIGKILL) }
        FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        guard waitFor(dir + "/result", seconds: 15) else { return "" }
        return (try? String(contentsOfFile: dir + "/result", encoding: .utf8)) ?? ""
    }

    /// Every descendant of `pid` (from /proc/PID/task/TID/children).
    static func descendants(_ pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        let direct = text.split(separator: " ").compactMap { Int32($0) }
        return direct + direct.flatMap(descendants)
    }

    static func python(_ code: String) throws -> String {
        let r = try Child.run(["/usr/bin/env", "python3", "-c", code])
        if r.status != 0 { Issue.record("client failed: \(r.stderr)") }
        return r.stdout
    }

    /// The real python3 (not a pyenv shim script), to be checkpointed itself.
    static func pythonExecutable() throws -> String {
        let r = try Child.run(["/usr/bin/env", "python3", "-c", "import sys;print(sys.executable)"])
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func tempDir(_ prefix: String) throws -> String {
        var t = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        guard let p = mkdtemp(&t) else { throw SetupFailure(description: "mkdtemp failed") }
        return String(cString: p)
    }

    static func waitFor(_ path: String, seconds: Double) -> Bool {
        for _ in 0..<Int(seconds * 10) {
            if FileManager.default.fileExists(atPath: path) { return true }
            usleep(100_000)
        }
        return false
    }

    /// A port nothing listens on now (bound to 0 and released).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw SetupFailure(description: "no free port") }
        return UInt16(bigEndian: a.sin_port)
    }

    static func waitForPort(_ port: UInt16, seconds: Double) -> Bool {
        for _ in 0..<Int(seconds * 10) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            a.sin_addr.s_addr = inet_addr("127.0.0.1")
            let r = withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            close(fd)
            if r == 0 { return true }
            usleep(100_000)
        }
        return false
    }
}
