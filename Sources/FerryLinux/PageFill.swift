#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage
import FerryCore

/// Which pages of some page-aligned ranges have been populated (pure
/// bookkeeping, tested without root). A restore fills the fresh anonymous
/// memory of its process with UFFDIO_COPY, which fails on a page already
/// there; pre-copy resends pages, and a later ZERO record must clear a page
/// written before. The pre-copy source keeps the same map of what the
/// target holds (`PrecopySource`). One bit a page: 32 KiB per GiB.
struct PopulatedPages {
    /// A part of a run whose pages were all populated before, or all not.
    struct Segment: Equatable {
        var address: UInt64
        var pages: Int
        var populated: Bool
    }

    private var starts: [UInt64] = []
    private var ends: [UInt64] = []
    private var bits: [[UInt64]] = []

    init(ranges: [(start: UInt64, end: UInt64)]) {
        for r in ranges.sorted(by: { $0.start < $1.start }) {
            starts.append(r.start)
            ends.append(r.end)
            bits.append([UInt64](repeating: 0, count: (Int((r.end - r.start) / 4096) + 63) / 64))
        }
    }

    /// The range holding all of [address, address + pages × 4096), if one does.
    func range(of address: UInt64, pages: Int) -> Int? {
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ends[mid] <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo < starts.count, starts[lo] <= address, address + UInt64(pages) * 4096 <= ends[lo] else { return nil }
        return lo
    }

    /// Splits `pages` pages at `address` (inside range `r`) into segments of
    /// equal state, in address order; with `mark`, they are populated afterwards.
    mutating func split(address: UInt64, pages: Int, in r: Int, mark: Bool) -> [Segment] {
        let first = Int((address - starts[r]) / 4096)
        var out: [Segment] = []
        for k in 0..<pages {
            let i = first + k
            let was = bits[r][i >> 6] & (1 << UInt64(i & 63)) != 0
            if mark { bits[r][i >> 6] |= 1 << UInt64(i & 63) }
            if let last = out.last, last.populated == was {
                out[out.count - 1].pages += 1
            } else {
                out.append(Segment(address: address + UInt64(k) * 4096, pages: 1, populated: was))
            }
        }
        return out
    }

    /// Marks `pages` pages at `address` (inside range `r`) populated if none
    /// of them was; false (nothing marked) if one was.
    mutating func claimUntouched(address: UInt64, pages: Int, in r: Int) -> Bool {
        let first = Int((address - starts[r]) / 4096)
        for i in first..<first + pages where bits[r][i >> 6] & (1 << UInt64(i & 63)) != 0 { return false }
        set(first, pages, in: r)
        return true
    }

    /// Marks `pages` pages at `address` populated; a run outside every range is ignored.
    mutating func mark(address: UInt64, pages: Int) {
        guard let r = range(of: address, pages: pages) else { return }
        set(Int((address - starts[r]) / 4096), pages, in: r)
    }

    /// Whether the page at `address` is populated (false outside every range).
    func contains(_ address: UInt64) -> Bool {
        guard let r = range(of: address, pages: 1) else { return false }
        let i = Int((address - starts[r]) / 4096)
        return bits[r][i >> 6] & (1 << UInt64(i & 63)) != 0
    }

    private mutating func set(_ first: Int, _ pages: Int, in r: Int) {
        for i in first..<first + pages { bits[r][i >> 6] |= 1 << UInt64(i & 63) }
    }
}

/// Fills the fresh private anonymous mappings of a process under
/// construction through a userfaultfd of its own: created and registered
/// (MISSING) by injected syscalls before anything touches them, fetched into
/// ferry with pidfd_getfd, then UFFDIO_COPY allocates and fills each page in
/// one step — no page fault and no zeroing, unlike process_vm_writev into
/// never-touched memory. Pages already populated (pre-copy resends) are
/// overwritten with process_vm_writev; ZERO runs need nothing on pages
/// never written. `finish` unregisters and closes it in both processes.
final class UserfaultFill {
    let pid: Int32
    let remoteFD: Int32
    private var localFD: Int32
    private let ranges: [(start: UInt64, end: UInt64)]
    private var populated: PopulatedPages
    private let memory: RemoteMemory

    private init(pid: Int32, remoteFD: Int32, localFD: Int32, ranges: [(start: UInt64, end: UInt64)]) {
        self.pid = pid; self.remoteFD = remoteFD; self.localFD = localFD; self.ranges = ranges
        populated = PopulatedPages(ranges: ranges)
        memory = RemoteMemory(pid: pid)
    }

    deinit { if localFD >= 0 { close(localFD) } }

