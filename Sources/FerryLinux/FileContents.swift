#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

/// Files that exist only in memory, held open by the tree: memfds and
/// regular files unlinked while open ("ghosts", as CRIU says). Their
/// contents, name, mode, owner and a memfd's seals go into the image once
/// per file (`FileContents`, by inode), up to `limit` bytes a file; the
/// decisions are Uncarried's. On restore the root re-creates each file
/// before it forks the tree (`SharedMemoryRestore`): a memfd with
/// memfd_create under its name, a deleted file at its old path (or, where
/// a file now has that name, a temporary one next to it) and unlinked at
/// once; ferry writes the contents, then mode, owner and seals are set.
/// Each fd of the file reopens it through /proc/self/fd (an open file of
/// its own: flags and offset), and a memfd's shared mappings map it.
public enum FileContentsState {
    /// `--ghost-limit`: the largest file whose contents a checkpoint stores.
    nonisolated(unsafe) public static var limit = Uncarried.defaultGhostLimit

    /// Whether the regular file at `link` (an fd's /proc link) lives only in memory.
    static func kind(_ link: String) -> FileContents.Kind? {
        guard link.hasSuffix(" (deleted)") else { return nil }
        return link.hasPrefix("/memfd:") ? .memfd : .deleted
    }

    /// The name a memfd was given, or the path a deleted file had.
    static func name(_ link: String, kind: FileContents.Kind) -> String {
        let path = String(link.dropLast(10))
        return kind == .memfd ? String(path.dropFirst(7)) : path
    }

