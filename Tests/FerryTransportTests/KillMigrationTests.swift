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

    /// Every thread of the tree under `pid` runs untraced (no tracer, not in
    /// a stop), at once or within a second: a ferry killed while a
    /// connection was in repair mode leaves the tree group-stopped until the
    /// repair guard has taken the socket out and sent SIGCONT.
    static func untraced(_ pid: Int32) -> Bool {
        for _ in 0..<50 {
            if untracedNow(pid) { return true }
            usleep(20_000)
        }
        return false
    }

    static func untracedNow(_ pid: Int32) -> Bool {
        tree(pid).allSatisfy { p in
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/task")) ?? []
            return !tasks.isEmpty && tasks.allSatisfy { t in
                guard let status = try? String(contentsOfFile: "/proc/\(p)/task/\(t)/status", encoding: .utf8) else { return true }
                let lines = status.split(separator: "\n")
                let state = lines.first { $0.hasPrefix("State:") } ?? ""
                return lines.contains("TracerPid:\t0") && !state.contains("t (") && !state.contains("T (")
            }
        }
    }

    /// `pid` and its descendants.
    static func tree(_ pid: Int32) -> [Int32] {
        var out: [Int32] = [], queue = [pid]
        while let p = queue.first {
            queue.removeFirst()
            out.append(p)
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/task")) ?? []
            for t in tasks {
                let children = (try? String(contentsOfFile: "/proc/\(p)/task/\(t)/children", encoding: .utf8)) ?? ""
                queue += children.split(separator: " ").compactMap { Int32($0) }
            }
        }
        return out
    }

    /// Processes of the workload that are not the source's tree: copies on the target.
    static func copies(_ wl: Workload) -> [Int32] {
        let source = Set(tree(wl.pid))
        return wl.instances.filter { !source.contains($0) }
    }

    /// `ferry migrate` of `pid` with FERRY_TEST_KILL_AT=`at`: true when it was killed there, false when it finished (successfully).
    static func migrateKilled(_ net: NetnsPair, _ server: Server, pid: Int32, at: String, env: [String] = []) throws -> Bool {
        let r = try M.migrate(net, pid: pid, tls: nil, env: ["FERRY_TEST_KILL_AT=\(at)"] + env)
        if r.status == 128 + SIGKILL { return true }
        #expect(r.status == 0, "\(at): \(r.output)\nserve: \(server.log)")
        return false
    }

    /// The next kill point: `stride` on, or (growth > 1) at least `growth` times further,
    /// which samples the page batches of every round and of the final freeze.
    static func next(_ n: Int, stride: Int, growth: Double) -> Int { max(n + stride, Int(Double(n) * growth)) }

    struct Case: Sendable, CustomTestStringConvertible {
        var workload: String
        var args: [String]
        var kind: String
        var stride: Int
        var growth: Double = 1
        var testDescription: String { "\(workload) \(kind)" }
    }

    /// A single-threaded process (every step, every 5th injection, page batches sampled
    /// over the rounds and the final freeze), a multi-threaded one (steps, sampled
    /// batches) and trees (steps, page batches: every batch of fork_pipe, sampled
    /// ones of precopy_tree, whose rounds carry three processes' memory).
    static let cases: [Case] = [
        Case(workload: "anon_pattern", args: ["32", "4"], kind: "step", stride: 1),
        Case(workload: "anon_pattern", args: ["32", "4"], kind: "injection", stride: 5),
        Case(workload: "anon_pattern", args: ["32", "4"], kind: "batch", stride: 1, growth: 1.7),
        Case(workload: "threads_tls", args: [], kind: "step", stride: 1),
        Case(workload: "threads_tls", args: [], kind: "batch", stride: 1, growth: 1.5),
        Case(workload: "fork_pipe", args: [], kind: "step", stride: 1),
        // Every batch: a target restoring a tree whose source dies must collect the tree's
        // traced zombies before its namespace init can end (it hung there once).
        Case(workload: "fork_pipe", args: [], kind: "batch", stride: 1),
        Case(workload: "precopy_tree", args: ["24", "4", "2"], kind: "step", stride: 1),
        Case(workload: "precopy_tree", args: ["24", "4", "2"], kind: "batch", stride: 1, growth: 1.7),
    ]

    @Test("killed at every step, at sampled injections and page batches of a pre-copy migration, the source runs on",
          arguments: cases)
    func killedMigration(_ c: Case) throws {
        let kind = c.kind
        try M.buildWorkloads()
        let net = try NetnsPair()
        defer { net.remove() }
        let server = try M.serve(net, tls: nil)
        defer { server.stop() }
        let wl = try Workload(M.out + "/wl_" + c.workload, args: c.args, netns: net.source)
        defer { wl.cleanup() }
        let sourceTree = Self.tree(wl.pid).count
        var n = 1, kills = 0, window = 0
        while true {
            let before = server.log.count
            guard try Self.migrateKilled(net, server, pid: wl.pid, at: "\(kind):\(n)") else { break }
            kills += 1
            #expect(wl.isRunning && Self.untraced(wl.pid), "\(kind):\(n): the source must run on untraced")
            #expect(Self.tree(wl.pid).count == sourceTree, "\(kind):\(n): the source tree must keep its processes")
            // The target notices the closed connection and discards what it built, or (after its ACK) keeps it.
            var settled = false
            for _ in 0..<100 {
                let log = String(server.log.dropFirst(before))
                if log.contains("no COMMIT") {
                    window += 1
                    for p in Self.copies(wl) { kill(p, SIGKILL) }
                    settled = true
                    break
                }
                if Self.copies(wl).isEmpty && (log.contains("fail") || log.contains("abort") || log.contains("error")) { settled = true; break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            if !settled { #expect(Self.copies(wl).isEmpty, "\(kind):\(n): only the source may run; serve: \(server.log)") }
            n = Self.next(n, stride: c.stride, growth: c.growth)
            if n > 3000 { Issue.record("migrate never finished"); break }
        }
        try wl.waitForExit(seconds: 10)
        #expect(try wl.verdict() == "PASS", "serve: \(server.log)")
        print("kill sweep migrate \(c.workload) \(kind): \(kills) kills, \(window) in the ACK window")
    }

    @Test("ferry serve killed at sampled injections and page batches of its restore: the source runs on and nothing is left on the target",
          arguments: [Case(workload: "anon_pattern", args: ["16", "4"], kind: "injection", stride: 5),
                      Case(workload: "anon_pattern", args: ["16", "4"], kind: "batch", stride: 1, growth: 1.7)])
    func killedServe(_ c: Case) throws {
        let kind = c.kind
        try M.buildWorkloads()
        let net = try NetnsPair()
        defer { net.remove() }
        let wl = try Workload(M.out + "/wl_" + c.workload, args: c.args, netns: net.source)
        defer { wl.cleanup() }
        var n = 1, kills = 0
        while true {
            let server = try M.serve(net, tls: nil, extra: ["--new-pidns", "--once"], env: ["FERRY_TEST_KILL_AT=\(kind):\(n)"])
            let r = try M.migrate(net, pid: wl.pid, tls: nil)
            server.process.wait()  // killed at point n, or (finished) below
            if r.status == 0 {
                server.stop()
                break
            }
            kills += 1
            wl.expectRolledBack(r)
            for _ in 0..<40 where wl.instances != [wl.pid] { Thread.sleep(forTimeInterval: 0.05) }
            #expect(wl.instances == [wl.pid], "\(kind):\(n): only the source may run; serve: \(server.log)")
            #expect(Self.untraced(wl.pid))
            n = Self.next(n, stride: c.stride, growth: c.growth)
            if n > 3000 { Issue.record("serve never finished"); break }
        }
        try wl.waitForExit(seconds: 10)
        #expect(try wl.verdict() == "PASS")
        print("kill sweep serve \(kind): \(kills) kills")
    }

    /// tcp_echo (an established connection to a peer outside the tree, in
    /// the source's namespace, busy both ways) migrated with ferry killed at
    /// every `repair` point (the socket handed to the repair guard, in repair
    /// mode while read, back in repair mode before the source's SIGKILL) and
    /// at every protocol step: after each kill the source runs untraced and
    /// the peer echoes at least 3 more messages — except after a kill in the
    /// ACK window, where the target's copy runs too and uses the same
    /// connection (docs/kill-safety.md, Limits): there the connection may
    /// break, and the sweep goes on with a new workload. The finished
    /// migration, or a kill after the source's SIGKILL, ends the source and
    /// the sweep (the copy on the target cannot reach the peer).
    @Test("killed at every repair point and step of the migration of a process with an established connection, the connection carries data both ways",
          arguments: ["repair", "step"])
    func killedMigrationWithConnection(_ kind: String) throws {
        try M.buildWorkloads()
        let net = try NetnsPair()
        defer { net.remove() }
        let server = try M.serve(net, tls: nil)
        defer { server.stop() }
        var workloads: [Workload] = []
        defer { for w in workloads { w.cleanup() } }
        func start() throws -> (Workload, Int32) {
            let w = try Workload(M.out + "/wl_tcp_echo", netns: net.source)
            workloads.append(w)
            let peer = Int32(((try? String(contentsOfFile: w.ctl + "/peer", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            return (w, peer)
        }
        var (wl, peer) = try start()
        func echoed() -> Int {
            Int(((try? String(contentsOfFile: wl.ctl + "/echoed", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        func carries() -> (Bool, String) {
            let before = echoed()
            for _ in 0..<200 where echoed() < before + 3 && !FileManager.default.fileExists(atPath: wl.ctl + "/result") { usleep(25_000) }
            let result = (try? String(contentsOfFile: wl.ctl + "/result", encoding: .utf8)) ?? "none yet"
            return (echoed() >= before + 3, "the connection carried \(echoed() - before) messages; the workload's result: \(result)")
        }
        let copies = { Self.copies(wl).filter { $0 != peer } }
        #expect(carries().0, "before the migration")
        var n = 1, kills = 0, window = 0, broken = 0, wentThrough = 0
        while true {
            let before = server.log.count
            // The guard settles the sockets 30 ms late, as when the scheduler runs it after the source, which
            // uses its socket every ~10 ms: the source must be held (FERRY_TEST_NO_REPAIR_STOP=1 shows it fail).
            guard try Self.migrateKilled(net, server, pid: wl.pid, at: "\(kind):\(n)", env: ["FERRY_TEST_GUARD_DELAY_MS=30"]) else { break }
            kills += 1
            // Killed after the source's SIGKILL: the migration went through (the target keeps its copy,
            // "no COMMIT"). A source gone otherwise failed by itself (its verdict cannot tell: the copy on
            // the target, which cannot reach the peer, writes one into the same directory).
            Thread.sleep(forTimeInterval: 0.1)
            if !wl.isRunning {
                for _ in 0..<100 where !server.log.dropFirst(before).contains("no COMMIT") { Thread.sleep(forTimeInterval: 0.05) }
                let result = (try? String(contentsOfFile: wl.ctl + "/result", encoding: .utf8)) ?? "none"
                #expect(server.log.dropFirst(before).contains("no COMMIT"), "\(kind):\(n): the source is gone and the target has no copy; the workload's result: \(result); serve: \(server.log)")
                wentThrough = n
                break
            }
            #expect(wl.isRunning && Self.untraced(wl.pid), "\(kind):\(n): the source must run on untraced")
            var inWindow = false
            for _ in 0..<100 {
                let log = String(server.log.dropFirst(before))
                if log.contains("no COMMIT") { inWindow = true; for p in copies() { kill(p, SIGKILL) }; break }
                if copies().isEmpty && (log.contains("fail") || log.contains("abort") || log.contains("error")) { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            #expect(copies().isEmpty, "\(kind):\(n): only the source may run; serve: \(server.log)")
            let (ok, why) = carries()
            if inWindow {
                window += 1
                if !ok {
                    broken += 1
                    wl.cleanup()
                    (wl, peer) = try start()
                }
            } else {
                #expect(ok, "\(kind):\(n): \(why)")
            }
            n += 1
            if n > 3000 { Issue.record("migrate never finished"); break }
        }
        try wl.waitForExit(seconds: 10)
        for p in copies() { kill(p, SIGKILL) }
        print("kill sweep migrate tcp_echo \(kind): \(kills) kills, \(window) in the ACK window (the connection broke in \(broken))"
              + (wentThrough > 0 ? ", killed at \(kind):\(wentThrough) after the source's SIGKILL" : ""))
    }
}
