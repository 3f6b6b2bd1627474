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
    /// The container record as at the start (the final capture takes it when the namespaces are the same;
    /// a cgroup limit changed during pre-copy is not seen).
    public let container: ContainerSnapshot
    private let tracker: DirtyTracker
    public private(set) var rounds = 0
    private var stopped = false

    /// Why pre-copy cannot be used, or nil.
    public static func unsupported(_ meta: ImageMetadata) -> String? {
        if meta.processes.count != 1 { return "pre-copy tracks single processes; this is a tree of \(meta.processes.count)" }
        if !meta.pipes.isEmpty { return "the process has bytes in pipes, which pre-copy does not follow" }
        if !meta.contents.isEmpty { return "the process holds memfds or deleted files, whose contents pre-copy does not follow" }
        return nil
    }

    /// How long the process was frozen to start tracking.
    public private(set) var startFreezeMs = 0.0

    public init(pid: Int32, shellJob: Bool = false) throws {
        self.pid = pid
        // The mappings with their VmFlags are read while the process still
        // runs: /proc/PID/smaps walks every page table entry (~60 ms at 1 GiB
        // here). Frozen, /proc/PID/maps only confirms them (read again if any
        // changed), as in the final capture.
        let known = try MemoryState.mappings(of: pid)
        let frozenAt = ContinuousClock.now
        let session = try CheckpointSession(pid: pid)
        session.shellJob = shellJob
        var resumed = false
        defer { if !resumed { session.resume() } }
        let meta = try session.captureMetadata(knownMappings: [pid: known])
        if let why = PrecopySource.unsupported(meta) { throw FerryError(why) }
        metadata = meta
        container = try ContainerSnapshot.capture(pid: pid, tree: session.tree)
        // Frozen only to inject the userfaultfd; arming it (write-protecting
        // every page: a walk of every page table entry, ~40 ms at 1 GiB) runs
        // after, the first round reads every page after that anyway.
        tracker = try DirtyTracker(pid: pid, frozen: true, mappings: meta.processes[0].mappings, arm: false)
        session.resume()
        resumed = true
        let d = frozenAt.duration(to: .now)
        startFreezeMs = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        sent = PopulatedPages(ranges: tracker.ranges)
        _ = DirtyTracker.reportsDroppedPages  // probed now, not in the final frozen window
        try tracker.arm()
    }

    public var tracked: [(start: UInt64, end: UInt64)] { tracker.ranges }
    /// The userfaultfd's number in the process (left out of the final image).
    public var remoteFD: Int32 { tracker.remoteFD }

    /// Pages of the tracked memory the target holds data for (sent with data
    /// in some round). A stored property, not `lazy`: a lazy var is read and
    /// written back whole, so marking a run copied the bitmap (a third of the
    /// source's CPU at 1 GiB).
    private var sent: PopulatedPages

    /// One round: the first sends every present page of the tracked memory,
    /// later ones the pages written since. `emit(address, data or nil for zero pages, page count)`. Returns pages sent.
    public func round(_ emit: (UInt64, UnsafeRawBufferPointer?, Int) throws -> Void) throws -> Int {
        rounds += 1
        return try withoutActuallyEscaping(emit) { emit in
            let marking: (UInt64, UnsafeRawBufferPointer?, Int) throws -> Void = { a, d, n in
                try emit(a, d, n)
                if d != nil { self.sent.mark(address: a, pages: n) }
            }
            if rounds == 1 {
                let maps = metadata.processes[0].mappings.filter { m in tracked.contains { $0.start == m.start } }
                let stats = try MemoryState.dumpPages(pid: pid, mappings: maps, to: CallbackSink(marking))
                return stats.dataPages + stats.zeroPages
            }
            let dirty = try tracker.scan()
            var pages = 0
            try PrecopySource.read(pid: pid, dirty) { a, data in
                try marking(a, data, data.count / 4096)
                pages += data.count / 4096
            }
            return pages
        }
    }

    /// Reads `ranges` of `pid`'s memory in chunks of at most PageRecord.maxPages.
    static func read(pid: Int32, _ ranges: [(start: UInt64, end: UInt64)], _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        let memory = RemoteMemory(pid: pid)
        let chunk = PageRecord.maxPages * 4096
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        for r in ranges {
            var at = r.start
            while at < r.end {
                let n = Int(min(UInt64(chunk), r.end - at))
                let got = try memory.read(at, into: buffer.baseAddress!, count: n)
                guard got == n else { throw FerryError("pre-copy: memory at \(hex(at)) of \(pid) went away") }
                TestKill.point(.batch)
                try body(at, UnsafeRawBufferPointer(start: buffer.baseAddress, count: n))
                at += UInt64(n)
            }
        }
    }

    /// What the final image must change in the tracked memory.
    public struct FinalScan {
        /// Written since the last round.
        public var dirty: [(start: UInt64, end: UInt64)]
        /// Sent with data earlier, neither present nor swapped now (dropped): zero on the target.
        public var dropped: [(start: UInt64, end: UInt64)]
        /// Mappings replaced since tracking began: cleared on the target and sent whole.
        public var lost: [(start: UInt64, end: UInt64)]
    }

    /// With the process frozen (by a CheckpointSession of this thread): the
    /// last scans. The userfaultfd stays in the process (left out of the
    /// image; closing it makes the kernel walk every page table entry, ~0.1 s
    /// per GiB): `release(frozen:)` closes it on rollback, a killed source
    /// needs nothing.
    public func finalScan() throws -> FinalScan {
        // A kernel whose write scan reports dropped pages (6.18) needs no
        // scan for absent pages (1–8 ms at 1 GiB here): they are in `dirty`,
        // read as zero and sent as ZERO runs. Otherwise absent first: the
        // write scan leaves a marker that later counts as "swapped".
        let absent = DirtyTracker.reportsDroppedPages ? [] : try tracker.absent()
        PhaseTimer.shared.mark("final scan: absent pages")
        var dirty = try tracker.scan()
        var dropped: [(start: UInt64, end: UInt64)] = []
        for r in absent {
            let first = dropped.count  // runs stay inside one absent range (one mapping)
            var a = r.start
            while a < r.end {
                if sent.contains(a) {
                    if dropped.count > first, dropped[dropped.count - 1].end == a { dropped[dropped.count - 1].end = a + 4096 } else { dropped.append((a, a + 4096)) }
                }
                a += 4096
            }
        }
        if !dropped.isEmpty { dirty = PrecopySource.subtract(dropped, from: dirty) }
        return FinalScan(dirty: dirty, dropped: dropped, lost: tracker.lost)
    }

    /// `ranges` without `cut` (both sorted, non-overlapping within themselves).
    static func subtract(_ cut: [(start: UInt64, end: UInt64)], from ranges: [(start: UInt64, end: UInt64)]) -> [(start: UInt64, end: UInt64)] {
        var out: [(start: UInt64, end: UInt64)] = []
        var k = 0
        for r in ranges {
            var at = r.start
            while k < cut.count && cut[k].end <= at { k += 1 }
            var j = k
            while at < r.end {
                guard j < cut.count, cut[j].start < r.end else { out.append((at, r.end)); break }
                if cut[j].start > at { out.append((at, cut[j].start)) }
                at = max(at, cut[j].end)
                j += 1
            }
        }
        return out
    }

    /// Removes the userfaultfd from the process (`frozen`: held by this thread's CheckpointSession).
    public func release(frozen: Bool) {
        guard !stopped else { return }
        stopped = true
        try? tracker.stop(frozen: frozen)
    }

    /// Rollback while the process runs: the userfaultfd is removed (a brief freeze).
    public func cancel() { release(frozen: false) }
}

