#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage

/// How a `DirtyTracker` sees the pages a process writes.
public enum DirtyTrackingMethod: String, Sendable {
    /// An injected userfaultfd in WP_ASYNC mode and PAGEMAP_SCAN (Linux
    /// 6.7+): a scan needs no freeze, a write costs the process an async fault.
    case userfaultfd = "userfaultfd WP_ASYNC + PAGEMAP_SCAN"
    /// Soft-dirty bits (CONFIG_MEM_SOFT_DIRTY, as on Debian 12's 6.1):
    /// `4` written to /proc/PID/clear_refs clears them, pagemap bit 55 shows
    /// a page written since. A scan reads the bits and clears them with the
    /// process frozen, or a write between the read and the clear is lost.
    case softDirty = "soft-dirty (clear_refs 4 + pagemap bit 55)"

    /// The method this kernel offers, userfaultfd first; nil with neither.
    /// FERRY_DIRTY_TRACKING=soft-dirty picks soft-dirty where it works (so
    /// both paths can be tried on one kernel). Probed once, on ferry's own memory.
    public static let available: DirtyTrackingMethod? = {
        let uffd = ferry_probe_wp_scan(64, 5) == 5
        let soft = ferry_probe_soft_dirty() == 1
        if let forced = getenv("FERRY_DIRTY_TRACKING").map({ String(cString: $0) }), forced == "soft-dirty" {
            return soft ? .softDirty : nil
        }
        return uffd ? .userfaultfd : soft ? .softDirty : nil
    }()

    /// What is missing where `available` is nil.
    public static let missing = "neither userfaultfd WP_ASYNC with PAGEMAP_SCAN (Linux 6.7+) nor soft-dirty bits (CONFIG_MEM_SOFT_DIRTY) work on this kernel (`ferry check` shows both)"
}

/// Pre-copy dirty tracking, by one of two methods (`DirtyTrackingMethod`).
///
/// userfaultfd: the tracked process gets its own userfaultfd, created by
/// syscalls injected while it is briefly frozen: userfaultfd(O_CLOEXEC|O_NONBLOCK),
/// UFFDIO_API with WP_ASYNC|WP_UNPOPULATED, UFFDIO_REGISTER(MODE_WP) over
/// its writable private anonymous mappings. Then it runs on; the tracer asks
/// PAGEMAP_SCAN on /proc/PID/pagemap (PM_SCAN_WP_MATCHING |
/// PM_SCAN_CHECK_WPASYNC, category PAGE_IS_WRITTEN) for the pages written
/// since the last scan, which the same call write-protects again. Writes
/// then cost the process a ~1 µs async fault, no handler involved.
///
/// soft-dirty: nothing is injected. Arming clears the process's soft-dirty
/// bits; each scan freezes the process, reads pagemap entries of the
/// tracked ranges (bit 55: written since the last clear; a mapping made
/// since reads as written in full, present or not), clears the bits again
/// and lets it go. The freeze lasts one read of 8 bytes per tracked page
/// plus the clear's walk of the page tables.
public final class DirtyTracker {
    public let pid: Int32
    /// The registered ranges [start, end).
    public private(set) var ranges: [(start: UInt64, end: UInt64)] = []
    /// The userfaultfd's number in the tracked process; -1 with soft-dirty (nothing is injected).
    public let remoteFD: Int32
    public let method: DirtyTrackingMethod
    private let pagemap: Int32
    private var stopped = false

    // ioctl numbers: _IOWR(type, nr, size).
    static let UFFDIO_API: UInt64 = 0xC018_AA3F
    static let UFFDIO_REGISTER: UInt64 = 0xC020_AA00
    static let PAGEMAP_SCAN: UInt = 0xC060_6610
    static let featureWPUnpopulated: UInt64 = 1 << 13, featureWPAsync: UInt64 = 1 << 15
    static let scanWPMatching: UInt64 = 1 << 0, scanCheckWPAsync: UInt64 = 1 << 1
    static let pageIsWritten: UInt64 = 1 << 1, pageIsPresent: UInt64 = 1 << 3, pageIsSwapped: UInt64 = 1 << 4
    static let modeMissing: UInt64 = 1, modeWP: UInt64 = 2

