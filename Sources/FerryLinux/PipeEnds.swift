#if os(Linux)
import Glibc
import FerryImage

/// A process can hold several open files of one pipe end (each opened
/// through /proc/PID/fd/N, with its own status flags), not only dups. The
/// first comes from the pool; the others are opened the same way, through
/// /proc/self/fd of the pool's end, in the restored process.
enum PipeEnds {
    static func reopen(slot: Int32, _ f: FileDescriptorImage, injector: Injector, scratch: ScratchArea) throws -> Int64 {
        let path = try ProcessMisc.put("/proc/self/fd/\(slot)", injector: injector, scratch: scratch)
        let flags = UInt64(UInt32(bitPattern: (f.flags & O_ACCMODE) | O_CLOEXEC))
        return try injector.call(SYS.open, [path, flags, 0], "open(/proc/self/fd/\(slot)) for pipe fd \(f.fd)")
    }
}
#endif
