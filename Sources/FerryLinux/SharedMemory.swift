#if os(Linux)
import Glibc
import FerryImage
import FerryCore

/// Shared memory a restore would split. ferry keeps the contents of shared
/// in-memory objects (MAP_SHARED|MAP_ANONYMOUS, memfd, System V shm, deleted
/// files) in the image. MAP_SHARED|MAP_ANONYMOUS and /dev/zero memory and
/// memfds are restored as one object per object of the tree, mapped by every
/// mapping of it (`SharedMemoryPlan`); the others are restored as one
/// MAP_SHARED|MAP_ANONYMOUS area per mapping: right for one mapping that
/// nothing else maps, wrong as soon as a second mapping — in the tree, in
/// the same process — shares the object, since after the restore writes
/// through one are no longer seen through the other. Any object shared with
/// a process outside the tree is refused too. System V segments are
/// re-created and attached again (`SysVShm`), unless hugetlb or partly
/// unmapped. Not carried: the seals of a memfd that no fd of the tree holds (one held by
/// an fd is re-created whole, `FileContentsState`), nor the link between a deleted file still linked
/// elsewhere and its mapping. Such trees are refused at checkpoint, before
/// anything is captured, and by a migration before it connects.
///
/// Shared mappings of regular files are not concerned: they are restored
/// as mappings of the same file, which stays the shared medium.
enum SharedMemory {
    /// A mapping of a process.
    struct Use: Equatable {
        var pid: Int32
        var entry: ProcFS.MapEntry
    }

    /// Whether the image carries the contents of `e` as shared memory (see `MemoryState.mapping`).
    static func isInMemoryShared(_ e: ProcFS.MapEntry) -> Bool {
        // An AIO ring is refused as what it is (`AttributeState.refuseUncarried`).
        guard e.shared, !e.path.hasPrefix("/[aio]") else { return false }
        let p = e.path
        return e.inode == 0 || p.isEmpty || p.hasPrefix("/dev/zero") || p.hasPrefix("/SYSV") || p.hasPrefix("/memfd:")
            || p.hasSuffix(" (deleted)")
    }

    static func isSysV(_ e: ProcFS.MapEntry) -> Bool { e.path.hasPrefix("/SYSV") }

    /// MAP_SHARED|MAP_ANONYMOUS memory or /dev/zero mapped shared: a shmem
    /// object reachable only through mappings, restored as one object that
    /// every mapping of it maps (`SharedMemoryPlan`), whichever processes and
    /// offsets they are.
    static func isAnonymousShared(_ e: ProcFS.MapEntry) -> Bool {
        e.shared && e.inode != 0 && (e.path == "/dev/zero (deleted)" || e.path == "/dev/zero")
    }

    static func isMemfd(_ e: ProcFS.MapEntry) -> Bool { e.path.hasPrefix("/memfd:") && e.path.hasSuffix(" (deleted)") }

    /// Restored as one object for all its mappings: shared anonymous memory,
    /// or a memfd mapped shared (`check` refuses sealed or hugetlb ones).
    static func isPlannedShared(_ e: ProcFS.MapEntry) -> Bool {
        isAnonymousShared(e) || (e.shared && e.inode != 0 && isMemfd(e))
    }

    /// The name, size and sealing of the memfd a mapping of process `pid` maps.
    static func memfdIdentity(_ e: ProcFS.MapEntry, pid: Int32) throws -> MemfdIdentity {
        let link = "/proc/\(pid)/map_files/\(String(e.start, radix: 16))-\(String(e.end, radix: 16))"
        var st = stat()
        guard stat(link, &st) == 0 else { throw SystemError("stat(\(link))", errno: errno, "reading the size of \(describe(e))") }
        let name = String(e.path.dropFirst(7).dropLast(10))
        return MemfdIdentity(name: name, size: UInt64(max(st.st_size, 0)), allowsSealing: memfdSeals(link) == 0 && memfdSealable(link))
    }

