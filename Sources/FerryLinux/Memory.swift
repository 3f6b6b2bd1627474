#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

/// Mappings and their contents: dump (maps + pagemap + process_vm_readv →
/// PAGES/ZERO records) and restore (mmap in the new process + process_vm_writev).
public enum MemoryState {
    // MARK: dump

    /// The process's mappings in neutral form.
    public static func mappings(of pid: Int32) throws -> [Mapping] {
        try ProcFS.maps(pid).map { entry in try mapping(from: entry, pid: pid) }
    }

    static func mapping(from e: ProcFS.MapEntry, pid: Int32) throws -> Mapping {
        var flags: MappingFlags = e.shared ? [.shared] : []
        if e.vmFlags.contains("gd") { flags.insert(.growsDown) }
        flags.formUnion(MappingAdvice.flags(e.vmFlags))
        if e.shared && e.vmFlags.contains("mw") { flags.insert(.mayWrite) }
        var path = e.path
        let deleted = path.hasSuffix(" (deleted)")
        if deleted { path = String(path.dropLast(10)) }
        let kind: MappingKind
        var file: FileIdentity? = nil
        switch path {
        case "[heap]": kind = .heap
        case "[stack]": kind = .stack
        case "[vdso]": kind = .vdso
        case "[vvar]", "[vvar_vclock]": kind = .vvar
        case "[vsyscall]": kind = .vsyscall
        default:
            if e.inode == 0 || path.isEmpty || path.hasPrefix("[") {
                kind = e.shared ? .sharedAnonymous : .anonymous
            } else if path.hasPrefix("/dev/zero") || path.hasPrefix("/SYSV") || path.hasPrefix("/memfd:") || deleted {
                // Contents live only in memory: kept in the image.
                kind = e.shared ? .sharedAnonymous : .anonymous
                if deleted || path.hasPrefix("/memfd:") { flags.insert(.deletedFile) }
            } else {
                kind = e.shared ? .sharedFile : .privateFile
                file = try identity(ofMappedFile: "/proc/\(pid)/map_files/\(String(e.start, radix: 16))-\(String(e.end, radix: 16))",
                                    path: path)
            }
        }
        return Mapping(start: e.start, end: e.end, protection: e.protection, kind: kind, flags: flags,
                       fileOffset: e.offset, file: file, name: e.path,
                       sharedObject: SharedMemory.isPlannedShared(e) ? e.inode : nil,
                       memfd: SharedMemory.isMemfd(e) && e.shared ? try SharedMemory.memfdIdentity(e, pid: pid) : nil,
                       sysv: SysVShm.placeholder(e))
    }

