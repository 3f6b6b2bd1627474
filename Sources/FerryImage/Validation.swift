/// Semantic checks every reader runs on metadata, whether it came from a
/// directory or a stream: what a well-formed image must satisfy before any
/// restore work starts.
public enum Validation {
    /// End of the x86-64 user address space with 4-level paging (47 bits).
    public static let userAddressLimit: UInt64 = 0x0000_8000_0000_0000
    public static let maxProcesses = 4096
    public static let maxThreads = 8192
    public static let maxMappings = 1 << 16
    public static let maxFiles = 1 << 16
    /// fd numbers stay below this (Linux's default fs.nr_open is 1 << 20), so
    /// a restore can place its own descriptors above the image's.
    public static let fdLimit: Int32 = 1 << 30
    public static let maxXSaveSize = 64 << 10
    /// A vDSO or vvar mapping at most (kernels map 8–16 KiB): a proxied vDSO is read whole.
    public static let maxVDSOMappingSize: UInt64 = 1 << 20
    /// POSIX timers per process (the kernel has no limit of its own beyond memory and RLIMIT_SIGPENDING).
    public static let maxPosixTimers = 1 << 16
    /// Clocks a POSIX timer of an image may use (`PosixTimer.clock`).
    public static let posixTimerClocks: Set<Int32> = [0, 1, 7, 8, 9, 11, -6]

