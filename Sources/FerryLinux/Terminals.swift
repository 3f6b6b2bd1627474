#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

/// Pseudo-terminals whose master the tree holds, and the controlling
/// terminal of a session led inside the tree. At checkpoint the master's
/// primary fd records the pair: termios (TCGETS2), window size, lock,
/// packet and exclusive modes, the slave node's owner and mode, and the
/// bytes queued both ways (read, then written back at once so the source
/// keeps them). On restore the root opens /dev/ptmx until the pty gets its
/// old index, keeps the master in the pool, and ferry puts the state back
/// through its own copy of the master and a slave handle; slaves are then
/// reopened by path. Lock and exclusive mode are set once every process
/// has its fds (`Handles.finish`). Decisions are PtyPlan's.
enum Terminals {
    static let TCGETS2: UInt = 0x802C_542A, TCSETS2: UInt = 0x402C_542B
    static let TIOCGWINSZ: UInt = 0x5413, TIOCSWINSZ: UInt = 0x5414, FIONREAD: UInt = 0x541B
    static let TIOCPKT: UInt = 0x5420, TIOCGPKT: UInt = 0x8004_5438
    static let TIOCGPTN: UInt = 0x8004_5430, TIOCSPTLCK: UInt = 0x4004_5431, TIOCGPTLCK: UInt = 0x8004_5439
    static let TIOCSTI: UInt = 0x5412
    static let TIOCEXCL: UInt = 0x540C, TIOCGEXCL: UInt = 0x8004_5440
    static let TIOCSCTTY: UInt64 = 0x540E, TIOCSPGRP: UInt64 = 0x5410

    static func ioctl(_ fd: Int32, _ request: UInt, _ arg: UnsafeMutableRawPointer?, _ what: String, _ context: String) throws {
        let r = ferry_ioctl(fd, request, UInt64(UInt(bitPattern: arg)))
        if r < 0 { throw SystemError(what, errno: Int32(-r), context) }
    }

    static func getInt(_ fd: Int32, _ request: UInt, _ what: String, _ context: String) throws -> Int32 {
        var v: Int32 = 0
        try ioctl(fd, request, &v, what, context)
        return v
    }

    static func setInt(_ fd: Int32, _ request: UInt, _ value: Int32, _ what: String, _ context: String) throws {
        var v = value
        try ioctl(fd, request, &v, what, context)
    }

