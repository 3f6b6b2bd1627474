#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage
import FerryCore

/// File descriptors: regular files (path, flags, offset), directories,
/// character devices, pipes with the bytes in flight, eventfd, timerfd,
/// signalfd and epoll; fds that share one open file (dup, `2>&1`) stay shared.
public enum FileState {
    static let oCloexecFdinfo: Int32 = 0o2000000
    static let KCMP_FILE: UInt64 = 0, KCMP_EPOLL_TFD: UInt64 = 7

    // MARK: dump

    /// `readPtys`: record the state of the ptys whose master is open (the
    /// process must be frozen: their queues are read and written back).
    static func dump(pid: Int32, ignoring: Set<Int32> = [], readPtys: Bool = true) throws -> [FileDescriptorImage] {
        var out: [FileDescriptorImage] = []
        /// The distinct open files seen so far, to find dups; and where each fd's image is in `out`.
        var openFiles = OpenFileIndex<[UInt64]>()
        var position: [Int32: Int] = [:]
        for fd in try ProcFS.fds(pid) where !ignoring.contains(fd) {
            let link = try ProcFS.readlink("/proc/\(pid)/fd/\(fd)")
            let infoText = try ProcFS.text("/proc/\(pid)/fdinfo/\(fd)")
            let info = ProcFS.parseStatus(infoText)
            let flags = Int32(info["flags"] ?? "0", radix: 8) ?? 0
            let pos = Int64(info["pos"] ?? "0") ?? 0
            let facts = DescriptorFacts(pid: pid, fd: fd, path: link)
            // Locks first: a lease also sets O_ASYNC, and is named as a lease.
            let locks = try FileLockState.dump(facts, fdinfo: infoText)
            var st = stat()
            guard stat("/proc/\(pid)/fd/\(fd)", &st) == 0 else {
                throw SystemError("stat(/proc/\(pid)/fd/\(fd))", errno: errno, "dumping fd \(fd) of \(pid)")
            }
            var img = FileDescriptorImage(fd: fd, kind: .other, flags: flags & ~oCloexecFdinfo,
                                          closeOnExec: flags & oCloexecFdinfo != 0, offset: pos, path: link)
            let dev = UInt64(st.st_dev), ino = UInt64(st.st_ino)
            if let first = openFiles.twin(of: ProcessFD(pid: pid, fd: fd), key: [dev, ino]), let at = position[first.fd] {
                // A dup: its twin's open file (kind, pipe id, identity…), restored with dup3 (shared offset and flags).
                var dup = out[at]
                dup.fd = fd
                dup.closeOnExec = img.closeOnExec
                dup.sharedWith = first.fd
                out.append(dup)
                continue
            }
            position[fd] = out.count
            let (pipeSize, owner) = try DescriptorChecks.refuse(facts, st: st)
            img.locks = locks
            img.owner = owner
            // A file of a process under /proc: reopened under the restored process's pid (ProcFileState).
            img.procPid = ProcFilePlan.parse(link)?.pid
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                img.kind = .regular
                if let kind = FileContentsState.kind(link) {
                    // Contents in the image (FileContentsState.dump), by inode.
                    try FileContentsState.refuse(facts, st: st, kind: kind)
                    img.contentsID = ino
                    break
                }
                // A /proc file has no identity to check: its size and times are the process's, now.
                if img.procPid != nil { break }
                img.file = FileIdentity(path: link, size: UInt64(st.st_size),
                                        mtimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                                        device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            case _ where link.hasSuffix(" (deleted)"):
                // Reopened by path, a directory, device or FIFO deleted at its path would be gone or another one.
                throw FerryError("cannot checkpoint \(pid): fd \(fd) (\(link)) is a \(st.st_mode & S_IFMT == S_IFIFO ? "FIFO" : st.st_mode & S_IFMT == S_IFDIR ? "directory" : "device node") deleted at its path; ferry reopens such files by path: close it before the checkpoint")
            case S_IFDIR: img.kind = .directory
            case S_IFCHR:
                img.kind = .characterDevice
                img.pty = try Terminals.dump(facts, st: st, readState: readPtys)
            case S_IFIFO:
                if link.hasPrefix("pipe:[") {
                    img.kind = .pipe
                    img.pipeID = UInt64(st.st_ino)
                    img.pipeSize = pipeSize
                } else {
                    img.kind = .fifo
                    img.pipeID = try FifoState.id(facts, st: st)
                    img.pipeSize = pipeSize
                }
            case S_IFSOCK:
                img.kind = .socket
                // Netlink, then TCP/UDP; nil from both means a Unix socket.
                if let nl = try NetlinkSocket.dump(pid: pid, fd: fd, link: link) {
                    img.netlink = nl
                } else if let inet = try InetSocket.dump(pid: pid, fd: fd, link: link) {
                    img.inet = inet
                } else {
                    img.unixSocket = try UnixSocket.dump(pid: pid, fd: fd, inode: ino, fdinfo: infoText)
                }
            default:
                do {
                    switch link {
                    case "anon_inode:[eventfd]":
                        let eventfdInfo = DescriptorChecks.eventfdInfo(infoText)
                        try DescriptorChecks.refuseEventFD(facts, fdinfo: eventfdInfo)
                        img.kind = .eventfd; img.eventfd = try FDInfo.eventfd(eventfdInfo)
                    case "anon_inode:[timerfd]": img.kind = .timerfd; img.timerfd = try FDInfo.timerfd(infoText, realtimeNow: UInt64(Host.clockNs(CLOCK_REALTIME)))
                    case "anon_inode:[signalfd]": img.kind = .signalfd; img.signalMask = try FDInfo.signalMask(infoText)
                    case "anon_inode:[eventpoll]":
                        img.kind = .epoll
                        img.epollWatches = try FDInfo.epollWatches(infoText)
                    default:
                        throw FerryError("cannot checkpoint \(pid): fd \(fd) is \(link), a kind of file ferry does not handle yet")
                    }
                } catch let e as FDInfo.Malformed {
                    throw FerryError("cannot checkpoint \(pid): fd \(fd) (\(link)): \(e)")
                }
            }
            out.append(img)
        }
        for ep in out where ep.kind == .epoll && ep.sharedWith == nil {
            for w in ep.epollWatches ?? [] where !watchIsAtItsFD(pid, epoll: ep.fd, watch: w.fd) {
                throw FerryError("cannot checkpoint \(pid): epoll fd \(ep.fd) watches a file that is no longer open at fd \(w.fd) (it was closed or moved after epoll_ctl); ferry can only re-register watches by fd number")
            }
        }
        return out
    }

