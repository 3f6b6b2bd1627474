import Foundation
import Glibc
import Testing
import FerryTestSupport

/// A ferry killed at any moment never harms the process it works on
/// (docs/kill-safety.md). The debug build's FERRY_TEST_KILL_AT=KIND:N makes
/// ferry SIGKILL itself at the Nth point of KIND; each sweep raises N until
/// ferry gets through, checking after every kill that the process runs on,
/// untraced. The process then verifies itself (after a restore when the
/// last checkpoint killed it). Needs root.
@Suite(.serialized, .enabled(if: getuid() == 0, "checkpoint/restore needs root"))
struct KillSafetyTests {
    typealias W = WorkloadTests
    typealias Workload = RefusalTests.Workload

    struct Sweep: Sendable, CustomTestStringConvertible {
        var workload: String
        /// Every `stride`th injection point of a checkpoint --leave-running.
        var leaveRunningStride: Int
        /// Every `stride`th point of a checkpoint that kills the process at the end, and of the restore.
        var killStride: Int
        /// Every `stride`th page batch of the restore (1: every one).
        var restoreBatchStride: Int
        var testDescription: String { workload }
    }

    static let sweeps: [Sweep] = [
        Sweep(workload: "clock_loop", leaveRunningStride: 1, killStride: 5, restoreBatchStride: 7),
        Sweep(workload: "signals", leaveRunningStride: 7, killStride: 13, restoreBatchStride: 1),
        Sweep(workload: "threads_tls", leaveRunningStride: 5, killStride: 11, restoreBatchStride: 3),
        Sweep(workload: "fork_pipe", leaveRunningStride: 7, killStride: 13, restoreBatchStride: 5),
        Sweep(workload: "fpu_regs", leaveRunningStride: 9, killStride: 29, restoreBatchStride: 1),
        // Every thread waits with a temporary signal mask (sigsuspend, ppoll, pselect6, epoll_pwait).
        Sweep(workload: "sigmask_wait", leaveRunningStride: 3, killStride: 11, restoreBatchStride: 3),
    ]

    /// Runs ferry with the kill hook; true when it was killed there (false: it finished, status 0).
    static func ferry(_ args: [String], killAt: String, env: [String: String] = [:]) throws -> Bool {
        let r = try Child.run([W.ferry] + args, env: env.merging(["FERRY_TEST_KILL_AT": killAt]) { $1 })
        if r.status == 128 + SIGKILL { return true }
        #expect(r.status == 0, "ferry \(args.joined(separator: " ")) with \(killAt): \(r.stderr)")
        return false
    }

    /// Every process of the tree under `pid`, threads included, runs untraced
    /// (not in a ptrace or group stop), at once or within a second: a ferry
    /// killed while a connection was in repair mode leaves the tree
    /// group-stopped until the repair guard has taken the socket out and sent
    /// SIGCONT (docs/kill-safety.md).
    static func runsUntraced(_ pid: pid_t, _ context: String) -> Bool {
        var why = ""
        for _ in 0..<50 {
            guard let w = notRunning(pid) else { return true }
            why = w
            usleep(20_000)
        }
        Issue.record("\(context): \(why)")
        return false
    }

