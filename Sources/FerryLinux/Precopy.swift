#if os(Linux)
import Glibc
import FerryImage

/// The source side of pre-copy, for a process or a whole tree: in one brief
/// freeze of the tree, the preliminary metadata (which the target builds the
/// address spaces from; the bytes in pipes left out, they travel in the
/// final image) and dirty tracking (a `DirtyTracker` in every process) over
/// the writable private anonymous memory; then rounds while the tree runs:
/// first every page of that memory, then the pages written since the round
/// before, every process's in each round. The final image (after the real
/// freeze) carries that memory's pages only where written since the last
/// round (`DirtyFilterSink`); everything else — shared memory (once per
/// object), pipe bytes, socket queues, registers — is sent whole.
public final class PrecopySource {
    public let pid: Int32
    public let metadata: ImageMetadata
    /// The container record as at the start (the final capture takes it when the namespaces are the same;
    /// a cgroup limit changed during pre-copy is not seen).
    public let container: ContainerSnapshot
    /// One per process of the tree, root first.
    private let processes: [TrackedProcess]
    public private(set) var rounds = 0
    private var stopped = false

    /// Why pre-copy cannot be used, or nil: memfds and deleted files are
    /// created with their contents from the preliminary metadata, which
    /// pre-copy does not follow.
    public static func unsupported(_ meta: ImageMetadata) -> String? {
        if !meta.contents.isEmpty { return "the tree holds memfds or deleted files, whose contents pre-copy does not follow" }
        return nil
    }

    /// A process of the tree with its tracker and the pages the target holds data for.
    final class TrackedProcess {
        let pid: Int32
        let tracker: DirtyTracker
        let mappings: [Mapping]
        /// Pages of the tracked memory the target holds data for (sent with
        /// data in some round). A stored property of a class, marked in
        /// place: a copy of the bitmap per run cost a third of the source's
        /// CPU at 1 GiB.
        var sent: PopulatedPages
        /// Exited during pre-copy: no longer scanned (the final image then
        /// differs in its processes and carries every page).
        var gone = false
        init(pid: Int32, tracker: DirtyTracker, mappings: [Mapping]) {
            self.pid = pid; self.tracker = tracker; self.mappings = mappings
            sent = PopulatedPages(ranges: tracker.ranges)
        }
    }

    /// How long the tree was frozen to start tracking.
    public private(set) var startFreezeMs = 0.0

    public init(pid: Int32, shellJob: Bool = false) throws {
        self.pid = pid
        // The mappings with their VmFlags are read while the tree still runs:
        // /proc/PID/smaps walks every page table entry (~60 ms at 1 GiB
        // here). Frozen, /proc/PID/maps only confirms them (read again if any
        // changed), as in the final capture. A process forked meanwhile is
        // read frozen.
        var known: [Int32: [Mapping]] = [:]
        known[pid] = try MemoryState.mappings(of: pid)
        for p in ProcFS.tree(of: pid).dropFirst() { known[p] = try? MemoryState.mappings(of: p) }
        let sharers = CheckpointSession.OutsideSharers.scan(pid: pid)
        let frozenAt = ContinuousClock.now
        let session = try CheckpointSession(pid: pid, sharers: sharers)
        session.shellJob = shellJob
        var resumed = false
        defer { if !resumed { session.resume() } }
        var meta = try session.captureMetadata(knownMappings: known)
        // Pipe bytes are state, not memory: the final image carries them.
        meta.pipes = meta.pipes.map { PipeData(pipeID: $0.pipeID, bytes: []) }
        if let why = PrecopySource.unsupported(meta) { throw FerryError(why) }
        container = try ContainerSnapshot.capture(pid: pid, tree: session.tree)
        // The target makes the container (namespaces, cgroups, network) from this metadata, before the final one comes.
        meta.container = container.record.map(Bytes.init)
        metadata = meta
        // Frozen only to inject the userfaultfds; arming them (write-protecting
        // every page: a walk of every page table entry, ~40 ms at 1 GiB) runs
        // after, the first round reads every page after that anyway.
        var tracked: [TrackedProcess] = []
        do {
            for image in meta.processes {
                let t = try DirtyTracker(pid: image.pid, frozen: true, mappings: image.mappings, arm: false)
                tracked.append(TrackedProcess(pid: image.pid, tracker: t, mappings: image.mappings))
            }
        } catch {
            for t in tracked { try? t.tracker.stop(frozen: true) }
            throw error
        }
        processes = tracked
        session.resume()
        resumed = true
        let d = frozenAt.duration(to: .now)
        startFreezeMs = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        _ = (DirtyTracker.reportsDroppedPages, DirtyTracker.zeroPFNs)  // probed now, not in the final frozen window
        do {
            for t in tracked { try t.tracker.arm() }
        } catch {
            cancel()
            throw error
        }
    }

    /// The tracked ranges of each process.
    public var tracked: [Int32: [(start: UInt64, end: UInt64)]] {
        Dictionary(uniqueKeysWithValues: processes.map { ($0.pid, $0.tracker.ranges) })
    }
    /// The userfaultfd's number in each process (left out of the final image).
    public var remoteFDs: [Int32: Int32] {
        Dictionary(uniqueKeysWithValues: processes.filter { $0.tracker.remoteFD >= 0 }.map { ($0.pid, $0.tracker.remoteFD) })
    }
    /// How the tree's writes are seen.
    public var method: DirtyTrackingMethod? { processes.first?.tracker.method }