    /// Creates the userfaultfd in the process `injector` drives, over `ranges` (none yet touched).
    static func start(injector: Injector, scratch: ScratchArea, ranges: [(start: UInt64, end: UInt64)]) throws -> UserfaultFill {
        let pid = injector.memory.pid
        // Adjacent mappings (all still writable here) take one registration, one
        // unregistration and one bitmap: 50,000 one-page mappings side by side are one range.
        let ranges = AddressRanges.coalesced(ranges)
        let remote = try DirtyTracker.injectUserfaultfd(injector, scratch: scratch, features: 0, mode: DirtyTracker.modeMissing,
                                                        ranges: ranges)
        let local = ferry_fd_of_process(pid, remote)
        guard local >= 0 else {
            _ = try? injector.call(SYS.close, [UInt64(remote)], "close(userfaultfd)")
            throw SystemError("pidfd_getfd(\(pid), \(remote))", errno: -local, "fetching the userfaultfd of \(pid)")
        }
        return UserfaultFill(pid: pid, remoteFD: remote, localFD: local, ranges: ranges)
    }

    /// Writes `span` if it lies in a registered range (false: it does not, the caller writes it).
    /// Overwrites of populated pages go to `overwrite`, in order (copied: it writes later),
    /// except a span wholly populated (the usual pre-copy resend) whose bytes
    /// the caller also holds as `owned`: that array goes as it is.
    func fill(_ span: PageSpan, owned: [UInt8]? = nil, overwrite: BatchedWriter) throws -> Bool {
        guard let r = populated.range(of: span.address, pages: span.pageCount) else { return false }
        let segments = populated.split(address: span.address, pages: span.pageCount, in: r, mark: span.data != nil)
        for s in segments {
            let offset = Int(s.address - span.address), count = s.pages * 4096
            guard let data = span.data else {
                // ZERO: a page never written reads as zero already.
                if s.populated { try overwrite.addZeros(s.address, count: count) }
                continue
            }
            if s.populated {
                try overwrite.add(s.address, owned.flatMap { count == $0.count ? $0 : nil }
                                  ?? Array(UnsafeRawBufferPointer(rebasing: data[offset..<offset + count])))
            } else {
                try copy(s.address, from: data.baseAddress! + offset, count: count)
            }
        }
        return true
    }

    /// For a run whose pages none before filled (the whole of a directory
    /// image, where every page appears once), marks them filled and returns
    /// true: then `copy` may write it from any thread, in any order with
    /// other such runs; a ZERO run needs nothing (it marks nothing, as in
    /// `fill`). false: some page was filled before, `fill` must take the run
    /// in order; nil: the run is not in a registered range.
    func claimUntouched(address: UInt64, pageCount: Int, hasData: Bool) -> Bool? {
        guard let r = populated.range(of: address, pages: pageCount) else { return nil }
        if !hasData {
            return populated.split(address: address, pages: pageCount, in: r, mark: false).allSatisfy { !$0.populated }
        }
        return populated.claimUntouched(address: address, pages: pageCount, in: r)
    }

    /// Whether the page at `address` is registered and never filled: it reads
    /// as zero, and reading it (process_vm_readv) would wait on this userfaultfd.
    func unfilled(_ address: UInt64) -> Bool {
        populated.range(of: address, pages: 1) != nil && !populated.contains(address)
    }

    /// Fills pages never filled before with UFFDIO_COPY. Safe on any thread
    /// (the ioctl and process_vm_writev hold no state here).
    func copy(_ address: UInt64, from local: UnsafeRawPointer, count: Int) throws {
        var at = 0
        while at < count {
            var done: UInt64 = 0
            let r = ferry_uffd_copy(localFD, address + UInt64(at), UInt64(UInt(bitPattern: local + at)), UInt64(count - at), &done)
            at += Int(done)
            if r == 0 { return }
            guard r == -EEXIST else {
                throw SystemError("ioctl(UFFDIO_COPY, \(hex(address + UInt64(at))), \(count - at))", errno: -r, "filling memory of \(pid)")
            }
            // Populated by something other than this fill: an ordinary write, one page.
            try memory.write(address + UInt64(at), from: local + at, count: 4096)
            at += 4096
        }
    }

    /// Unregisters every range and closes the userfaultfd here and in the
    /// process: it keeps neither the descriptor nor a registration.
    func finish(injector: Injector) throws {
        for r in ranges {
            try check(Int(ferry_uffd_unregister(localFD, r.start, r.end - r.start)), "ioctl(UFFDIO_UNREGISTER, \(hex(r.start)))",
                      "removing the userfaultfd of \(pid)")
        }
        close(localFD)
        localFD = -1
        try injector.call(SYS.close, [UInt64(remoteFD)], "close(userfaultfd \(remoteFD))")
    }
}
extension BatchedWriter {
    /// One MiB of zeros, shared by every zero run.
    static let zeroChunk = [UInt8](repeating: 0, count: 1 << 20)

    /// Zeros `count` bytes at `address` out of `zeroChunk`: a ZERO run of any
    /// length (up to 4 GiB) allocates at most one partial chunk, never its size.
    func addZeros(_ address: UInt64, count: Int) throws {
        var done = 0
        while done < count {
            let n = min(count - done, BatchedWriter.zeroChunk.count)
            try add(address + UInt64(done), n == BatchedWriter.zeroChunk.count ? BatchedWriter.zeroChunk : Array(BatchedWriter.zeroChunk[..<n]))
            done += n
        }
    }
}
#endif
