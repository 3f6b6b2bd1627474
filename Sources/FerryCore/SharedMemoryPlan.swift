import FerryImage

/// Who creates and who maps the shared memory objects of an image
/// (MAP_SHARED|MAP_ANONYMOUS or /dev/zero mapped shared, inherited across
/// fork): each object named by a mapping's `sharedObject` is created once,
/// in the root before it forks the tree, as a shmem file as large as the
/// furthest byte any mapping of it reaches; it is held at a working
/// descriptor that every process inherits, and each mapping of the object
/// maps that descriptor at its own offset. Mappings in different processes,
/// at different offsets or twice in one process all reach the same pages.
/// Files whose contents the image holds (`FileContents`: memfds and deleted
/// files held by an fd) are objects too, created first and filled from
/// those contents; their fds reopen the object, and the shared mappings of
/// such a memfd map it (their pages are not stored: `dumped`).
public struct SharedMemoryPlan: Equatable, Sendable {
    public struct Object: Equatable, Sendable {
        /// The object's id in the image (its shmem inode at checkpoint).
        public var id: UInt64
        /// Bytes: the end of the furthest mapping of it.
        public var size: UInt64
        /// Index of its working descriptor, from the plan's first one.
        public var slot: Int
        /// A memfd (created with its name, of its size) rather than anonymous memory.
        public var memfd: MemfdIdentity? = nil
        /// A file re-created from the image's contents (then `size` is theirs).
        public var contents: FileContents? = nil
    }

    /// In the order of first use (root first, then the image's process order).
    public private(set) var objects: [Object] = []

    /// Largest object restored (bytes): larger ones are refused as corrupt.
    public static let maxObjectSize: UInt64 = 1 << 46

    public init() {}

    /// The plan for `processes`, or the one-line reason the image is refused.
    public static func make(_ processes: [ProcessImage], contents: [FileContents] = []) throws(PlanError) -> SharedMemoryPlan {
        var plan = SharedMemoryPlan()
        var index: [UInt64: Int] = [:]
        for c in contents where index[c.id] == nil {
            guard c.size <= maxObjectSize else { throw PlanError("file contents \(c.id) of \(c.size) bytes, out of bounds") }
            index[c.id] = plan.objects.count
            plan.objects.append(Object(id: c.id, size: c.size, slot: plan.objects.count, contents: c))
        }
        for p in processes {
            for m in p.mappings {
                guard let id = m.sharedObject else { continue }
                guard m.kind == .sharedAnonymous else {
                    throw PlanError("process \(p.pid) maps \(m.kind.rawValue) memory at 0x\(String(m.start, radix: 16)) as shared object \(id), which only shared anonymous memory can be")
                }
                let (end, overflow) = m.fileOffset.addingReportingOverflow(m.end &- m.start)
                guard m.end > m.start, !overflow, end <= maxObjectSize, m.fileOffset % 4096 == 0 else {
                    throw PlanError("process \(p.pid) maps shared object \(id) at 0x\(String(m.start, radix: 16)) with offset \(m.fileOffset) and size \(m.end &- m.start), out of bounds")
                }
                if let f = m.memfd {
                    // A memfd keeps its own size (a mapping may reach past its end: SIGBUS there, as before).
                    guard f.size <= maxObjectSize, !f.name.utf8.contains(0), f.name.utf8.count <= 249 else {
                        throw PlanError("process \(p.pid) maps memfd \(id) of size \(f.size) or name length \(f.name.utf8.count), out of bounds")
                    }
                }
                if let i = index[id], let c = plan.objects[i].contents {
                    // The mapping's own view of the memfd is the one read with its contents.
                    guard c.kind == .memfd, m.memfd?.name == c.name else {
                        throw PlanError("process \(p.pid) maps shared object \(id) at 0x\(String(m.start, radix: 16)), whose contents are those of \(c.kind == .memfd ? "another memfd" : "a deleted file")")
                    }
                } else if let i = index[id] {
                    guard plan.objects[i].memfd == m.memfd else {
                        throw PlanError("process \(p.pid) maps shared object \(id) at 0x\(String(m.start, radix: 16)) described otherwise by another mapping")
                    }
                    if m.memfd == nil { plan.objects[i].size = max(plan.objects[i].size, end) }
                } else {
                    index[id] = plan.objects.count
                    plan.objects.append(Object(id: id, size: m.memfd?.size ?? end, slot: plan.objects.count, memfd: m.memfd))
                }
            }
        }
        return plan
    }

