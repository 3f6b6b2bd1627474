#if os(Linux)
import ArgumentParser
import Foundation
import Glibc
import FerryLinux

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Probe the kernel and CPU facilities ferry uses; exits 1 when one it strictly needs is missing. With a PID: list what a checkpoint of that process tree would refuse, and each of its sockets with whether it is carried, without freezing it; exits 1 when something is refused.")

    @Flag(help: "Print the report as JSON.") var json = false
    @Argument(help: "A process whose tree to check instead of the host.") var pid: Int32?

    func run() throws {
        if let pid {
            guard kill(pid, 0) == 0 || errno == EPERM else {
                var err = StandardError()
                print("ferry: cannot check \(pid): no such process", to: &err)
                throw ExitCode(1)
            }
            let problems = TreeCheck.problems(root: pid)
            let sockets = TreeCheck.sockets(root: pid)
            if json {
                print(String(decoding: try JSONEncoder().encode(problems), as: UTF8.self))
            } else if problems.isEmpty && sockets.isEmpty {
                print("process \(pid): nothing found that a checkpoint would refuse (checked without freezing; securebits, membarrier and parent-death signals are checked only at checkpoint)")
            } else {
                problems.forEach { print($0) }
                if !sockets.isEmpty { print("sockets:"); sockets.forEach { print("  " + $0) } }
            }
            if !problems.isEmpty { throw ExitCode(1) }
            return
        }
        let report = CheckProbes.run()
        if json {
            print(report.json())
        } else {
            print("kernel \(report.kernel)")
            print(report.rendered())
        }
        if !report.requiredOK {
            var err = StandardError()
            let names = report.failedRequired.map(\.name).joined(separator: ", ")
            print("ferry: cannot checkpoint or restore here: \(names) not ok", to: &err)
            throw ExitCode(1)
        }
    }
}
#endif