    /// Refuses, by name, a file whose contents the image cannot hold.
    static func refuse(_ d: DescriptorFacts, st: stat, kind: FileContents.Kind) throws {
        let name = name(d.path, kind: kind)
        var dir = stat()
        let parent = kind == .deleted ? String(name[..<(name.lastIndex(of: "/") ?? name.startIndex)]) : ""
        // What is stored: the data, not the holes. Sought through an open file of ferry's own
        // (not the process's: SEEK_DATA/SEEK_HOLE would move its offset).
        let what = "reading the extents of fd \(d.fd) of \(d.pid)"
        let fd = open("/proc/\(d.pid)/fd/\(d.fd)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(/proc/\(d.pid)/fd/\(d.fd))", errno: errno, what) }
        defer { close(fd) }
        let data = try extents(fd, size: UInt64(max(st.st_size, 0)), what: what).reduce(UInt64(0)) { $0 + UInt64($1.count) }
        let why = Uncarried.fileContents(d, kind: kind, size: data, limit: UInt64(limit),
                                         blockSize: Int(st.st_blksize),
                                         directoryExists: kind == .memfd || stat(parent.isEmpty ? "/" : parent, &dir) == 0,
                                         links: UInt64(st.st_nlink))
        if let why { throw FerryError(why) }
    }

    /// Reads the contents of every file of `files` with a `contentsID` not read yet.
    static func dump(pid: Int32, files: [FileDescriptorImage], into out: inout [UInt64: FileContents]) throws {
        for f in files where f.sharedWith == nil {
            guard let id = f.contentsID, let kind = kind(f.path) else { continue }
            if let seen = out[id] {
                // The id is the inode: two files of different filesystems may have the same one.
                guard seen.kind == kind, seen.name == name(f.path, kind: kind) else {
                    throw FerryError("cannot checkpoint \(pid): fd \(f.fd) (\(f.path)) and \(shownPath(seen)) are in-memory files with the same inode number \(id); ferry keys their contents by inode: close one of them first")
                }
                continue
            }
            let what = "reading the contents of fd \(f.fd) (\(f.path)) of \(pid)"
            let fd = open("/proc/\(pid)/fd/\(f.fd)", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError("open(/proc/\(pid)/fd/\(f.fd))", errno: errno, what) }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw SystemError("fstat", errno: errno, what) }
            let size = UInt64(max(st.st_size, 0))
            let ranges = try extents(fd, size: size, what: what)
            var bytes = [UInt8](repeating: 0, count: Int(ranges.reduce(0) { $0 + $1.count }))
            var at = 0
            for r in ranges {
                var done: UInt64 = 0
                while done < UInt64(r.count) {
                    let want = Int(UInt64(r.count) - done)
                    let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + at, want, off_t(r.lowerBound + done)) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw SystemError("pread at \(r.lowerBound + done) of \(size)", errno: n < 0 ? errno : EIO, what) }
                    done += UInt64(n)
                    at += n
                }
            }
            let seals = kind == .memfd ? max(fcntl(fd, 1034 /* F_GET_SEALS */), 0) : 0
            let whole = ranges.count == 1 && ranges[0] == 0..<size || (size == 0 && ranges.isEmpty)
            out[id] = FileContents(id: id, kind: kind, name: name(f.path, kind: kind), mode: UInt32(st.st_mode) & 0o7777,
                                   uid: st.st_uid, gid: st.st_gid, seals: seals, size: size,
                                   extents: whole ? nil : ranges.map { [$0.lowerBound, $0.upperBound] }, bytes: bytes)
            out[id]?.atimeNs = Int64(st.st_atim.tv_sec) * 1_000_000_000 + Int64(st.st_atim.tv_nsec)
            out[id]?.mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        }
    }

    /// The data ranges of the file at `fd` (SEEK_DATA/SEEK_HOLE); the whole
    /// file where the file system does not tell holes apart.
    static func extents(_ fd: Int32, size: UInt64, what: String) throws -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var at: UInt64 = 0
        while at < size {
            let data = lseek(fd, off_t(at), 3 /* SEEK_DATA */)
            if data < 0 && errno == ENXIO { break }
            guard data >= 0 else {
                if errno == EINVAL { return [0..<size] }
                throw SystemError("lseek(SEEK_DATA, \(at))", errno: errno, what)
            }
            let hole = lseek(fd, data, 4 /* SEEK_HOLE */)
            guard hole > data else { throw SystemError("lseek(SEEK_HOLE, \(data))", errno: hole < 0 ? errno : EIO, what) }
            out.append(UInt64(data)..<min(UInt64(hole), size))
            at = UInt64(hole)
        }
        return out
    }

    /// Refuses, by name, a mapping in `tree` of a file whose contents the
    /// image carries that the restore would not tie to the re-created file
    /// (`Uncarried.mappedContents`). Mappings are matched by inode and name.
    static func refuseMappings(tree: [Int32], carried: [UInt64: FileContents]) throws {
        guard !carried.isEmpty else { return }
        for pid in tree {
            for e in try ProcFS.maps(pid, withFlags: false) {
                guard let c = carried[e.inode], e.path == shownPath(c) else { continue }
                let place = "\(hex(e.start))-\(hex(e.end))"
                if let why = Uncarried.mappedContents(pid: pid, kind: c.kind, name: c.name, place: place, shared: e.shared) {
                    throw FerryError(why)
                }
            }
        }
    }

    /// How /proc shows the file of `c` in maps and fd links.
    static func shownPath(_ c: FileContents) -> String {
        (c.kind == .memfd ? "/memfd:" + c.name : c.name) + " (deleted)"
    }

    /// The inodes of the memfds the processes of `tree` hold by an fd (their contents are carried).
    static func heldMemfds(_ tree: [Int32]) -> Set<UInt64> {
        var out = Set<UInt64>()
        for pid in tree {
            for fd in (try? ProcFS.fds(pid)) ?? [] {
                guard let link = try? ProcFS.readlink("/proc/\(pid)/fd/\(fd)"), kind(link) == .memfd else { continue }
                var st = stat()
                if stat("/proc/\(pid)/fd/\(fd)", &st) == 0 { out.insert(UInt64(st.st_ino)) }
            }
        }
        return out
    }

    // MARK: restore

    /// Creates the file of `c` in the process `main` drives, filled and with
    /// its mode, owner and seals; returns its descriptor there.
    static func create(_ c: FileContents, pid: Int32, main: Injector, scratch: ScratchArea) throws -> Int64 {
        let what = "\(c.kind == .memfd ? "memfd" : "deleted file") \(c.name) (\(c.size) bytes)"
        let fd: Int64
        switch c.kind {
        case .memfd:
            let name = try ProcessMisc.put(c.name, injector: main, scratch: scratch)
            // Always sealable: a memfd made without MFD_ALLOW_SEALING has F_SEAL_SEAL, added below.
            fd = try main.call(SYS.memfdCreate, [name, 2 /* MFD_ALLOW_SEALING */], "memfd_create(\(c.name)) for \(what)")
        case .deleted:
            fd = try createGhost(c, main: main, scratch: scratch)
        }
        try main.call(77 /* ftruncate */, [UInt64(fd), c.size], "ftruncate of \(what)")
        try write(c, to: "/proc/\(pid)/fd/\(fd)", what: what)
        // Owner before mode: a chown clears the set-user-ID bit (and set-group-ID with group execute).
        try main.call(93 /* fchown */, [UInt64(fd), UInt64(c.uid), UInt64(c.gid)], "fchown(\(c.uid), \(c.gid)) of \(what)")
        try main.call(91 /* fchmod */, [UInt64(fd), UInt64(c.mode)], "fchmod(0o\(String(c.mode, radix: 8))) of \(what)")
        try setTimes(c, link: "/proc/\(pid)/fd/\(fd)", what: what)
        if c.seals != 0 {
            try main.call(SYS.fcntl, [UInt64(fd), 1033 /* F_ADD_SEALS */, UInt64(UInt32(bitPattern: c.seals))],
                          "fcntl(F_ADD_SEALS, 0x\(String(c.seals, radix: 16))) of \(what)")
        }
        return fd
    }

    /// The file's access and modification times, last (writing the contents set them).
    static func setTimes(_ c: FileContents, link: String, what: String) throws {
        guard let a = c.atimeNs, let m = c.mtimeNs else { return }
        func spec(_ ns: Int64) -> timespec {
            timespec(tv_sec: Int(ns / 1_000_000_000 - (ns % 1_000_000_000 < 0 ? 1 : 0)),
                     tv_nsec: Int((ns % 1_000_000_000 + 1_000_000_000) % 1_000_000_000))
        }
        var times = [spec(a), spec(m)]
        guard utimensat(AT_FDCWD, link, &times, 0) == 0 else {
            throw SystemError("utimensat(\(link))", errno: errno, "setting the times of \(what)")
        }
    }

    /// A deleted file's place: its old path if free, else a name of ferry's
    /// next to it; created there (O_EXCL) and unlinked at once.
    static func createGhost(_ c: FileContents, main: Injector, scratch: ScratchArea) throws -> Int64 {
        let dir = String(c.name[..<(c.name.lastIndex(of: "/") ?? c.name.startIndex)])
        var st = stat()
        guard stat(dir.isEmpty ? "/" : dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw FerryError("cannot restore the deleted file \(c.name): its directory \(dir.isEmpty ? "/" : dir) does not exist here; create it, or checkpoint the program once it has closed the file")
        }
        for path in [c.name, "\(dir)/.ferry-ghost-\(c.id)-\(getpid())"] {
            let addr = try ProcessMisc.put(path, injector: main, scratch: scratch)
            let fd = try main.raw(SYS.open, [addr, UInt64(O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW), 0o600])
            if fd == -Int64(EEXIST) { continue }
            guard fd >= 0 else { throw SystemError("open(\(path), O_CREAT|O_EXCL)", errno: Int32(-fd), "re-creating the deleted file \(c.name)") }
            try main.call(87 /* unlink */, [addr], "unlink(\(path)) of the re-created deleted file \(c.name)")
            return fd
        }
        throw FerryError("cannot restore the deleted file \(c.name): both its path and ferry's temporary name next to it are taken")
    }

    /// Writes the data ranges from ferry itself, through the process's
    /// descriptor (the holes between them stay holes).
    static func write(_ c: FileContents, to link: String, what: String) throws {
        guard !c.bytes.value.isEmpty else { return }
        let fd = open(link, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(\(link))", errno: errno, "filling \(what)") }
        defer { close(fd) }
        var from = 0
        for r in c.dataRanges {
            var done = 0
            while done < r.count {
                let n = c.bytes.value.withUnsafeBytes { pwrite(fd, $0.baseAddress! + from + done, r.count - done, off_t(r.lowerBound) + off_t(done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw SystemError("pwrite at \(Int(r.lowerBound) + done)", errno: n < 0 ? errno : EIO, "filling \(what)") }
                done += n
            }
            from += r.count
        }
    }

    /// A new open file of the re-created file held at `object`, with the
    /// flags and offset of `f`; with `original`, the object's own open file
    /// (`SharedMemoryPlan.memfdOriginals`).
    static func reopen(_ f: FileDescriptorImage, object: Int32, original: Bool, injector: Injector, scratch: ScratchArea) throws -> Int64 {
        let fd: Int64
        if original {
            fd = try injector.call(SYS.fcntl, [UInt64(object), 0 /* F_DUPFD */, 0], "fcntl(F_DUPFD) of memfd \(f.path) for fd \(f.fd)")
        } else {
            let path = try ProcessMisc.put("/proc/self/fd/\(object)", injector: injector, scratch: scratch)
            // An O_TMPFILE file shows __O_TMPFILE|O_DIRECTORY in its flags: not for an open of the file itself.
            let flags = f.flags & ~(O_CREAT | O_TRUNC | O_EXCL | O_DIRECTORY | 0o20000000 /* __O_TMPFILE */)
            fd = try injector.call(SYS.open, [path, UInt64(UInt32(bitPattern: flags)), 0], "open(/proc/self/fd/\(object)) for fd \(f.fd) (\(f.path))")
        }
        if f.offset != 0 {
            try injector.call(SYS.lseek, [UInt64(fd), UInt64(bitPattern: f.offset), 0], "lseek for fd \(f.fd) (\(f.path))")
        }
        return fd
    }
}
#endif
