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

public struct LockRefusal: Error, Equatable {
    public let message: String
}
