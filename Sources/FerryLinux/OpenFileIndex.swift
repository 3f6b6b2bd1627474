#if os(Linux)
import Glibc
import CFerryLinux

/// One descriptor of one process.
struct ProcessFD: Equatable, Hashable {
    var pid: Int32
    var fd: Int32

    /// How the open files of two descriptors compare: kcmp(KCMP_FILE) gives
    /// 0 equal, 1 less, 2 greater (a total order on the kernel's file
    /// pointers, obfuscated the same way for every call); anything else (no
    /// kcmp in this kernel, or no order) is nil.
    static func kcmpFile(_ a: ProcessFD, _ b: ProcessFD) -> Int? {
        switch ferry_syscall6(SYS.kcmp, UInt64(a.pid), UInt64(b.pid), FileState.KCMP_FILE, UInt64(a.fd), UInt64(b.fd), 0) {
        case 0: return 0
        case 1: return -1
        case 2: return 1
        default: return nil
        }
    }
}

/// Tells which descriptors share one open file (dup, `2>&1`, inherited across
/// fork) in O(n log n) comparisons. Candidates are bucketed by a key that only
/// descriptors of one file can share (device and inode, or kind and path);
/// within a bucket the distinct open files are kept sorted by kcmp's order,
/// so each new descriptor is placed by binary search.
struct OpenFileIndex<Key: Hashable> {
    typealias Compare = (_ a: ProcessFD, _ b: ProcessFD) -> Int?

    /// Per key, the first descriptor seen of each distinct open file, sorted.
    private var buckets: [Key: [ProcessFD]] = [:]
    private let compare: Compare

    init(compare: @escaping Compare = ProcessFD.kcmpFile) { self.compare = compare }

    /// The descriptor first seen holding the open file `d` holds, or nil
    /// after recording `d` as a new distinct file. Files that cannot be
    /// ordered are compared one by one (and count as distinct where even that
    /// fails, as without kcmp).
    mutating func twin(of d: ProcessFD, key: Key) -> ProcessFD? {
        var list = buckets[key] ?? []
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            guard let order = compare(list[mid], d) else {
                if let equal = list.first(where: { compare($0, d) == 0 }) { return equal }
                lo = list.count
                break
            }
            if order == 0 { return list[mid] }
            if order < 0 { lo = mid + 1 } else { hi = mid }
        }
        list.insert(d, at: lo)
        buckets[key] = list
        return nil
    }
}
#endif
