#if os(Linux)
import Glibc
import FerryCore
import FerryImage

/// POSIX (fcntl), flock and OFD locks held through open files: read from
/// the fd's fdinfo "lock:" lines at checkpoint (FileLocks parses and
/// decides: leases being broken and the like are refused by name) and taken again,
/// non-blocking, by the restored process once its fds are in place. A lock
/// someone else took meanwhile fails the restore, naming it.
enum FileLockState {
    static let fSetLk: UInt64 = 6, fOFDSetLk: UInt64 = 37
    static let sysFlock = 73, lockSH: UInt64 = 1, lockEX: UInt64 = 2, lockNB: UInt64 = 4

    static func dump(_ d: DescriptorFacts, fdinfo: String) throws -> [FileLock]? {
        switch FileLocks.locks(fdinfo: fdinfo, who: "cannot checkpoint \(d.pid): fd \(d.fd) (\(d.path))") {
        case .success(let locks): return locks.isEmpty ? nil : locks
        case .failure(let r): throw FerryError(r.message)
        }
    }

    /// In the restored process, after every fd is placed: each lock of each
    /// fd that is not a dup (a dup shares its twin's open file and locks).
    static func restore(_ files: [FileDescriptorImage], injector: Injector, scratch: ScratchArea) throws {
        for f in files where f.sharedWith == nil {
            // Leases come after every process of the tree has its fds (Leases.swift).
            for lock in f.locks ?? [] where lock.kind != .lease {
                let what = "\(lock.kind.rawValue) \(lock.write ? "write" : "read") lock on fd \(f.fd) (\(f.path))"
                if lock.kind == .flock {
                    try take(what, injector.raw(sysFlock, [UInt64(f.fd), (lock.write ? lockEX : lockSH) | lockNB]), pid: injector.memory.pid)
                    continue
                }
                guard let r = FileLocks.range(lock) else { throw FerryError("cannot restore: the image's \(what) has a damaged range") }
                // struct flock { short l_type, l_whence; off_t l_start, l_len; pid_t l_pid; } (32 bytes):
                // l_type F_WRLCK (1) or F_RDLCK (0) with l_whence SEEK_SET (0) above it, padding.
                var b = LEBytes()
                b.i32(lock.write ? 1 : 0); b.i32(0)
                b.u64(UInt64(bitPattern: r.start)); b.u64(UInt64(bitPattern: r.length)); b.i32(0); b.i32(0)
                try injector.memory.write(scratch.data, b.bytes)
                let cmd = lock.kind == .ofd ? fOFDSetLk : fSetLk
                try take(what, injector.raw(SYS.fcntl, [UInt64(f.fd), cmd, scratch.data]), pid: injector.memory.pid)
            }
        }
    }

    static func take(_ what: String, _ r: Int64, pid: Int32) throws {
        if r == -Int64(EAGAIN) || r == -Int64(EWOULDBLOCK) || r == -Int64(EACCES) {
            throw FerryError("cannot restore process \(pid): its \(what) is held by another process now; stop it (or the original, if it was left running) and retry")
        }
        if r < 0 { throw SystemError("taking the \(what)", errno: Int32(truncatingIfNeeded: -r), "restoring process \(pid)") }
    }
}
#endif
