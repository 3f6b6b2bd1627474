#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage

/// The new process a restore fills: the image's executable started traced
/// and stopped at its exec, with the image's pid (clone3 set_tid), in our pid
/// namespace or a fresh one.
struct SpawnedProcess {
    /// Its pid in ferry's namespace.
    let pid: Int32
    /// The init ferry started for a fresh pid namespace, if any.
    let reaper: Int32?
    let tracee: Tracee

    /// Starts `exe` stopped at exec. `wantedPid` is the pid to take (in the
    /// fresh namespace when `newPidNamespace`).
    /// `container`: namespaces, hostname and cgroups of a containerized root (ContainerState.swift).
    /// `clockOffsets`: CLOCK_MONOTONIC/BOOTTIME offsets of a fresh time namespace.
    static func start(exe: String, wantedPid: Int32, newPidNamespace: Bool, reaperPath: String,
                      container: ContainerSpawn? = nil,
                      clockOffsets: (monotonic: Int64, boottime: Int64)? = nil) throws -> SpawnedProcess {
        let argv = [exe]
        if let o = clockOffsets {
            // Both clones below run on this thread: they enter the new time namespace.
            let r = ferry_timens_for_children(o.monotonic, o.boottime)
            if r < 0 { throw SystemError("unshare(CLONE_NEWTIME) + timens_offsets", errno: -r, "continuing the source's clocks") }
        }
        var reaper: Int32? = nil
        var pidnsFD: Int32 = -1
        var setTid = [wantedPid]
        var newNS: Int32 = 0
        if newPidNamespace {
            if wantedPid == 1 {
                newNS = 1 // the process is its namespace's init
            } else {
                let r = try withCStrings([reaperPath, "__pidns-init"]) { rargv in
                    withCStrings([]) { envp in
                        ferry_spawn_pidns_init_ct(reaperPath, rargv, envp, container?.namespaceFlags ?? 0,
                                                  container?.hostname, container?.domainname, container?.loopbackUp == true ? 1 : 0)
                    }
                }
                try check(Int(r), "clone3(CLONE_NEWPID)", "starting the init of a new pid namespace")
                reaper = r
                pidnsFD = open("/proc/\(r)/ns/pid", O_RDONLY | O_CLOEXEC)
                if pidnsFD < 0 {
                    kill(r, SIGKILL)
                    throw SystemError("open(/proc/\(r)/ns/pid)", errno: errno, "joining the new pid namespace")
                }
            }
        }
        defer { if pidnsFD >= 0 { close(pidnsFD) } }
        let pid = try withCStrings(argv) { a in
            try withCStrings([]) { e in
                if let container {
                    return try container.spawn(exe: exe, argv: a, envp: e, setTid: &setTid, newPidns: newNS,
                                               pidnsFD: pidnsFD, joinFrom: reaper)
                }
                return setTid.withUnsafeMutableBufferPointer { ferry_spawn_traced(exe, a, e, $0.baseAddress, 1, newNS, pidnsFD) }
            }
        }
        if pid < 0 {
            if let reaper { kill(reaper, SIGKILL); _ = ferry_wait(reaper, nil, 0) }
            if pid == -EEXIST {
                throw FerryError("cannot restore: pid \(wantedPid) is in use on this host; free it or restore with --new-pidns")
            }
            throw SystemError("clone3(set_tid=\(wantedPid))", errno: -pid, "starting the process to restore into")
        }
        let t = Tracee(pid)
        let st = WaitStatus(try t.wait())
        guard case .stopped(let sig, _) = st, sig == SIGTRAP else {
            if let reaper { kill(reaper, SIGKILL) }
            if case .exited(let code) = st, let why = ContainerSpawn.childFailure(code) {
                throw FerryError("cannot restore the container: the new process \(why)")
            }
            throw FerryError("the new process for \(exe) \(st.description) instead of stopping at exec (is the file executable?)")
        }
        try t.setOptions(PT.oTraceFork | PT.oTraceClone | PT.oExitKill)
        return SpawnedProcess(pid: pid, reaper: reaper, tracee: t)
    }

    /// Kills the half-built process (and its namespace's init). The init,
    /// killed, waits in the kernel for every process of its namespace to be
    /// reaped, and a traced zombie (another process of a tree) is released to
    /// it only once ferry, its tracer, has collected it: so ferry collects
    /// every tracee until the init itself is reported.
    func abandon() {
        kill(pid, SIGKILL)
        reapAll(pid)
        if let reaper { kill(reaper, SIGKILL); reapAll(reaper) }
    }
}

/// Collects every traced thread of a killed process, then the process: a
/// thread-group leader is reported only after its other threads.
func reapAll(_ pid: Int32) {
    while true {
        var status: Int32 = 0
        let r = ferry_wait(-1, &status, 0)
        if r < 0 || r == pid { return }
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) throws -> R) rethrows -> R {
    var ptrs: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    ptrs.append(nil)
    defer { for p in ptrs { free(p) } }
    return try ptrs.withUnsafeBufferPointer { try body($0.baseAddress!) }
}

/// The init of a pid namespace made by `--new-pidns`. The restored process
/// is created by ferry (its parent until ferry exits, when it is reparented
/// to a subreaper or init outside, not here), so the init has no children of
/// its own: it stays while any process shares its namespace, reaping what it
/// may inherit, and leaves when it is alone — which kills the namespace.
///
/// "Alone" counts only after the first process has joined. ferry starts this
/// init first and creates the process to restore right after; an init that
/// looked at /proc before that (it took "no one yet" for "everyone gone")
/// left at once, and its leaving killed the process ferry was building
/// ("killed by signal 9 instead of stopping at exec", or clone3 ENOMEM into
/// the dead namespace) or, when the init was descheduled between its look
/// and its exit, the restored process after restore had reported it running
/// (seen under load in vm/ runs as a restored process that vanished without a
/// fault).
public enum PidNamespaceInit {
    /// Seconds to wait for ferry to put the first process here (it failed otherwise and kills us anyway).
    static let joinTimeout = 60

    public static func run() -> Never {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let mine = (try? ProcFS.readlink("/proc/self/ns/pid")) ?? ""
        var joined = false, waited = 0, aloneScans = 0
        while true {
            var status: Int32 = 0
            if waitpid(-1, &status, __WALL) > 0 { continue }
            if errno == EINTR { continue }
            if othersShare(namespace: mine) {
                joined = true
                aloneScans = 0
            } else if joined {
                // Twice in a row: a child forked at a pid the /proc walk had already passed, while its parent
                // exited behind the walk, is seen the second time.
                aloneScans += 1
                if aloneScans >= 2 { exit(0) }
            } else {
                waited += 1
                if waited >= joinTimeout { exit(0) }
            }
            sleep(1)
        }
    }

    static func othersShare(namespace: String) -> Bool {
        guard let dir = opendir("/proc") else { return false }
        defer { closedir(dir) }
        let me = getpid()
        // Our own pid as the host sees it differs from getpid() (1); compare by namespace only.
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard let pid = Int32(name), pid != me else { continue }
            if let ns = try? ProcFS.readlink("/proc/\(pid)/ns/pid"), ns == namespace,
               let stat = try? ProcFS.stat(pid), stat.field(4) != 0 || stat.state != "Z" {
                if (try? ProcFS.text("/proc/\(pid)/status"))?.contains("NSpid:\t\(pid)\t1\n") == true { continue } // that is us
                return true
            }
        }
        return false
    }
}
#endif
