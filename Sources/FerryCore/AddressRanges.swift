/// Address ranges [start, end) as the kernel takes them in one call.
public enum AddressRanges {
    /// `ranges` sorted, with ranges that touch or overlap joined: one
    /// registration (a userfaultfd's UFFDIO_REGISTER) covers adjacent
    /// mappings at once.
    public static func coalesced(_ ranges: [(start: UInt64, end: UInt64)]) -> [(start: UInt64, end: UInt64)] {
        var out: [(start: UInt64, end: UInt64)] = []
        for r in ranges.sorted(by: { $0.start < $1.start }) where r.end > r.start {
            if let last = out.last, r.start <= last.end {
                out[out.count - 1].end = max(last.end, r.end)
            } else {
                out.append(r)
            }
        }
        return out
    }
}