    public static func validate(_ meta: ImageMetadata, name: String) throws {
        func fail(_ msg: String) -> ImageError { ImageError(file: name, msg) }
        let s = meta.source
        guard s.arch == "x86_64" else {
            throw fail("the image is for arch \(s.arch); ferry restores x86_64 images only")
        }
        guard s.pageSize == UInt32(ImageFormat.pageSize) else {
            throw fail("the image has page size \(s.pageSize); ferry handles 4096 only")
        }
        guard s.os == "linux" || s.os == "freebsd" else { throw fail("unknown source OS \"\(s.os)\"") }
        if let hold = s.tcpHold, !SourceHost.validTCPHold(hold) {
            throw fail("the TCP hold name is not ferry-tcp-hold- and 16 hex digits")
        }
        guard !meta.processes.isEmpty else { throw fail("the image holds no process") }
        guard meta.processes.count <= maxProcesses else { throw fail("\(meta.processes.count) processes exceed the limit of \(maxProcesses)") }
        var pids = Set<Int32>()
        var pipeIDs = Set<UInt64>()
        for pipe in meta.pipes {
            guard pipeIDs.insert(pipe.pipeID).inserted else { throw fail("pipe \(pipe.pipeID) appears twice") }
        }
        var contentsIDs = Set<UInt64>()
        for c in meta.contents {
            let what = "file contents \(c.id) (\(c.kind.rawValue))"
            guard contentsIDs.insert(c.id).inserted else { throw fail("\(what) appear twice") }
            guard c.bytes.count <= FileContentsRecord.maxBytes else { throw fail("\(what): \(c.bytes.count) bytes, over \(FileContentsRecord.maxBytes)") }
            // Data ranges: well-formed, in order, inside the file, as long together as the bytes.
            var end: UInt64 = 0, total: UInt64 = 0
            for e in c.extents ?? [] {
                guard e.count == 2, e[0] >= end, e[0] < e[1], e[1] <= c.size else { throw fail("\(what): data range \(e) out of order or outside its \(c.size) bytes") }
                end = e[1]
                total += e[1] - e[0]
            }
            guard total == UInt64(c.bytes.count) || (c.extents == nil && c.size == UInt64(c.bytes.count)) else {
                throw fail("\(what): \(c.bytes.count) bytes for \(c.extents == nil ? c.size : total) bytes of data")
            }
            guard c.mode & ~0o7777 == 0 else { throw fail("\(what): mode 0o\(String(c.mode, radix: 8)) has bits beyond 07777") }
            switch c.kind {
            case .memfd:
                // memfd_create takes at most 249 bytes of name.
                guard c.name.utf8.count <= 249, !c.name.utf8.contains(0) else { throw fail("\(what): name invalid or longer than 249 bytes") }
            case .deleted:
                guard c.seals == 0 else { throw fail("\(what): a deleted file has no seals") }
                try ImagePath.check(c.name, as: .absolute, field: what, in: name)
            }
        }
        var threadCount = 0
        let imagePids = Set(meta.processes.map(\.pid))
        for p in meta.processes {
            let who = "process \(p.pid)"
            guard p.pid > 0 else { throw fail("\(who): invalid pid") }
            guard pids.insert(p.pid).inserted else { throw fail("\(who) appears twice") }
            guard !p.threads.isEmpty else { throw fail("\(who) has no threads") }
            threadCount += p.threads.count
            guard threadCount <= maxThreads else { throw fail("more than \(maxThreads) threads") }
            guard p.mappings.count <= maxMappings else { throw fail("\(who) has \(p.mappings.count) mappings, over the limit") }
            guard p.files.count <= maxFiles else { throw fail("\(who) has \(p.files.count) files, over the limit") }
            try validateMappings(p.mappings, who: who, fail: fail)
            try validatePaths(p, who: who, file: name)
            try validateCgroups(p.cgroups ?? [], who: who, fail: fail)
            if p.sharesFilesWithParent == true {
                // Its table is restored by its parent's group: a process forked from no parent of the image would get none.
                guard p.pid != meta.processes[0].pid, imagePids.contains(p.ppid) else {
                    throw fail("\(who) shares the descriptor table of a parent the image does not hold")
                }
            }
            if let inherited = p.inheritedPages {
                guard p.pid != meta.processes[0].pid else { throw fail("\(who): the root has no parent to inherit pages from") }
                try validateInherited(inherited, maps: p.mappings, who: who, fail: fail)
            }
            var tids = Set<Int32>()
            for t in p.threads {
                try validateCgroups(t.cgroups ?? [], who: "\(who) thread \(t.tid)", fail: fail)
                guard t.tid > 0, tids.insert(t.tid).inserted else { throw fail("\(who): thread \(t.tid) invalid or repeated") }
                if let x = t.extendedState {
                    guard x.area.count >= 512, x.area.count <= maxXSaveSize else {
                        throw fail("\(who) thread \(t.tid): XSAVE area of \(x.area.count) bytes (expected 512…\(maxXSaveSize))")
                    }
                }
                if let sc = t.syscall, sc.args.count != 6 {
                    throw fail("\(who) thread \(t.tid): syscall state needs 6 arguments, has \(sc.args.count)")
                }
                for sig in t.pendingSignals where !(1...64).contains(sig.signo) || sig.info.count != 128 {
                    throw fail("\(who) thread \(t.tid): bad pending signal \(sig.signo)")
                }
            }
            if let t = p.controllingTerminal {
                guard t.index >= 0, p.sid == p.pid, t.foregroundGroup > 0 else {
                    throw fail("\(who): controlling terminal \(t.index) with foreground group \(t.foregroundGroup) on a process that does not lead its session")
                }
                let ptys = Set(meta.processes.flatMap(\.files).compactMap { $0.pty?.pair != nil ? $0.pty?.index : nil })
                guard ptys.contains(t.index) else { throw fail("\(who): controlling terminal \(t.index) is not a pty of the image") }
            }
            var fds = Set<Int32>()
            for f in p.files {
                guard f.fd >= 0, f.fd < fdLimit, fds.insert(f.fd).inserted else { throw fail("\(who): fd \(f.fd) invalid or repeated") }
                if f.kind == .pipe, f.pipeID == 0 || f.pipeID & FileDescriptorImage.fifoIDBit != 0 {
                    throw fail("\(who): pipe fd \(f.fd) without a pipe id, or with a FIFO's (\(f.pipeID))")
                }
                if f.kind == .fifo, f.pipeID != 0, f.pipeID & FileDescriptorImage.fifoIDBit == 0 {
                    throw fail("\(who): FIFO fd \(f.fd) has a pipe's id (\(f.pipeID)), not a FIFO's")
                }
                if f.kind != .pipe, f.kind != .fifo, f.pipeID != 0 { throw fail("\(who): \(f.kind.rawValue) fd \(f.fd) has a pipe id") }
                if let id = f.contentsID, f.kind != .regular || !contentsIDs.contains(id) {
                    throw fail("\(who): fd \(f.fd) names file contents \(id), which the image does not hold for a \(f.kind.rawValue) fd")
                }
                // A socket fd without its record is refused by the restore (one line).
                if f.shellTerminal == true, f.kind != .characterDevice || f.pty != nil {
                    throw fail("\(who): fd \(f.fd) is marked as a shell's terminal but is not a terminal device")
                }
                if let pty = f.pty {
                    if f.kind != .characterDevice || pty.index < 0 || (pty.pair != nil && !pty.master) {
                        throw fail("\(who): fd \(f.fd) names pty \(pty.index) but is not a pty end of that kind")
                    }
                    if let why = pty.pair?.problem() { throw fail("\(who): pty fd \(f.fd): \(why)") }
                }
                if let why = f.unixSocket?.problem() { throw fail("\(who): socket fd \(f.fd): \(why)") }
                if let why = f.netlink?.problem() { throw fail("\(who): socket fd \(f.fd): \(why)") }
                for lock in f.locks ?? [] where lock.kind == .lease && (f.kind != .regular || lock.start != 0 || lock.end != nil) {
                    throw fail("\(who): fd \(f.fd) holds a lease but is a \(f.kind.rawValue) fd or the lease has a range")
                }
                if let pid = f.procPid, !(f.kind == .regular || f.kind == .directory) || f.contentsID != nil
                    || !(f.path == "/proc/\(pid)" || f.path.hasPrefix("/proc/\(pid)/")) {
                    throw fail("\(who): fd \(f.fd) is a /proc file of process \(pid) but is a \(f.kind.rawValue) fd at \(f.path)")
                }
                if let size = f.pipeSize, !(1...Int(Int32.max)).contains(size) { throw fail("\(who): pipe fd \(f.fd) has a size of \(size) bytes") }
                // Watched fds become epoll_ctl arguments: a negative one is refused here.
                for w in f.epollWatches ?? [] where w.fd < 0 {
                    throw fail("\(who): epoll fd \(f.fd) watches invalid fd \(w.fd)")
                }
            }
            for f in p.files {
                if let twin = f.sharedWith, twin == f.fd || !fds.contains(twin) {
                    throw fail("\(who): fd \(f.fd) shares the open file of fd \(twin), which the process does not have")
                }
            }
            var timers = Set<Int32>()
            for t in p.timers {
                // ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF, each at most once.
                guard (0...2).contains(t.which), timers.insert(t.which).inserted else {
                    throw fail("\(who): interval timer \(t.which) invalid or repeated")
                }
            }
            try validatePosixTimers(p.posixTimers ?? [], threads: Set(p.threads.map(\.tid)), who: who, fail: fail)
            for a in p.signalActions where !(1...64).contains(a.signo) {
                throw fail("\(who): signal action for invalid signal \(a.signo)")
            }
        }
        for p in meta.processes.dropFirst() where !pids.contains(p.ppid) {
            // Children must hang below a process of the image (the first is the root).
            throw fail("process \(p.pid): parent \(p.ppid) is not in the image")
        }
    }

