import FerryImage

/// System V shared memory (shmget/shmat) of an image. Each segment the
/// tree attaches is re-created once, in the restore's root before it forks
/// the tree, with its shmid (through /proc/sys/kernel/shm_next_id), key,
/// size, owner and mode; a segment removed while attached (SHM_DEST) is
/// held by the root and removed again at once, so it lives exactly as long
/// as the restored attaches. Each process then attaches the segment at each
/// of its attach addresses with shmat; its pages are stored once, through
/// its first mapping (`SharedMemoryPlan.dumped`). An attach is the run of
/// mappings of one segment at one base address (`start - fileOffset`):
/// mprotect may split it, but it must cover the whole segment — ferry
/// re-attaches segments whole, so a segment partly unmapped is refused.
public enum SysVShmPlan {
    /// One shmat of a process: `segment` attached whole at `base`.
    public struct Attach: Equatable, Sendable {
        public var segment: SysVSegment
        public var base: UInt64
        /// The mappings of the attach, in address order.
        public var mappings: [Mapping]
        /// Attached with SHM_RDONLY: no mapping of it may be made writable (VmFlags without "mw").
        public var readOnly: Bool
        /// The bytes an attach maps: the segment's size rounded up to pages.
        public var end: UInt64 { base &+ SysVShmPlan.attachSize(segment.size) }
    }

    /// A part of a mapping of one segment, as /proc/PID/maps shows it.
    public struct Piece: Equatable, Sendable {
        public var start: UInt64, end: UInt64, offset: UInt64
        public init(start: UInt64, end: UInt64, offset: UInt64) { self.start = start; self.end = end; self.offset = offset }
    }

    /// Largest segment restored (bytes): larger ones are refused as corrupt.
    public static let maxSegmentSize: UInt64 = SharedMemoryPlan.maxObjectSize

    /// The bytes shmat maps for a segment of `size` bytes.
    public static func attachSize(_ size: UInt64) -> UInt64 { (min(size, maxSegmentSize) + 4095) & ~UInt64(4095) }

    /// The first piece of `pieces` (one process's mappings of one segment of
    /// `size` bytes) that is not part of a whole attach, or nil when they
    /// make whole attaches only.
    public static func partialPiece(_ pieces: [Piece], size: UInt64) -> Piece? {
        let whole = attachSize(size)
        let sorted = pieces.sorted { $0.start < $1.start }
        var i = 0
        while i < sorted.count {
            let first = sorted[i]
            guard first.offset == 0, first.start <= UInt64.max - whole else { return first }
            var at = first.start
            while i < sorted.count, sorted[i].start == at, sorted[i].offset == at - first.start, sorted[i].end > at,
                  sorted[i].end - first.start <= whole {
                at = sorted[i].end
                i += 1
            }
            guard at == first.start + whole else { return i < sorted.count ? sorted[i] : first }
        }
        return nil
    }

    /// The segments of `processes`, each once (first use first), checked:
    /// every mapping of a segment describes it alike, within bounds.
    public static func segments(_ processes: [ProcessImage]) throws(SharedMemoryPlan.PlanError) -> [SysVSegment] {
        var out: [SysVSegment] = []
        var seen: [Int32: Int] = [:]
        for p in processes {
            for m in p.mappings {
                guard let s = m.sysv else { continue }
                let at = "process \(p.pid) attaches System V shared memory (shmid \(s.id)) at 0x\(String(m.start, radix: 16))"
                guard m.kind == .sharedAnonymous, m.sharedObject == nil, m.memfd == nil else {
                    throw SharedMemoryPlan.PlanError("\(at) as \(m.kind.rawValue) memory, which only a shared mapping of its own can be")
                }
                guard s.id >= 0, s.size > 0, s.size <= maxSegmentSize, s.mode <= 0o777 else {
                    throw SharedMemoryPlan.PlanError("\(at) of \(s.size) bytes, mode 0\(String(s.mode, radix: 8)), out of bounds")
                }
                if let i = seen[s.id] {
                    guard out[i] == s else { throw SharedMemoryPlan.PlanError("\(at), described otherwise by another mapping") }
                } else {
                    seen[s.id] = out.count
                    out.append(s)
                }
            }
        }
        return out
    }

    /// The attaches of process `p` (`segments` checked first), or why they
    /// cannot be made: mappings of a segment that do not cover it whole.
    public static func attaches(_ p: ProcessImage) throws(SharedMemoryPlan.PlanError) -> [Attach] {
        var out: [Attach] = []
        for m in p.mappings {
            guard let s = m.sysv else { continue }
            let (base, borrow) = m.start.subtractingReportingOverflow(m.fileOffset)
            if let i = out.lastIndex(where: { $0.segment.id == s.id && $0.base == base }), !borrow {
                out[i].mappings.append(m)
                out[i].readOnly = out[i].readOnly && !m.flags.contains(.mayWrite)
            } else {
                out.append(Attach(segment: s, base: borrow ? 0 : base, mappings: [m], readOnly: !m.flags.contains(.mayWrite)))
            }
        }
        for a in out {
            let pieces = a.mappings.map { Piece(start: $0.start, end: $0.end, offset: $0.fileOffset) }
            if let bad = partialPiece(pieces, size: a.segment.size) {
                throw SharedMemoryPlan.PlanError("process \(p.pid) maps System V shared memory (shmid \(a.segment.id)) at 0x\(String(bad.start, radix: 16)) as part of an attach that does not cover the segment's \(a.segment.size) bytes whole")
            }
        }
        return out
    }

    /// What a restore does with a segment whose shmid is already taken in
    /// the namespace it restores into.
    public enum Existing: Equatable, Sendable {
        /// Take it as the image's segment (its contents are overwritten with the image's).
        case adopt
        case refuse(String)
    }

    /// A segment found at the image's shmid: shmctl(IPC_STAT)'s key, size,
    /// SHM_DEST and attach count, and how many of those attaches belong to
    /// processes of the image (the source tree, on its own host, frozen or
    /// killed). It is the image's own segment, left behind by the source, when
    /// its key, size and removal match and no process outside the image
    /// attaches it; anything else is another program's.
    public static func existing(_ wanted: SysVSegment, key: Int32, size: UInt64, destroyed: Bool, attaches: UInt64,
                                attachesByImage: UInt64) -> Existing {
        let what = "System V shared memory shmid \(wanted.id) (key 0x\(hex32(wanted.key)))"
        guard key == wanted.key, size == wanted.size, destroyed == wanted.destroyed else {
            return .refuse("cannot restore: \(what) is taken on this host by another segment (key 0x\(hex32(key)), \(size) bytes\(destroyed ? ", removed" : "")) — remove it (ipcrm -m \(wanted.id)) or restore where that id is free")
        }
        guard attaches <= attachesByImage else {
            return .refuse("cannot restore: \(what) exists on this host and \(attaches - attachesByImage) process(es) outside the image attach it — restore where that id is free, or once they detach it")
        }
        return .adopt
    }

    public static func hex32(_ v: Int32) -> String {
        let s = String(UInt32(bitPattern: v), radix: 16)
        return String(repeating: "0", count: max(0, 8 - s.count)) + s
    }
}
