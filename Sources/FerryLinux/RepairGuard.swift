#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore

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
        let pid = withCStrings(["ferry", "__repair-guard", "\(getpid())"]) { argv in
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

/// The guard process (`ferry __repair-guard FERRY_PID`, channel at fd 3,
/// lock at fd 4; FERRY_PID only names its ferry in `ps`).
public enum RepairGuardProcess {
    static let pidfdSendSignal = 424
    struct Held { var socket: Int32; var owner: Int32; var reuseAddr: Int32 }

    public static func run(ferryPid: Int32) -> Never {
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
        _ = RepairGuardPlan.ready.withUnsafeBytes { send(channel, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // Returns when ferry lets the lock go (after "done") or dies; everything it sent is
        // in the channel by then. Without the lock, the end of the channel tells the same, later.
        let waited = ferry_guard_lock_wait(lock)
        var held: [Held] = []
        var stops: [Int32: Int32] = [:]
        var heard = RepairGuardPlan.Heard.nothing
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
        settle(held, stops: stops, heard)
        exit(0)
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