    static func termios(_ fd: Int32, _ context: String) throws -> Termios {
        var raw = [UInt8](repeating: 0, count: 44)
        try raw.withUnsafeMutableBytes { try ioctl(fd, TCGETS2, $0.baseAddress, "ioctl(TCGETS2)", context) }
        func u32(_ o: Int) -> UInt32 { raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt32.self) } }
        return Termios(iflag: u32(0), oflag: u32(4), cflag: u32(8), lflag: u32(12), line: raw[16], cc: Array(raw[17..<36]),
                       ispeed: u32(36), ospeed: u32(40))
    }

    static func setTermios(_ fd: Int32, _ t: Termios, _ context: String) throws {
        var raw = [UInt8](repeating: 0, count: 44)
        for (o, v) in [(0, t.iflag), (4, t.oflag), (8, t.cflag), (12, t.lflag), (36, t.ispeed), (40, t.ospeed)] {
            withUnsafeBytes(of: v.littleEndian) { raw.replaceSubrange(o..<o + 4, with: $0) }
        }
        raw[16] = t.line
        raw.replaceSubrange(17..<36, with: t.cc.prefix(Termios.controlCount))
        try raw.withUnsafeMutableBytes { try ioctl(fd, TCSETS2, $0.baseAddress, "ioctl(TCSETS2)", context) }
    }

    /// Reads what `fd` (non-blocking) has, up to `limit` bytes.
    static func drain(_ fd: Int32, limit: Int, _ context: String) throws -> [UInt8] {
        var out: [UInt8] = [], buf = [UInt8](repeating: 0, count: 4096)
        while out.count <= limit {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 { out += buf[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            if n == 0 || errno == EAGAIN || errno == EIO { break }
            throw SystemError("read", errno: errno, context)
        }
        return out
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ context: String) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SystemError("write(\(bytes.count - off) bytes)", errno: n < 0 ? errno : EAGAIN, context) }
            off += n
        }
    }

    /// Opens /dev/pts/`index` in ferry (no controlling terminal, non-blocking).
    static func openSlave(_ index: Int32, _ context: String) throws -> Int32 {
        let fd = open("/dev/pts/\(index)", O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(/dev/pts/\(index))", errno: errno, context) }
        return fd
    }

    // MARK: dump

    /// The pty end of a character device fd, nil for other devices. A
    /// master records the pair's state when `readState` (the tree is frozen).
    static func dump(_ d: DescriptorFacts, st: stat, readState: Bool) throws -> PtyEnd? {
        let dev = UInt64(st.st_rdev)
        let major = UInt32(truncatingIfNeeded: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff))
        let minor = UInt32(truncatingIfNeeded: (dev & 0xff) | ((dev >> 12) & ~0xff))
        switch PtyPlan.end(major: major, minor: minor) {
        case nil: return nil
        case .slave(let n):
            guard d.path == "/dev/pts/\(n)" else {
                throw FerryError("\(d.who) is the slave of a pty of another devpts instance; ferry carries ptys of /dev/pts only: close it before the checkpoint")
            }
            return PtyEnd(index: n, master: false)
        case .master:
            guard d.path == "/dev/ptmx" || d.path == "/dev/pts/ptmx" else {
                throw FerryError("\(d.who) is a pty master of another devpts instance; ferry carries ptys of /dev/pts only: close it before the checkpoint")
            }
            return try DescriptorChecks.with(d) { m in
                let index = try getInt(m, TIOCGPTN, "ioctl(TIOCGPTN)", "reading the pty of fd \(d.fd) of \(d.pid)")
                return PtyEnd(index: index, master: true, pair: readState ? try pair(d, master: m, index: index) : nil)
            }
        }
    }

    /// The state of pty `index` through ferry's copy `m` of its master. The
    /// queued bytes are read and written back at once; a queue that cannot
    /// be put back as it was is refused (after it is written back).
    static func pair(_ d: DescriptorFacts, master m: Int32, index: Int32) throws -> PtyState {
        let ctx = "reading pty \(index) of \(d.pid)"
        let t = try termios(m, ctx)
        var ws = [UInt16](repeating: 0, count: 4)
        try ws.withUnsafeMutableBytes { try ioctl(m, TIOCGWINSZ, $0.baseAddress, "ioctl(TIOCGWINSZ)", ctx) }
        let locked = try getInt(m, TIOCGPTLCK, "ioctl(TIOCGPTLCK)", ctx) != 0
        let packet = try getInt(m, TIOCGPKT, "ioctl(TIOCGPKT)", ctx) != 0
        let outCount = Int(try getInt(m, FIONREAD, "ioctl(FIONREAD) on the master", ctx))
        if let why = PtyPlan.queuedOutput(who: d.who, index: index, packet: packet, count: outCount)
            ?? PtyPlan.oversized(who: d.who, index: index, count: outCount) { throw FerryError(why) }
        var node = stat()
        guard stat("/dev/pts/\(index)", &node) == 0 else { throw SystemError("stat(/dev/pts/\(index))", errno: errno, ctx) }
        if locked { try setInt(m, TIOCSPTLCK, 0, "ioctl(TIOCSPTLCK, 0)", ctx) }
        defer { if locked { _ = try? setInt(m, TIOCSPTLCK, 1, "ioctl(TIOCSPTLCK, 1)", ctx) } }
        let s = try openSlave(index, ctx)
        defer { close(s) }
        let exclusive = try getInt(s, TIOCGEXCL, "ioctl(TIOCGEXCL)", ctx) != 0
        // Written on the slave, unread on the master (the master's side reads raw).
        let flags = fcntl(m, F_GETFL)
        _ = fcntl(m, F_SETFL, flags | O_NONBLOCK)
        let toMaster = try drain(m, limit: PtyState.maxQueued, ctx)
        _ = fcntl(m, F_SETFL, flags)
        // Written on the master, unread on the slave: all of it reads only without canonical mode.
        var raw = t
        raw.lflag &= ~PtyPlan.ICANON
        try setTermios(s, raw, ctx)
        let toSlave = try drain(s, limit: PtyState.maxQueued, ctx)
        try setTermios(s, t, ctx)
        try putBack(master: m, slave: s, termios: t, toSlave: toSlave, toMaster: toMaster, ctx)
        if let why = PtyPlan.oversized(who: d.who, index: index, count: toSlave.count)
            ?? PtyPlan.queuedInput(who: d.who, index: index, termios: t, bytes: toSlave) { throw FerryError(why) }
        return PtyState(termios: t, rows: ws[0], columns: ws[1], xPixels: ws[2], yPixels: ws[3], locked: locked, packet: packet,
                        exclusive: exclusive, slaveUID: node.st_uid, slaveGID: node.st_gid, slaveMode: UInt32(node.st_mode) & 0o7777,
                        toSlave: toSlave, toMaster: toMaster)
    }

    /// Writes the queued bytes of a pty again (no echo, no output
    /// processing: `PtyPlan`'s windows) and sets `termios` back. The
    /// slave's input goes in with TIOCSTI (CAP_SYS_ADMIN), which hands each
    /// byte to the line discipline at once: bytes written on the master
    /// would be processed later, perhaps under the restored termios.
    static func putBack(master m: Int32, slave s: Int32, termios t: Termios, toSlave: [UInt8], toMaster: [UInt8], _ ctx: String) throws {
        if !toSlave.isEmpty {
            try setTermios(m, PtyPlan.inputWindow(t), ctx)
            for var b in toSlave { try ioctl(s, TIOCSTI, &b, "ioctl(TIOCSTI)", "\(ctx): writing its unread input back") }
        }
        if !toMaster.isEmpty {
            try setTermios(s, PtyPlan.outputWindow(t), ctx)
            try writeAll(s, toMaster, "\(ctx): writing its unread output back")
        }
        if !toSlave.isEmpty || !toMaster.isEmpty { try setTermios(m, t, ctx) }
    }

    /// The indices of the ptys whose master a process of `processes` holds.
    static func masters(_ processes: [ProcessImage]) -> Set<Int32> {
        Set(processes.flatMap(\.files).compactMap { $0.pty?.master == true ? $0.pty?.index : nil })
    }

    /// Records the controlling terminal of each session leader of the tree
    /// whose terminal is a pty of the tree; refuses one that is not (the
    /// decision is Uncarried's). A session led from outside is a shell job
    /// (`shellJob`): the fds on its terminal are marked to be restored on
    /// the restorer's terminal (refused when `migrating`).
    static func controllingTerminals(_ processes: inout [ProcessImage], shellJob: Bool = false, migrating: Bool = false) throws {
        let tree = Set(processes.map(\.pid)), ptys = masters(processes), groups = Set(processes.map(\.pgid))
        for i in processes.indices {
            let p = processes[i]
            let stat = try ProcFS.stat(p.pid)
            let tty = stat.signedField(7)
            if shellJob, tty != 0, !tree.contains(p.sid) {
                try markShellTerminal(&processes[i], ttyNr: tty, migrating: migrating)
            }
            if let why = Uncarried.controllingTerminal(pid: p.pid, comm: p.comm, ttyNr: tty, sessionInTree: tree.contains(p.sid), ptysInTree: ptys) {
                throw FerryError(why)
            }
            guard tty != 0, tree.contains(p.sid), p.sid == p.pid, case .slave(let n)? = PtyPlan.end(major: UInt32((tty >> 8) & 0xfff), minor: UInt32((tty & 0xff) | ((tty >> 12) & 0xfff00))) else { continue }
            let fg = Int32(truncatingIfNeeded: stat.signedField(8))
            if let why = Uncarried.foregroundGroup(pid: p.pid, comm: p.comm, index: n, group: fg, groupsInTree: groups) { throw FerryError(why) }
            processes[i].controllingTerminal = ControllingTerminal(index: n, foregroundGroup: fg)
        }
    }

    /// Marks the fds of `p` on its controlling terminal `ttyNr` (a shell
    /// job's, outside the tree) as `shellTerminal`.
    static func markShellTerminal(_ p: inout ProcessImage, ttyNr: Int64, migrating: Bool) throws {
        for i in p.files.indices where p.files[i].kind == .characterDevice && p.files[i].pty?.master != true {
            var st = stat()
            guard stat("/proc/\(p.pid)/fd/\(p.files[i].fd)", &st) == 0 else { continue }
            let dev = UInt64(st.st_rdev)
            let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff), minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
            guard UInt64(ttyNr) == (major << 8) | (minor & 0xff) | ((minor & ~0xff) << 12) else { continue }
            if let why = Uncarried.shellTerminal(pid: p.pid, comm: p.comm, fd: p.files[i].fd, path: p.files[i].path, migrating: migrating) {
                throw FerryError(why)
            }
            p.files[i].shellTerminal = true
            p.files[i].pty = nil
        }
    }

    /// The terminal a restore attaches a shell job's terminal fds to: its own standard input's.
    static func attachShellTerminal(_ meta: inout ImageMetadata) throws {
        guard meta.processes.contains(where: { $0.files.contains { $0.shellTerminal == true } }) else { return }
        guard isatty(0) == 1, let name = ttyname(0) else {
            throw FerryError(Uncarried.noTerminalForShellJob)
        }
        let path = String(cString: name)
        for p in meta.processes.indices {
            for f in meta.processes[p].files.indices where meta.processes[p].files[f].shellTerminal == true {
                meta.processes[p].files[f].path = path
            }
        }
    }

    // MARK: restore

    /// ferry's own handles on the restored ptys: the master (a copy of the
    /// root's) and a slave, kept until every process has its fds; then the
    /// lock and exclusive mode are set and they are closed.
    final class Handles {
        var open: [(index: Int32, master: Int32, slave: Int32, state: PtyState)] = []
        func finish() throws {
            for h in open {
                let ctx = "finishing pty \(h.index)"
                if h.state.exclusive { try ioctl(h.slave, TIOCEXCL, nil, "ioctl(TIOCEXCL)", ctx) }
                if h.state.locked { try setInt(h.master, TIOCSPTLCK, 1, "ioctl(TIOCSPTLCK, 1)", ctx) }
            }
            closeAll()
        }
        func closeAll() {
            for h in open { close(h.master); close(h.slave) }
            open = []
        }
        deinit { closeAll() }
    }

    /// The pairs of the image (from each master's primary fd), by index.
    static func pairs(_ processes: [ProcessImage]) -> [(Int32, PtyState)] {
        var seen = Set<Int32>(), out: [(Int32, PtyState)] = []
        for f in processes.flatMap(\.files) {
            if let e = f.pty, let s = e.pair, seen.insert(e.index).inserted { out.append((e.index, s)) }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// Checked before anything is created: each pty's index is free here.
    static func preflight(_ processes: [ProcessImage]) throws {
        for (index, _) in pairs(processes) where access("/dev/pts/\(index)", F_OK) == 0 {
            throw FerryError(PtyPlan.indexTaken(index, got: nil))
        }
    }

    /// Creates every pty of the image in the root (at pool slots from
    /// `reserve`) with its state; returns the slots by index.
    static func create(_ processes: [ProcessImage], handles: Handles, reserve: (Int32) throws -> Int32,
                       injector: Injector, scratch: ScratchArea) throws -> [Int32: Int32] {
        var slots: [Int32: Int32] = [:]
        let pid = injector.memory.pid
        for (index, state) in pairs(processes) {
            let ctx = "re-creating pty \(index) in \(pid)"
            // A new pty takes the lowest free index: the lower free ones are held until it has its own.
            var extras: [Int64] = []
            var master: (remote: Int64, local: Int32)?
            while master == nil {
                guard extras.count <= Int(index) else { throw FerryError(PtyPlan.indexTaken(index, got: nil)) }
                let path = try ProcessMisc.put("/dev/ptmx", injector: injector, scratch: scratch)
                let fd = try injector.call(SYS.open, [path, UInt64(O_RDWR | O_NOCTTY), 0], "open(/dev/ptmx) for pty \(index)")
                let local = ferry_fd_of_process(pid, Int32(fd))
                guard local >= 0 else { throw SystemError("pidfd_getfd(\(pid), \(fd))", errno: -local, ctx) }
                let got = try getInt(local, TIOCGPTN, "ioctl(TIOCGPTN)", ctx)
                if got == index { master = (fd, local); break }
                close(local)
                extras.append(fd)
                if got > index { 
                    for e in extras { try injector.call(SYS.close, [UInt64(e)], "close") }
                    throw FerryError(PtyPlan.indexTaken(index, got: got))
                }
            }
            for e in extras { try injector.call(SYS.close, [UInt64(e)], "close(a pty opened to reach index \(index))") }
            guard let (remote, m) = master else { continue }
            let slot = try reserve(1)
            try injector.call(SYS.dup2, [UInt64(remote), UInt64(slot)], "dup2")
            try injector.call(SYS.close, [UInt64(remote)], "close")
            try setInt(m, TIOCSPTLCK, 0, "ioctl(TIOCSPTLCK, 0)", ctx)
            let s: Int32
            do { s = try openSlave(index, ctx) } catch { close(m); throw error }
            handles.open.append((index, m, s, state))
            guard chown("/dev/pts/\(index)", state.slaveUID, state.slaveGID) == 0 else { throw SystemError("chown(/dev/pts/\(index))", errno: errno, ctx) }
            guard chmod("/dev/pts/\(index)", mode_t(state.slaveMode)) == 0 else { throw SystemError("chmod(/dev/pts/\(index))", errno: errno, ctx) }
            try setTermios(m, state.termios, ctx)
            try putBack(master: m, slave: s, termios: state.termios, toSlave: state.toSlave.value, toMaster: state.toMaster.value, ctx)
            var ws = [state.rows, state.columns, state.xPixels, state.yPixels]
            try ws.withUnsafeMutableBytes { try ioctl(m, TIOCSWINSZ, $0.baseAddress, "ioctl(TIOCSWINSZ)", ctx) }
            if state.packet { try setInt(m, TIOCPKT, 1, "ioctl(TIOCPKT, 1)", ctx) }
            slots[index] = slot
        }
        return slots
    }

    /// Makes pty `t.index` the controlling terminal of the session `injector`'s
    /// process leads (it has no other), with `foreground` (its restored id)
    /// as foreground group.
    static func restoreControllingTerminal(_ t: ControllingTerminal, foreground: Int32, injector: Injector, scratch: ScratchArea) throws {
        let path = try ProcessMisc.put("/dev/pts/\(t.index)", injector: injector, scratch: scratch)
        let fd = try injector.call(SYS.open, [path, UInt64(O_RDWR | O_NOCTTY), 0], "open(/dev/pts/\(t.index)) for the controlling terminal")
        try injector.call(SYS.ioctl, [UInt64(fd), TIOCSCTTY, 0], "ioctl(TIOCSCTTY) on pty \(t.index)")
        try injector.memory.write(scratch.data, withUnsafeBytes(of: foreground.littleEndian, Array.init))
        try injector.call(SYS.ioctl, [UInt64(fd), TIOCSPGRP, scratch.data], "ioctl(TIOCSPGRP, \(foreground)) on pty \(t.index)")
        try injector.call(SYS.close, [UInt64(fd)], "close")
    }
}
#endif
