import ArgumentParser
import FerryContainer
import Foundation

/// `ferry container translate`: converts a container description between
/// OCI config.json, a live Linux process, and FreeBSD jail + RCTL + cpuset,
/// and lists everything that could not be carried over.
struct ContainerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "container",
        abstract: "Container specs: translate between OCI, Linux and FreeBSD.",
        subcommands: [Translate.self])

    struct Translate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Translate a container's isolation and limits, listing what has no counterpart.")

        enum Source: String, ExpressibleByArgument, CaseIterable { case oci, linuxPID = "linux-pid", freebsd }
        enum Target: String, ExpressibleByArgument, CaseIterable { case oci, linux, freebsd }

        @Option(help: "Input kind: oci (config.json), linux-pid (a running process), freebsd (jail.conf + rctl + cpuset).")
        var from: Source

        @Argument(help: "The file (oci, freebsd) or the PID (linux-pid).")
        var input: String

        @Option(help: "Output: oci (config.json fragment), linux (cgroup v1 and v2 apply plans), freebsd (jail.conf).")
        var to: Target

        @Option(help: "Jail name for --to freebsd (default: the source's name, else \"ferry\").")
        var name: String?

        @Flag(help: "Print the neutral spec, the translation and the not-translated list as JSON.")
        var json = false

        func run() throws {
            let source = try read()
            let result = try ContainerTranslation.render(source.output, to: to.rendering, jailName: name)
            let notes = source.notes + result.notes
            if json {
                print(try ContainerTranslation.json(spec: source.output, result: result, notes: notes))
                return
            }
            print(result.text, terminator: result.text.hasSuffix("\n") ? "" : "\n")
            if !notes.isEmpty {
                var err = StandardError()
                print("\(notes.count) item(s) not translated exactly:", to: &err)
                for note in notes { print("  \(note)", to: &err) }
            }
        }

        private func read() throws -> Translated<ContainerSpec> {
            switch from {
            case .oci:
                return try OCIConfig.read(try contents(), source: input)
            case .freebsd:
                return try FreeBSDJail.read(text: String(decoding: try contents(), as: UTF8.self), source: input)
            case .linuxPID:
                guard let pid = Int32(input), pid > 0 else {
                    throw ContainerError.invalid(field: "linux-pid", reason: "\"\(input)\" is not a process id")
                }
                return try LinuxLive().read(pid: pid)
            }
        }

        private func contents() throws -> Data {
            guard let data = FileManager.default.contents(atPath: input) else {
                throw ContainerError.unreadable(path: input, reason: "no such file or not readable")
            }
            return data
        }
    }
}

extension ContainerCommand.Translate.Target {
    var rendering: ContainerTranslation.Target {
        switch self {
        case .oci: .oci
        case .linux: .linux
        case .freebsd: .freebsd
        }
    }
}
