import FerryImage
import Foundation
import Testing
import FerryTestSupport

/// Bad input for checkpoint and restore: each is refused with one line naming
/// the problem, before anything is frozen or created, and the process it was
/// about is left alone. Needs root.
@Suite(.serialized, .enabled(if: getuid() == 0, "checkpoint/restore needs root"))
struct RefusalTests {
    typealias W = WorkloadTests

    /// Runs ferry; returns (status, stdout, stderr).
    static func ferry(_ args: [String]) throws -> (Int32, String, String) {
        let r = try Child.run([W.ferry] + args)
        return (r.status, r.stdout, r.stderr)
    }

    static func expectRefusal(_ r: (Int32, String, String), _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.0 != 0, "exit status", sourceLocation: sourceLocation)
        let lines = r.2.split(separator: "\n")
        #expect(lines.count == 1, "one line expected: \(r.2)", sourceLocation: sourceLocation)
        #expect(r.2.contains(fragment), "\(r.2)", sourceLocation: sourceLocation)
    }

    /// A python3 helper kept running in the background; killed at the end.
    final class Helper {
        let process: Child
        init(_ script: String) throws {
            process = try Child(["/usr/bin/python3", "-c", script], stderr: .null)
        }
        func firstLine() -> String { process.readLine() ?? "" }
        deinit { process.kill(); process.wait() }
    }

    @Test func zombieIsRefused() throws {
        let h = try Helper("import os,time\npid=os.fork()\nif pid==0: os._exit(0)\nprint(pid,flush=True)\ntime.sleep(30)")
        let zombie = h.firstLine()
        usleep(200_000)
        Self.expectRefusal(try Self.ferry(["checkpoint", zombie, "-o", "/tmp/ferry-zombie"]), "zombie")
    }

    /// State ferry does not carry, each refused by name at checkpoint; the
    /// process runs on untouched (not stopped, its state still there).
    @Test(arguments: [
        ("a POSIX timer on one thread's CPU clock (CLOCK_THREAD_CPUTIME_ID)", """
         import ctypes,os
         libc=ctypes.CDLL(None,use_errno=True)
         t=ctypes.c_void_p()
         assert libc.timer_create(3,None,ctypes.byref(t))==0
         """, "runs on the CPU-time clock of one thread"),
        ("a POSIX timer on another process's CPU clock", """
         import ctypes,os
         libc=ctypes.CDLL(None,use_errno=True)
         c=ctypes.c_int(); t=ctypes.c_void_p()
         assert libc.clock_getcpuclockid(os.getppid(),ctypes.byref(c))==0
         assert libc.timer_create(c,None,ctypes.byref(t))==0
         """, "runs on the CPU-time clock of process"),
        ("lease being broken", """
         import fcntl,os,signal
         signal.signal(signal.SIGIO,signal.SIG_IGN)
         p='/tmp/ferry-lease-%d'%os.getpid()
         open(p,'w').close(); f=os.open(p,os.O_RDONLY)
         fcntl.fcntl(f,1024,fcntl.F_RDLCK)
         try: os.open(p,os.O_WRONLY|os.O_NONBLOCK)
         except BlockingIOError: pass
         os.unlink(p)
         """, "holds a lease being broken"),
        ("an owner outside the tree (without O_ASYNC: SIGIO would go to the test runner)", """
         import fcntl,os
         r,w=os.pipe()
         fcntl.fcntl(r,fcntl.F_SETOWN,os.getppid())
         """, "outside the tree"),
        ("capabilities kept across a uid change", """
         import ctypes,os
         libc=ctypes.CDLL(None,use_errno=True)
         assert libc.prctl(8,1,0,0,0)==0
         os.setresuid(65534,65534,65534)
         assert libc.prctl(8,0,0,0,0)==0
         """, "holds capabilities (CapPrm"),
        // A table shared with the parent is carried (WorkloadTests fdt_shared); two children sharing one
        // their parent left (unshare) cannot be re-created by forking.
        ("fd table shared by two children only", """
         import ctypes,os,time
         libc=ctypes.CDLL(None,use_errno=True)
         libc.syscall.restype=ctypes.c_long
         for i in range(2):
             if libc.syscall(56,0x400|17,0,0,0,0)==0:
                 time.sleep(30); os._exit(0)
         assert libc.unshare(0x400)==0
         """, "share one descriptor table (CLONE_FILES) but neither descends from the other"),
        ("unix socket whose peer is outside the tree", """
         import os,socket,time
         a,b=socket.socketpair()
         if os.fork()!=0:
             a.close(); time.sleep(30); os._exit(0)
         os.setsid()
         b.close()
         """, "is outside the tree"),
        ("descriptors in flight", """
         import array,os,socket
         a,b=socket.socketpair()
         r,w=os.pipe()
         a.sendmsg([b"x"],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,array.array("i",[r]))])
         """, "in flight"),
        ("unix client that sent data on a connection not yet accepted", """
         import os,socket
         try: os.setsid()
         except OSError: pass
         s=socket.socket(socket.AF_UNIX)
         s.bind("\\0ferry-refusal-\(getpid())")
         s.listen()
         c=socket.socket(socket.AF_UNIX)
         c.connect("\\0ferry-refusal-\(getpid())")
         c.send(b"early")
         """, "has not accepted yet"),
        ("F_SETOWN to a process group", """
         import fcntl,os
         r,w=os.pipe()
         fcntl.fcntl(r,fcntl.F_SETOWN,-os.getpgrp())
         """, "(process group"),
        ("F_SETOWN_EX to a thread", """
         import fcntl,os,struct,threading
         r,w=os.pipe()
         fcntl.fcntl(r,15,struct.pack('ii',0,threading.get_native_id()))
         """, "(thread"),
        ("FIFO deleted at its path", """
         import os
         p='/tmp/ferry-fifo-data-%d'%os.getpid()
         os.mkfifo(p); f=os.open(p,os.O_RDWR); os.unlink(p)
         os.write(f,b'abc')
         """, "FIFO deleted at its path"),
        ("a /proc file of a process outside the tree", """
         import os
         os.setsid(); f=os.open('/proc/%d/status'%os.getppid(),os.O_RDONLY)
         """, "under /proc, outside the tree"),
        ("chroot into a deleted directory", """
         import os,tempfile
         d=tempfile.mkdtemp(); r=os.open('/',os.O_RDONLY)
         os.chroot(d); os.fchdir(r); os.rmdir(d.lstrip('/'))
         """, "(chroot) was deleted"),
        ("pty input a restore cannot reproduce", """
         import os,time
         m,s=os.openpty()
         os.write(m,b'ab\\x7fcd\\x00ef'); time.sleep(0.2)
         """, "unread bytes in canonical mode among them 0x0"),
        ("pty output in packet mode", """
         import fcntl,os,struct,termios,time
         m,s=os.openpty()
         fcntl.ioctl(m,termios.TIOCPKT,struct.pack('i',1))
         os.write(s,b'x'); time.sleep(0.2)
         """, "in packet mode (TIOCPKT) with"),
        ("securebits", """
         import ctypes,os
         libc=ctypes.CDLL(None,use_errno=True)
         assert libc.prctl(28,1,0,0,0)==0
         """, "has securebits 0x1"),
        ("SECBIT_KEEP_CAPS", """
         import ctypes,os
         libc=ctypes.CDLL(None,use_errno=True)
         assert libc.prctl(8,1,0,0,0)==0
         """, "has securebits 0x10 (SECBIT_KEEP_CAPS"),
        ("a thread's own descriptor table", """
         import ctypes,threading,time
         libc=ctypes.CDLL(None,use_errno=True)
         ev=threading.Event()
         def f():
             assert libc.unshare(0x400)==0
             ev.set(); time.sleep(30)
         threading.Thread(target=f,daemon=True).start(); ev.wait()
         """, "has its own descriptor table (unshare)"),
        ("SO_BUSY_POLL on a socket never bound", """
         import socket
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
         s.setsockopt(socket.SOL_SOCKET,46,50)
         """, "UDP IPv4 socket 0.0.0.0:0 has SO_BUSY_POLL set"),
        ("SO_MAX_PACING_RATE on a TCP socket never bound", """
         import socket
         s=socket.socket(socket.AF_INET6,socket.SOCK_STREAM)
         s.setsockopt(socket.SOL_SOCKET,47,100000)
         """, "TCP IPv6 socket [::]:0 has SO_MAX_PACING_RATE set"),
        ("a unix socket whose peer is closed", """
         import os,socket
         try: os.setsid()
         except OSError: pass
         a,b=socket.socketpair()
         b.close()
         """, "whose peer is closed"),
        ("SO_RCVTIMEO on a TCP socket never bound", """
         import socket,struct
         s=socket.socket()
         s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVTIMEO,struct.pack('qq',5,0))
         """, "TCP IPv4 socket 0.0.0.0:0 has SO_RCVTIMEO set"),
    ])
    func uncarriedStateIsRefusedByName(_ what: String, _ setup: String, _ fragment: String) throws {
        // Only the state under test: none of the test runner's descriptors.
        let h = try Helper("import os\nos.closerange(3, 1 << 16)\n" + setup + "\nprint(os.getpid(),flush=True)\nimport time\ntime.sleep(30)\n")
        let pid = h.firstLine()
        try #require(Int32(pid) != nil, "\(what): the helper did not start")
        Self.expectRefusal(try Self.ferry(["checkpoint", pid, "-o", "/tmp/ferry-uncarried"]), fragment)
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let state = stat.split(separator: ")").last?.split(separator: " ").first ?? "?"
        #expect(state == "S" || state == "R", "\(what): the process must run on (state \(state))")
    }

    /// A session led inside the tree with a controlling terminal whose pty
    /// master stays outside the tree is refused: ferry re-creates a pty only with its master.
    @Test func controllingTerminalIsRefused() throws {
        let h = try Helper("""
        import os,time
        os.closerange(3, 1 << 16)
        m,s=os.openpty()
        pid=os.fork()
        if pid==0:
            os.setsid(); os.close(m)
            t=os.open(os.ttyname(s),os.O_RDWR); os.close(t); os.close(s)
            time.sleep(30); os._exit(0)
        os.close(s)
        print(pid,flush=True)
        time.sleep(30)
        """)
        let pid = h.firstLine()
        usleep(200_000)
        try #require(Int32(pid) != nil, "the helper did not start")
        Self.expectRefusal(try Self.ferry(["checkpoint", pid, "-o", "/tmp/ferry-ctty"]), "has a controlling terminal (device 136:")
        Self.expectRefusal(try Self.ferry(["checkpoint", pid, "-o", "/tmp/ferry-ctty"]), "whose master is not in the tree")
        #expect(kill(pid_t(pid)!, 0) == 0, "the process runs on")
    }

    /// An eventfd on a kernel whose fdinfo hides EFD_SEMAPHORE (simulated) is
    /// refused naming --eventfds-are-counters; with it, the checkpoint goes through.
    @Test func eventfdOfUnseenModeNeedsTheFlag() throws {
        let h = try Helper("import os,time\nos.closerange(3, 1 << 16)\nos.setsid()\ne=os.eventfd(3)\nprint(os.getpid(),flush=True)\ntime.sleep(30)\n")
        let pid = h.firstLine()
        try #require(Int32(pid) != nil, "the helper did not start")
        let dir = "/tmp/ferry-eventfd-mode-\(pid)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = ["FERRY_TEST_HIDE_EVENTFD_SEMAPHORE": "1"]
        let refused = try Child.run([W.ferry, "checkpoint", pid, "-o", dir, "--leave-running"], env: env)
        Self.expectRefusal((refused.status, refused.stdout, refused.stderr), "--eventfds-are-counters")
        let r = try Child.run([W.ferry, "checkpoint", pid, "-o", dir, "--leave-running", "--eventfds-are-counters"], env: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(kill(pid_t(pid)!, 0) == 0, "the process runs on")
    }

    /// `ferry check PID` lists every problem a checkpoint would refuse, one
    /// line each, without freezing or touching the process.
    @Test func checkListsEveryProblemWithoutFreezing() throws {
        let h = try Helper("""
        import ctypes,fcntl,os,time
        os.closerange(3, 1 << 16)
        os.setsid()
        m,s=os.openpty()
        r,w=os.pipe()
        fcntl.fcntl(r,fcntl.F_SETOWN,-os.getpgrp())
        q=open('/proc/%d/status'%os.getppid())
        libc=ctypes.CDLL(None); t=ctypes.c_void_p(); libc.timer_create(3,None,ctypes.byref(t))
        print(os.getpid(),flush=True)
        time.sleep(30)
        """)
        let pid = h.firstLine()
        try #require(Int32(pid) != nil, "the helper did not start")
        let r = try Self.ferry(["check", pid])
        #expect(r.0 == 1, "exit status: \(r.1) \(r.2)")
        let lines = r.1.split(separator: "\n")
        // The pty pair is carried (its master is in the tree).
        for fragment in ["F_SETOWN", "under /proc, outside the tree", "POSIX timer"] {
            #expect(lines.filter { $0.contains(fragment) }.count == 1, "\(fragment): \(r.1)")
        }
        #expect(lines.count == 3, "\(r.1)")
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let state = stat.split(separator: ")").last?.split(separator: " ").first ?? "?"
        #expect(state == "S" || state == "R", "the process must run on (state \(state))")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) == 8, "its fds are untouched (stdio, pty pair, pipe, /proc file)")
    }

    /// A job of another process's session (the runner's, like a shell's) is
    /// refused naming --shell-job; with it, the checkpoint goes through and
    /// the restored process joins the restorer's session.
    @Test func aShellJobNeedsShellJob() throws {
        let h = try Helper("import os,time\nos.closerange(3, 1 << 16)\nprint(os.getpid(),flush=True)\ntime.sleep(30)\n")
        let pid = h.firstLine()
        let dir = "/tmp/ferry-shelljob-\(pid)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Self.expectRefusal(try Self.ferry(["checkpoint", pid, "-o", dir, "--leave-running"]), "--shell-job")
        #expect(kill(pid_t(pid)!, 0) == 0, "the process runs on")
        let r = try Self.ferry(["checkpoint", pid, "-o", dir, "--leave-running", "--shell-job"])
        #expect(r.0 == 0, "\(r.2)")
    }

    @Test func tracedProcessIsRefusedAndLeftAlone() throws {
        // A python parent PTRACE_SEIZEs its own `sleep` child, as a debugger would.
        let h = try Helper("""
        import ctypes,subprocess,time
        c=subprocess.Popen(['sleep','30'])
        libc=ctypes.CDLL(None,use_errno=True)
        assert libc.ptrace(0x4206,c.pid,None,None)==0
        print(c.pid,flush=True)
        time.sleep(30)
        """)
        let pid = h.firstLine()
        Self.expectRefusal(try Self.ferry(["checkpoint", pid, "-o", "/tmp/ferry-traced"]), "already traced")
        #expect(kill(pid_t(pid)!, 0) == 0, "the traced process must still exist")
    }

    /// A workload under reaper.py: Foundation's Process must not be the direct parent of a process
    /// ferry ptraces (it mistakes the ptrace stop notifications for an exit and blocks in waitpid).
    final class Workload {
        let reaper: Child
        let pid: pid_t
        init(binary: String, ctl: String, args: [String] = []) throws {
            reaper = try Child(["/usr/bin/python3", W.workloads + "/reaper.py", "python3", W.workloads + "/launch.py", binary, ctl] + args,
                               stdout: .null, stderr: .null)
            for _ in 0..<100 where !FileManager.default.fileExists(atPath: ctl + "/ready") { usleep(100_000) }
            let text = (try? String(contentsOfFile: ctl + "/ready", encoding: .utf8)) ?? ""
            pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        var isRunning: Bool { kill(pid, 0) == 0 }
        /// Waits until the workload is gone (the reaper collected it and exited).
        func waitGone() { reaper.wait() }
        deinit { if pid > 0 { kill(pid, SIGKILL) }; reaper.wait() }
    }

    static func makeCtl(_ name: String) throws -> String {
        let ctl = "/tmp/ferry-refusal-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: ctl)
        try FileManager.default.createDirectory(atPath: ctl, withIntermediateDirectories: true)
        return ctl
    }

    /// Starts a workload from a private copy of its binary, checkpoints it (killed), returns (image dir, binary, ctl).
    static func checkpointCopy(_ name: String) throws -> (image: String, binary: String, ctl: String) {
        try W.buildWorkloads()
        let ctl = try makeCtl(name)
        let bin = ctl + "/wl_copy"
        try FileManager.default.copyItem(atPath: W.out + "/wl_" + name, toPath: bin)
        let w = try Workload(binary: bin, ctl: ctl)
        let r = try ferry(["checkpoint", "\(w.pid)", "-o", ctl + "/img"])
        w.waitGone()
        #expect(r.0 == 0, "\(r.2)")
        return (ctl + "/img", bin, ctl)
    }

    @Test func changedMappedFileIsRefusedBeforeAnythingIsCreated() throws {
        let (image, bin, ctl) = try Self.checkpointCopy("getpid_same")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let meta = try DirectoryImageReader(directory: image).metadata
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: bin)
        Self.expectRefusal(try Self.ferry(["restore", image]), bin)
        #expect(kill(meta.processes[0].pid, 0) != 0, "nothing may have been created")
    }

    /// Rewrites meta.img with `change` applied (pages.img untouched).
    static func rewriteMetadata(_ image: String, _ change: (inout ImageMetadata) -> Void) throws {
        var meta = try DirectoryImageReader(directory: image).metadata
        change(&meta)
        let w = try RecordWriter(sink: try FileSink(path: image + "/" + ImageFormat.metaFileName), kind: .directoryMeta)
        try w.writeMetadata(meta)
        try w.finish()
    }

    @Test func xsaveStateThisCPULacksIsRefused() throws {
        let (image, _, ctl) = try Self.checkpointCopy("fpu_regs")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        // Claim state in use (XSTATE_BV) for a component this CPU does not enable.
        let hostXCR0 = try DirectoryImageReader(directory: image).metadata.source.cpu.xcr0
        let candidates: [(UInt64, String)] = [(0xe0, "AVX-512"), (0x18, "MPX"), (0x200, "PKRU"), (0x60000, "AMX")]
        guard let (bits, name) = candidates.first(where: { hostXCR0 & $0.0 == 0 }) else {
            print("skipped: this CPU (XCR0 0x\(String(hostXCR0, radix: 16))) enables every XSAVE component the test can claim")
            return
        }
        try Self.rewriteMetadata(image) { meta in
            var area = meta.processes[0].threads[0].extendedState!.area.value
            for i in 0..<8 { area[512 + i] |= UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i))) }
            meta.processes[0].threads[0].extendedState = ExtendedState(xcr0: hostXCR0 | bits, area: area)
        }
        Self.expectRefusal(try Self.ferry(["restore", image]), name)
    }

    @Test func cpuFlagThisCPULacksIsRefusedUnlessIgnored() throws {
        // A feature the checks know and this CPU lacks (CPUs of this project's kind differ).
        let host = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flagsLine = host.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        let hostFlags = Set(flagsLine.split(separator: " ").map(String.init))
        let candidates = ["amx_tile", "sse4a", "fma4", "avx512_fp16", "avx_vnni", "sha_ni", "movdir64b", "avx512f"]
        guard let lacking = candidates.first(where: { !hostFlags.contains($0) }) else {
            print("skipped: this CPU has every feature in \(candidates)")
            return
        }
        let (image, _, ctl) = try Self.checkpointCopy("getpid_same")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        try Self.rewriteMetadata(image) { $0.source.cpu.flags.append(lacking) }
        Self.expectRefusal(try Self.ferry(["restore", image]), lacking)
        // The operator says the process does not use it: restored, and it verifies itself.
        let r = try Self.ferry(["restore", image, "--allow-missing-cpu-features", lacking])
        #expect(r.0 == 0, "\(r.2)")
        #expect(Self.verdict(ctl) == "PASS\n")
    }

    @Test func pidInUseIsRefusedWithTheFix() throws {
        try W.buildWorkloads()
        let ctl = try Self.makeCtl("pid")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let w = try Workload(binary: W.out + "/wl_getpid_same", ctl: ctl)
        let c = try Self.ferry(["checkpoint", "\(w.pid)", "-o", ctl + "/img", "--leave-running"])
        #expect(c.0 == 0, "\(c.2)")
        Self.expectRefusal(try Self.ferry(["restore", ctl + "/img"]), "--new-pidns")
        #expect(w.isRunning, "the original keeps running")
    }

    /// An epoll whose watch was registered under an fd that was then moved (dup + close) cannot be
    /// re-registered by number: the checkpoint is refused naming both fds, and the process runs on.
    @Test func epollWatchOfAMovedFDIsRefusedAndLeftRunning() throws {
        let ctl = try Self.makeCtl("epoll")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let w = try Self.pythonWorkload(ctl, setUp: """
        import select
        r, w = os.pipe()
        ep = select.epoll()
        ep.register(r, select.EPOLLIN)
        moved = os.dup(r)
        os.close(r)
        """, step: "pass")
        let r = try Self.ferry(["checkpoint", "\(w.pid)", "-o", ctl + "/img"])
        Self.expectRefusal(r, "no longer open at fd")
        usleep(100_000)
        Self.expectLeftAlone(w.pid)
    }

    /// A python3 workload in `ctl` (the directory is `d`): `setUp`, then ready, then `step` every 50 ms.
    static func pythonWorkload(_ ctl: String, setUp: String, step: String) throws -> Workload {
        let script = ctl + "/workload.py"
        let lines = ["#!/usr/bin/python3", "import os, sys, time", "d = sys.argv[1]", setUp,
                     "with open(d + \"/ready.tmp\", \"w\") as f: f.write(f\"{os.getpid()}\\n\")",
                     "os.rename(d + \"/ready.tmp\", d + \"/ready\")",
                     "while True:", "    " + step, "    time.sleep(0.05)"]
        try lines.joined(separator: "\n").write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        return try Workload(binary: script, ctl: ctl)
    }

    /// Stops a workload left running and returns its verdict.
    static func verdict(_ ctl: String) -> String {
        _ = FileManager.default.createFile(atPath: ctl + "/stop", contents: nil)
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: ctl + "/result") { usleep(100_000) }
        return (try? String(contentsOfFile: ctl + "/result", encoding: .utf8)) ?? "no result"
    }

    static func expectLeftAlone(_ pid: pid_t, sourceLocation: SourceLocation = #_sourceLocation) {
        let state = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        #expect(kill(pid, 0) == 0, "the process keeps running", sourceLocation: sourceLocation)
        #expect(!state.contains("State:\tt") && !state.contains("State:\tT") && state.contains("TracerPid:\t0"),
                "left traced or stopped: \(state)", sourceLocation: sourceLocation)
    }

    /// MAP_SHARED|MAP_ANONYMOUS memory, a memfd or a System V segment inherited across fork is carried
    /// for the whole tree (WorkloadTests' shm_fork anon/memfd/sysv, shm_tree, sysv_shm), but the child checkpointed alone shares it with
    /// its parent outside the tree: refused with one line, both keep running and still share the page.
    @Test("shared memory shared with a process outside the tree is refused",
          arguments: [("anon", "MAP_SHARED|MAP_ANONYMOUS memory"), ("memfd", "memfd \"wl_shm_fork\""), ("sysv", "System V shared memory")])
    func sharedAnonymousWithOutsiderIsRefused(_ mode: String, _ what: String) throws {
        try W.buildWorkloads()
        let ctl = try Self.makeCtl("shm-\(mode)-outside")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let w = try Workload(binary: W.out + "/wl_shm_fork", ctl: ctl, args: [mode])
        let child = try #require(Int32(((try? String(contentsOfFile: "/proc/\(w.pid)/task/\(w.pid)/children", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let alone = try Self.ferry(["checkpoint", "\(child)", "-o", ctl + "/img-child"])
        Self.expectRefusal(alone, what)
        #expect(alone.2.contains("with process \(w.pid), which is outside the checkpointed tree"), "\(alone.2)")
        usleep(200_000)
        Self.expectLeftAlone(w.pid)
        Self.expectLeftAlone(child)
        #expect(Self.verdict(ctl) == "PASS\n")
    }

    /// A process holding System V semaphore undo entries (semop with SEM_UNDO), single-threaded or
    /// with a thread: refused with one line naming it, left running; the workload then finds its
    /// semaphore as it left it (sem_undo plain, without SEM_UNDO, is carried: WorkloadTests).
    @Test("semaphore undo entries (SEM_UNDO) are refused by name", arguments: ["undo", "thread"])
    func semaphoreUndoIsRefused(_ mode: String) throws {
        try W.buildWorkloads()
        let ctl = try Self.makeCtl("sem-\(mode)")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let w = try Workload(binary: W.out + "/wl_sem_undo", ctl: ctl, args: [mode])
        let r = try Self.ferry(["checkpoint", "\(w.pid)", "-o", ctl + "/img"])
        Self.expectRefusal(r, mode == "undo" ? "it has a System V semaphore undo list (semop with SEM_UNDO)" : "may hold undo entries for it (semop with SEM_UNDO)")
        #expect(r.2.contains("process \(w.pid) (wl_sem_undo)"), "\(r.2)")
        usleep(200_000)
        Self.expectLeftAlone(w.pid)
        #expect(Self.verdict(ctl) == "PASS\n")
    }

    /// One process with a sealed memfd: refused, left running (a memfd mapped twice is carried: WorkloadTests' shm_single alias).
    @Test("a sealed memfd is refused", arguments: [("sealed", "sealed with F_GET_SEALS 0x")])
    func memfdMappedTwiceOrSealedIsRefused(_ mode: String, _ fragment: String) throws {
        try W.buildWorkloads()
        let ctl = try Self.makeCtl("shm-\(mode)")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let w = try Workload(binary: W.out + "/wl_shm_single", ctl: ctl, args: [mode])
        Self.expectRefusal(try Self.ferry(["checkpoint", "\(w.pid)", "-o", ctl + "/img"]), fragment)
        usleep(100_000)
        Self.expectLeftAlone(w.pid)
        #expect(Self.verdict(ctl) == "PASS\n")
    }

    /// Deleted files whose contents the image cannot carry, each refused by name, the process left
    /// running: over --ghost-limit, in a directory removed too, mapped as well as held open
    /// (WorkloadTests' deleted_files carries the others).
    @Test("a deleted file over the limit, without its directory, or mapped is refused", arguments: [
        ("big", ["--ghost-limit", "1048576"], "over the 1048576 bytes ferry stores per file: raise --ghost-limit"),
        ("nodir", [], "is a deleted file whose directory is gone too"),
        ("mapped", [], "maps the deleted file "),
    ])
    func deletedFileIsRefused(_ mode: String, _ options: [String], _ fragment: String) throws {
        try W.buildWorkloads()
        let ctl = try Self.makeCtl("ghost-\(mode)")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let w = try Workload(binary: W.out + "/wl_deleted_files", ctl: ctl, args: [mode])
        Self.expectRefusal(try Self.ferry(["checkpoint", "\(w.pid)", "-o", ctl + "/img"] + options), fragment)
        usleep(100_000)
        Self.expectLeftAlone(w.pid)
        #expect(Self.verdict(ctl) == "PASS\n")
    }

    /// A memfd held open and also mapped privately: after a restore the private pages would no longer
    /// follow the file, so refused by name; the process is left running.
    @Test func memfdMappedPrivatelyWhileHeldIsRefused() throws {
        let ctl = try Self.makeCtl("memfd-private")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let w = try Self.pythonWorkload(ctl, setUp: """
        import mmap
        fd = os.memfd_create("wl_private")
        os.write(fd, b"x" * 4096)
        m = mmap.mmap(fd, 4096, mmap.MAP_PRIVATE)
        """, step: "pass")
        Self.expectRefusal(try Self.ferry(["checkpoint", "\(w.pid)", "-o", ctl + "/img"]), "maps the memfd \"wl_private\" at 0x")
        usleep(100_000)
        Self.expectLeftAlone(w.pid)
    }

    /// A shared mapping of a file deleted at its path but still linked under another name: a restore
    /// would map a copy the file no longer sees. Refused, the process left running.
    @Test func sharedMappingOfAFileStillLinkedElsewhereIsRefused() throws {
        let ctl = try Self.makeCtl("relinked")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let w = try Self.pythonWorkload(ctl, setUp: """
        import mmap
        fd = os.open(d + "/a.dat", os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(fd, 4096)
        m = mmap.mmap(fd, 4096, mmap.MAP_SHARED)
        os.close(fd)
        os.link(d + "/a.dat", d + "/b.dat")
        os.unlink(d + "/a.dat")
        """, step: "m[0] = (m[0] + 1) % 256")
        Self.expectRefusal(try Self.ferry(["checkpoint", "\(w.pid)", "-o", ctl + "/img"]), "still linked under another name (1 link(s))")
        usleep(100_000)
        Self.expectLeftAlone(w.pid)
    }

    /// An image whose pages lie in a MAP_SHARED file mapping (ferry never writes such pages: the
    /// contents are the file's) is refused at restore, the file untouched and nothing left running.
    @Test func pagesAimedAtASharedFileMappingAreRefused() throws {
        let (image, _, ctl) = try Self.checkpointCopy("getpid_same")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        var meta = try DirectoryImageReader(directory: image).metadata
        let stack = try #require(meta.processes[0].mappings.firstIndex { $0.kind == .stack })
        let victim = ctl + "/victim.dat"
        let original = [UInt8](repeating: 0x5a, count: Int(meta.processes[0].mappings[stack].size))
        #expect(FileManager.default.createFile(atPath: victim, contents: Data(original)))
        var st = stat()
        #expect(lstat(victim, &st) == 0)
        try Self.rewriteMetadata(image) { m in
            var map = m.processes[0].mappings[stack]
            map.kind = .sharedFile
            map.flags = []
            map.name = victim
            map.file = FileIdentity(path: victim, size: UInt64(st.st_size),
                                    mtimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
            m.processes[0].mappings[stack] = map
        }
        meta = try DirectoryImageReader(directory: image).metadata
        Self.expectRefusal(try Self.ferry(["restore", image]), "a shared mapping of the file \(victim)")
        #expect(FileManager.default.contents(atPath: victim) == Data(original), "the file was written")
        usleep(100_000)
        #expect(kill(meta.processes[0].pid, 0) != 0, "nothing may be left running")
    }
}
