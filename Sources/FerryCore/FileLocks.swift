import FerryImage

/// Locks an open file holds, as /proc/PID/fdinfo/FD prints them ("lock:"
/// lines, the format of /proc/locks):
///
///     lock:\t1: FLOCK  ADVISORY  WRITE 26248 fe:00:16221424 0 EOF
///     lock:\t1: POSIX  ADVISORY  READ 26248 fe:00:16221817 5 14
///     lock:\t1: OFDLCK ADVISORY  WRITE -1 fe:00:16221893 0 EOF
///
///     lock:\t1: LEASE  ACTIVE    READ 26248 fe:00:16221424 0 EOF
///
/// POSIX, flock and OFD locks and active leases are carried (taken again on
/// restore); leases being broken ("BREAKING", "BREAKER"), delegations,
/// mandatory locks and waiters ("->") are refused by name.
public enum FileLocks {
    /// The lock of one "lock:" line, or the refusal naming it.
    public static func parse(_ line: Substring, who: String) -> Result<FileLock, LockRefusal> {
        let body = line.hasPrefix("lock:") ? line.dropFirst(5) : line
        let words = body.split(whereSeparator: { $0 == " " || $0 == "\t" })
        func refuse(_ why: String) -> Result<FileLock, LockRefusal> {
            .failure(LockRefusal(message: "\(who) holds \(why) (\(words.joined(separator: " "))); ferry does not carry it: release it first"))
        }
        // "1:" [ "->" ] KIND MODE TYPE PID DEV:INO START END
        guard words.count >= 8 else { return refuse("a lock ferry cannot read") }
        if words[1] == "->" { return refuse("a lock request waiting on another") }
        let kind: FileLock.Kind
        switch words[1] {
        case "POSIX": kind = .posix
        case "FLOCK": kind = .flock
        case "OFDLCK": kind = .ofd
        case "LEASE":
            // "LEASE ACTIVE READ|WRITE": a lease no one is breaking.
            guard words[2] == "ACTIVE", words[3] == "READ" || words[3] == "WRITE" else { return refuse("a lease being broken") }
            return .success(FileLock(kind: .lease, write: words[3] == "WRITE"))
        case "DELEG": return refuse("a delegation")
        case "BREAKING", "ACTIVE": return refuse("a lease ferry cannot read")
        default: return refuse("a lock of a kind ferry does not know")
        }
        guard words[2] == "ADVISORY" else { return refuse("a mandatory lock") }
        let write: Bool
        switch words[3] {
        case "WRITE": write = true
        case "READ": write = false
        default: return refuse("a lock being broken")
        }
        guard let start = UInt64(words[6]) else { return refuse("a lock ferry cannot read") }
        var end: UInt64?
        if words[7] != "EOF" {
            guard let e = UInt64(words[7]), e >= start else { return refuse("a lock ferry cannot read") }
            end = e
        }
        return .success(FileLock(kind: kind, write: write, start: start, end: end))
    }

    /// Every "lock:" line of a fdinfo text.
    public static func locks(fdinfo: String, who: String) -> Result<[FileLock], LockRefusal> {
        var out: [FileLock] = []
        for line in fdinfo.split(separator: "\n") where line.hasPrefix("lock:") {
            switch parse(line, who: who) {
            case .success(let l): out.append(l)
            case .failure(let r): return .failure(r)
            }
        }
        return .success(out)
    }

    /// The struct flock fields (l_start, l_len) that take `lock` again; len 0 is "to EOF".
    /// Nil when the range does not fit (a damaged image).
    public static func range(_ lock: FileLock) -> (start: Int64, length: Int64)? {
        guard let start = Int64(exactly: lock.start) else { return nil }
        guard let end = lock.end else { return (start, 0) }
        guard end >= lock.start else { return nil }
        let (len, overflow) = (end - lock.start).addingReportingOverflow(1)
        guard !overflow, let length = Int64(exactly: len) else { return nil }
        return (start, length)
    }
}

/// A lease some process of the host holds (a /proc/locks line), on the
/// inode `device`:`inode` (`device` as stat's st_dev: the kernel's encoding of major and minor).
public struct HeldLease: Equatable, Sendable {
    public var pid: Int32
    public var write: Bool
    public var device: UInt64
    public var inode: UInt64
    public init(pid: Int32, write: Bool, device: UInt64, inode: UInt64) {
        self.pid = pid; self.write = write; self.device = device; self.inode = inode
    }
}

extension FileLocks {
    /// The leases of /proc/locks ("1: LEASE  ACTIVE    WRITE 26248 fe:00:16221424 0 EOF";
    /// major and minor in hex). A lease being broken counts as its current type.
    public static func heldLeases(procLocks text: String) -> [HeldLease] {
        text.split(separator: "\n").compactMap { line in
            let w = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard w.count >= 8, w[1] == "LEASE" || w[1] == "DELEG", w[3] != "UNLCK", let pid = Int32(w[4]) else { return nil }
            let id = w[5].split(separator: ":")
            guard id.count == 3, let major = UInt64(id[0], radix: 16), let minor = UInt64(id[1], radix: 16), let inode = UInt64(id[2]) else { return nil }
            // glibc's makedev: the encoding of st_dev.
            let device = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)
            return HeldLease(pid: pid, write: w[3] == "WRITE", device: device, inode: inode)
        }
    }

    /// Opening the file `device`:`inode` with access mode `accessMode`
    /// (O_RDONLY 0, O_WRONLY 1, O_RDWR 2) would break one of `leases`: a
    /// write lease breaks on any open, a read lease on an open for writing.
    /// Returns the lease it would break.
    public static func wouldBreak(_ leases: [HeldLease], device: UInt64, inode: UInt64, accessMode: Int32) -> HeldLease? {
        leases.first { $0.device == device && $0.inode == inode && ($0.write || accessMode != 0) }
    }
}

public struct LockRefusal: Error, Equatable {
    public let message: String
}
