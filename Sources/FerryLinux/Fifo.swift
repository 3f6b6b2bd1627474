#if os(Linux)
import Glibc
import FerryCore
import FerryImage

/// FIFOs (named pipes). Each fd is reopened by path on restore, with its
/// access mode and status flags (Files.swift); the FIFO's buffered bytes
/// and its size (F_SETPIPE_SZ) travel like a pipe's, under the FIFO's id
/// (`FifoPlan.id`; the bytes are read with `FileState.dumpPipes`). While the
/// processes open their fds, the root holds every FIFO of the tree open
/// read-write and non-blocking at a pool slot: the bytes are written there,
/// a write-only open finds a reader (no ENXIO), no open blocks, and the
/// bytes stay until the processes' own fds hold the FIFO.
enum FifoState {
    static let fGetPipeSize: Int32 = 1032

    /// The id of the FIFO at fd `d.fd` (its device and inode, from `st`), or its refusal.
    static func id(_ d: DescriptorFacts, st: stat) throws -> UInt64 {
        let device = UInt64(st.st_dev), inode = UInt64(st.st_ino)
        guard let id = FifoPlan.id(device: device, inode: inode) else {
            throw FerryError(FifoPlan.refusal(d, device: device, inode: inode) ?? "cannot checkpoint \(d.pid): fd \(d.fd) (\(d.path)) has no FIFO id")
        }
        return id
    }

    /// Whether the FIFO `id`, held at `slot` of `pid`, is still to be sized
    /// and filled with `bytes`: true when it is empty or there is nothing to
    /// write. A FIFO is one object on its host: a process outside the
    /// restore may hold it open, and on the source's host (a stream, or a
    /// migration to the same host, whose pre-copy metadata carries no bytes
    /// yet) the frozen source does. When it holds exactly the image's bytes
    /// they are the same bytes (false: nothing to write); other bytes are
    /// refused in one line.
    static func unfilled(_ id: UInt64, slot: Int32, bytes: [UInt8], processes: [ProcessImage], pid: Int32) throws -> Bool {
        if bytes.isEmpty { return true }
        let path = FifoPlan.held(processes).first { $0.id == id }?.path ?? "FIFO \(id)"
        let now = try FileState.peekPipe(pid: pid, fd: slot, "reading FIFO \(path) on restore")
        if now.isEmpty { return true }
        if now == bytes { return false }
        throw FerryError("cannot restore FIFO \(path): it holds \(now.count) bytes on this host already, not the \(bytes.count) of the image (a process outside the restore has it open); drain it or stop that process and retry")
    }

    /// Opens the FIFO at `path` read-write and non-blocking at pool slot
    /// `slot` of the process `injector` drives (held until the pool is closed).
    static func hold(_ path: String, id: UInt64, at slot: Int32, injector: Injector, scratch: ScratchArea) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw FerryError("cannot restore FIFO \(path): \(String(cString: strerror(errno))) (a FIFO of the image must exist at its path on this host)")
        }
        guard st.st_mode & S_IFMT == S_IFIFO else {
            throw FerryError("cannot restore FIFO \(path): the file at that path is no longer a FIFO")
        }
        let addr = try ProcessMisc.put(path, injector: injector, scratch: scratch)
        let fd = try injector.call(SYS.open, [addr, UInt64(O_RDWR | O_NONBLOCK), 0], "open(\(path), O_RDWR) holding FIFO \(id)")
        try injector.call(SYS.dup2, [UInt64(fd), UInt64(slot)], "dup2 of FIFO \(path)")
        try injector.call(SYS.close, [UInt64(fd)], "close")
    }
}
#endif