    /// One round over every process: the first sends every present page of
    /// the tracked memory, later ones the pages written since.
    /// `emit(pid, address, data or nil for zero pages, page count)`. Returns pages sent.
    public func round(_ emit: (Int32, UInt64, UnsafeRawBufferPointer?, Int) throws -> Void) throws -> Int {
        rounds += 1
        var pages = 0
        for t in processes where !t.gone {
            do {
                pages += try round(t, emit)
            } catch where t.pid != pid && PrecopySource.hasExited(t.pid) {
                t.gone = true
            }
        }
        return pages
    }

    private func round(_ t: TrackedProcess, _ emit: (Int32, UInt64, UnsafeRawBufferPointer?, Int) throws -> Void) throws -> Int {
        try withoutActuallyEscaping(emit) { emit in
            let marking: (UInt64, UnsafeRawBufferPointer?, Int) throws -> Void = { a, d, n in
                try emit(t.pid, a, d, n)
                if d != nil { t.sent.mark(address: a, pages: n) }
            }
            if rounds == 1 {
                let ranges = t.tracker.ranges
                let maps = t.mappings.filter { m in ranges.contains { $0.start == m.start } }
                let stats = try MemoryState.dumpPages(pid: t.pid, mappings: maps, to: CallbackSink(marking))
                return stats.dataPages + stats.zeroPages
            }
            let dirty = try t.tracker.scan()
            var n = 0
            try PrecopySource.read(pid: t.pid, dirty) { a, data in
                try marking(a, data, data.count / 4096)
                n += data.count / 4096
            }
            return n
        }
    }

    /// Whether `pid` is gone or a zombie.
    static func hasExited(_ pid: Int32) -> Bool {
        guard let state = (try? ProcFS.status(pid))?["State"] else { return true }
        return state.hasPrefix("Z") || state.hasPrefix("X")
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

    /// With the tree frozen (by a CheckpointSession of this thread): the
    /// last scans of every process. The userfaultfds stay in the processes
    /// (left out of the image; closing one makes the kernel walk every page
    /// table entry, ~0.1 s per GiB): `release(frozen:)` closes them on
    /// rollback, a killed source needs nothing.
    public func finalScan() throws -> [Int32: FinalScan] {
        var out: [Int32: FinalScan] = [:]
        for t in processes where !t.gone { out[t.pid] = try PrecopySource.finalScan(t) }
        PhaseTimer.shared.mark("final scan")
        return out
    }

    private static func finalScan(_ t: TrackedProcess) throws -> FinalScan {
        // A kernel whose write scan reports dropped pages (6.18) needs no
        // scan for absent pages (1–8 ms at 1 GiB here): they are in `dirty`,
        // read as zero and sent as ZERO runs. Otherwise absent first: the
        // write scan leaves a marker that later counts as "swapped".
        let absent = t.tracker.seesDroppedPages ? [] : try t.tracker.absent()
        var dirty = try t.tracker.scan(frozen: true)
        var dropped: [(start: UInt64, end: UInt64)] = []
        for r in absent {
            let first = dropped.count  // runs stay inside one absent range (one mapping)
            var a = r.start
            while a < r.end {
                if t.sent.contains(a) {
                    if dropped.count > first, dropped[dropped.count - 1].end == a { dropped[dropped.count - 1].end = a + 4096 } else { dropped.append((a, a + 4096)) }
                }
                a += 4096
            }
        }
        if !dropped.isEmpty { dirty = PrecopySource.subtract(dropped, from: dirty) }
        return FinalScan(dirty: dirty, dropped: dropped, lost: t.tracker.lost)
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

    /// Removes the userfaultfds from the processes (`frozen`: held by this
    /// thread's CheckpointSession). A process gone meanwhile is skipped.
    public func release(frozen: Bool) {
        guard !stopped else { return }
        stopped = true
        for t in processes where !t.gone { try? t.tracker.stop(frozen: frozen) }
    }

    /// Rollback while the tree runs: the userfaultfds are removed (a brief freeze of each process).
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
        try ProcessDump.finishTree(&processes, shellJob: shellJob, migrating: true)
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
    let tracked: [Int32: [(start: UInt64, end: UInt64)]]
    let final: [Int32: PrecopySource.FinalScan]
    let preliminary: ImageMetadata?
    /// The mappings changed since the preliminary metadata: every page is sent (the target starts over).
    public private(set) var sendsEverything = false
    public private(set) var mismatch: String?
    public private(set) var dirtyPages = 0, droppedPages = 0

    /// `tracked` and `final`: per process of the tree.
    public init(_ inner: ImageSink, tracked: [Int32: [(start: UInt64, end: UInt64)]], final: [Int32: PrecopySource.FinalScan],
                preliminary: ImageMetadata? = nil) {
        self.inner = inner
        self.preliminary = preliminary
        self.tracked = tracked
        self.final = final
    }

    /// The target forked the tree from the preliminary metadata, before any
    /// page: every process's pages are its own (COW sharing is not kept).
    public var storesInheritedPagesOnce: Bool { false }

    public func skipsMapping(pid: Int32, mapping m: Mapping) -> Bool {
        guard !sendsEverything, let f = final[pid], let t = tracked[pid] else { return false }
        return !f.lost.contains { $0.start == m.start } && t.contains { $0.start == m.start && $0.end == m.end }
    }

    public func beginPages(metadata: ImageMetadata) throws {
        if let pre = preliminary, let why = PhasedRestore.mismatch(preliminary: pre, final: metadata) {
            sendsEverything = true
            mismatch = why
        }
        try inner.beginPages(metadata: metadata)
        PhaseTimer.shared.mark("send metadata")
        if sendsEverything { return }
        for p in metadata.processes {
            guard let f = final[p.pid] else { continue }
            try send(f, of: p.pid)
        }
        PhaseTimer.shared.mark("tracked pages")
    }

    private func send(_ final: PrecopySource.FinalScan, of pid: Int32) throws {
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
