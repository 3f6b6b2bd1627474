#if os(Linux)
import ArgumentParser
import Foundation
import FerryImage
import FerryLinux
import Glibc

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Recreate a checkpointed process from an image directory; prints its pid once it runs.")

    @Argument(help: "The image directory written by `ferry checkpoint`.") var directory: String?
    @Option(help: "Read a stream image from this file, or from standard input with '-'.") var stream: String?
    @Flag(help: "Restore into a fresh pid namespace (the process keeps its pid inside it).") var newPidns = false
    @Option(help: "Address-space layout to restore into: native, or freebsd-linuxulator (stack moved to FreeBSD's Linuxulator stack top and pointers fixed, vDSO proxied) — run here to exercise what a FreeBSD target needs.")
    var targetLayout: String = "native"
    @Option(help: "Comma-separated CPU features (cpuinfo names) the source CPU had and this one may lack, because the process is known not to use them (e.g. glibc restricted with GLIBC_TUNABLES=glibc.cpu.hwcaps=-XSAVEC). Without it such a restore is refused.")
    var allowMissingCpuFeatures: String = ""
    @Flag(help: "Restore even when this CPU enables XSAVE components (e.g. AVX) the source's did not; safe only if the process binds eagerly (LD_BIND_NOW=1) and sizes no XSAVE buffer itself.")
    var allowXsaveGrowth = false
    @OptionGroup var restorePolicy: PolicyOptions
    @OptionGroup var progress: ProgressOptions
    @OptionGroup var network: NetworkAttachOptions

    func validate() throws {
        guard (directory == nil) != (stream == nil) else { throw ValidationError("give exactly one of DIR or --stream FILE|-") }
        guard TargetLayoutChoice(rawValue: targetLayout) != nil else {
            throw ValidationError("unknown --target-layout \(targetLayout); use one of: \(TargetLayoutChoice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        try reportingErrors {
            let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
            var options = RestoreOptions(newPidNamespace: newPidns, ferryPath: selfPath,
                                         targetLayout: TargetLayoutChoice(rawValue: targetLayout)!,
                                         allowMissingCPUFeatures: Set(allowMissingCpuFeatures.split(separator: ",").map(String.init)),
                                         allowXSaveGrowth: allowXsaveGrowth, policy: try restorePolicy.policy)
            options.bridge = network.bridge
            options.netHook = network.netHook
            let r: RestoreResult
            // pages.img holds the page contents and little else: the total to show.
            var total: UInt64?
            var st = stat()
            if stream == nil, let directory, stat(directory + "/" + ImageFormat.pagesFileName, &st) == 0 { total = UInt64(st.st_size) }
            let display = ProgressDisplay(progress.mode, phase: "restore", total: total)
            PhaseReport.start()
            do {
                if let stream {
                    let source = stream == "-" ? FileSource(fd: 0, name: "standard input") : try FileSource(path: stream)
                    r = try Restore.run(stream: source, options: options)
                } else {
                    r = try Restore.run(image: try DirectoryImageReader(directory: directory!), options: options)
                }
                display.stop()
            } catch {
                display.stop()
                throw error
            }
            PhaseReport.print("restore")
            for note in r.notes { print("note: \(note)") }
            if let ns = r.namespaceInit {
                print("restored pid \(r.pids[0]) (namespace init \(ns))")
            } else {
                print("restored pid \(r.pids[0])")
            }
        }
    }
}

/// Where a restored container's veth host ends go (restore and serve).
struct NetworkAttachOptions: ParsableArguments {
    @Option(help: "Attach the host end of each of a restored container's veth interfaces to this bridge (and bring it up).")
    var bridge: String?
    @Option(help: "Run this shell command for each host end of a restored container's veth (the name is its last argument, and FERRY_HOST_END / FERRY_CONTAINER_IF are set); a non-zero exit fails the restore.")
    var netHook: String?

    func validate() throws {
        if bridge != nil, netHook != nil { throw ValidationError("give --bridge or --net-hook, not both") }
    }
}

/// Hidden: the init process of a pid namespace made by `restore --new-pidns`.
struct PidnsInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__pidns-init", shouldDisplay: false)
    func run() throws { PidNamespaceInit.run() }
}
#endif
