#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

/// The TCP repair guard: a process of its own (`ferry __repair-guard`,
/// its own session) that holds a copy of every established connection
/// ferry puts into TCP_REPAIR mode, handed over before repair goes on. If
/// ferry dies without telling it the outcome, the guard takes the sockets
/// out of repair mode (`RepairGuardPlan`), so the process ferry worked on
/// keeps working connections. This type is ferry's end of the channel.
final class RepairGuard {
    let channel: Int32
    let pid: Int32
    /// A robust mutex this thread holds while the guard is needed: the
    /// guard waits for it, and the kernel hands it over the moment ferry
    /// dies, earlier than the end of the channel (see ferry_guard_lock_new).
    let lock: UnsafeMutableRawPointer

    /// Starts a guard; its channel is a SOCK_SEQPACKET socketpair.
    static func start() throws -> RepairGuard {
        var pair: [Int32] = [-1, -1]
        let ctx = "starting the TCP repair guard"
        try checkLibc(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair), "socketpair(SOCK_SEQPACKET)", ctx)
        defer { close(pair[1]) }
        var lockFD: Int32 = -1
        guard let lock = ferry_guard_lock_new(&lockFD) else {
            close(pair[0])
            throw SystemError("memfd_create + pthread_mutex_lock", errno: errno, ctx)
        }
        defer { close(lockFD) }
        let hold = InetSocket.TCPRepair.holdSeconds > 0 ? [InetSocket.TCPRepair.holdName] : []
        let pid = withCStrings(["ferry", "__repair-guard", "\(getpid())"] + hold) { argv in
            Int32(ferry_spawn_guard("/proc/self/exe", argv, pair[1], lockFD))
        }
        if pid < 0 {
            close(pair[0])
            ferry_guard_lock_release(lock)
            throw SystemError("posix_spawn(/proc/self/exe __repair-guard)", errno: -pid, ctx)
        }
        let g = RepairGuard(channel: pair[0], pid: pid, lock: lock)
        var pf = pollfd(fd: g.channel, events: Int16(POLLIN), revents: 0)
        var byte: UInt8 = 0
        let waited = poll(&pf, 1, RepairGuardPlan.readyTimeoutMilliseconds)
        guard waited == 1, recv(g.channel, &byte, 1, Int32(MSG_DONTWAIT)) == 1, [byte] == RepairGuardPlan.ready else {
            kill(pid, SIGKILL)
            close(g.channel)
            ferry_guard_lock_release(lock)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            throw FerryError("\(ctx): the guard (pid \(pid)) did not report ready within \(RepairGuardPlan.readyTimeoutMilliseconds) ms")
        }
        return g
    }

    private init(channel: Int32, pid: Int32, lock: UnsafeMutableRawPointer) { self.channel = channel; self.pid = pid; self.lock = lock }

    /// Hands over socket `copy` of process `owner` (before it goes into repair mode).
    func hand(_ copy: Int32, reuseAddr: Int32, owner: Int32, _ ctx: String) throws {
        try withPidfd(owner, ctx) { try send(.socket(reuseAddr: reuseAddr == 0 ? 0 : 1), fds: [copy, $0], ctx) }
    }

    /// Tells the guard that process `pid` is about to be sent ferry's SIGSTOP (`RepairStop`).
    func hold(_ pid: Int32, _ ctx: String) throws {
        try withPidfd(pid, ctx) { try send(.hold(pid: pid), fds: [$0], ctx) }
    }

    private func withPidfd(_ pid: Int32, _ ctx: String, _ body: (Int32) throws -> Void) throws {
        let r = ferry_syscall6(SYS.pidfdOpen, UInt64(pid), 0, 0, 0, 0, 0)
        guard r >= 0 else { throw SystemError("pidfd_open(\(pid))", errno: Int32(-r), ctx) }
        defer { close(Int32(r)) }
        try body(Int32(r))
    }

    func send(_ m: RepairGuardPlan.Message, fds: [Int32] = [], _ ctx: String) throws {
        let bytes = RepairGuardPlan.encode(m)
        let r = bytes.withUnsafeBytes { b in fds.withUnsafeBufferPointer { ferry_send_fds(channel, b.baseAddress, b.count, $0.baseAddress, Int32(fds.count)) } }
        try check(r, "sendmsg to the TCP repair guard (pid \(pid))", ctx)
    }

    /// Tells the guard the outcome is settled and lets it go; it exits by
    /// itself. Not `settled`: no "done", so it does what it does when ferry dies.
    func finish(settled: Bool = true) {
        if settled { try? send(.done, "finishing with the TCP repair guard") }
        ferry_guard_lock_release(lock)
        close(channel)
        // Collected if it has exited already; otherwise init or a subreaper collects it after ferry.
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }
}