    /// What each process dumps (parallel to `processes`): its mappings, where a
    /// mapping of a shared object is cut down to the pages of the object no
    /// earlier mapping (earlier process, or earlier in the same process)
    /// covers, and left out when nothing remains (System V segments alike); every page of an object is
    /// then stored once, through its first mapping, and the restore's writes
    /// through that mapping reach the others. Mappings of bad extent are kept
    /// whole (`make` refuses them at restore).
    /// Mappings of an object in `carried` (a memfd whose contents the image
    /// holds) are left out whole.
    public static func dumped(_ processes: [ProcessImage], carried: Set<UInt64> = []) -> [[Mapping]] {
        // System V segments (`SysVShmPlan`) are objects too, apart from the others' ids.
        enum Key: Hashable { case object(UInt64), sysv(Int32) }
        var covered: [Key: [(start: UInt64, end: UInt64)]] = [:]
        return processes.map { p in
            p.mappings.flatMap { m -> [Mapping] in
                guard let id = m.sharedObject.map(Key.object) ?? m.sysv.map({ Key.sysv($0.id) }), m.end > m.start else { return [m] }
                if let o = m.sharedObject, carried.contains(o) { return [] }
                let (end, overflow) = m.fileOffset.addingReportingOverflow(m.end - m.start)
                guard !overflow else { return [m] }
                // Pages past a memfd's end cannot be read (SIGBUS): nothing to store there.
                let limit = m.memfd.map { ($0.size &+ 4095) & ~UInt64(4095) } ?? end
                var pieces: [(start: UInt64, end: UInt64)] = m.fileOffset < min(end, limit) ? [(m.fileOffset, min(end, limit))] : []
                for c in covered[id, default: []] {
                    pieces = pieces.flatMap { piece -> [(start: UInt64, end: UInt64)] in
                        guard c.start < piece.end && piece.start < c.end else { return [piece] }
                        var rest: [(start: UInt64, end: UInt64)] = []
                        if piece.start < c.start { rest.append((piece.start, c.start)) }
                        if c.end < piece.end { rest.append((c.end, piece.end)) }
                        return rest
                    }
                }
                covered[id, default: []].append((m.fileOffset, end))
                return pieces.map { piece in
                    var cut = m
                    cut.start = m.start + (piece.start - m.fileOffset)
                    cut.end = m.start + (piece.end - m.fileOffset)
                    cut.fileOffset = piece.start
                    return cut
                }
            }
        }
    }

    /// The fds (by process) that take the open file memfd_create returns
    /// for each memfd of `contents`, rather than reopening it through
    /// /proc: the first read-write fd of each memfd in image order. That
    /// open file does not count as a writer of the memfd, as the original
    /// did not, so the memfd can still be executed (execveat); a reopened
    /// read-write fd would make exec fail with ETXTBSY.
    public static func memfdOriginals(_ processes: [ProcessImage], contents: [FileContents]) -> [Int32: Set<Int32>] {
        var pending = Set(contents.filter { $0.kind == .memfd }.map(\.id))
        var out: [Int32: Set<Int32>] = [:]
        for p in processes {
            for f in p.files where f.sharedWith == nil && f.flags & 3 == 2 /* O_RDWR */ {
                guard let id = f.contentsID, pending.remove(id) != nil else { continue }
                out[p.pid, default: []].insert(f.fd)
            }
        }
        return out
    }

    /// The object `id`, if the plan has it.
    public func object(_ id: UInt64) -> Object? { objects.first { $0.id == id } }

    public struct PlanError: Error, Equatable, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = "cannot restore: " + d }
    }
}