    /// With userfaultfd, freezes `pid` briefly, injects the userfaultfd
    /// set-up and lets it go; with soft-dirty, only opens its pagemap. With
    /// `arm`, arms the tracking. Throws (leaving the process as it was) where
    /// the kernel offers no method.
    /// `frozen`: the process is already held (by a CheckpointSession of this thread).
    /// `mappings`: the process's mappings, if just read (otherwise they are read here).
    public init(pid: Int32, frozen: Bool = false, mappings known: [Mapping]? = nil, arm: Bool = true,
                method: DirtyTrackingMethod? = DirtyTrackingMethod.available) throws {
        guard let method else { throw FerryError("no dirty tracking: \(DirtyTrackingMethod.missing)") }
        self.pid = pid
        self.method = method
        let mappings = try known ?? MemoryState.mappings(of: pid)
        let regs: [(start: UInt64, end: UInt64)] = mappings.filter { m in
            m.kind.isPrivateAnonymous && m.protection.contains(.write)
        }.map { ($0.start, $0.end) }
        ranges = regs
        let pm = open("/proc/\(pid)/pagemap", O_RDONLY | O_CLOEXEC)
        guard pm >= 0 else { throw SystemError("open(/proc/\(pid)/pagemap)", errno: errno, "dirty tracking") }
        pagemap = pm
        if method == .softDirty {
            remoteFD = -1
            if arm { try self.arm(frozen: frozen) }
            return
        }
        var fd: Int32 = -1
        do {
            fd = try DirtyTracker.inject(pid: pid, frozen: frozen) { inj, scratch in
                try DirtyTracker.injectUserfaultfd(inj, scratch: scratch,
                                                   features: DirtyTracker.featureWPAsync | DirtyTracker.featureWPUnpopulated,
                                                   mode: DirtyTracker.modeWP, ranges: regs)
            }
        } catch {
            close(pm)
            throw error
        }
        remoteFD = fd
        if arm { try self.arm(frozen: frozen) }
    }

    /// Write-protects every page of the ranges: from now on each write is
    /// seen. Needs no freeze: a page written before is read after this by
    /// the first round anyway. On failure the userfaultfd is removed again.
    public func arm(frozen: Bool = false) throws {
        if method == .softDirty { return try clearSoftDirty() }
        do {
            _ = try scan()
        } catch {
            try? stop(frozen: frozen)
            throw error
        }
    }

    deinit { close(pagemap) }

    /// Registered ranges whose mapping was replaced since (a new VMA at the
    /// same place is not registered: PAGEMAP_SCAN with CHECK_WPASYNC says
    /// EPERM). Their writes are no longer seen: they are left out of later
    /// scans and must be sent whole, over a target that forgets what it had.
    public private(set) var lost: [(start: UInt64, end: UInt64)] = []

    /// Page ranges written since the last scan (and write-protected again).
    /// `frozen`: the process is held by this thread already (soft-dirty
    /// freezes it for the scan otherwise).
    public func scan(frozen: Bool = false) throws -> [(start: UInt64, end: UInt64)] {
        if method == .softDirty { return try softDirtyScan(frozen: frozen) }
        var out: [(start: UInt64, end: UInt64)] = []
        for r in ranges where !lost.contains(where: { $0.start == r.start }) {
            do {
                try walk(r, flags: DirtyTracker.scanWPMatching | DirtyTracker.scanCheckWPAsync,
                         inverted: 0, mask: DirtyTracker.pageIsWritten, returnMask: DirtyTracker.pageIsWritten, into: &out)
            } catch let e as SystemError where e.errno == EPERM {
                lost.append(r)
            }
        }
        return out
    }

