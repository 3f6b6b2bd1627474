#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage

/// File descriptors: regular files (path, flags, offset), directories,
/// character devices, and pipes with the bytes in flight.
public enum FileState {
    static let oCloexecFdinfo: Int32 = 0o2000000

    // MARK: dump

    static func dump(pid: Int32, ignoring: Set<Int32> = []) throws -> [FileDescriptorImage] {
        var out: [FileDescriptorImage] = []
        for fd in try ProcFS.fds(pid) where !ignoring.contains(fd) {
            let link = try ProcFS.readlink("/proc/\(pid)/fd/\(fd)")
            let info = ProcFS.parseStatus(try ProcFS.text("/proc/\(pid)/fdinfo/\(fd)"))
            let flags = Int32(info["flags"] ?? "0", radix: 8) ?? 0
            let pos = Int64(info["pos"] ?? "0") ?? 0
            var st = stat()
            guard stat("/proc/\(pid)/fd/\(fd)", &st) == 0 else {
                throw SystemError("stat(/proc/\(pid)/fd/\(fd))", errno: errno, "dumping fd \(fd) of \(pid)")
            }
            var img = FileDescriptorImage(fd: fd, kind: .other, flags: flags & ~oCloexecFdinfo,
                                          closeOnExec: flags & oCloexecFdinfo != 0, offset: pos, path: link)
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                if link.hasSuffix(" (deleted)") {
                    throw FerryError("cannot checkpoint \(pid): fd \(fd) refers to a deleted file (\(link)); ferry does not save file contents")
                }
                img.kind = .regular
                img.file = FileIdentity(path: link, size: UInt64(st.st_size),
                                        mtimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                                        device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            case S_IFDIR: img.kind = .directory
            case S_IFCHR: img.kind = .characterDevice
            case S_IFIFO:
                if link.hasPrefix("pipe:[") {
                    img.kind = .pipe
                    img.pipeID = UInt64(st.st_ino)
                } else {
                    img.kind = .fifo
                }
            case S_IFSOCK:
                throw FerryError("cannot checkpoint \(pid): fd \(fd) is a socket (\(link)); ferry does not migrate sockets yet — close it or run the program without it")
            default:
                throw FerryError("cannot checkpoint \(pid): fd \(fd) is \(link), a kind of file ferry does not handle yet")
            }
            out.append(img)
        }
        return out
    }

    /// The bytes buffered in each pipe, read without consuming them (tee from our own handle on the pipe).
    static func dumpPipes(pid: Int32, files: [FileDescriptorImage], into pipes: inout [UInt64: PipeData]) throws {
        for f in files where f.kind == .pipe && pipes[f.pipeID] == nil {
            let fd = open("/proc/\(pid)/fd/\(f.fd)", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError("open(/proc/\(pid)/fd/\(f.fd))", errno: errno, "reading pipe data of \(pid)") }
            defer { close(fd) }
            var tmp: [Int32] = [0, 0]
            try check(Int(ferry_pipe(&tmp, O_CLOEXEC | O_NONBLOCK)), "pipe2", "reading pipe data")
            defer { close(tmp[0]); close(tmp[1]) }
            _ = fcntl(tmp[1], 1031 /* F_SETPIPE_SZ */, 1 << 20)
            let n = ferry_tee(fd, tmp[1], 1 << 20, 2 /* SPLICE_F_NONBLOCK */)
            var data = [UInt8]()
            if n > 0 {
                data = [UInt8](repeating: 0, count: n)
                let r = data.withUnsafeMutableBytes { Glibc.read(tmp[0], $0.baseAddress, n) }
                guard r == n else { throw SystemError("read(pipe copy)", errno: errno, "reading pipe data of \(pid)") }
            } else if n < 0 && n != -Int(EAGAIN) {
                throw SystemError("tee(pipe \(f.pipeID))", errno: Int32(-n), "reading pipe data of \(pid)")
            }
            pipes[f.pipeID] = PipeData(pipeID: f.pipeID, bytes: data)
        }
    }

    // MARK: restore

    /// Pipes of the whole tree live here (read end, write end pairs) from
    /// the root's creation until every process has taken its ends.
    static let poolBase: Int32 = 700
    /// Temporary descriptors while a table is being built.
    static let tempBase: Int32 = 900

    typealias PipePool = [UInt64: (read: Int32, write: Int32)]