    /// Whether F_GET_SEALS works on the memfd behind `link` (it fails with EINVAL only on non-memfd files).
    static func memfdSealable(_ link: String) -> Bool {
        let fd = open(link, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return fcntl(fd, 1034 /* F_GET_SEALS */) == 0
    }

    /// What the object is, for a message.
    static func describe(_ e: ProcFS.MapEntry) -> String {
        let p = e.path.hasSuffix(" (deleted)") ? String(e.path.dropLast(10)) : e.path
        if p.hasPrefix("/SYSV") { return "System V shared memory (key 0x\(p.dropFirst(5)), shmid \(e.inode))" }
        if p.hasPrefix("/memfd:") { return "memfd \"\(p.dropFirst(7))\"" }
        if p.hasPrefix("/dev/zero") || p.isEmpty || e.inode == 0 { return "MAP_SHARED|MAP_ANONYMOUS memory" }
        return "shared memory of the deleted file \(p)"
    }

    static func place(_ u: Use) -> String { "process \(u.pid) at \(hex(u.entry.start))-\(hex(u.entry.end))" }

    /// Why the tree cannot be checkpointed, or nil. `tree`: each process's
    /// mappings; `outside`: mappings of other processes of the host that map
    /// an object the tree maps shared.
    static func refusal(tree: [(pid: Int32, maps: [ProcFS.MapEntry])], outside: [Use] = []) -> String? {
        let uses = tree.flatMap { p in p.maps.filter(isInMemoryShared).map { Use(pid: p.pid, entry: $0) } }
        let todo = "ferry restores shared memory only among the processes of the tree"
        var byObject: [String: [Use]] = [:]
        var order: [String] = []
        // Inode 0 names no object: such mappings cannot be told apart, nor found elsewhere.
        for u in uses where u.entry.inode != 0 {
            let key = "\(u.entry.device):\(u.entry.inode)"
            if byObject[key] == nil { order.append(key) }
            byObject[key, default: []].append(u)
        }
        for key in order {
            let group = byObject[key]!
            let what = describe(group[0].entry)
            if let other = outside.first(where: { "\($0.entry.device):\($0.entry.inode)" == key }) {
                return "cannot checkpoint: \(place(group[0])) shares \(what) with process \(other.pid), which is outside the checkpointed tree; \(todo) and the restored copy would no longer see that process's writes — checkpoint a program that does not share memory with other processes"
            }
            // Shared anonymous memory and memfds within the tree are restored as one object each.
            // So are System V segments (`SysVShm`), attached again by each process.
            if isPlannedShared(group[0].entry) || isSysV(group[0].entry) { continue }
            for (i, a) in group.enumerated() {
                for b in group[(i + 1)...] where a.pid != b.pid || overlaps(a.entry, b.entry) {
                    let who = a.pid == b.pid ? "maps the same \(what) twice" : "share \(what)"
                    return "cannot checkpoint: \(place(a)) and \(place(b)) \(who); ferry would give each mapping a copy of its own — checkpoint a program that does not share memory between processes or mappings (e.g. MAP_SHARED|MAP_ANONYMOUS inherited across fork)"
                }
            }
        }
        return nil
    }

    /// Whether two mappings of one object cover some of the same bytes of it
    /// (one area split by mprotect does not: its parts follow each other).
    static func overlaps(_ a: ProcFS.MapEntry, _ b: ProcFS.MapEntry) -> Bool {
        a.offset < b.offset + (b.end - b.start) && b.offset < a.offset + (a.end - a.start)
    }

    /// The mappings of each process of `tree`. A process whose mappings
    /// cannot be read (it exited) has none here: the capture, which needs
    /// them, says what went wrong.
    static func mappings(of tree: [Int32]) -> [(pid: Int32, maps: [ProcFS.MapEntry])] {
        tree.map { ($0, (try? ProcFS.maps($0, withFlags: false)) ?? []) }
    }

    /// `pid` and its descendants as they are now (running).
    static func tree(of pid: Int32) -> [Int32] { ProcFS.tree(of: pid) }

    /// The mappings of the host's other processes that map an in-memory
    /// object some process of `tree` maps shared. It reads every process's
    /// maps (only when the tree maps such objects), so it runs before the
    /// tree is frozen: it adds nothing to the frozen window.
    static func outsideSharers(of tree: [Int32]) -> [Use] {
        let objects = Set(mappings(of: tree).flatMap { $0.maps.filter { isInMemoryShared($0) && $0.inode != 0 }.map { "\($0.device):\($0.inode)" } })
        guard !objects.isEmpty else { return [] }
        var outside: [Use] = []
        let skip = Set(tree + [getpid()])
        for pid in (try? ProcFS.numericEntries("/proc", "listing processes")) ?? [] where !skip.contains(pid) {
            // A process that exits meanwhile, or a kernel thread, shows nothing.
            for e in (try? ProcFS.maps(pid, withFlags: false)) ?? [] where e.shared && objects.contains("\(e.device):\(e.inode)") {
                outside.append(Use(pid: pid, entry: e))
            }
        }
        return outside
    }

    /// Throws the refusal for `tree` (frozen, or about to be) given the
    /// sharers found outside it; also refuses sealed memfds and shared
    /// mappings of deleted files still linked under another name.
    static func check(tree: [Int32], outside: [Use]) throws {
        let maps = mappings(of: tree)
        if let why = refusal(tree: maps, outside: outside) { throw FerryError(why) }
        // A memfd the tree also holds by an fd is re-created from its contents, seals included.
        let held = maps.contains { $0.maps.contains { isMemfd($0) } } ? FileContentsState.heldMemfds(tree) : []
        for (pid, entries) in maps {
            for e in entries where isInMemoryShared(e) {
                let link = "/proc/\(pid)/map_files/\(String(e.start, radix: 16))-\(String(e.end, radix: 16))"
                if isSysV(e) {
                    try checkSysV(e, pid: pid, link: link, all: entries)
                } else if e.path.hasPrefix("/memfd:") {
                    // A hugetlbfs file's block size is its huge page size.
                    var st = stat()
                    if stat(link, &st) == 0 && st.st_blksize > 4096 {
                        throw FerryError("cannot checkpoint: process \(pid) at \(hex(e.start))-\(hex(e.end)) maps \(describe(e)), a hugetlb memfd; ferry does not restore hugetlb memory — checkpoint a program that does not use MFD_HUGETLB")
                    }
                    let seals = memfdSeals(link)
                    if seals & ~fSealSeal != 0 && !held.contains(e.inode) {
                        throw FerryError("cannot checkpoint: process \(pid) at \(hex(e.start))-\(hex(e.end)) maps \(describe(e)) sealed with F_GET_SEALS 0x\(String(seals, radix: 16)); a restore would map it as unsealed shared anonymous memory — checkpoint a program that does not seal its memfds")
                    }
                } else if isDeletedFile(e) {
                    var st = stat()
                    if stat(link, &st) == 0 && st.st_nlink > 0 {
                        throw FerryError("cannot checkpoint: process \(pid) at \(hex(e.start))-\(hex(e.end)) maps \(describe(e)) shared, and that file is still linked under another name (\(st.st_nlink) link(s)); a restore would map a copy no longer in the file — checkpoint a program that maps the file by a name it still has")
                    }
                }
            }
        }
    }

    /// Refuses a System V attach ferry cannot attach again: a hugetlb
    /// segment (SHM_HUGETLB), or one partly unmapped (shmat maps a segment
    /// whole). `all`: the process's mappings.
    static func checkSysV(_ e: ProcFS.MapEntry, pid: Int32, link: String, all: [ProcFS.MapEntry]) throws {
        var st = stat()
        guard stat(link, &st) == 0 else { throw SystemError("stat(\(link))", errno: errno, "reading the size of \(describe(e))") }
        // A hugetlbfs file's block size is its huge page size.
        if st.st_blksize > 4096 {
            throw FerryError("cannot checkpoint: process \(pid) at \(hex(e.start))-\(hex(e.end)) attaches \(describe(e)), a hugetlb segment (SHM_HUGETLB); ferry does not restore hugetlb memory — checkpoint a program that does not use SHM_HUGETLB")
        }
        let base = e.start &- e.offset
        let pieces = all.filter { isSysV($0) && $0.inode == e.inode && $0.start &- $0.offset == base }
            .map { SysVShmPlan.Piece(start: $0.start, end: $0.end, offset: $0.offset) }
        if SysVShmPlan.partialPiece(pieces, size: UInt64(max(st.st_size, 0))) != nil {
            throw FerryError("cannot checkpoint: process \(pid) at \(hex(e.start))-\(hex(e.end)) maps only part of \(describe(e)) (\(st.st_size) bytes; the rest was unmapped); ferry attaches System V segments again whole — checkpoint a program that keeps its attaches whole")
        }
    }

    /// A shared mapping of a regular file deleted at its path (not anonymous memory, memfd or SysV).
    static func isDeletedFile(_ e: ProcFS.MapEntry) -> Bool {
        e.path.hasSuffix(" (deleted)") && !e.path.hasPrefix("/dev/zero") && !e.path.hasPrefix("/memfd:") && !e.path.hasPrefix("/SYSV")
    }

    /// F_SEAL_SEAL: the only seal of a memfd made without MFD_ALLOW_SEALING (nothing to keep).
    static let fSealSeal: Int32 = 1

    /// The seals of the memfd behind a mapping's /proc/PID/map_files link (0 when they cannot be read).
    static func memfdSeals(_ link: String) -> Int32 {
        let fd = open(link, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        return max(fcntl(fd, 1034 /* F_GET_SEALS */), 0)
    }
}
#endif
