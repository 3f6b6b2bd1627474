#if os(Linux)
// TEMPORARY (branch migrate): stand-ins for main's CheckpointSession and
// Restore.run(stream:) with the same signatures, so the transport can be
// tested end to end before main lands them. Deleted at the merge.
import Glibc
import Foundation
import FerryImage

public final class CheckpointSession {
    let pid: Int32
    let freezer = Freezer()
    var tree: [Int32] = []
    var open = true

    public init(pid: Int32) throws {
        self.pid = pid
        try Preflight.checkCheckpointable(pid)
        var queue = [pid]
        do {
            while !queue.isEmpty {
                let p = queue.removeFirst()
                if p != pid { try Preflight.checkCheckpointable(p) }
                try freezer.freeze(process: p)
                tree.append(p)
                queue += ProcFS.children(p)
            }
        } catch {
            freezer.thaw()
            throw error
        }
    }

    public func write(to sink: ImageSink) throws -> CheckpointResult {
        var result = CheckpointResult()
        var processes: [ProcessImage] = []
        var pipes: [UInt64: PipeData] = [:]
        for p in tree {
            let threads = freezer.threads.filter { $0.pid == p }.map(\.tid)
            let (image, stats) = try ProcessDump.dump(pid: p, threads: threads, sink: sink, pipes: &pipes)
            processes.append(image)
            result.threads += image.threads.count
            result.dataPages += stats.dataPages
            result.zeroPages += stats.zeroPages
        }
        result.processes = processes.count
        let meta = ImageMetadata(source: Host.describe(), processes: processes, pipes: pipes.values.sorted { $0.pipeID < $1.pipeID })
        try Validation.validate(meta, name: "checkpoint of \(pid)")
        try sink.finish(metadata: meta)
        return result
    }

    public func resume() { if open { open = false; freezer.thaw() } }
    public func kill() { if open { open = false; freezer.kill() } }
}

extension Restore {
    /// Stub: spools the stream into a temporary directory image, then restores it.
    public static func run(stream: ByteSource, options: RestoreOptions) throws -> RestoreResult {
        let dir = NSTemporaryDirectory() + "ferry-stub-\(getpid())-\(Int(Host.now() * 1000))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try DirectoryImageWriter(directory: dir)
        let meta = try StreamImageReader.read(from: stream) { run in
            if let d = run.data {
                try d.withUnsafeBytes { try writer.writePages(pid: run.pid, address: run.address, data: $0) }
            } else {
                try writer.writeZeroPages(pid: run.pid, address: run.address, count: run.pageCount)
            }
        }
        try writer.finish(metadata: meta)
        return try run(image: try DirectoryImageReader(directory: dir), options: options)
    }
}
#endif
