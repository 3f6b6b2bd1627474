#if os(Linux)
import ArgumentParser
import FerryImage
import FerryLinux

struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Freeze a process (and its children), save it to an image directory, then kill it or let it run.")

    @Argument(help: "The process to checkpoint.") var pid: Int32
    @Option(name: .shortAndLong, help: "The image directory to write.") var output: String?
    @Option(help: "Write a stream image to this file instead, or to standard output with '-' (e.g. piped into `ferry restore --stream -`).")
    var stream: String?
    @Flag(help: "Let the process continue after the checkpoint instead of killing it.") var leaveRunning = false

    func validate() throws {
        guard (output == nil) != (stream == nil) else { throw ValidationError("give exactly one of -o DIR or --stream FILE|-") }
    }

    func run() throws {
        try reportingErrors {
            let sink: ImageSink
            if let stream {
                let bytes = stream == "-" ? FileSink(fd: 1, name: "standard output") : try FileSink(path: stream)
                sink = try StreamImageWriter(sink: bytes, source: Host.describe())
            } else {
                sink = try DirectoryImageWriter(directory: output!)
            }
            let r = try Checkpoint.run(pid: pid, sink: sink, options: CheckpointOptions(leaveRunning: leaveRunning))
            let mib = Double(r.dataPages * 4096) / 1048576
            var err = StandardError()
            print("checkpointed \(r.processes) process(es), \(r.threads) thread(s): \(String(format: "%.1f", mib)) MiB of pages, " +
                  "\(r.zeroPages) zero pages; frozen \(Int(r.frozenSeconds * 1000)) ms; " + (leaveRunning ? "left running" : "killed"), to: &err)
        }
    }
}
#endif