    /// Whether this kernel's write scan reports a page dropped with
    /// MADV_DONTNEED as written (6.18 does: the PTE is empty, not
    /// write-protected). Then the written pages already include the dropped
    /// ones and `absent` is not needed. Probed once on ferry's own memory.
    /// FERRY_SCAN_ABSENT=1 scans for absent pages anyway (tests the other kernels' path).
    public static let reportsDroppedPages: Bool = getenv("FERRY_SCAN_ABSENT") == nil && ferry_probe_wp_scan_dropped(4) == 4

    /// The page frame numbers of the shared zero page and of the huge zero
    /// page's first small page (0 where unknown), probed once with read faults on ferry's own memory.
    public static let zeroPFNs: (UInt64, UInt64) = {
        var small: UInt64 = 0, huge: UInt64 = 0
        ferry_probe_zero_pfns(&small, &huge)
        return (small, huge)
    }()

    /// Whether this tracker's scan reports dropped pages as written: the
    /// userfaultfd scan where `reportsDroppedPages`; never soft-dirty (an
    /// emptied entry of an old mapping has no soft-dirty bit).
    public var seesDroppedPages: Bool { method == .userfaultfd && DirtyTracker.reportsDroppedPages }

    /// Page ranges of the tracked memory that are neither present nor
    /// swapped: never touched, or dropped (MADV_DONTNEED, MADV_FREE reclaimed)
    /// — which is not a write, so `scan` does not report it. With
    /// soft-dirty, also the pages mapping the shared zero page.
    public func absent() throws -> [(start: UInt64, end: UInt64)] {
        var out: [(start: UInt64, end: UInt64)] = []
        if method == .softDirty {
            // pagemap bit 63: present, bit 62: swapped. A page dropped and
            // then read maps the shared zero page: present, but never
            // written, so no soft-dirty bit; it reads as zero like an absent one.
            let (zero, hugeZero) = DirtyTracker.zeroPFNs
            for r in ranges {
                try pagemapEntries(r, into: &out) { e in
                    if e & (3 << 62) == 0 { return true }
                    guard e >> 63 != 0 else { return false }
                    let pfn = e & ((1 << 55) - 1)
                    return (zero != 0 && pfn == zero) || (hugeZero != 0 && pfn >= hugeZero && pfn < hugeZero + 512)
                }
            }
            return out
        }
        let here = DirtyTracker.pageIsPresent | DirtyTracker.pageIsSwapped
        for r in ranges where !lost.contains(where: { $0.start == r.start }) {
            try walk(r, flags: 0, inverted: here, mask: here, returnMask: here, into: &out)
        }
        return out
    }

    /// PAGEMAP_SCAN over `r`, looping on walk_end (the walk stops early on a full vec or the kernel's own limit).
    private func walk(_ r: (start: UInt64, end: UInt64), flags: UInt64, inverted: UInt64, mask: UInt64, returnMask: UInt64,
                      into out: inout [(start: UInt64, end: UInt64)]) throws {
        let vecLen = 512
        var vec = [UInt64](repeating: 0, count: vecLen * 3)  // struct page_region { start, end, categories }
        // Regions merge within this range only: a run must not cross into the next mapping.
        let first = out.count
        var at = r.start
        while at < r.end {
            // struct pm_scan_arg: size, flags, start, end, walk_end, vec, vec_len, max_pages,
            // category_inverted, category_mask, category_anyof_mask, return_mask
            var arg = [UInt64](repeating: 0, count: 12)
            let n: Int = vec.withUnsafeMutableBytes { v in
                arg[0] = 96
                arg[1] = flags
                arg[2] = at
                arg[3] = r.end
                arg[5] = UInt64(UInt(bitPattern: v.baseAddress!))
                arg[6] = UInt64(vecLen)
                arg[8] = inverted
                arg[9] = mask
                arg[11] = returnMask
                return arg.withUnsafeMutableBytes { a in
                    ferry_ioctl(pagemap, DirtyTracker.PAGEMAP_SCAN, UInt64(UInt(bitPattern: a.baseAddress!)))
                }
            }
            if n < 0 {
                throw SystemError("ioctl(PAGEMAP_SCAN) on /proc/\(pid)/pagemap at \(hex(at))", errno: Int32(-n), "dirty tracking")
            }
            for i in 0..<n {
                let (s, e) = (vec[i * 3], vec[i * 3 + 1])
                if out.count > first, out[out.count - 1].end == s { out[out.count - 1].end = e } else { out.append((s, e)) }
            }
            let walkEnd = arg[4]
            if walkEnd <= at { break }
            at = walkEnd
        }
    }

