import Foundation
import Glibc
import FerryCore
import Testing
import FerryTestSupport

/// The progress display of checkpoint and restore: a line redrawn on a
/// terminal (a pseudo-terminal here), nothing when standard error is not
/// one, JSON lines with --progress json, nothing with --quiet.
/// Needs root (checkpoint of a workload); CI runs as root.
@Suite(.serialized, .enabled(if: getuid() == 0, "checkpoint needs root"))
struct ProgressTests {
    typealias W = WorkloadTests

    /// Runs ferry with its stdio on a fresh pseudo-terminal (python3's pty
    /// module); returns what the terminal showed.
    static func onTerminal(_ args: [String]) throws -> (status: Int32, screen: String) {
        let r = try Child.run(["/usr/bin/python3", "-c",
                               "import os, pty, sys; s = pty.spawn(sys.argv[1:]); sys.exit(os.waitstatus_to_exitcode(s))",
                               W.ferry] + args)
        return (r.status, r.stdout)
    }

    @Test func terminalJSONAndQuiet() throws {
        try W.buildWorkloads()
        let ctl = try RefusalTests.makeCtl("progress")
        defer { try? FileManager.default.removeItem(atPath: ctl) }
        let w = try RefusalTests.Workload(binary: W.out + "/wl_anon_pattern", ctl: ctl, args: ["64"])
        try #require(w.pid > 0)

        // A terminal: the line is drawn (at least once, when the work starts) and cleared at the end.
        let tty = try Self.onTerminal(["checkpoint", "\(w.pid)", "-o", ctl + "/img1", "--leave-running"])
        #expect(tty.status == 0, "\(tty.screen)")
        #expect(tty.screen.contains("\rcheckpoint ") && tty.screen.contains(" MiB/s"), "\(tty.screen.debugDescription)")
        #expect(tty.screen.contains("of ~"), "the checkpoint shows its estimate: \(tty.screen.debugDescription)")
        #expect(tty.screen.contains("checkpointed 1 process(es)"))

        // Not a terminal: no progress.
        let plain = try Child.run([W.ferry, "checkpoint", "\(w.pid)", "-o", ctl + "/img2", "--leave-running"])
        #expect(plain.status == 0 && !plain.stderr.contains("MiB/s"), "\(plain.stderr)")

        // --quiet on a terminal: no progress.
        let quiet = try Self.onTerminal(["checkpoint", "\(w.pid)", "-o", ctl + "/img3", "--leave-running", "--quiet"])
        #expect(quiet.status == 0 && !quiet.screen.contains("MiB/s"), "\(quiet.screen.debugDescription)")

        // JSON lines, terminal or not, each a ProgressSample.
        let json = try Child.run([W.ferry, "checkpoint", "\(w.pid)", "-o", ctl + "/img4", "--leave-running", "--progress", "json"])
        #expect(json.status == 0)
        let samples = json.stderr.split(separator: "\n").filter { $0.hasPrefix("{") }
            .compactMap { try? JSONDecoder().decode(ProgressSample.self, from: Data($0.utf8)) }
        #expect(!samples.isEmpty && samples.allSatisfy { $0.phase == "checkpoint" }, "\(json.stderr)")

        // restore of the last image on a terminal (into a fresh pid namespace: the original still runs).
        let restored = try Self.onTerminal(["restore", ctl + "/img4", "--new-pidns"])
        #expect(restored.status == 0 && restored.screen.contains("\rrestore "), "\(restored.screen.debugDescription)")
        if let pid = restored.screen.split(separator: "\n").first(where: { $0.contains("restored pid") })?
            .split(separator: " ").dropFirst(2).first.flatMap({ Int32($0) }) {
            kill(pid, SIGKILL)
        }
        #expect(w.isRunning)
    }
}
