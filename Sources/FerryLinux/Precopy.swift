#if os(Linux)
import Glibc
import FerryImage

/// The source side of pre-copy: in one brief freeze, the preliminary
/// metadata (which the target builds the address space from) and dirty
/// tracking (`DirtyTracker`) over the writable private anonymous memory;
/// then rounds while the process runs: first every page of that memory,
/// then the pages written since the round before. The final image (after
/// the real freeze) carries that memory's pages only where written since the
/// last round (`DirtyFilterSink`); everything else is sent whole.
public final class PrecopySource {
    public let pid: Int32
    public let metadata: ImageMetadata
    private let tracker: DirtyTracker
    public private(set) var rounds = 0
    private var stopped = false

    /// Why pre-copy cannot be used, or nil.
    public static func unsupported(_ meta: ImageMetadata) -> String? {
        if meta.processes.count != 1 { return "pre-copy tracks single processes; this is a tree of \(meta.processes.count)" }
        if !meta.pipes.isEmpty { return "the process has bytes in pipes, which pre-copy does not follow" }
        return nil
    }

    public init(pid: Int32) throws {
        self.pid = pid
        let session = try CheckpointSession(pid: pid)
        defer { session.resume() }
        let meta = try session.captureMetadata()
        if let why = PrecopySource.unsupported(meta) { throw FerryError(why) }
        metadata = meta
        tracker = try DirtyTracker(pid: pid, frozen: true)
    }

    public var tracked: [(start: UInt64, end: UInt64)] { tracker.ranges }

    /// One round: the first sends every present page of the tracked memory,
    /// later ones the pages written since. `emit(address, data or nil for zero pages, page count)`. Returns pages sent.
    public func round(_ emit: (UInt64, UnsafeRawBufferPointer?, Int) throws -> Void) throws -> Int {
        rounds += 1
        if rounds == 1 {
            let maps = metadata.processes[0].mappings.filter { m in tracked.contains { $0.start == m.start } }
            return try withoutActuallyEscaping(emit) { e in
                let stats = try MemoryState.dumpPages(pid: pid, mappings: maps, to: CallbackSink(e))
                return stats.dataPages + stats.zeroPages
            }
        }
        let dirty = try tracker.scan()
        let memory = RemoteMemory(pid: pid)
        let chunk = PageRecord.maxPages * 4096
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        var pages = 0
        for r in dirty {
            var at = r.start
            while at < r.end {
                let n = Int(min(UInt64(chunk), r.end - at))
                let got = try memory.read(at, into: buffer.baseAddress!, count: n)
                guard got == n else { throw FerryError("pre-copy: memory at \(hex(at)) of \(pid) went away") }
                try emit(at, UnsafeRawBufferPointer(start: buffer.baseAddress, count: n), n / 4096)
                pages += n / 4096
                at += UInt64(n)
            }
        }
        return pages
    }

    /// With the process frozen by `session` (this thread): the pages written
    /// since the last round, and the userfaultfd removed from the process.
    public func finish(frozenBy session: CheckpointSession) throws -> [(start: UInt64, end: UInt64)] {
        let dirty = try tracker.scan()
        stopped = true
        try tracker.stop(frozen: true)
        return dirty
    }

    /// Rollback while the process runs: the userfaultfd is removed (a brief freeze).
    public func cancel() {
        guard !stopped else { return }
        stopped = true
        try? tracker.stop(frozen: false)
    }
}

extension CheckpointSession {
    /// The frozen tree's metadata without pages.
    public func captureMetadata() throws -> ImageMetadata {
        var processes: [ProcessImage] = []
        var pipes: [UInt64: PipeData] = [:]
        for p in tree {
            processes.append(try ProcessDump.capture(pid: p, threads: try ProcFS.threads(p), pipes: &pipes))
        }
        FileState.markSharedAcrossProcesses(&processes)
        let meta = ImageMetadata(source: Host.describe(), processes: processes, pipes: pipes.values.sorted { $0.pipeID < $1.pipeID })
        try Validation.validate(meta, name: "pre-copy metadata of \(pid)")
        return meta
    }
}

/// Pages handed to a closure.
final class CallbackSink: ImageSink {
    let emit: (UInt64, UnsafeRawBufferPointer?, Int) throws -> Void
    init(_ emit: @escaping (UInt64, UnsafeRawBufferPointer?, Int) throws -> Void) { self.emit = emit }
    func writePages(pid: Int32, address: UInt64, data: UnsafeRawBufferPointer) throws { try emit(address, data, data.count / 4096) }
    func writeZeroPages(pid: Int32, address: UInt64, count: Int) throws { try emit(address, nil, count) }
    func finish(metadata: ImageMetadata) throws {}
}

/// Passes an image through, except pages of the tracked ranges that were not written since the last round.
public final class DirtyFilterSink: ImageSink {
    let inner: ImageSink
    let tracked: [(start: UInt64, end: UInt64)]
    let dirty: [(start: UInt64, end: UInt64)]
    let preliminary: ImageMetadata?
    public private(set) var skippedPages = 0
    /// The mappings changed since the preliminary metadata: every page is sent (the target starts over).
    public private(set) var sendsEverything = false
    public private(set) var mismatch: String?

    public init(_ inner: ImageSink, tracked: [(start: UInt64, end: UInt64)], dirty: [(start: UInt64, end: UInt64)],
                preliminary: ImageMetadata? = nil) {
        self.inner = inner
        self.preliminary = preliminary
        self.tracked = tracked.sorted { $0.start < $1.start }
        self.dirty = dirty.sorted { $0.start < $1.start }
    }

    private static func contains(_ ranges: [(start: UInt64, end: UInt64)], _ a: UInt64) -> Bool {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].end <= a { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].start <= a
    }

    private func keep(_ a: UInt64) -> Bool { sendsEverything || !Self.contains(tracked, a) || Self.contains(dirty, a) }

    /// Calls `body(firstPage, count)` for each run of kept pages among `count` pages at `address`.
    private func runs(_ address: UInt64, _ count: Int, _ body: (Int, Int) throws -> Void) throws {
        var i = 0
        while i < count {
            if !keep(address + UInt64(i * 4096)) { skippedPages += 1; i += 1; continue }
            var j = i + 1
            while j < count && keep(address + UInt64(j * 4096)) { j += 1 }
            try body(i, j - i)
            i = j
        }
    }

    public func skipsPage(pid: Int32, address: UInt64) -> Bool { !keep(address) }

    public func beginPages(metadata: ImageMetadata) throws {
        if let pre = preliminary, let why = PhasedRestore.mismatch(preliminary: pre, final: metadata) {
            sendsEverything = true
            mismatch = why
        }
        try inner.beginPages(metadata: metadata)
    }

    public func writePages(pid: Int32, address: UInt64, data: UnsafeRawBufferPointer) throws {
        try runs(address, data.count / 4096) { first, n in
            try inner.writePages(pid: pid, address: address + UInt64(first * 4096),
                                 data: UnsafeRawBufferPointer(rebasing: data[first * 4096..<(first + n) * 4096]))
        }
    }

    public func writeZeroPages(pid: Int32, address: UInt64, count: Int) throws {
        try runs(address, count) { first, n in
            try inner.writeZeroPages(pid: pid, address: address + UInt64(first * 4096), count: n)
        }
    }

    public func finish(metadata: ImageMetadata) throws { try inner.finish(metadata: metadata) }
}
#endif