    /// Why some thread of the tree under `pid` does not run untraced; nil when all do.
    static func notRunning(_ pid: pid_t) -> String? {
        var queue = [pid]
        while !queue.isEmpty {
            let p = queue.removeFirst()
            guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/task") else {
                return "process \(p) is gone"
            }
            for t in tasks {
                let status = (try? String(contentsOfFile: "/proc/\(p)/task/\(t)/status", encoding: .utf8)) ?? ""
                let fields = Dictionary(status.split(separator: "\n").compactMap { line -> (String, String)? in
                    guard let c = line.firstIndex(of: ":") else { return nil }
                    return (String(line[..<c]), line[line.index(after: c)...].trimmingCharacters(in: .whitespaces))
                }, uniquingKeysWith: { a, _ in a })
                let state = fields["State"] ?? "?"
                if fields["TracerPid"] != "0" || state.hasPrefix("t") || state.hasPrefix("T") || state.hasPrefix("Z") {
                    return "thread \(t) of \(p) is \(state), tracer \(fields["TracerPid"] ?? "?")"
                }
            }
            let children = (try? String(contentsOfFile: "/proc/\(p)/task/\(p)/children", encoding: .utf8)) ?? ""
            queue += children.split(separator: " ").compactMap { pid_t($0) }
        }
        return nil
    }

    /// Processes running `binary` (zombies left out).
    static func living(_ binary: String) -> [pid_t] {
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
        return pids.filter { p in
            guard (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/exe")) == binary else { return false }
            let stat = (try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8)) ?? ""
            return !(stat.split(separator: ")").last?.hasPrefix(" Z") ?? true)
        }
    }

    static func waitFor(_ path: String, tenths: Int = 100) -> Bool {
        for _ in 0..<tenths {
            if FileManager.default.fileExists(atPath: path) { return true }
            usleep(100_000)
        }
        return false
    }

    /// Raises N by `stride` until ferry finishes; `check` after every kill. Returns the number of kills.
    static func sweep(_ args: [String], kind: String, stride: Int, first: Int = 1, env: [String: String] = [:],
                      check: (Int) -> Bool) throws -> Int {
        var n = first, kills = 0
        while try ferry(args, killAt: "\(kind):\(n)", env: env) {
            kills += 1
            guard check(n) else { return kills }
            n += stride
            if n > 5000 { Issue.record("ferry \(args) never finished"); return kills }
        }
        return kills
    }

    @Test("killed at any point of checkpoint --leave-running, checkpoint and restore, the process runs on", arguments: sweeps)
    func sweep(_ s: Sweep) throws {
        try W.buildWorkloads()
        let ctl = try RefusalTests.makeCtl("kill-\(s.workload)")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        // A private copy: its path names this test's processes only.
        let binary = ctl + "/wl_copy"
        try FileManager.default.copyItem(atPath: W.out + "/wl_" + s.workload, toPath: binary)
        defer { for p in Self.living(binary) { kill(p, SIGKILL) } }
        let w = try Workload(binary: binary, ctl: ctl)
        let pid = w.pid
        try #require(pid > 0)
        let image = ctl + "/img"

        // checkpoint --leave-running: every kill leaves it running; so does the finished run.
        let leave = ["checkpoint", "\(pid)", "-o", image, "--leave-running"]
        let k1 = try Self.sweep(leave, kind: "injection", stride: s.leaveRunningStride) { Self.runsUntraced(pid, "\(s.workload) leave-running injection:\($0)") }
        let k2 = try Self.sweep(leave, kind: "batch", stride: 1) { Self.runsUntraced(pid, "\(s.workload) leave-running batch:\($0)") }
        #expect(Self.runsUntraced(pid, "\(s.workload) after checkpoint --leave-running"))

        // checkpoint: killed before its end the process runs on; the finished run kills it on purpose.
        let k3 = try Self.sweep(["checkpoint", "\(pid)", "-o", image], kind: "injection", stride: s.killStride) {
            Self.runsUntraced(pid, "\(s.workload) checkpoint injection:\($0)")
        }
        w.waitGone()

        // restore (into a fresh pid namespace, so that no zombie of a killed attempt holds the pid):
        // a killed restore leaves nothing of the process running (PTRACE_O_EXITKILL).
        func nothingLeft(_ what: String) -> Bool {
            for _ in 0..<100 where !Self.living(binary).isEmpty { usleep(20_000) }
            let left = Self.living(binary)
            if !left.isEmpty { Issue.record("\(s.workload) restore \(what): \(left) still run") }
            return left.isEmpty
        }
        let restore = ["restore", image, "--new-pidns"]
        // Killed at page batches; the restore that gets through is killed in turn (the image stays).
        let k5 = try Self.sweep(restore, kind: "batch", stride: s.restoreBatchStride) { nothingLeft("batch:\($0)") }
        for p in Self.living(binary) { kill(p, SIGKILL) }
        #expect(nothingLeft("batch sweep's finished restore, killed"))
        let k4 = try Self.sweep(restore, kind: "injection", stride: s.killStride) { nothingLeft("injection:\($0)") }
        #expect(Self.waitFor(ctl + "/ready"))
        FileManager.default.createFile(atPath: ctl + "/stop", contents: nil)
        #expect(Self.waitFor(ctl + "/result"), "\(s.workload): no result")
        let result = (try? String(contentsOfFile: ctl + "/result", encoding: .utf8)) ?? ""
        #expect(result.hasPrefix("PASS"), "\(s.workload): \(result)")
        print("kill sweep \(s.workload): \(k1) injection kills (leave-running), \(k2) batch kills, \(k3) checkpoint kills, \(k5) restore batch kills, \(k4) restore injection kills")
    }

    // MARK: an established connection

    /// Messages the tcp_echo workload's peer has echoed (0 before the first).
    static func echoed(_ ctl: String) -> Int {
        Int(((try? String(contentsOfFile: ctl + "/echoed", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// The pid printed by `ferry restore` ("restored pid N").
    static func restore(_ image: String) throws -> pid_t? {
        let r = try Child.run([W.ferry, "restore", image, "--new-pidns"])
        #expect(r.status == 0, "restore: \(r.stderr)")
        return r.stdout.split(separator: "\n").first { $0.hasPrefix("restored pid ") }
            .flatMap { pid_t($0.dropFirst("restored pid ".count).prefix { $0.isNumber }) }
    }

    /// tcp_echo keeps an established connection to a peer outside its tree
    /// busy both ways. ferry is killed at every `repair` point (a socket
    /// handed to the repair guard, in repair mode while its state is read,
    /// taken out, put back in repair mode before the kill), at every 4th
    /// injection and at every page batch of checkpoint --leave-running, and
    /// at every 9th injection and the repair points of a checkpoint that
    /// kills the process at its end. After each kill the process runs
    /// untraced and the peer echoes at least 3 more messages (each sent
    /// only once the one before came back); when the process was killed
    /// (the checkpoint finished, or ferry died after its SIGKILL) its
    /// restored copy does, and the sweep goes on with it: the peer was sent
    /// nothing (no FIN, no RST). In the end the process verifies itself.
    /// The repair guard settles the sockets 30 ms late (FERRY_TEST_GUARD_DELAY_MS), as when the
    /// scheduler runs it after the process: tcp_echo, which uses its socket every ~10 ms, then reaches
    /// it first unless the process is held (RepairStop; FERRY_TEST_NO_REPAIR_STOP=1 shows it fail).
    static let lateGuard = ["FERRY_TEST_GUARD_DELAY_MS": "30"]

    @Test("killed at any point of a checkpoint of a process with an established connection, the connection carries data both ways")
    func connectionSweep() throws {
        try W.buildWorkloads()
        let ctl = try RefusalTests.makeCtl("kill-tcp")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let binary = ctl + "/wl_copy"
        try FileManager.default.copyItem(atPath: W.out + "/wl_tcp_echo", toPath: binary)
        // The peer runs this copy too.
        defer { for p in Self.living(binary) { kill(p, SIGKILL) } }
        let w = try Workload(binary: binary, ctl: ctl)
        var pid = w.pid
        try #require(pid > 0)
        let image = ctl + "/img"
        func carries(_ what: String) -> Bool {
            guard Self.runsUntraced(pid, what) else { return false }
            let before = Self.echoed(ctl)
            for _ in 0..<200 where Self.echoed(ctl) < before + 3 && !FileManager.default.fileExists(atPath: ctl + "/result") {
                usleep(25_000)
            }
            let after = Self.echoed(ctl)
            let result = (try? String(contentsOfFile: ctl + "/result", encoding: .utf8)) ?? "none yet"
            #expect(after >= before + 3, "\(what): the connection carried \(after - before) messages; the workload's result: \(result)")
            return after >= before + 3
        }
        #expect(carries("before any checkpoint"))
        var kills: [String] = []
        let leave = ["checkpoint", "\(pid)", "-o", image, "--leave-running"]
        for (kind, stride) in [("repair", 1), ("injection", 4), ("batch", 1)] {
            let k = try Self.sweep(leave, kind: kind, stride: stride, env: Self.lateGuard) { carries("leave-running \(kind):\($0)") }
            kills.append("\(k) \(kind) (leave-running)")
            #expect(carries("after a finished checkpoint --leave-running"))
        }
        // A finished checkpoint, or one killed after its SIGKILL, ends the process: the sweep goes on with its restored copy
        // (whose connection carries data only if the peer was sent nothing when the process died).
        func gone(_ p: pid_t) -> Bool {
            for _ in 0..<10 {
                let stat = (try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8)) ?? ""
                if stat.isEmpty || stat.split(separator: ")").last?.hasPrefix(" Z") == true { return true }
                usleep(20_000)
            }
            return false
        }
        for (kind, stride) in [("injection", 9), ("repair", 1)] {
            var n = 1, k = 0, restores = 0
            while true {
                let killed = try Self.ferry(["checkpoint", "\(pid)", "-o", image], killAt: "\(kind):\(n)", env: Self.lateGuard)
                if killed { k += 1 }
                if !killed || gone(pid) {
                    guard let restored = try Self.restore(image) else { Issue.record("no restored pid"); return }
                    pid = restored
                    restores += 1
                    guard carries("restored after checkpoint \(kind):\(n)\(killed ? " (killed after its SIGKILL)" : "")") else { return }
                    if !killed { break }
                } else if !carries("checkpoint \(kind):\(n)") {
                    return
                }
                n += stride
                if n > 5000 { Issue.record("ferry checkpoint never finished"); return }
            }
            kills.append("\(k) \(kind) (checkpoint, \(restores) restores)")
        }
        FileManager.default.createFile(atPath: ctl + "/stop", contents: nil)
        #expect(Self.waitFor(ctl + "/result"), "tcp_echo: no result")
        let result = (try? String(contentsOfFile: ctl + "/result", encoding: .utf8)) ?? ""
        #expect(result.hasPrefix("PASS"), "tcp_echo: \(result)")
        print("kill sweep tcp_echo: \(kills.joined(separator: ", ")) kills")
    }

    /// A process stopped (SIGSTOP) before ferry came stays stopped when ferry
    /// dies with its connection in repair mode: the repair guard continues
    /// only the processes ferry stopped itself. Continued by the test, its
    /// connection carries data again.
    @Test("a stopped process with a connection stays stopped after ferry dies in repair mode")
    func stoppedProcessStaysStopped() throws {
        try W.buildWorkloads()
        let ctl = try RefusalTests.makeCtl("kill-tcp-stopped")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let binary = ctl + "/wl_copy"
        try FileManager.default.copyItem(atPath: W.out + "/wl_tcp_echo", toPath: binary)
        defer { for p in Self.living(binary) { kill(p, SIGKILL) } }
        let w = try Workload(binary: binary, ctl: ctl)
        let pid = w.pid
        try #require(pid > 0)
        func state() -> String {
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            return status.split(separator: "\n").first { $0.hasPrefix("State:") }.map(String.init) ?? "gone"
        }
        func carries() -> Bool {
            let before = Self.echoed(ctl)
            for _ in 0..<200 where Self.echoed(ctl) < before + 3 { usleep(25_000) }
            return Self.echoed(ctl) >= before + 3
        }
        #expect(carries(), "before any checkpoint")
        kill(pid, SIGSTOP)
        for _ in 0..<100 where !state().contains("T (stopped)") { usleep(10_000) }
        try #require(state().contains("T (stopped)"))
        // repair:1 right before repair mode goes on, 2 to 4 in repair mode (on, queues read).
        for n in 1...4 {
            let killed = try Self.ferry(["checkpoint", "\(pid)", "-o", ctl + "/img", "--leave-running"], killAt: "repair:\(n)")
            #expect(killed, "repair:\(n): ferry was not killed there")
            usleep(300_000)
            #expect(state().contains("T (stopped)"), "repair:\(n): the stopped process is \(state())")
        }
        kill(pid, SIGCONT)
        #expect(Self.runsUntraced(pid, "continued"))
        #expect(carries(), "continued, the connection carries data")
        FileManager.default.createFile(atPath: ctl + "/stop", contents: nil)
        #expect(Self.waitFor(ctl + "/result"), "tcp_echo: no result")
        let result = (try? String(contentsOfFile: ctl + "/result", encoding: .utf8)) ?? ""
        #expect(result.hasPrefix("PASS"), "tcp_echo: \(result)")
    }
}