    static func identity(ofMappedFile link: String, path: String) throws -> FileIdentity {
        var st = stat()
        if stat(link, &st) != 0 && stat(path, &st) != 0 {
            throw SystemError("stat(\(path))", errno: errno, "identifying a mapped file")
        }
        return FileIdentity(path: path, size: UInt64(st.st_size),
                            mtimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                            device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Which pages of a mapping go into the image.
    enum DumpPolicy { case none, present, presentAnonymous, all }

    static func policy(for m: Mapping) -> DumpPolicy {
        // MAP_DROPPABLE memory may be dropped by the kernel at any time: it comes back zero, as CRIU does.
        if m.flags.contains(.droppable) { return .none }
        switch m.kind {
        case .vvar, .vsyscall: return .none
        case .sharedFile: return .none // the file holds the contents (a restore refuses pages there)
        case .privateFile: return .presentAnonymous
        case .sharedAnonymous, .vdso: return .all
        case .anonymous, .heap, .stack: return m.flags.contains(.deletedFile) ? .all : .present
        }
    }

    /// The pages `child` still shares copy-on-write with `parent` (both
    /// frozen), in the mappings both have identically (`CopyOnWritePlan`);
    /// nil when none. PFNs read as 0 without CAP_SYS_ADMIN: then none are found.
    static func inheritedPages(child: ProcessImage, parent: ProcessImage) throws -> [PageRange]? {
        let candidates = CopyOnWritePlan.inheritable(child: child.mappings, parent: parent.mappings)
        guard !candidates.isEmpty else { return nil }
        let open = { (pid: Int32) throws -> Int32 in
            let fd = Glibc.open("/proc/\(pid)/pagemap", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError("open(/proc/\(pid)/pagemap)", errno: errno, "finding pages shared with the parent") }
            return fd
        }
        let childFD = try open(child.pid)
        defer { close(childFD) }
        let parentFD = try open(parent.pid)
        defer { close(parentFD) }
        let page = UInt64(ImageFormat.pageSize), chunk = 4096
        var c = [UInt64](repeating: 0, count: chunk), p = c
        var found: [PageRange] = []
        func read(_ fd: Int32, _ pid: Int32, _ into: inout [UInt64], _ addr: UInt64, _ n: Int) throws {
            let got = into.withUnsafeMutableBytes { pread(fd, $0.baseAddress, n * 8, off_t(addr / page * 8)) }
            guard got == n * 8 else { throw SystemError("pread(/proc/\(pid)/pagemap)", errno: errno, "finding pages shared with the parent") }
        }
        for m in candidates {
            // Joined within a mapping only: each range lies in one mapping.
            var inMapping: [PageRange] = []
            var addr = m.start
            while addr < m.end {
                let n = Int(min(UInt64(chunk), (m.end - addr) / page))
                try read(childFD, child.pid, &c, addr, n)
                try read(parentFD, parent.pid, &p, addr, n)
                inMapping += CopyOnWritePlan.sharedPages(start: addr, child: Array(c[0..<n]), parent: Array(p[0..<n]))
                addr += UInt64(n) * page
            }
            found += CopyOnWritePlan.merged(inMapping)
        }
        return found.isEmpty ? nil : found
    }

    public struct DumpStats: Sendable {
        public var dataPages = 0
        public var zeroPages = 0
    }

    /// Streams the contents of every mapping of `pid` into `sink`: each run
    /// of pages is read straight into its records when the sink has a
    /// `pageStream`, else into a buffer handed to `writePages`.
    /// `skipping`: pages not stored for this process (inherited from its parent, in order).
    public static func dumpPages(pid: Int32, mappings: [Mapping], skipping: [PageRange] = [], to sink: ImageSink) throws -> DumpStats {
        let pagemapFD = open("/proc/\(pid)/pagemap", O_RDONLY | O_CLOEXEC)
        guard pagemapFD >= 0 else { throw SystemError("open(/proc/\(pid)/pagemap)", errno: errno, "dumping memory of \(pid)") }
        defer { close(pagemapFD) }
        let memory = RemoteMemory(pid: pid)
        let page = ImageFormat.pageSize
        let chunkPages = PageRecord.maxPages
        let stream = try sink.pageStream()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: stream == nil ? chunkPages * page : 0, alignment: page)
        defer { buffer.deallocate() }
        // pagemap, one u64 per page, read for a window of up to chunkPages pages that may span
        // adjacent mappings (one pread for a thousand one-page mappings, not one each).
        var entries = [UInt64](repeating: 0, count: chunkPages)
        var window = (start: UInt64(0), pages: 0)
        var stats = DumpStats()

        for (index, m) in mappings.enumerated() {
            let policy = policy(for: m)
            if policy == .none { continue }
            var addr = m.start
            while addr < m.end {
                let n = Int(min(UInt64(chunkPages), (m.end - addr) / UInt64(page)))
                if addr < window.start || (addr - window.start) / UInt64(page) + UInt64(n) > UInt64(window.pages) {
                    var end = m.end, next = index + 1
                    while next < mappings.count && mappings[next].start == end && (end - addr) / UInt64(page) < UInt64(chunkPages) {
                        end = mappings[next].end
                        next += 1
                    }
                    let pages = Int(min(UInt64(chunkPages), (end - addr) / UInt64(page)))
                    let want = pages * 8
                    let got = entries.withUnsafeMutableBytes { pread(pagemapFD, $0.baseAddress, want, off_t(addr / UInt64(page) * 8)) }
                    guard got == want else { throw SystemError("pread(/proc/\(pid)/pagemap)", errno: errno, "dumping memory of \(pid)") }
                    window = (addr, pages)
                }
                let base = Int((addr - window.start) / UInt64(page))
                var i = 0
                while i < n {
                    // Find a run of pages to dump.
                    func wanted(_ e: UInt64) -> Bool {
                        let present = e & (1 << 63) != 0, swapped = e & (1 << 62) != 0, fileOrShared = e & (1 << 61) != 0
                        switch policy {
                        case .all: return true
                        case .present: return present || swapped
                        case .presentAnonymous: return (present && !fileOrShared) || swapped
                        case .none: return false
                        }
                    }
                    func take(_ k: Int) -> Bool {
                        let a = addr + UInt64(k * page)
                        return wanted(entries[base + k]) && !sink.skipsPage(pid: pid, address: a) && (skipping.isEmpty || !CopyOnWritePlan.contains(skipping, a))
                    }
                    guard take(i) else { i += 1; continue }
                    var j = i
                    let most = stream == nil ? n : i + PageRecordStream.maxPages
                    while j < n && j < most && take(j) { j += 1 }
                    let runAddr = addr + UInt64(i * page)
                    let runBytes = (j - i) * page
                    TestKill.point(.batch)
                    let readable = m.protection.contains(.read)
                    if let stream {
                        let into = try stream.reserve(pid: pid, address: runAddr, count: j - i)
                        do {
                            try readRun(memory: memory, pid: pid, address: runAddr, into: into, count: runBytes, readable: readable)
                        } catch {
                            stream.discard()
                            throw error
                        }
                        let n = stream.commit()
                        PageProgress.shared.add(pages: n.data)
                        stats.dataPages += n.data
                        stats.zeroPages += n.zero
                    } else {
                        try readRun(memory: memory, pid: pid, address: runAddr, into: buffer.baseAddress!, count: runBytes,
                                    readable: readable)
                        try emit(pid: pid, address: runAddr, data: UnsafeRawBufferPointer(start: buffer.baseAddress, count: runBytes),
                                 sink: sink, stats: &stats)
                    }
                    i = j
                }
                addr += UInt64(n * page)
            }
        }
        return stats
    }

    private static func readRun(memory: RemoteMemory, pid: Int32, address: UInt64, into: UnsafeMutableRawPointer,
                                count: Int, readable: Bool) throws {
        if readable {
            let n = try memory.read(address, into: into, count: count)
            if n == count { return }
        }
        // Unreadable protection (or a short read): /proc/PID/mem reads with FOLL_FORCE.
        let fd = open("/proc/\(pid)/mem", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(/proc/\(pid)/mem)", errno: errno, "reading memory of \(pid)") }
        defer { close(fd) }
        var done = 0
        while done < count {
            let r = pread(fd, into + done, count - done, off_t(Int64(bitPattern: address + UInt64(done))))
            if r <= 0 {
                throw SystemError("pread(/proc/\(pid)/mem, \(hex(address + UInt64(done))))", errno: r < 0 ? errno : EIO,
                                  "reading memory of \(pid)")
            }
            done += r
        }
    }

    /// Splits a run into PAGES and ZERO records.
    static func emit(pid: Int32, address: UInt64, data: UnsafeRawBufferPointer, sink: ImageSink, stats: inout DumpStats) throws {
        let page = ImageFormat.pageSize
        try forEachZeroStretch(data.baseAddress!, pages: data.count / page) { i, n, zero in
            let a = address + UInt64(i * page)
            if zero {
                try sink.writeZeroPages(pid: pid, address: a, count: n)
                stats.zeroPages += n
            } else {
                try sink.writePages(pid: pid, address: a, data: UnsafeRawBufferPointer(rebasing: data[i * page..<(i + n) * page]))
                PageProgress.shared.add(pages: n)
                stats.dataPages += n
            }
        }
    }
}
#endif