    /// Creates every pipe at reserved descriptors in the root (children forked
    /// afterwards inherit them) and puts back the bytes that were in flight.
    static func createPipePool(_ ids: [UInt64], data: [UInt64: PipeData], injector: Injector, scratch: ScratchArea) throws -> PipePool {
        var pool: PipePool = [:]
        var next = poolBase
        for id in ids {
            try injector.call(SYS.pipe2, [scratch.data, 0], "pipe2")
            let pair = try injector.memory.read(scratch.data, count: 8).withUnsafeBytes { ($0.load(as: Int32.self), $0.load(fromByteOffset: 4, as: Int32.self)) }
            let r = next, w = next + 1
            next += 2
            guard next < tempBase else { throw FerryError("cannot restore: more than \((tempBase - poolBase) / 2) pipes") }
            for (from, to) in [(pair.0, r), (pair.1, w)] {
                try injector.call(SYS.dup2, [UInt64(from), UInt64(to)], "dup2")
                try injector.call(SYS.close, [UInt64(from)], "close")
            }
            if let bytes = data[id]?.bytes.value, !bytes.isEmpty {
                if bytes.count > 65536 {
                    try injector.call(SYS.fcntl, [UInt64(w), 1031 /* F_SETPIPE_SZ */, UInt64(bytes.count)], "fcntl(F_SETPIPE_SZ)")
                }
                var off = 0
                while off < bytes.count {
                    let n = min(bytes.count - off, scratch.dataSize)
                    try injector.memory.write(scratch.data, Array(bytes[off..<off + n]))
                    off += Int(try injector.call(SYS.write, [UInt64(w), scratch.data, UInt64(n)], "write(pipe \(id))"))
                }
            }
            pool[id] = (r, w)
        }
        return pool
    }

    /// Recreates the descriptor table inside a new process: files are opened
    /// at temporary numbers, pipes taken from the pool, then everything is
    /// moved into place and the pool and temporaries closed.
    static func restore(_ files: [FileDescriptorImage], pool: PipePool, injector: Injector, scratch: ScratchArea) throws {
        var temps: [(temp: Int32, image: FileDescriptorImage)] = []
        var nextTemp = tempBase
        for f in files {
            switch f.kind {
            case .pipe:
                guard let ends = pool[f.pipeID] else { throw FerryError("cannot restore fd \(f.fd): pipe \(f.pipeID) was not created") }
                temps.append(((f.flags & O_ACCMODE) == O_RDONLY ? ends.read : ends.write, f))
            case .regular, .directory, .characterDevice, .fifo:
                let path = f.kind == .regular ? (f.file?.path ?? f.path) : f.path
                if access(path, F_OK) != 0 {
                    throw FerryError("cannot restore fd \(f.fd): \(path) no longer exists")
                }
                let addr = try ProcessMisc.put(path, injector: injector, scratch: scratch)
                var flags = f.flags & ~(O_CREAT | O_TRUNC | O_EXCL)
                if f.kind == .fifo { flags |= O_NONBLOCK }
                let fd = try injector.call(SYS.open, [addr, UInt64(UInt32(bitPattern: flags)), 0], "open(\(path)) for fd \(f.fd)")
                if f.kind == .regular || f.kind == .directory, f.offset != 0 {
                    try injector.call(SYS.lseek, [UInt64(fd), UInt64(bitPattern: f.offset), 0], "lseek(\(path))")
                }
                let t = nextTemp
                nextTemp += 1
                try injector.call(SYS.dup2, [UInt64(fd), UInt64(t)], "dup2")
                try injector.call(SYS.close, [UInt64(fd)], "close")
                temps.append((t, f))
            case .socket, .other:
                throw FerryError("cannot restore fd \(f.fd): kind \(f.kind.rawValue) is not supported")
            }
        }
        for (temp, f) in temps {
            try injector.call(SYS.dup3, [UInt64(temp), UInt64(f.fd), f.closeOnExec ? UInt64(O_CLOEXEC) : 0], "dup3 to fd \(f.fd)")
            // Status flags (O_NONBLOCK, O_APPEND …) belong to the open file; set them on the final fd.
            try injector.call(SYS.fcntl, [UInt64(f.fd), 4 /* F_SETFL */, UInt64(UInt32(bitPattern: f.flags))], "fcntl(F_SETFL) on fd \(f.fd)")
        }
        // The pool and the temporaries, except where a final fd landed on one of those numbers.
        let finals = Set(files.map(\.fd))
        for t in Array(poolBase..<(poolBase + Int32(pool.count * 2))) + Array(tempBase..<nextTemp) where !finals.contains(t) {
            _ = try injector.raw(SYS.close, [UInt64(t)])
        }
    }
}
#endif