    /// POSIX timers: ids unique and ≥ 0, a known clock and notify kind, a
    /// signal number the kernel takes, a SIGEV_THREAD_ID target among the
    /// process's threads, times below 2^63 ns.
    static func validatePosixTimers(_ timers: [PosixTimer], threads: Set<Int32>, who: String,
                                    fail: (String) -> ImageError) throws {
        guard timers.count <= maxPosixTimers else { throw fail("\(who): \(timers.count) POSIX timers exceed the limit of \(maxPosixTimers)") }
        var ids = Set<Int32>()
        for t in timers {
            let what = "\(who): POSIX timer \(t.id)"
            guard t.id >= 0, ids.insert(t.id).inserted else { throw fail("\(what): id invalid or repeated") }
            guard posixTimerClocks.contains(t.clock) else { throw fail("\(what): clock \(t.clock) is not one ferry restores") }
            guard [0, 1, 2, 4].contains(t.notify) else { throw fail("\(what): notify kind \(t.notify) invalid") }
            guard t.notify == 1 ? (0...64).contains(t.signal) : (1...64).contains(t.signal) else { throw fail("\(what): signal \(t.signal) invalid") }
            guard (t.notify == 4) == (t.thread != nil), t.thread.map(threads.contains) ?? true else {
                throw fail("\(what): target thread \(t.thread.map(String.init) ?? "none") does not match its notify kind \(t.notify) or is not a thread of the process")
            }
            guard t.valueNs <= UInt64(Int64.max), t.intervalNs <= UInt64(Int64.max) else { throw fail("\(what): time out of range") }
        }
    }

    /// Every path of `p` a restore opens, executes or enters: absolute and normalized (`ImagePath`).
    static func validatePaths(_ p: ProcessImage, who: String, file: String) throws {
        if let exe = p.exe { try ImagePath.check(exe.path, as: .absolute, field: "\(who): executable", in: file) }
        try ImagePath.check(p.cwd, as: .absolute, field: "\(who): working directory", in: file)
        try ImagePath.check(p.root, as: .absolute, field: "\(who): root directory", in: file)
        if let sig = p.stopSignal, ![19, 20, 21, 22].contains(sig) {
            throw ImageError(file: file, "\(who): stop signal \(sig) is not SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU")
        }
        if let d = p.cwdDeleted {
            if p.cwd == "/" { throw ImageError(file: file, "\(who): the root directory cannot be a deleted working directory") }
            if d.mode & ~0o7777 != 0 { throw ImageError(file: file, "\(who): the deleted working directory's mode \(String(d.mode, radix: 8)) has bits beyond 07777") }
        }
        for m in p.mappings {
            if let f = m.file { try ImagePath.check(f.path, as: .absolute, field: "\(who): file of mapping 0x\(String(m.start, radix: 16))", in: file) }
        }
        for f in p.files {
            switch f.kind {
            case .regular where f.contentsID != nil:
                break // re-created from the image's contents, not opened by path
            case .regular:
                try ImagePath.check(f.file?.path ?? f.path, as: .absolute, field: "\(who): path of fd \(f.fd)", in: file)
            case .directory, .characterDevice, .fifo:
                try ImagePath.check(f.path, as: .absolute, field: "\(who): path of fd \(f.fd)", in: file)
            default: break
            }
        }
    }

