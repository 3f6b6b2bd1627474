#if os(Linux)
import Glibc
import FerryCore
import FerryImage

/// Leases (F_SETLEASE): read at checkpoint from the fd's fdinfo "lock:"
/// line with the other locks (`FileLockState.dump`; a lease being broken is
/// refused there by name) and taken again by the restored process once every
/// process of the tree holds its fds and ferry's pool of shared descriptors
/// is closed: a write lease needs the file open nowhere else, a read lease
/// needs it open for writing nowhere, and an open after the lease would
/// break it.
enum LeaseState {
    static let fSetLease: UInt64 = 1024, fRdlck: UInt64 = 0, fWrlck: UInt64 = 1

    /// Before a restore opens anything: a file of the image that a process
    /// of this host holds a lease on (/proc/locks) would have that lease
    /// broken by the open (the open waits for the holder; on the source's
    /// host the frozen source itself would lose its lease): refused in one line.
    static func refuseBreaking(_ meta: ImageMetadata) throws {
        guard let text = try? ProcFS.text("/proc/locks") else { return }
        let held = FileLocks.heldLeases(procLocks: text)
        guard !held.isEmpty else { return }
        for p in meta.processes {
            for f in p.files where f.kind == .regular && f.sharedWith == nil && f.contentsID == nil && f.procPid == nil {
                let path = f.file?.path ?? f.path
                var st = stat()
                guard stat(path, &st) == 0,
                      let lease = FileLocks.wouldBreak(held, device: UInt64(st.st_dev), inode: UInt64(st.st_ino), accessMode: f.flags & O_ACCMODE)
                else { continue }
                throw FerryError("cannot restore fd \(f.fd) of process \(p.pid): process \(lease.pid) of this host holds a \(lease.write ? "write" : "read") lease on \(path), which opening it would break (restoring on the source's host while the source still runs, the source is that process): release the lease, or restore once the source is gone")
            }
        }
    }

    /// The leases of `files` (not dups: a dup shares its twin's open file and lease), in the process `injector` drives.
    static func restore(_ files: [FileDescriptorImage], injector: Injector) throws {
        let pid = injector.memory.pid
        for f in files where f.sharedWith == nil {
            for lease in f.locks ?? [] where lease.kind == .lease {
                let what = "\(lease.write ? "write" : "read") lease on fd \(f.fd) (\(f.file?.path ?? f.path))"
                let r = try injector.raw(SYS.fcntl, [UInt64(f.fd), fSetLease, lease.write ? fWrlck : fRdlck])
                if r == -Int64(EAGAIN) {
                    throw FerryError("cannot restore process \(pid): its \(what) cannot be taken, the file is open \(lease.write ? "by another open file" : "for writing") on this host now; close it there (or stop the original, if it was left running) and retry")
                }
                if r < 0 { throw SystemError("fcntl(F_SETLEASE) for the \(what)", errno: Int32(truncatingIfNeeded: -r), "restoring process \(pid)") }
            }
        }
    }
}
#endif