    /// Kinds whose open file can be shared by a tree through the pool. Pipes
    /// have their own pool; an epoll's watches belong to one process's fds.
    static let treeShareable: Set<FileKind> = [.regular, .directory, .characterDevice, .fifo, .eventfd, .timerfd, .signalfd, .socket]

    /// Gives the fds of different processes that share one open file (a log
    /// opened before fork) a common `treeShareID`. The processes must still
    /// exist (frozen): kcmp compares their files.
    static func markSharedAcrossProcesses(_ processes: inout [ProcessImage]) {
        guard processes.count > 1 else { return }
        // Candidates keyed by (kind, path): only those can be the same open file.
        var index = OpenFileIndex<String>()
        var groups: [ProcessFD: [(p: Int, f: Int)]] = [:]
        var order: [ProcessFD] = []
        for (pi, p) in processes.enumerated() {
            // Unix sockets are shared through the pool's sockets, by inode.
            for (fi, f) in p.files.enumerated() where f.sharedWith == nil && treeShareable.contains(f.kind) && f.unixSocket == nil && f.pty?.master != true {
                let d = ProcessFD(pid: p.pid, fd: f.fd)
                let rep = index.twin(of: d, key: "\(f.kind.rawValue)\u{0}\(f.path)") ?? d
                if groups[rep] == nil { order.append(rep) }
                groups[rep, default: []].append((pi, fi))
            }
        }
        var next: UInt64 = 1
        for rep in order {
            guard let g = groups[rep], g.count > 1 else { continue }
            for r in g { processes[r.p].files[r.f].treeShareID = next }
            next += 1
        }
    }

    /// kcmp(KCMP_EPOLL_TFD): is the file epoll `epoll` watches under fd number `watch` still the file at that fd?
    static func watchIsAtItsFD(_ pid: Int32, epoll: Int32, watch: Int32) -> Bool {
        // struct kcmp_epoll_slot { __u32 efd, tfd, toff; }
        var slot: (UInt32, UInt32, UInt32) = (UInt32(epoll), UInt32(watch), 0)
        let r = withUnsafePointer(to: &slot) {
            ferry_syscall6(SYS.kcmp, UInt64(pid), UInt64(pid), KCMP_EPOLL_TFD, UInt64(watch),
                           UInt64(UInt(bitPattern: $0)), 0)
        }
        // Without kcmp the watch cannot be checked; it is taken as registered where it is.
        return r == 0 || r == -Int(ENOSYS)
    }

