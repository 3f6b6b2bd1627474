#if os(Linux)
import ArgumentParser
import FerryImage
import FerryLinux
import FerryCore

struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Freeze a process (and its children), save it to an image directory, then kill it or let it run.")

    @Argument(help: "The process to checkpoint.") var pid: Int32
    @Option(name: .shortAndLong, help: "The image directory to write.") var output: String?
    @Option(help: "Write a stream image to this file instead, or to standard output with '-' (e.g. piped into `ferry restore --stream -`).")
    var stream: String?
    @Flag(help: "Let the process continue after the checkpoint instead of killing it.") var leaveRunning = false
    @Flag(help: "Store every process's pages in full, also those a child still shares copy-on-write with its parent (by default stored once, in the parent, and shared again on restore; a FreeBSD target needs them in full).")
    var noCowSharing = false
    @Flag(help: "The process is a shell's job: its session and process group, led by the shell, become the restoring ferry's.")
    var shellJob = false
    @Flag(name: .customLong("ext-unix-sk"), help: "Carry Unix sockets whose peer is outside the tree and bound to a name: on restore they are connected to that name again (the peer's server must be there).")
    var extUnixSk = false
    @Flag(help: "On kernels whose fdinfo does not show an eventfd's mode (before 6.5), take the process's eventfds as plain counters (not EFD_SEMAPHORE) instead of refusing them.")
    var eventfdsAreCounters = false
    @Flag(help: ArgumentHelp("Write the pages with O_DIRECT, past the page cache (where the file system allows it).",
                             discussion: "Faster on a busy machine, but a restore on this machine then reads the image from the disk."))
    var directIO = false
    @Option(help: ArgumentHelp("How long the killed tree's TCP connections stay held on this host for a restore here (0: not held); `ferry release IMAGE` lets go earlier.",
                               valueName: "seconds"))
    var holdSeconds: Int32 = RepairGuardPlan.defaultHoldSeconds
    @OptionGroup var progress: ProgressOptions
    @OptionGroup var ghosts: GhostLimitOption

    func validate() throws {
        guard (output == nil) != (stream == nil) else { throw ValidationError("give exactly one of -o DIR or --stream FILE|-") }
        guard (0...RepairGuardPlan.maxHoldSeconds).contains(holdSeconds) else {
            throw ValidationError("--hold-seconds takes 0 to \(RepairGuardPlan.maxHoldSeconds)")
        }
    }

    func run() throws {
        DescriptorChecks.eventfdsAreCounters = eventfdsAreCounters
        ghosts.apply()
        UnixSocket.externalPeersAllowed = extUnixSk
        TCPHold.seconds = holdSeconds
        try reportingErrors {
            let sink: ImageSink
            if let stream {
                let bytes = stream == "-" ? FileSink(fd: 1, name: "standard output") : try FileSink(path: stream)
                // The SOURCE record goes first, before the connections are known: a restore
                // asks a guard that holds nothing (or none) for nothing, and goes on.
                var source = Host.describe()
                if holdSeconds > 0 && !leaveRunning { source.tcpHold = TCPHold.name }
                let writer = try StreamImageWriter(sink: bytes, source: source)
                writer.records.directIO = directIO
                sink = writer
            } else {
                sink = try DirectoryImageWriter(directory: output!, directIO: directIO)
            }
            let display = ProgressDisplay(progress.mode, phase: "checkpoint", total: Self.residentEstimate(pid))
            let r: CheckpointResult
            PhaseReport.start()
            do {
                r = try Checkpoint.run(pid: pid, sink: sink, options: CheckpointOptions(leaveRunning: leaveRunning, shellJob: shellJob, shareCopyOnWrite: !noCowSharing))
                display.stop()
            } catch {
                display.stop()
                throw error
            }
            PhaseReport.print("checkpoint")
            let mib = Double(r.dataPages * 4096) / 1048576
            var err = StandardError()
            print("checkpointed \(r.processes) process(es), \(r.threads) thread(s): \(String(format: "%.1f", mib)) MiB of pages, " +
                  "\(r.zeroPages) zero pages; frozen \(Int(r.frozenSeconds * 1000)) ms; " + (leaveRunning ? "left running" : "killed"), to: &err)
            if r.tcpHold != nil {
                print("holding \(r.heldConnections) TCP connection(s) for \(holdSeconds) s for a restore on this host (`ferry release \(output ?? "IMAGE")` lets go)", to: &err)
            }
        }
    }

    /// The tree's resident anonymous memory (RssAnon + RssShmem of every
    /// process): what a checkpoint reads, about; nil if unreadable.
    static func residentEstimate(_ root: Int32) -> UInt64? {
        var total: UInt64 = 0, todo = [root], seen = Set<Int32>()
        while let p = todo.popLast(), seen.insert(p).inserted, seen.count < 100_000 {
            guard let st = try? ProcFS.status(p) else { continue }
            for key in ["RssAnon", "RssShmem"] {
                if let kib = st[key]?.split(separator: " ").first.flatMap({ UInt64($0) }) { total += kib * 1024 }
            }
            todo += ProcFS.children(p)
        }
        return total > 0 ? total : nil
    }
}

/// `--ghost-limit`: how large a memfd or deleted file may be for its contents to go into the image.
struct GhostLimitOption: ParsableArguments {
    @Option(help: ArgumentHelp("The largest memfd or open deleted file whose contents are stored in the image, in bytes (default 64 MiB); a larger one is refused.",
                               valueName: "bytes"))
    var ghostLimit: Int = FileContentsState.limit

    func validate() throws {
        guard (0...FileContentsRecord.maxBytes).contains(ghostLimit) else {
            throw ValidationError("--ghost-limit takes 0 to \(FileContentsRecord.maxBytes) bytes")
        }
    }

    func apply() { FileContentsState.limit = ghostLimit }
}
#endif

#if os(Linux)
/// Hidden: the TCP repair guard a checkpoint starts before it puts a connection into repair mode (RepairGuard.swift).
struct RepairGuardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__repair-guard", shouldDisplay: false)
    @Argument var ferryPid: Int32
    @Argument var holdName: String?
    func run() throws { RepairGuardProcess.run(ferryPid: ferryPid, holdName: holdName) }
}

/// `ferry release IMAGE`: the repair guard holding the image's TCP connections on this host lets go of them.
struct ReleaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Let go of the TCP connections a checkpoint holds on this host until its restore (`checkpoint --hold-seconds`).")
    @Argument(help: "The image directory.") var image: String

    func run() throws {
        try reportingErrors {
            let meta = try DirectoryImageReader(directory: image).metadata
            guard let name = meta.source.tcpHold else {
                print("\(image): the checkpoint held no TCP connection")
                return
            }
            print(try TCPHold.release(name) ? "released the TCP connections of \(image)" : "\(image): nothing held on this host (released, restored or timed out)")
        }
    }
}
#endif
