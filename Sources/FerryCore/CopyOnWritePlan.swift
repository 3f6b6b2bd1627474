import FerryImage

/// Pages a parent and its child still share copy-on-write after `fork`
/// (the same physical page at the same address, never written by either
/// since). The checkpoint finds them (`sharedPages`) and stores them once,
/// in the parent; the child's image lists them (`ProcessImage.inheritedPages`).
/// The restore fills the parent, then forks the child from it (`lateForked`),
/// which keeps the parent's mappings that hold inherited pages (`keptMappings`)
/// and drops every other page of them (`notInherited`) before its own are
/// written.
public enum CopyOnWritePlan {
    /// A mapping whose pages can be inherited: private memory (anonymous, or
    /// a file's copied pages) that the restore creates alike in both
    /// processes and whose contents `fork` copies.
    public static func eligible(_ m: Mapping) -> Bool {
        (m.kind.isPrivateAnonymous || (m.kind == .privateFile && m.file != nil))
            && m.sharedObject == nil
            && m.flags.isDisjoint(with: [.deletedFile, .dontFork, .wipeOnFork, .droppable, .dontDump])
    }

    /// The child's mappings the parent has identically (address, size,
    /// protection, kind, flags, file and offset) and that are eligible.
    public static func inheritable(child: [Mapping], parent: [Mapping]) -> [Mapping] {
        let byStart = Dictionary(parent.map { ($0.start, $0) }, uniquingKeysWith: { a, _ in a })
        return child.filter { eligible($0) && byStart[$0.start] == $0 }
    }

    /// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
    static let present: UInt64 = 1 << 63, swapped: UInt64 = 1 << 62, fileOrShared: UInt64 = 1 << 61
    static let exclusive: UInt64 = 1 << 56, pfnMask: UInt64 = (1 << 55) - 1

    /// The pages from `start` (one pagemap entry per page in each process)
    /// that map the same physical frame in both: present, anonymous (a
    /// file's page-cache page is shared by anyone who maps the file, not by
    /// `fork`), not exclusively mapped, with a PFN (reading PFNs needs
    /// CAP_SYS_ADMIN; without it they read 0 and nothing is found).
    public static func sharedPages(start: UInt64, child: [UInt64], parent: [UInt64]) -> [PageRange] {
        let page = UInt64(ImageFormat.pageSize)
        var out: [PageRange] = []
        for i in 0..<min(child.count, parent.count) {
            let c = child[i], p = parent[i]
            guard c & present != 0, c & (fileOrShared | swapped | exclusive) == 0,
                  c & pfnMask != 0, p & present != 0, p & pfnMask == c & pfnMask else { continue }
            let addr = start + UInt64(i) * page
            if let last = out.last, last.end == addr {
                out[out.count - 1].end = addr + page
            } else {
                out.append(PageRange(start: addr, end: addr + page))
            }
        }
        return out
    }

    /// `ranges` in order with touching ones joined.
    public static func merged(_ ranges: [PageRange]) -> [PageRange] {
        AddressRanges.coalesced(ranges.map { ($0.start, $0.end) }).map { PageRange(start: $0.start, end: $0.end) }
    }

    /// Whether `address` lies in one of `ranges` (in order, disjoint).
    public static func contains(_ ranges: [PageRange], _ address: UInt64) -> Bool {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].end <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].start <= address
    }

    /// The parts of `range` outside `holes` (in order, disjoint).
    public static func subtracting(_ holes: [PageRange], from range: PageRange) -> [PageRange] {
        var out: [PageRange] = []
        var at = range.start
        for h in holes where h.end > range.start && h.start < range.end {
            if h.start > at { out.append(PageRange(start: at, end: h.start)) }
            at = max(at, h.end)
        }
        if at < range.end { out.append(PageRange(start: at, end: range.end)) }
        return out
    }

    /// The pages of `m` the child does not inherit: dropped (zero, or the
    /// file's contents again) before the child's own pages are written.
    public static func notInherited(in m: Mapping, inherited: [PageRange]) -> [PageRange] {
        subtracting(inherited, from: PageRange(start: m.start, end: m.end))
    }

    /// The child's mappings that hold inherited pages: the restore keeps the
    /// parent's mapping there instead of creating one. Every inherited range
    /// must lie in a mapping the parent has identically, otherwise the
    /// reason (one line) is thrown.
    public static func keptMappings(child: ProcessImage, parent: ProcessImage) throws -> [Mapping] {
        let inherited = child.inheritedPages ?? []
        guard !inherited.isEmpty else { return [] }
        let candidates = inheritable(child: child.mappings, parent: parent.mappings)
        var kept: [Mapping] = []
        var c = 0
        for r in inherited {
            // Both in address order (`Validation` checks the ranges' order).
            while c < candidates.count && candidates[c].end <= r.start { c += 1 }
            guard c < candidates.count, candidates[c].start <= r.start, r.end <= candidates[c].end else {
                throw CopyOnWriteRefusal(child: child.pid, parent: parent.pid, range: r)
            }
            if kept.last?.start != candidates[c].start { kept.append(candidates[c]) }
        }
        return kept
    }

    /// The processes a restore forks only once their parent's memory is
    /// filled: those that inherit pages, and everything below them.
    public static func lateForked(_ processes: [ProcessImage]) -> Set<Int32> {
        var late = Set(processes.filter { !($0.inheritedPages ?? []).isEmpty }.map(\.pid))
        var grew = true
        while grew {
            grew = false
            for p in processes where !late.contains(p.pid) && late.contains(p.ppid) {
                late.insert(p.pid)
                grew = true
            }
        }
        return late
    }
}

/// An image whose inherited pages the restore cannot rebuild.
public struct CopyOnWriteRefusal: Error, CustomStringConvertible, Equatable {
    public var child: Int32, parent: Int32, range: PageRange
    public var description: String {
        "cannot restore process \(child): its inherited pages 0x\(String(range.start, radix: 16))-0x\(String(range.end, radix: 16)) lie in no private mapping its parent \(parent) has identically (the image is damaged or hostile)"
    }
}