    /// The bytes buffered in each pipe and FIFO, read without consuming them (tee from our own handle on it).
    static func dumpPipes(pid: Int32, files: [FileDescriptorImage], into pipes: inout [UInt64: PipeData]) throws {
        for f in files where (f.kind == .pipe || f.kind == .fifo) && f.pipeID != 0 && pipes[f.pipeID] == nil {
            pipes[f.pipeID] = PipeData(pipeID: f.pipeID, bytes: try peekPipe(pid: pid, fd: f.fd, "reading pipe data of \(pid)"))
        }
    }

    /// The bytes buffered in the pipe or FIFO at fd `fd` of `pid`, left in place.
    static func peekPipe(pid: Int32, fd target: Int32, _ context: String) throws -> [UInt8] {
        let fd = open("/proc/\(pid)/fd/\(target)", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(/proc/\(pid)/fd/\(target))", errno: errno, context) }
        defer { close(fd) }
        var tmp: [Int32] = [0, 0]
        try check(Int(ferry_pipe(&tmp, O_CLOEXEC | O_NONBLOCK)), "pipe2", context)
        defer { close(tmp[0]); close(tmp[1]) }
        _ = fcntl(tmp[1], 1031 /* F_SETPIPE_SZ */, 1 << 20)
        let n = ferry_tee(fd, tmp[1], 1 << 20, 2 /* SPLICE_F_NONBLOCK */)
        var data = [UInt8]()
        if n > 0 {
            data = [UInt8](repeating: 0, count: n)
            let r = data.withUnsafeMutableBytes { Glibc.read(tmp[0], $0.baseAddress, n) }
            guard r == n else { throw SystemError("read(pipe copy)", errno: errno, context) }
        } else if n < 0 && n != -Int(EAGAIN) {
            throw SystemError("tee(fd \(target) of \(pid))", errno: Int32(-n), context)
        }
        return data
    }

    // MARK: restore

    /// Where ferry keeps its own descriptors inside the processes it builds:
    /// numbers above every fd of the image, so that placing an image fd
    /// never lands on one of them. The pool (pipes and the open files shared
    /// across the tree) lives there from the root's creation until every
    /// process has taken its descriptors.
    struct WorkingFDs: Equatable {
        /// The first pool descriptor.
        var base: Int32
        /// One past the last pool descriptor.
        var end: Int32

        init(processes: [ProcessImage]) {
            let highest = processes.flatMap { $0.files.map(\.fd) }.max() ?? -1
            var pipes = Set<UInt64>(), shared = Set<UInt64>()
            for p in processes {
                for f in p.files where f.sharedWith == nil {
                    if f.kind == .pipe { pipes.insert(f.pipeID) } else if let id = f.treeShareID { shared.insert(id) }
                }
            }
            let sockets = Int32(UnixSocketPlan.socketCount(processes))
            let fifos = Int32(FifoPlan.held(processes).count)
            // Headroom for fds a process opens during pre-copy (the pool is made from the first metadata).
            base = max(highest + 1, 3) + 32
            end = base + Int32(2 * pipes.count + shared.count + Terminals.pairs(processes).count) + sockets + fifos
        }
    }

    /// Raises the RLIMIT_NOFILE of `pid` (soft, and hard if needed: ferry
    /// runs as root) so that descriptors below `end` can be used; the
    /// image's own limits are set at the end of the restore.
    static func allowDescriptors(below end: Int32, pid: Int32) throws {
        let nofile = Int32(RLIMIT_NOFILE.rawValue)
        var cur: [UInt64] = [0, 0]
        try check(Int(ferry_prlimit(pid, nofile, nil, &cur)), "prlimit(RLIMIT_NOFILE)", "reading the fd limit of \(pid)")
        guard cur[0] < UInt64(end) else { return }
        let new: [UInt64] = [UInt64(end), max(cur[1], UInt64(end))]
        let r = ferry_prlimit(pid, nofile, new, nil)
        if r == -EPERM {
            throw FerryError("cannot restore: process \(pid) needs fd numbers up to \(end - 1) (the image's fds and ferry's working fds above them) but its hard RLIMIT_NOFILE is \(cur[1]) and ferry may not raise it (no CAP_SYS_RESOURCE): raise ferry's own hard limit (ulimit -Hn) above \(end - 1)")
        }
        try check(Int(r), "prlimit(RLIMIT_NOFILE, \(end))", "making room for fd \(end - 1) in \(pid)")
    }

    /// What the root created for the whole tree (children forked afterwards inherit it).
    struct PipePool {
        /// Pipes' ends, and FIFOs held read-write (`FifoState.hold`: both ends the same slot), by id.
        var pipes: [UInt64: (read: Int32, write: Int32)] = [:]
        /// Open files shared by several processes, by `treeShareID`.
        var shared: [UInt64: Int32] = [:]
        /// Unix sockets, by inode.
        var sockets: [UInt64: Int32] = [:]
        /// pty masters, by index; ferry's own handles on them.
        var ptys: [Int32: Int32] = [:]
        let ptyHandles = Terminals.Handles()
        let slots: WorkingFDs
        var next: Int32
        var descriptors: Range<Int32> { slots.base..<next }

        init(slots: WorkingFDs) {
            self.slots = slots
            next = slots.base
        }

        mutating func reserve(_ n: Int32) throws -> Int32 {
            let first = next
            guard next + n <= slots.end else {
                throw FerryError("cannot restore: the tree shares more pipe ends and open files than its fds say (\(slots.end - slots.base))")
            }
            next += n
            return first
        }
    }

    /// Sizes pipe `id` (write end `w` in the process `injector` drives) as
    /// the image says and writes `bytes` into it, as they were in flight.
    /// Pre-copy's restore creates the pipes empty and puts the final image's
    /// bytes in with this (`PhasedRestore.update`).
    static func fillPipe(_ id: UInt64, write w: Int32, bytes: [UInt8], processes: [ProcessImage],
                         injector: Injector, scratch: ScratchArea) throws {
        // A FIFO open elsewhere on this host may hold its bytes already (FifoState.unfilled).
        if id & FileDescriptorImage.fifoIDBit != 0, try !FifoState.unfilled(id, slot: w, bytes: bytes, processes: processes, pid: injector.memory.pid) {
            return
        }
        let saved = processes.lazy.flatMap(\.files).first { ($0.kind == .pipe || $0.kind == .fifo) && $0.pipeID == id && $0.pipeSize != nil }?.pipeSize
        if let s = saved, !(1...Int(Int32.max)).contains(s) {
            throw FerryError("cannot restore: pipe \(id) has a size of \(s) bytes in the image")
        }
        if let size = Uncarried.pipeSize(saved: saved, buffered: bytes.count) {
            try injector.call(SYS.fcntl, [UInt64(w), 1031 /* F_SETPIPE_SZ */, UInt64(size)], "fcntl(F_SETPIPE_SZ, \(size)) for pipe \(id)")
        }
        if !bytes.isEmpty {
            var off = 0
            while off < bytes.count {
                // Whole pages per write: a pipe packs each write into fresh pages after
                // the last one's tail, so smaller pieces leave gaps and a pipe full at the
                // checkpoint would not take its bytes back (the write would block).
                let n = min(bytes.count - off, scratch.dataSize & ~4095)
                try injector.memory.write(scratch.data, Array(bytes[off..<off + n]))
                off += Int(try injector.call(SYS.write, [UInt64(w), scratch.data, UInt64(n)], "write(pipe \(id))"))
            }
        }
    }

    /// Creates every pipe at reserved descriptors in the root and puts back
    /// the bytes that were in flight; holds every FIFO open there with its
    /// bytes (`FifoState`); then opens once each file several
    /// processes share (`treeShareID`, from its first entry in `processes`).
    static func createPipePool(_ ids: [UInt64], data: [UInt64: PipeData], processes: [ProcessImage], slots: WorkingFDs,
                               objects: [UInt64: Int32], originals: [Int32: Set<Int32>],
                               injector: Injector, scratch: ScratchArea) throws -> PipePool {
        var pool = PipePool(slots: slots)
        for id in ids {
            try injector.call(SYS.pipe2, [scratch.data, 0], "pipe2")
            let pair = try injector.memory.read(scratch.data, count: 8).withUnsafeBytes { ($0.load(as: Int32.self), $0.load(fromByteOffset: 4, as: Int32.self)) }
            let r = try pool.reserve(2), w = r + 1
            for (from, to) in [(pair.0, r), (pair.1, w)] {
                try injector.call(SYS.dup2, [UInt64(from), UInt64(to)], "dup2")
                try injector.call(SYS.close, [UInt64(from)], "close")
            }
            try fillPipe(id, write: w, bytes: data[id]?.bytes.value ?? [], processes: processes, injector: injector, scratch: scratch)
            pool.pipes[id] = (r, w)
        }
        // Before any FIFO fd is opened (the shared ones just below): see FifoState.
        for (id, path) in FifoPlan.held(processes) {
            let slot = try pool.reserve(1)
            try FifoState.hold(path, id: id, at: slot, injector: injector, scratch: scratch)
            try fillPipe(id, write: slot, bytes: data[id]?.bytes.value ?? [], processes: processes, injector: injector, scratch: scratch)
            pool.pipes[id] = (slot, slot)
        }
        let handles = pool.ptyHandles
        pool.ptys = try Terminals.create(processes, handles: handles, reserve: { try pool.reserve($0) }, injector: injector, scratch: scratch)
        pool.sockets = try UnixSocket.createPairs(processes, reserve: { try pool.reserve($0) }, injector: injector, scratch: scratch)
        for p in processes {
            for f in InetSocket.connectionsLast(p.files) {
                guard let id = f.treeShareID, pool.shared[id] == nil else { continue }
                let fd = try openInProcess(f, objects: objects, originals: originals[p.pid] ?? [], injector: injector, scratch: scratch)
                let slot = try pool.reserve(1)
                try injector.call(SYS.dup2, [UInt64(fd), UInt64(slot)], "dup2")
                try injector.call(SYS.close, [UInt64(fd)], "close")
                // Status flags belong to the open file: set once, here.
                try injector.call(SYS.fcntl, [UInt64(slot), 4 /* F_SETFL */, UInt64(UInt32(bitPattern: f.flags))], "fcntl(F_SETFL) on a shared file")
                pool.shared[id] = slot
            }
        }
        // Every socket of the pool is bound: SO_REUSEPORT as recorded.
        for p in processes {
            for f in p.files where f.sharedWith == nil {
                guard let s = f.inet, let slot = f.treeShareID.flatMap({ pool.shared[$0] }) else { continue }
                try InetSocket.settle(s, fd: slot, injector: injector, scratch: scratch)
            }
        }
        return pool
    }

    /// Opens (or creates) the file `f` describes at a new descriptor in the
    /// process: regular files, directories, devices and fifos by path with
    /// their offset; eventfd, timerfd and signalfd with their state.
    /// `objects`: the re-created files (`FileContentsState`) by id; `originals`: the fds of this process that take a memfd's own open file.
    static func openInProcess(_ f: FileDescriptorImage, objects: [UInt64: Int32], originals: Set<Int32>,
                              injector: Injector, scratch: ScratchArea) throws -> Int64 {
        if let id = f.contentsID {
            guard let object = objects[id] else { throw FerryError("cannot restore fd \(f.fd): the file of its contents (\(f.path)) was not re-created") }
            return try FileContentsState.reopen(f, object: object, original: originals.contains(f.fd), injector: injector, scratch: scratch)
        }
        switch f.kind {
        case .regular, .directory, .characterDevice, .fifo:
            let path = f.kind == .regular ? (f.file?.path ?? f.path) : f.path
            if access(path, F_OK) != 0 {
                throw FerryError("cannot restore fd \(f.fd): \(path) no longer exists")
            }
            let addr = try ProcessMisc.put(path, injector: injector, scratch: scratch)
            var flags = f.flags & ~(O_CREAT | O_TRUNC | O_EXCL)
            if f.kind == .fifo { flags |= O_NONBLOCK }
            // A terminal becomes a controlling terminal only by TIOCSCTTY (Terminals).
            if f.kind == .characterDevice { flags |= O_NOCTTY }
            let fd = try injector.call(SYS.open, [addr, UInt64(UInt32(bitPattern: flags)), 0], "open(\(path)) for fd \(f.fd)")
            if f.kind == .regular || f.kind == .directory, f.offset != 0 {
                try injector.call(SYS.lseek, [UInt64(fd), UInt64(bitPattern: f.offset), 0], "lseek(\(path))")
            }
            return fd
        case .eventfd, .timerfd, .signalfd:
            return try createEventFile(f, injector: injector, scratch: scratch)
        case .socket:
            if f.netlink != nil { return try NetlinkSocket.create(f, injector: injector, scratch: scratch) }
            return try InetSocket.create(f, injector: injector, scratch: scratch)
        case .pipe, .other, .epoll:
            throw FerryError("cannot restore fd \(f.fd): kind \(f.kind.rawValue) is not opened by itself")
        }
    }

    /// Recreates the descriptor table inside a new process. Each file is
    /// opened (or taken from the pool) and moved to its number at once: a
    /// new descriptor gets the lowest free number, never one already placed,
    /// so no number above the image's and the pool's is needed. Dups follow
    /// their twins, epolls come last, then the pool is closed.
    /// `objects`: the re-created files of the image's contents (`FileContentsState`), by id.
    static func restore(_ files: [FileDescriptorImage], pool: PipePool, objects: [UInt64: Int32], originals: Set<Int32>,
                        injector: Injector, scratch: ScratchArea) throws {
        /// Moves `from` to the number of `f` (closing `from` unless it is a
        /// pool slot) with its close-on-exec and status flags (O_NONBLOCK,
        /// O_APPEND … belong to the open file).
        func place(_ from: Int64, _ f: FileDescriptorImage, keep: Bool) throws {
            if from == Int64(f.fd) {
                try injector.call(SYS.fcntl, [UInt64(f.fd), 2 /* F_SETFD */, f.closeOnExec ? 1 : 0], "fcntl(F_SETFD) on fd \(f.fd)")
            } else {
                try injector.call(SYS.dup3, [UInt64(from), UInt64(f.fd), f.closeOnExec ? UInt64(O_CLOEXEC) : 0], "dup3 to fd \(f.fd)")
                if !keep { try injector.call(SYS.close, [UInt64(from)], "close") }
            }
            try injector.call(SYS.fcntl, [UInt64(f.fd), 4 /* F_SETFL */, UInt64(UInt32(bitPattern: f.flags))], "fcntl(F_SETFL) on fd \(f.fd)")
        }
        /// Dups share the open file of their twin (which is placed already).
        func placeDups(of twins: Set<Int32>) throws {
            for f in files where f.sharedWith.map(twins.contains) == true {
                try injector.call(SYS.dup3, [UInt64(f.sharedWith!), UInt64(f.fd), f.closeOnExec ? UInt64(O_CLOEXEC) : 0],
                                  "dup3(\(f.sharedWith!), \(f.fd)) for a shared fd")
            }
        }
        let primaries = files.filter { $0.sharedWith == nil }
        if let f = files.first(where: { $0.fd >= pool.slots.base }) {
            throw FerryError("cannot restore fd \(f.fd) of process \(injector.memory.pid): it was opened after the first metadata, at or above fd \(pool.slots.base) where ferry keeps its own descriptors; retry the migration")
        }
        var pipeEndsPlaced = Set<[UInt64]>()
        let batched = try openByPath(primaries, where: { $0.treeShareID == nil && $0.contentsID == nil && $0.pty?.master != true && byPath.contains($0.kind) },
                                     injector: injector, scratch: scratch)
        // Established connections after the listeners whose port they take again.
        // (Filtered first: an fd image is large, and most fds are batched.)
        for f in InetSocket.connectionsLast(primaries.filter { $0.kind != .epoll && !batched.contains($0.fd) }) {
            if f.kind == .pipe {
                guard let ends = pool.pipes[f.pipeID] else { throw FerryError("cannot restore fd \(f.fd): pipe \(f.pipeID) was not created") }
                let reader = (f.flags & O_ACCMODE) == O_RDONLY
                let slot = reader ? ends.read : ends.write
                if pipeEndsPlaced.insert([f.pipeID, reader ? 0 : 1]).inserted {
                    try place(Int64(slot), f, keep: true)
                } else {
                    // Another open file of an end this process holds already (opened through
                    // /proc/PID/fd/N, not dup'ed): its own open file, with its own flags.
                    try place(try PipeEnds.reopen(slot: slot, f, injector: injector, scratch: scratch), f, keep: false)
                }
            } else if f.kind == .socket, f.unixSocket != nil {
                guard let slot = f.unixSocket.flatMap({ pool.sockets[$0.inode] }) else { throw FerryError("cannot restore fd \(f.fd): its socket was not created") }
                try place(Int64(slot), f, keep: true)
            } else if let e = f.pty, e.master {
                guard let slot = pool.ptys[e.index] else { throw FerryError("cannot restore fd \(f.fd): pty \(e.index) was not created") }
                try place(Int64(slot), f, keep: true)
            } else if let id = f.treeShareID {
                guard let slot = pool.shared[id] else { throw FerryError("cannot restore fd \(f.fd): shared file \(id) was not opened") }
                // The pool may have been opened from a pre-copy round's metadata: the offset is this (final) one.
                if f.kind == .regular || f.kind == .directory {
                    try injector.call(SYS.lseek, [UInt64(slot), UInt64(bitPattern: f.offset), 0], "lseek(shared \(f.path))")
                }
                try place(Int64(slot), f, keep: true)
            } else {
                try place(try openInProcess(f, objects: objects, originals: originals, injector: injector, scratch: scratch), f, keep: false)
            }
        }
        // Every socket of the process is bound: SO_REUSEPORT as recorded.
        for f in primaries where f.treeShareID == nil {
            if let s = f.inet { try InetSocket.settle(s, fd: f.fd, injector: injector, scratch: scratch) }
        }
        for f in primaries where f.kind != .epoll {
            if let o = f.owner { try FileOwnerState.restore(o, fd: f.fd, injector: injector, scratch: scratch) }
        }
        try placeDups(of: Set(primaries.lazy.filter { $0.kind != .epoll }.map(\.fd)))
        // epoll last: its watches name the final fd numbers, other epolls' included.
        let epolls = try epollOrder(primaries.filter { $0.kind == .epoll }, files: files)
        for f in epolls {
            let ep = try injector.call(SYS.epollCreate1, [0], "epoll_create1 for fd \(f.fd)")
            for w in f.epollWatches ?? [] {
                try injector.memory.write(scratch.data, epollEvent(events: w.events, data: w.data))
                try injector.call(SYS.epollCtl, [UInt64(ep), 1 /* EPOLL_CTL_ADD */, UInt64(bitPattern: Int64(w.fd)), scratch.data],
                                  "epoll_ctl(ADD, fd \(w.fd)) for epoll fd \(f.fd)")
            }
            try place(ep, f, keep: false)
            try placeDups(of: [f.fd])
        }
        // The pool (above the image's fds).
        if pool.slots.base < pool.slots.end {
            _ = try injector.raw(436 /* close_range */, [UInt64(pool.slots.base), UInt64(pool.slots.end - 1), 0])
        }
        // Locks last: closing any fd of a file drops the process's POSIX locks on it, the pool's too.
        try FileLockState.restore(files, injector: injector, scratch: scratch)
    }

    /// Kinds `openByPath` opens.
    static let byPath: Set<FileKind> = [.regular, .directory, .characterDevice, .fifo]

    /// Opens every file of `files` that `wanted` takes (kinds in `byPath`, none shared across
    /// processes) at its own number, in one batch of injected calls. The
    /// number each open returns is known in advance (the lowest free one,
    /// from the process's table as /proc shows it), so each is moved to its
    /// place in the same batch; the results are checked against it after.
    /// Returns the fds placed.
    static func openByPath(_ files: [FileDescriptorImage], where wanted: (FileDescriptorImage) -> Bool,
                           injector: Injector, scratch: ScratchArea) throws -> Set<Int32> {
        guard files.contains(where: wanted) else { return [] }
        var table = FreeDescriptors(occupied: try ProcFS.fds(injector.memory.pid))
        var batch = InjectedBatch()
        var expected: [(call: Int, fd: Int32, image: Int32)] = []
        var placed = Set<Int32>()
        var calls = 0
        func add(_ c: InjectedBatch.Call) { batch.add(c); calls += 1 }
        for f in files where wanted(f) {
            placed.insert(f.fd)
            let path = f.kind == .regular ? (f.file?.path ?? f.path) : f.path
            if access(path, F_OK) != 0 {
                throw FerryError("cannot restore fd \(f.fd): \(path) no longer exists")
            }
            var flags = f.flags & ~(O_CREAT | O_TRUNC | O_EXCL)
            if f.kind == .fifo { flags |= O_NONBLOCK }
            if f.kind == .characterDevice { flags |= O_NOCTTY }
            let x = table.take()
            if x == f.fd && f.closeOnExec { flags |= O_CLOEXEC }
            expected.append((calls, x, f.fd))
            add(.init(SYS.open, [0, UInt64(UInt32(bitPattern: flags)), 0], string: path, at: 0, "open(\(path)) for fd \(f.fd)"))
            if f.kind == .regular || f.kind == .directory, f.offset != 0 {
                add(.init(SYS.lseek, [UInt64(x), UInt64(bitPattern: f.offset), 0], "lseek(\(path)) for fd \(f.fd)"))
            }
            if x != f.fd {
                add(.init(SYS.dup3, [UInt64(x), UInt64(f.fd), f.closeOnExec ? UInt64(O_CLOEXEC) : 0], "dup3 to fd \(f.fd)"))
                add(.init(SYS.close, [UInt64(x)], "close"))
                table.occupy(f.fd)
                table.release(x)
            }
            add(.init(SYS.fcntl, [UInt64(f.fd), 4 /* F_SETFL */, UInt64(UInt32(bitPattern: f.flags))], "fcntl(F_SETFL) on fd \(f.fd)"))
        }
        let results = try batch.run(injector, scratch: scratch)
        for e in expected where results[e.call] != Int64(e.fd) {
            throw FerryError("cannot restore fd \(e.image) of process \(injector.memory.pid): its file opened at fd \(results[e.call]), not at the predicted \(e.fd) (the descriptor table changed under ferry)")
        }
        return placed
    }

    /// eventfd, timerfd or signalfd with the state of `f`, at a new descriptor.
    static func createEventFile(_ f: FileDescriptorImage, injector: Injector, scratch: ScratchArea) throws -> Int64 {
        switch f.kind {
        case .eventfd:
            guard let e = f.eventfd else { throw FerryError("cannot restore fd \(f.fd): the image has no eventfd state") }
            let fd = try injector.call(SYS.eventfd2, [0, e.semaphore ? 1 /* EFD_SEMAPHORE */ : 0], "eventfd2 for fd \(f.fd)")
            if e.count > 0 {
                // The counter is 64-bit, eventfd2's initial value 32-bit: write it.
                try injector.memory.write(scratch.data, withUnsafeBytes(of: e.count.littleEndian, Array.init))
                try injector.call(SYS.write, [UInt64(fd), scratch.data, 8], "write(eventfd count) for fd \(f.fd)")
            }
            return fd
        case .timerfd:
            guard let t = f.timerfd else { throw FerryError("cannot restore fd \(f.fd): the image has no timerfd state") }
            let fd = try injector.call(SYS.timerfdCreate, [UInt64(UInt32(bitPattern: t.clock)), 0], "timerfd_create(clock \(t.clock)) for fd \(f.fd)")
            if t.valueNs > 0 || t.intervalNs > 0 {
                let spec = timerSpec(t)
                var bytes = [UInt8]()
                for v in [spec.interval / 1_000_000_000, spec.interval % 1_000_000_000, spec.value / 1_000_000_000, spec.value % 1_000_000_000] {
                    withUnsafeBytes(of: v.littleEndian) { bytes += $0 }
                }
                try injector.memory.write(scratch.data, bytes)
                try injector.call(SYS.timerfdSettime, [UInt64(fd), UInt64(UInt32(bitPattern: spec.flags)), scratch.data, 0],
                                  "timerfd_settime for fd \(f.fd)")
            }
            if t.ticks > 0 {
                // After settime, which clears the count. TFD_IOC_SET_TICKS = _IOW('T', 0, u64).
                try injector.memory.write(scratch.data, withUnsafeBytes(of: t.ticks.littleEndian, Array.init))
                try injector.call(SYS.ioctl, [UInt64(fd), 0x4008_5400, scratch.data], "ioctl(TFD_IOC_SET_TICKS) for fd \(f.fd)")
            }
            return fd
        case .signalfd:
            guard let mask = f.signalMask else { throw FerryError("cannot restore fd \(f.fd): the image has no signalfd mask") }
            try injector.memory.write(scratch.data, withUnsafeBytes(of: mask.littleEndian, Array.init))
            return try injector.call(SYS.signalfd4, [UInt64.max /* -1: new */, scratch.data, 8, 0], "signalfd4 for fd \(f.fd)")
        default:
            throw FerryError("cannot restore fd \(f.fd): \(f.kind.rawValue) is not an event file")
        }
    }

    /// How a saved timerfd is set again. A REALTIME timer set with
    /// TFD_TIMER_ABSTIME keeps its deadline (and CANCEL_ON_SET its meaning);
    /// other timers keep their time left, relative (the frozen time does not
    /// count, as for interval timers; also right inside a time namespace).
    static func timerSpec(_ t: TimerFDState) -> (flags: Int32, value: UInt64, interval: UInt64) {
        if let deadline = t.realtimeDeadlineNs { return (t.settimeFlags, deadline, t.intervalNs) }
        // A periodic timer that expired shows 0 left until its ticks are read
        // (the kernel forwards it lazily): its next expiration is taken as one period away.
        return (0, t.valueNs == 0 ? t.intervalNs : t.valueNs, t.intervalNs)
    }

    /// A struct epoll_event (packed on x86-64: u32 events, u64 data).
    static func epollEvent(events: UInt32, data: UInt64) -> [UInt8] {
        var ev = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: events.littleEndian) { ev.replaceSubrange(0..<4, with: $0) }
        withUnsafeBytes(of: data.littleEndian) { ev.replaceSubrange(4..<12, with: $0) }
        return ev
    }

    /// Epolls that watch other epolls come after them (the kernel forbids cycles).
    static func epollOrder(_ epolls: [FileDescriptorImage], files: [FileDescriptorImage]) throws -> [FileDescriptorImage] {
        let twin = Dictionary(files.map { ($0.fd, $0.sharedWith ?? $0.fd) }, uniquingKeysWith: { a, _ in a })
        let byFD = Dictionary(epolls.map { ($0.fd, $0) }, uniquingKeysWith: { a, _ in a })
        var done = Set<Int32>(), visiting = Set<Int32>(), out: [FileDescriptorImage] = []
        func visit(_ f: FileDescriptorImage) throws {
            if done.contains(f.fd) { return }
            guard visiting.insert(f.fd).inserted else { throw FerryError("cannot restore: epoll fd \(f.fd) watches itself through a cycle") }
            for w in f.epollWatches ?? [] {
                if let target = twin[w.fd].flatMap({ byFD[$0] }) { try visit(target) }
            }
            visiting.remove(f.fd)
            done.insert(f.fd)
            out.append(f)
        }
        for f in epolls { try visit(f) }
        return out
    }
}
#endif