    /// Soft-dirty: the pages of the ranges whose bit 55 is set, then the bits
    /// cleared, with the process held throughout.
    private func softDirtyScan(frozen: Bool) throws -> [(start: UInt64, end: UInt64)] {
        let freezer = Freezer()
        defer { freezer.thaw() }
        if !frozen { try freezer.freeze(process: pid) }
        var out: [(start: UInt64, end: UInt64)] = []
        for r in ranges { try pagemapEntries(r, into: &out) { $0 & (1 << 55) != 0 } }
        try clearSoftDirty()
        return out
    }

    /// `4` to /proc/PID/clear_refs: every soft-dirty bit of the process cleared (its PTEs write-protected).
    private func clearSoftDirty() throws {
        let fd = open("/proc/\(pid)/clear_refs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(/proc/\(pid)/clear_refs)", errno: errno, "soft-dirty tracking") }
        defer { close(fd) }
        guard write(fd, "4", 1) == 1 else {
            throw SystemError("write(/proc/\(pid)/clear_refs, \"4\")", errno: errno, "soft-dirty tracking")
        }
    }

    /// The pages of `r` whose pagemap entry passes `test`, as runs appended
    /// to `out` (a run stays inside `r`). Reads 64 Ki entries at a time.
    private func pagemapEntries(_ r: (start: UInt64, end: UInt64), into out: inout [(start: UInt64, end: UInt64)],
                                _ test: (UInt64) -> Bool) throws {
        let chunk = 65536
        var entries = [UInt64](repeating: 0, count: chunk)
        let first = out.count
        var at = r.start
        while at < r.end {
            let want = Int(min(UInt64(chunk), (r.end - at) / 4096))
            let got = entries.withUnsafeMutableBytes { pread(pagemap, $0.baseAddress, want * 8, off_t(at / 4096 * 8)) }
            if got < 0 {
                throw SystemError("pread(/proc/\(pid)/pagemap) at \(hex(at))", errno: errno, "dirty tracking")
            }
            let n = got / 8
            if n == 0 { break }
            for i in 0..<n where test(entries[i]) {
                let page = at + UInt64(i) * 4096
                if out.count > first, out[out.count - 1].end == page { out[out.count - 1].end = page + 4096 } else { out.append((page, page + 4096)) }
            }
            at += UInt64(n) * 4096
        }
    }

    /// Removes the userfaultfd from the process (briefly frozen again unless
    /// `frozen`); soft-dirty leaves nothing in the process to remove.
    public func stop(frozen: Bool = false) throws {
        guard !stopped else { return }
        stopped = true
        if method == .softDirty { return }
        let fd = remoteFD
        _ = try DirtyTracker.inject(pid: pid, frozen: frozen) { inj, _ in
            try inj.call(SYS.close, [UInt64(fd)], "close(userfaultfd \(fd))")
            return 0
        }
    }

    /// Creates a userfaultfd inside the process `inj` drives (O_CLOEXEC |
    /// O_NONBLOCK), asks UFFDIO_API for `features` and registers `ranges` in
    /// `mode`; returns its number there. On failure the fd is closed again.
    static func injectUserfaultfd(_ inj: Injector, scratch: ScratchArea, features: UInt64, mode: UInt64,
                                  ranges: [(start: UInt64, end: UInt64)]) throws -> Int32 {
        let ufd = try highFD(try inj.call(SYS.userfaultfd, [UInt64(O_CLOEXEC | O_NONBLOCK)], "userfaultfd"), inj)
        do {
            // struct uffdio_api { u64 api; u64 features; u64 ioctls; }
            try inj.memory.write(scratch.data, le([0xAA, features, 0]))
            try inj.call(SYS.ioctl, [UInt64(ufd), UFFDIO_API, scratch.data], "ioctl(UFFDIO_API, features 0x\(String(features, radix: 16)))")
            for r in ranges {
                // struct uffdio_register { u64 start; u64 len; u64 mode; u64 ioctls; }
                try inj.memory.write(scratch.data, le([r.start, r.end - r.start, mode, 0]))
                try inj.call(SYS.ioctl, [UInt64(ufd), UFFDIO_REGISTER, scratch.data],
                             "ioctl(UFFDIO_REGISTER, mode \(mode)) at \(hex(r.start))")
            }
        } catch {
            _ = try? inj.call(SYS.close, [UInt64(ufd)], "close(userfaultfd)")
            throw error
        }
        return Int32(ufd)
    }

    /// The lowest number `highFD` moves a descriptor to: 16 below the
    /// process's RLIMIT_NOFILE (at most 2^20); nil for a limit of 64 or less.
    static func highFDFloor(_ pid: Int32) -> UInt64? {
        var limit: [UInt64] = [0, 0]
        guard ferry_prlimit(pid, 7 /* RLIMIT_NOFILE */, nil, &limit) == 0 else { return nil }
        let top = min(limit[0], 1 << 20)
        return top > 64 ? top - 16 : nil
    }

    /// `fd` moved to a number near the process's RLIMIT_NOFILE (the old one
    /// closed), so that a descriptor ferry leaves behind (a killed ferry
    /// leaves pre-copy's userfaultfd) does not take a number the program's
    /// next open would get. Unchanged when no such number is free.
    static func highFD(_ fd: Int64, _ inj: Injector) -> Int64 {
        guard let floor = highFDFloor(inj.memory.pid), UInt64(fd) < floor else { return fd }
        guard let high = try? inj.raw(SYS.fcntl, [UInt64(fd), 1030 /* F_DUPFD_CLOEXEC */, floor]), high >= 0 else { return fd }
        _ = try? inj.raw(SYS.close, [UInt64(fd)])
        return high
    }

    /// Pre-copy userfaultfds a killed ferry left in `pid`: userfaultfds at
    /// or above the number `highFD` starts from, and userfaultfds never set
    /// up with UFFDIO_API (a ferry killed between creating one and moving it
    /// leaves it at a low number; no program can use such an fd before that
    /// call, and ferry could not carry it anyway). A capture closes them and
    /// leaves them out of the image.
    static func leftovers(pid: Int32) -> Set<Int32> {
        guard let fds = try? ProcFS.fds(pid) else { return [] }
        let floor = highFDFloor(pid)
        return Set(fds.filter { fd in
            guard (try? ProcFS.readlink("/proc/\(pid)/fd/\(fd)")) == "anon_inode:[userfaultfd]" else { return false }
            if let floor, UInt64(fd) >= floor { return true }
            // fdinfo "API:\t<api>:<features>:<ioctls>"; features are 0 until UFFDIO_API.
            let api = (try? ProcFS.text("/proc/\(pid)/fdinfo/\(fd)")).flatMap { ProcFS.parseStatus($0)["API"] } ?? ""
            let parts = api.split(separator: ":")
            return parts.count == 3 && UInt64(parts[1], radix: 16) == 0
        })
    }

    /// Runs `body` with `pid` frozen, inside a scratch session (whose thread holds every signal meanwhile).
    static func inject(pid: Int32, frozen: Bool, _ body: (Injector, ScratchArea) throws -> Int32) throws -> Int32 {
        let freezer = Freezer()
        defer { freezer.thaw() }
        if !frozen { try freezer.freeze(process: pid) }
        let tid = pid
        var result: Int32 = -1
        try ScratchSession.with(pid: pid, tid: tid) { inj, scratch, _ in result = try body(inj, scratch) }
        return result
    }

    static func le(_ words: [UInt64]) -> [UInt8] {
        var b: [UInt8] = []
        for w in words { withUnsafeBytes(of: w.littleEndian) { b.append(contentsOf: $0) } }
        return b
    }
}
#endif