extension CheckpointSession {
    /// The frozen tree's metadata without pages.
    /// `knownMappings`: mappings read earlier, used where /proc/PID/maps still shows them unchanged.
    public func captureMetadata(knownMappings: [Int32: [Mapping]] = [:]) throws -> ImageMetadata {
        var processes: [ProcessImage] = []
        var pipes: [UInt64: PipeData] = [:]
        var contents: [UInt64: FileContents] = [:]
        for p in tree {
            processes.append(try ProcessDump.capture(pid: p, threads: try ProcFS.threads(p), pipes: &pipes, contents: &contents,
                                                     knownMappings: knownMappings[p]))
        }
        try ProcessDump.finishTree(&processes, shellJob: shellJob)
        try FileContentsState.refuseMappings(tree: tree, carried: contents)
        let meta = ImageMetadata(source: Host.describe(), processes: processes, pipes: pipes.values.sorted { $0.pipeID < $1.pipeID },
                                 fileContents: contents.values.sorted { $0.id < $1.id })
        try Validation.validate(meta, name: "pre-copy metadata of \(pid)")
        return meta
    }
}

extension MemoryState {
    /// The mappings from /proc/PID/maps (no page-table walk) with the VmFlags
    /// of `known`, when every entry is one of `known` (same range, protection,
    /// offset and name); nil otherwise (read /proc/PID/smaps then). A VmFlag
    /// changed by madvise over a whole mapping (`MappingAdvice`) is not seen.
    static func mappings(of pid: Int32, ifUnchangedFrom known: [Mapping]) throws -> [Mapping]? {
        let entries = try ProcFS.maps(pid, withFlags: false)
        var out: [Mapping] = []
        out.reserveCapacity(entries.count)
        var k = 0
        for e in entries {
            while k < known.count && known[k].start < e.start { k += 1 }
            guard k < known.count, known[k].start == e.start, known[k].end == e.end, known[k].name == e.path,
                  known[k].protection == e.protection, known[k].fileOffset == e.offset else { return nil }
            var m = try mapping(from: e, pid: pid)
            m.flags.formUnion(known[k].flags.intersection(MappingAdvice.all.union(.growsDown)))
            out.append(m)
        }
        return out
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

/// The final image after pre-copy: every mapping as a checkpoint writes it,
/// except the tracked memory, whose mappings are not read at all; in their
/// place, right after the metadata, ZERO runs over the pages the target must
/// drop (sent earlier, gone now; replaced mappings whole) and the pages
/// written since the last round. After pre-copy the target reads a ZERO run
/// in private anonymous memory as "make these pages zero". When the mappings
/// changed (`PhasedRestore.mismatch`) everything is sent and the target
/// starts over.
public final class DirtyFilterSink: ImageSink {
    let inner: ImageSink
    let pid: Int32
    let tracked: [(start: UInt64, end: UInt64)]
    let final: PrecopySource.FinalScan
    let preliminary: ImageMetadata?
    /// The mappings changed since the preliminary metadata: every page is sent (the target starts over).
    public private(set) var sendsEverything = false
    public private(set) var mismatch: String?
    public private(set) var dirtyPages = 0, droppedPages = 0

    public init(_ inner: ImageSink, pid: Int32, tracked: [(start: UInt64, end: UInt64)], final: PrecopySource.FinalScan,
                preliminary: ImageMetadata? = nil) {
        self.inner = inner
        self.pid = pid
        self.preliminary = preliminary
        self.tracked = tracked
        self.final = final
    }

    private func isLost(_ start: UInt64) -> Bool { final.lost.contains { $0.start == start } }

    public func skipsMapping(pid: Int32, mapping m: Mapping) -> Bool {
        !sendsEverything && pid == self.pid && !isLost(m.start) && tracked.contains { $0.start == m.start && $0.end == m.end }
    }

    public func beginPages(metadata: ImageMetadata) throws {
        if let pre = preliminary, let why = PhasedRestore.mismatch(preliminary: pre, final: metadata) {
            sendsEverything = true
            mismatch = why
        }
        try inner.beginPages(metadata: metadata)
        PhaseTimer.shared.mark("send metadata")
        if sendsEverything { return }
        for r in (final.dropped + final.lost).sorted(by: { $0.start < $1.start }) {
            let n = Int((r.end - r.start) >> 12)
            try inner.writeZeroPages(pid: pid, address: r.start, count: n)
            droppedPages += n
        }
        let dirty = final.dirty.filter { d in !final.lost.contains { $0.start <= d.start && d.start < $0.end } }
        try PrecopySource.read(pid: pid, dirty) { a, data in
            // Runs of zero pages go as ZERO (the target zeroes them), the rest as data.
            var stats = MemoryState.DumpStats()
            try MemoryState.emit(pid: pid, address: a, data: data, sink: inner, stats: &stats)
            dirtyPages += data.count / 4096
        }
        PhaseTimer.shared.mark("tracked pages")
    }

    public func writePages(pid: Int32, address: UInt64, data: UnsafeRawBufferPointer) throws {
        try inner.writePages(pid: pid, address: address, data: data)
    }

    public func writeZeroPages(pid: Int32, address: UInt64, count: Int) throws {
        try inner.writeZeroPages(pid: pid, address: address, count: count)
    }

    public func finish(metadata: ImageMetadata) throws { try inner.finish(metadata: metadata) }
}
#endif