    /// Hierarchies are named by controllers (no '/', ':' or NUL) and listed
    /// once; a cgroup path becomes a directory under a mount point, so it
    /// must be absolute and normalized.
    static func validateCgroups(_ list: [CgroupMembership], who: String, fail: (String) -> ImageError) throws {
        guard list.count <= 64 else { throw fail("\(who): \(list.count) cgroup hierarchies, over the limit of 64") }
        var seen = Set<String>()
        for m in list {
            let name = ImagePath.quoted(m.controllers)
            guard m.controllers.utf8.count <= 255, !m.controllers.contains(where: { $0 == "/" || $0 == ":" || $0 == "\0" || $0 == "\n" }) else {
                throw fail("\(who): cgroup hierarchy \(name) is not a controller list")
            }
            guard seen.insert(m.controllers).inserted else { throw fail("\(who): cgroup hierarchy \(name) is listed twice") }
            if let why = ImagePath.problem(m.path, as: .absolute) {
                throw fail("\(who): cgroup path \(ImagePath.quoted(m.path)) of hierarchy \(name) is refused: \(why)")
            }
        }
    }

    /// Inherited pages: at most one range per page of the mappings' limit,
    /// page-aligned, in order, disjoint, each inside one private mapping.
    static func validateInherited(_ ranges: [PageRange], maps: [Mapping], who: String, fail: (String) -> ImageError) throws {
        guard ranges.count <= maxMappings * 16 else { throw fail("\(who): \(ranges.count) inherited page ranges, over the limit of \(maxMappings * 16)") }
        let page = UInt64(ImageFormat.pageSize)
        var previousEnd: UInt64 = 0
        var m = 0
        for r in ranges {
            let range = "0x\(String(r.start, radix: 16))-0x\(String(r.end, radix: 16))"
            guard r.start % page == 0, r.end % page == 0, r.start < r.end, r.start >= previousEnd else {
                throw fail("\(who): inherited pages \(range) are not page-aligned, empty, or out of order")
            }
            previousEnd = r.end
            while m < maps.count && maps[m].end <= r.start { m += 1 }
            guard m < maps.count, maps[m].start <= r.start, r.end <= maps[m].end,
                  maps[m].kind.isPrivateAnonymous || maps[m].kind == .privateFile, maps[m].sharedObject == nil else {
                throw fail("\(who): inherited pages \(range) do not lie inside one private mapping")
            }
        }
    }

    static func validateMappings(_ maps: [Mapping], who: String, fail: (String) -> ImageError) throws {
        let page = UInt64(ImageFormat.pageSize)
        var previousEnd: UInt64 = 0
        for m in maps {
            let range = "0x\(String(m.start, radix: 16))-0x\(String(m.end, radix: 16))"
            guard m.start % page == 0, m.end % page == 0 else { throw fail("\(who): mapping \(range) is not page-aligned") }
            guard m.start < m.end else { throw fail("\(who): mapping \(range) is empty or reversed") }
            // The vsyscall page lives above the user limit and is never restored.
            guard m.end <= userAddressLimit || m.kind == .vsyscall else {
                throw fail("\(who): mapping \(range) lies outside the user address space")
            }
            guard m.start >= previousEnd else { throw fail("\(who): mapping \(range) overlaps the one before or is out of order") }
            previousEnd = m.end
            switch m.kind {
            case .privateFile, .sharedFile:
                guard m.file != nil || m.flags.contains(.deletedFile) else { throw fail("\(who): file mapping \(range) names no file") }
            case .vdso, .vvar:
                guard m.end - m.start <= maxVDSOMappingSize else {
                    throw fail("\(who): \(m.kind.rawValue) mapping \(range) is larger than any kernel's (\(maxVDSOMappingSize >> 10) KiB at most)")
                }
            default: break
            }
            if let s = m.sysv {
                // shmget takes at most 2^46 bytes here (SharedMemoryPlan's bound) and 9 permission bits.
                guard m.kind == .sharedAnonymous, s.id >= 0, s.size > 0, s.size <= 1 << 46, s.mode <= 0o777, m.fileOffset % page == 0 else {
                    throw fail("\(who): System V mapping \(range) (shmid \(s.id), \(s.size) bytes, mode 0\(String(s.mode, radix: 8))) is out of bounds")
                }
            }
        }
    }
}
