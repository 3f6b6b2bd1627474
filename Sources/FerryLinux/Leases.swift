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
