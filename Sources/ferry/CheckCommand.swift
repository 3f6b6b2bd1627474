#if os(Linux)
import ArgumentParser
import FerryLinux

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Probe the kernel and CPU facilities ferry uses; exits 1 when one it strictly needs is missing. With a PID: list the sockets of its tree and whether each will be carried.")

    @Flag(help: "Print the report as JSON.") var json = false
    @Argument(help: "A process: list the sockets of its tree and whether a checkpoint carries each (it is not frozen).")
    var pid: Int32?

    func run() throws {
        if let pid {
            var lines = try UnixSocket.survey(pid: pid)
            for p in ProcFS.tree(of: pid) {
                lines += try InetSocket.report(pid: p).map { "process \(p) \($0)" }
            }
            print(lines.isEmpty ? "process \(pid): no sockets" : lines.joined(separator: "\n"))
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