/// The guard process (`ferry __repair-guard FERRY_PID [HOLD_NAME]`, channel
/// at fd 3, lock at fd 4; FERRY_PID only names its ferry in `ps`). With
/// HOLD_NAME it listens at that abstract Unix socket name from the start, so
/// that once ferry has killed the processes and asked for a hold (`keep`)
/// it keeps the connections until a restore here asks (`TCPHold`).
public enum RepairGuardProcess {
    static let pidfdSendSignal = 424
    struct Held { var socket: Int32; var owner: Int32; var reuseAddr: Int32 }

    public static func run(ferryPid: Int32, holdName: String? = nil) -> Never {
        for s in [SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU] { signal(s, SIG_IGN) }
        let channel: Int32 = 3, lock: Int32 = 4
        // Without CAP_SYS_NICE it stays at normal priority and ferry's death may let the process run first.
        var prio = sched_param(sched_priority: RepairGuardPlan.schedPriority)
        _ = sched_setscheduler(0, SCHED_FIFO, &prio)
        // Two descriptors per connection and one per held process: a descriptor the guard
        // could not take would be dropped by the kernel (MSG_CTRUNC), so its soft limit goes up to the hard one.
        var files: [UInt64] = [0, 0]
        if ferry_prlimit(0, 7 /* RLIMIT_NOFILE */, nil, &files) == 0 && files[0] < files[1] {
            files[0] = files[1]
            _ = ferry_prlimit(0, 7, files, nil)
        }
        // Bound before "ready": a restore started as soon as the checkpoint ends finds it.
        let listener = holdName.map { SourceHost.validTCPHold($0) ? ferry_hold_listen($0) : -EINVAL } ?? -1
        // Its ferry, waited for before a hold is let go (`waitForExit`): it may still hold a copy of a socket.
        let ferry = listener >= 0 ? Int32(truncatingIfNeeded: ferry_syscall6(SYS.pidfdOpen, UInt64(ferryPid), 0, 0, 0, 0, 0)) : -1
        _ = RepairGuardPlan.ready.withUnsafeBytes { send(channel, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // Returns when ferry lets the lock go (after "done") or dies; everything it sent is
        // in the channel by then. Without the lock, the end of the channel tells the same, later.
        let waited = ferry_guard_lock_wait(lock)
        var held: [Held] = []
        var stops: [Int32: Int32] = [:]
        var heard = RepairGuardPlan.Heard.nothing
        var keepSeconds: Int32 = 0
        loop: while heard != .done {
            var buf = [UInt8](repeating: 0, count: 16)
            var got: [Int32] = [-1, -1, -1, -1]
            var nfds: Int32 = 0
            let r = buf.withUnsafeMutableBytes { b in
                ferry_recv_fds(channel, b.baseAddress, b.count, &got, Int32(got.count), &nfds, waited >= 0 ? 1 : 0)
            }
            if r <= 0 { break loop }
            let received = Array(got.prefix(Int(nfds)))
            do {
                let m = try RepairGuardPlan.decode(Array(buf.prefix(r)), descriptors: received.count)
                switch m {
                case .socket(let reuse): held.append(Held(socket: received[0], owner: received[1], reuseAddr: reuse))
                case .hold(let pid):
                    if let old = stops[pid] { close(old) }
                    stops[pid] = received[0]
                case .unhold(let pid):
                    if let old = stops[pid] { close(old) }
                    stops[pid] = nil
                case .keep(let seconds): keepSeconds = seconds
                default: break
                }
                heard = RepairGuardPlan.heard(after: heard, m)
            } catch {
                for fd in received { close(fd) }
                // stderr is /dev/null unless run by hand.
                let line = Array("ferry __repair-guard: \(error)\n".utf8)
                _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            }
        }
        if listener >= 0 && RepairGuardPlan.holds(heard, keepSeconds: keepSeconds, sockets: held.count) {
            for pidfd in stops.values { close(pidfd) }
            keep(held, listener: listener, seconds: keepSeconds, ferry: ferry)
        } else {
            settle(held, stops: stops, heard)
        }
        exit(0)
    }

    /// The hold: the processes are killed and every copy is the last
    /// reference to its connection, in repair mode with the drop-all filter
    /// on, so the connection stays in the kernel's tables and what the peer
    /// sends is dropped unacknowledged, without a reset. Until a process of
    /// root or of the guard's own user sends `releaseRequest` on the hold
    /// socket, or `seconds` pass; then every copy is closed in repair mode
    /// (nothing sent) and, on a request, `released` answered.
    static func keep(_ held: [Held], listener: Int32, seconds: Int32, ferry: Int32) {
        let deadline = Host.now() + Double(seconds)
        var asker: Int32 = -1
        while asker < 0 {
            let left = deadline - Host.now()
            if left <= 0 { break }
            var pf = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&pf, 1, Int32(min(left * 1000 + 1, 3_600_000))) == 1 else { continue }
            let c = accept(listener, nil, nil)
            guard c >= 0 else { continue }
            let uid = ferry_peer_uid(c)
            var byte: UInt8 = 0
            var cpf = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
            if (uid == 0 || uid == Int(geteuid())) && poll(&cpf, 1, 1000) == 1
                && recv(c, &byte, 1, Int32(MSG_DONTWAIT)) == 1 && [byte] == RepairGuardPlan.releaseRequest {
                asker = c
            } else {
                close(c)
            }
        }
        close(listener)
        if asker >= 0 { waitForExit(held.map(\.owner) + (ferry >= 0 ? [ferry] : [])) }
        for h in held {
            var on: Int32 = 1
            _ = setsockopt(h.socket, InetSocketPlan.solTCP, InetSocketPlan.tcpRepair, &on, 4)
            close(h.socket)
            close(h.owner)
        }
        if asker >= 0 {
            _ = RepairGuardPlan.released.withUnsafeBytes { send(asker, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(asker)
        }
    }

    /// Each socket as the plan says once the channel has ended; then, ferry
    /// having died, SIGCONT to the processes its SIGSTOP holds (only once
    /// every socket is out of repair mode: they run from there on).
    static func settle(_ held: [Held], stops: [Int32: Int32], _ heard: RepairGuardPlan.Heard) {
        let action = RepairGuardPlan.action(heard)
        if action != .leave {
            TestKill.guardDelay()
            for h in held {
                InetSocket.TCPRepair.takeOut(h.socket, reuseAddr: h.reuseAddr)
                InetSocket.NetworkLock.unlock(h.socket)
            }
            for pidfd in stops.values { _ = ferry_syscall6(pidfdSendSignal, UInt64(pidfd), UInt64(SIGCONT), 0, 0, 0, 0) }
        }
        for pidfd in stops.values { close(pidfd) }
        if action == .takeOutUnlessDying {
            var dying: [Int32: Bool] = [:]
            for h in held {
                if dying[h.owner] == nil { dying[h.owner] = isDying(pidfd: h.owner) }
                if dying[h.owner] == true {
                    var on: Int32 = 1
                    _ = setsockopt(h.socket, InetSocketPlan.solTCP, InetSocketPlan.tcpRepair, &on, 4)
                }
            }
        }
        for h in held {
            close(h.socket)
            close(h.owner)
        }
    }

    /// Waits (at most `RepairGuardPlan.ownersExitMilliseconds`) until every
    /// process of `pidfds` has exited: ferry sends its SIGKILL without
    /// waiting, and a dying process (or a ferry still running, as with a
    /// streamed checkpoint piped into the restore) that still holds a
    /// descriptor of it keeps the connection, and its 4-tuple, after the
    /// guard closes its copy.
    /// A pidfd polls readable once its process has exited, after its files
    /// are closed.
    static func waitForExit(_ pidfds: [Int32]) {
        var fds = Set(pidfds).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let deadline = Host.now() + Double(RepairGuardPlan.ownersExitMilliseconds) / 1000
        while !fds.isEmpty {
            let left = deadline - Host.now()
            if left <= 0 { return }
            _ = poll(&fds, nfds_t(fds.count), Int32(left * 1000) + 1)
            fds.removeAll { $0.revents != 0 }
        }
    }

    /// Whether the process of `pidfd` is being killed or is gone, looked at
    /// a few times: a thread that has just taken its SIGKILL shows neither
    /// the signal nor PF_EXITING for an instant.
    static func isDying(pidfd: Int32) -> Bool {
        let info = (try? ProcFS.text("/proc/self/fdinfo/\(pidfd)")) ?? ""
        guard let pid = ProcFS.parseStatus(info)["Pid"].flatMap({ Int32($0) }), pid > 0 else { return true }
        for look in 0..<RepairGuardPlan.dyingLooks {
            if look > 0 { usleep(1000) }
            let stat = try? ProcFS.stat(pid)
            let status = (try? ProcFS.status(pid)) ?? [:]
            if RepairGuardPlan.dying(state: stat?.state, flags: stat?.field(9) ?? 0, sigPnd: status["SigPnd"], shdPnd: status["ShdPnd"]) {
                return true
            }
        }
        return false
    }
}
#endif

#if os(Linux)
/// The restore side of the hold: asks the repair guard that holds an
/// image's connections on this host to let go of them.
public enum TCPHold {
    /// How long the guard holds the connections of a killed tree for a
    /// restore on this host (0: no hold; `ferry checkpoint --hold-seconds`).
    nonisolated(unsafe) public static var seconds: Int32 = 0
    /// The guard's hold socket name, one per ferry process (`SourceHost.tcpHold`).
    public static let name: String = {
        let hex = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return "ferry-tcp-hold-" + String(repeating: "0", count: 16 - hex.count) + hex
    }()

    /// Whether a guard held connections under `name` here and has let go of
    /// them; false when none listens (never here, timed out, released).
    @discardableResult
    public static func release(_ name: String) throws -> Bool {
        let ctx = "asking the repair guard \(name) to let go of the connections it holds"
        guard SourceHost.validTCPHold(name) else { throw FerryError("\(ctx): not a hold name") }
        let fd = ferry_hold_connect(name)
        if fd == -ECONNREFUSED || fd == -ENOENT { return false }
        guard fd >= 0 else { throw SystemError("connect(@\(name))", errno: -fd, ctx) }
        defer { close(fd) }
        let sent = RepairGuardPlan.releaseRequest.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // The guard is gone meanwhile (its hold ended): nothing is held.
        if sent < 0 && (errno == EPIPE || errno == ECONNRESET) { return false }
        if sent < 0 { throw SystemError("send to @\(name)", errno: errno, ctx) }
        var pf = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pf, 1, RepairGuardPlan.releaseTimeoutMilliseconds) == 1 else {
            throw FerryError("\(ctx): no answer within \(RepairGuardPlan.releaseTimeoutMilliseconds) ms")
        }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) == 1 && [byte] == RepairGuardPlan.released
    }
}

extension InetSocket.TCPRepair {
    /// Starts the repair guard before the freeze when a process of `tree`
    /// (read while it runs) holds an established TCP connection, so that
    /// the start (a second ferry binary, tens of ms) is not frozen time;
    /// `guarded` starts it otherwise, on first use. The connections are
    /// looked up in /proc/PID/net/tcp and tcp6 of each network namespace
    /// of the tree. A guard that cannot start here is tried again there.
    static func startGuardIfConnected(tree: [Int32]) {
        guard guardian == nil, !TestKill.repairGuardDisabled, !TestKill.lateRepairGuard else { return }
        var inodes = Set<UInt64>()
        var namespaces: [String: Int32] = [:]
        for p in tree {
            for fd in (try? ProcFS.fds(p)) ?? [] {
                if let link = try? ProcFS.readlink("/proc/\(p)/fd/\(fd)"), let inode = InetSocket.socketInode(link) { inodes.insert(inode) }
            }
            if let ns = try? ProcFS.readlink("/proc/\(p)/ns/net"), namespaces[ns] == nil { namespaces[ns] = p }
        }
        guard !inodes.isEmpty else { return }
        for p in namespaces.values {
            for table in ["tcp", "tcp6"] {
                let text = (try? ProcFS.text("/proc/\(p)/net/\(table)")) ?? ""
                if !RepairGuardPlan.establishedInodes(procNetTCP: text).isDisjoint(with: inodes) {
                    guardian = try? RepairGuard.start()
                    return
                }
            }
        }
    }
}
#endif
