import Foundation
import Glibc
import Testing
import FerryTestSupport

/// Terminals outside the tree: a shell job (`--shell-job`) whose stdio and
/// controlling terminal are a pty of its shell comes back on the terminal
/// the restore runs on (both terminals are ptys the test creates).
/// Needs root (checkpoint and restore); CI runs as root.
@Suite(.serialized, .enabled(if: getuid() == 0, "checkpoint/restore needs root"))
struct TerminalTests {
    @Test func aShellJobComesBackOnTheRestorersTerminal() throws {
        let dir = "/tmp/ferry-shelljob-tty-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Child.run(["/usr/bin/python3", WorkloadTests.workloads + "/shell_job_tty.py", WorkloadTests.ferry, dir])
        #expect(r.stdout.hasPrefix("PASS"), "\(r.stdout) \(r.stderr)")
    }
}
