#if os(Linux)
import Glibc
import CFerryLinux
import FerryContainer
import FerryImage

/// The container around a process tree: captured at checkpoint into the
/// image's CONTAINER record (FerryContainer's neutral spec, JSON), and
/// re-created at restore before the root process is spawned.
///
/// Checkpoint: the root's namespaces are compared with ferry's own; when any
/// differs, `LinuxLive` reads the spec (namespaces, cgroup limits) and the
/// real uts names are read by entering the root's uts namespace on this
/// thread (`ferry_uts_names`; /etc/hostname says nothing about them).
///
/// Restore:
/// - cgroups: a fresh one per restore, `<controller mount>/ferry/<name>` in
///   every v1 hierarchy a limit needs, or `<cgroup2 mount>/ferry/<name>` for
///   a controller that only the v2 hierarchy has (`LinuxApplyPlan` for both
///   versions; what neither can take is reported as a note). The restored
///   root writes "0" to each cgroup.procs itself between clone3 and exec, so
///   it is in the cgroups before any of its own code runs; its children
///   (forked by injected clone3) inherit them.
/// - namespaces: pid, mount, uts, ipc and network are created anew (the
///   others are reported, not created). When the root was its pid
///   namespace's init, one clone3 creates them all; otherwise the init
///   (`ferry __pidns-init`) is started with all of them and the hostname set,
///   and the root joins them: the pid namespace by setns on the spawning
///   thread before clone3 (pid_for_children), the others by setns in the
///   child before exec (a multithreaded ferry cannot join a mount namespace
///   on one of its threads: setns(CLONE_NEWNS) needs an unshared fs_struct).
enum ContainerState {
    /// The namespace kinds a restore re-creates.
    static let restorable: [NamespaceKind] = [.pid, .mount, .uts, .ipc, .network]

    // MARK: checkpoint

    /// The CONTAINER record for the tree rooted at `pid`, or nil when it runs
    /// in ferry's own namespaces.
    /// `tree`: the other processes; each must share the root's namespaces
    /// (a restore puts them all in the root's), else the checkpoint is refused.
    static func dump(pid: Int32, tree: [Int32] = []) throws -> [UInt8]? {
        func link(_ proc: String, _ kind: NamespaceKind) -> String? { try? ProcFS.readlink("/proc/\(proc)/ns/\(kind.procName)") }
        for p in tree where p != pid {
            for kind in NamespaceKind.allCases where link("\(p)", kind) != link("\(pid)", kind) {
                throw FerryError("cannot checkpoint pid \(pid): its descendant \(p) runs in a \(kind.rawValue) namespace of its own, which a restore cannot re-create (only the root's namespaces are)")
            }
        }
        // Cheap first: a process in ferry's own namespaces is not a container (and its cgroups are not read).
        let differs = NamespaceKind.allCases.contains { kind in
            guard let mine = link("self", kind) else { return false }
            return link("\(pid)", kind) != mine
        }
        guard differs else { return nil }
        let live: Translated<ContainerSpec>
        do {
            live = try LinuxLive(referencePID: getpid()).read(pid: pid)
        } catch {
            throw FerryError("cannot read the container of pid \(pid): \(error)")
        }
        var spec = live.output
        guard !spec.isolation.namespaces.isEmpty else { return nil }
        // LinuxLive's hostname comes from /etc/hostname in the process's root; the real one is the uts namespace's.
        var notes = live.notes.filter { !$0.field.hasSuffix("/etc/hostname") }
        spec.isolation.hostname = nil
        spec.isolation.domainname = nil
        if spec.isolation.has(.uts) {
            let (host, domain) = try utsNames(pid: pid)
            spec.isolation.hostname = host
            if domain != "(none)" && !domain.isEmpty { spec.isolation.domainname = domain }
        }
        var loopbackUp: Bool?
        var network: NetworkRecord?
        if spec.isolation.has(.network) {
            let capture = try NetworkNamespace.dump(pid: pid)
            network = capture.record
            notes += capture.notes
            let r = ferry_netns_loopback_up(pid)
            if r >= 0 {
                loopbackUp = r == 1
            } else {
                notes.append(Untranslated(field: "network loopback", value: "?",
                                          reason: "its state could not be read (\(String(cString: strerror(-r)))); a restore leaves it down"))
            }
        }
        if spec.name == nil { spec.name = "ct\(pid)" }
        notes += restoreNotes(spec, network: network)
        return try ContainerRecord(spec: spec, notes: notes, loopbackUp: loopbackUp, network: network).encoded()
    }

    static func utsNames(pid: Int32) throws -> (String, String) {
        var host = [CChar](repeating: 0, count: 80)
        var domain = [CChar](repeating: 0, count: 80)
        try check(Int(ferry_uts_names(pid, &host, host.count, &domain, domain.count)),
                  "setns(/proc/\(pid)/ns/uts)", "reading the hostname of pid \(pid)'s uts namespace")
        return (String(cString: host), String(cString: domain))
    }

    /// What a restore will not carry over, said in the image.
    static func restoreNotes(_ spec: ContainerSpec, network: NetworkRecord? = nil) -> [Untranslated] {
        var notes: [Untranslated] = []
        for ns in spec.isolation.namespaces where !restorable.contains(ns.kind) {
            notes.append(Untranslated(field: "namespace \(ns.kind.rawValue)", value: ns.path ?? "own",
                                      reason: "ferry restore does not create \(ns.kind.rawValue) namespaces; the restored processes share the restoring host's"))
        }
        let iso = spec.isolation
        if iso.has(.network), network != nil {
            notes.append(Untranslated(.approximated, field: "namespace network", value: "own",
                                      reason: "re-created with its loopback and veth interfaces, their addresses and the main table's routes; each veth's host end is a new interface, attached as the restore says (--bridge, --net-hook)"))
        } else if iso.has(.network) {
            notes.append(Untranslated(.approximated, field: "namespace network", value: "own",
                                      reason: "re-created with only its loopback device (up or down as it was); other interfaces, addresses, routes and sockets are not restored"))
        }
        if iso.has(.mount) {
            notes.append(Untranslated(.approximated, field: "namespace mount", value: "own",
                                      reason: "re-created as a private copy of the restoring ferry's mount table; mounts made inside the container are not restored"))
        }
        if iso.has(.ipc) {
            notes.append(Untranslated(.approximated, field: "namespace ipc", value: "own",
                                      reason: "re-created empty; System V IPC objects and POSIX message queues are not restored"))
        }
        if let root = iso.rootPath {
            notes.append(Untranslated(field: "root", value: root, reason: "the container's root directory (chroot/pivot_root) is not re-created"))
        }
        if !iso.uidMappings.isEmpty || !iso.gidMappings.isEmpty {
            notes.append(Untranslated(field: "uid/gid maps", value: "\(iso.uidMappings.count + iso.gidMappings.count) line(s)",
                                      reason: "user namespaces are not re-created"))
        }
        return notes
    }

    // MARK: restore

    /// Decodes the image's record; nil when it has none.
    static func record(_ meta: ImageMetadata) throws -> ContainerRecord? {
        guard let bytes = meta.container?.value else { return nil }
        let record: ContainerRecord
        do { record = try ContainerRecord.decode(bytes) } catch {
            throw FerryError("cannot restore: the image's container record is unreadable: \(error)")
        }
        // The name becomes a cgroup directory's (`ContainerRestore.makeCgroups`).
        if let name = record.spec.name, let why = ImagePath.problem(name, as: .name) {
            throw FerryError("cannot restore: the image's container name \(ImagePath.quoted(name)) is refused as a cgroup directory name: \(why)")
        }
        return record
    }

    /// The leaf cgroup directory's name for one restore: the container's name (checked by `record`) and ferry's pid.
    static func leafName(_ spec: ContainerSpec, restorer: Int32) -> String {
        "\(spec.name ?? "ct")-\(restorer)"
    }
}

/// The namespaces and cgroups made for one restore. `remove()` takes the
/// cgroups away again (after a failed restore, once its processes are gone).
final class ContainerRestore {
    let record: ContainerRecord
    /// Created directories, parents before children.
    private(set) var createdDirs: [String] = []
    /// cgroup.procs / tasks files the root writes itself into.
    private(set) var procsFiles: [String] = []
    /// The leaf cgroup directories, for the result.
    private(set) var leaves: [String] = []
    /// The mount points of the hierarchies it places the root in (the
    /// cgroup membership restore leaves those to it).
    private(set) var mountPoints: Set<String> = []
    private(set) var notes: [String] = []

    var spec: ContainerSpec { record.spec }
    var newPidNamespace: Bool { spec.isolation.has(.pid) }

    /// clone3 flags of the namespaces to create besides the pid namespace.
    var namespaceFlags: UInt64 {
        var f: UInt64 = 0
        let iso = spec.isolation
        if iso.has(.mount) { f |= 0x0002_0000 /* CLONE_NEWNS */ }
        if iso.has(.uts) { f |= 0x0400_0000 /* CLONE_NEWUTS */ }
        if iso.has(.ipc) { f |= 0x0800_0000 /* CLONE_NEWIPC */ }
        if iso.has(.network) { f |= 0x4000_0000 /* CLONE_NEWNET */ }
        return f
    }

    /// Link names in /proc/PID/ns/ to join, for the kinds in `namespaceFlags`.
    var joinNames: [String] {
        [NamespaceKind.mount, .uts, .ipc, .network].filter { spec.isolation.has($0) }.map(\.procName)
    }

    init(record: ContainerRecord) {
        self.record = record
        // The image's own notes, and what this restore leaves out even if the image (from another producer) does not say so.
        let all = record.notes + ContainerState.restoreNotes(record.spec, network: record.network).filter { !record.notes.contains($0) }
        notes = all.map { "container: \($0)" }
    }

    /// Creates the cgroups and writes the limits. Throws (having removed
    /// what it made) when a limit cannot be set.
    static func prepare(_ record: ContainerRecord, cgroups: CgroupMounts = .current(), leafName: String) throws -> ContainerRestore {
        let c = ContainerRestore(record: record)
        do {
            try c.makeCgroups(cgroups, leafName: leafName)
        } catch {
            c.remove()
            throw error
        }
        return c
    }

    /// Tests point `CgroupMounts` at plain directories, where files are created on write.
    private var createFiles = false

    private func makeCgroups(_ mounts: CgroupMounts, leafName: String) throws {
        if let why = ImagePath.problem(leafName, as: .name) {
            throw FerryError("cannot restore: the container's cgroup name \(ImagePath.quoted(leafName)) is refused: \(why)")
        }
        createFiles = mounts.createFiles
        let v1 = LinuxApplyPlan(spec, cgroup: .v1)
        let v2 = LinuxApplyPlan(spec, cgroup: .v2)
        var v1Writes: [String: [CgroupWrite]] = [:]   // mount point → writes
        var v1Order: [String] = []
        var v2Writes: [CgroupWrite] = []
        for w in v1.cgroupWrites {
            guard let ctrl = w.controller else { continue }
            if let mp = mounts.v1[ctrl] {
                if v1Writes[mp] == nil { v1Order.append(mp) }
                v1Writes[mp, default: []].append(w)
            }
        }
        // A controller that only the v2 hierarchy has takes the v2 plan's writes.
        for w in v2.cgroupWrites {
            let ctrl = String(w.file.prefix { $0 != "." })
            let v1Name = ctrl == "io" ? "blkio" : ctrl
            if mounts.v1[v1Name] != nil { continue }
            if mounts.v2Controllers.contains(ctrl) { v2Writes.append(w) }
        }
        // Whatever neither hierarchy can take is reported.
        for w in v1.cgroupWrites {
            guard let ctrl = w.controller, mounts.v1[ctrl] == nil else { continue }
            let v2Name = ctrl == "blkio" ? "io" : ctrl
            if !mounts.v2Controllers.contains(v2Name) {
                notes.append("container: not applied: \(w) (no \(ctrl) controller is mounted here, v1 or v2)")
            }
        }
        notes += v1.notes.map { "container: cgroup v1: \($0)" }
        if !v2Writes.isEmpty { notes += v2.notes.map { "container: cgroup v2: \($0)" } }

        for mp in v1Order {
            let parent = mp + "/ferry"
            let leaf = parent + "/" + leafName
            try makeDir(parent)
            let isCpuset = mounts.v1["cpuset"] == mp
            if isCpuset { try inheritCpuset(from: mp, to: parent) }
            try makeDir(leaf)
            if isCpuset { try inheritCpuset(from: parent, to: leaf) }
            for w in v1Writes[mp]! {
                do {
                    try writeFile(leaf + "/" + w.file, w.value)
                } catch let e as SystemError where w.file.hasPrefix("cpuset.") {
                    notes.append("container: not applied: \(w) (\(e)); the cpuset of \(parent) is used")
                }
            }
            procsFiles.append(leaf + "/cgroup.procs")
            leaves.append(leaf)
            mountPoints.insert(mp)
        }
        if !v2Writes.isEmpty, let root = mounts.v2 {
            let parent = root + "/ferry"
            let leaf = parent + "/" + leafName
            try makeDir(parent)
            let enable = v2.controllers.filter { c in v2Writes.contains { $0.file.hasPrefix(c + ".") } }
                .map { "+" + $0 }.joined(separator: " ")
            if !enable.isEmpty {
                try writeFile(root + "/cgroup.subtree_control", enable)
                try writeFile(parent + "/cgroup.subtree_control", enable)
            }
            try makeDir(leaf)
            for w in v2Writes { try writeFile(leaf + "/" + w.file, w.value) }
            procsFiles.append(leaf + "/cgroup.procs")
            leaves.append(leaf)
            mountPoints.insert(root)
        }
        for leaf in leaves { notes.append("container: cgroup \(leaf)") }
    }

    /// A new v1 cpuset has no cpus or mems; it takes its parent's.
    private func inheritCpuset(from: String, to: String) throws {
        try CgroupFiles.inheritCpuset(from: from, to: to, write: writeFile)
    }

    private func makeDir(_ path: String) throws {
        if mkdir(path, 0o755) == 0 {
            createdDirs.append(path)
        } else if errno != EEXIST {
            throw SystemError("mkdir(\(path))", errno: errno, "creating the container's cgroup")
        }
    }

    private func writeFile(_ path: String, _ value: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC | (createFiles ? O_CREAT : 0), 0o644)
        if fd < 0 { throw SystemError("open(\(path))", errno: errno, "setting a limit of the container's cgroup") }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        if write(fd, bytes, bytes.count) != bytes.count {
            throw SystemError("write(\(path), \"\(value)\")", errno: errno, "setting a limit of the container's cgroup")
        }
    }

    /// Removes the cgroups made (they must be empty: call after the
    /// processes are killed and reaped). Shared parents (`ferry/`) stay.
    func remove() {
        for dir in createdDirs.reversed() where !dir.hasSuffix("/ferry") {
            for _ in 0..<50 {
                if rmdir(dir) == 0 || errno == ENOENT { break }
                usleep(20_000)
            }
        }
        createdDirs.removeAll()
    }

    /// Re-creates the recorded interfaces, addresses and routes in the
    /// network namespace of `pid` (the restored root or its namespace's
    /// init, already in the new namespace).
    func createNetwork(pid: Int32, attach: NetworkNamespace.Attachment) throws {
        guard spec.isolation.has(.network), let network = record.network else { return }
        notes += try NetworkNamespace.recreate(network, pid: pid, attach: attach)
    }

    /// The spawn parts for the root process (opening its cgroup files).
    func spawnParts() throws -> ContainerSpawn {
        var fds: [Int32] = []
        for f in procsFiles {
            let fd = open(f, O_WRONLY | O_CLOEXEC)
            if fd < 0 {
                for d in fds { close(d) }
                throw SystemError("open(\(f))", errno: errno, "putting the restored process into its cgroup")
            }
            fds.append(fd)
        }
        return ContainerSpawn(namespaceFlags: namespaceFlags, joinNames: joinNames,
                              hostname: spec.isolation.hostname, domainname: spec.isolation.domainname,
                              loopbackUp: record.loopbackUp == true, cgroupFDs: fds)
    }
}

/// What the spawn of a containerized root needs (Spawn.swift).
struct ContainerSpawn {
    var namespaceFlags: UInt64
    var joinNames: [String]
    var hostname: String?
    var domainname: String?
    var loopbackUp: Bool
    var cgroupFDs: [Int32]

    func closeFDs() { for fd in cgroupFDs { close(fd) } }

    /// Spawns with the container parts. `joinFrom`: the pid-namespace
    /// init whose namespaces the child joins (else it creates them).
    func spawn(exe: String, argv: UnsafePointer<UnsafeMutablePointer<CChar>?>, envp: UnsafePointer<UnsafeMutablePointer<CChar>?>,
               setTid: inout [Int32], newPidns: Int32, pidnsFD: Int32, joinFrom initPid: Int32?) throws -> Int32 {
        var joinFDs: [Int32] = []
        defer { for fd in joinFDs { close(fd) } }
        if let initPid {
            for name in joinNames {
                let fd = open("/proc/\(initPid)/ns/\(name)", O_RDONLY | O_CLOEXEC)
                if fd < 0 { throw SystemError("open(/proc/\(initPid)/ns/\(name))", errno: errno, "joining the container's namespaces") }
                joinFDs.append(fd)
            }
        }
        var ct = ferry_ct_spawn()
        ct.clone_flags = initPid == nil ? namespaceFlags : 0
        let host = hostname.map { strdup($0) } ?? nil
        let domain = domainname.map { strdup($0) } ?? nil
        defer { free(host); free(domain) }
        ct.hostname = UnsafePointer(host)
        ct.domainname = UnsafePointer(domain)
        ct.loopback_up = loopbackUp ? 1 : 0
        return joinFDs.withUnsafeBufferPointer { j in
            cgroupFDs.withUnsafeBufferPointer { c in
                ct.join_fds = j.baseAddress
                ct.n_join = j.count
                ct.cgroup_fds = c.baseAddress
                ct.n_cgroup = c.count
                return setTid.withUnsafeMutableBufferPointer {
                    ferry_spawn_traced_ct(exe, argv, envp, $0.baseAddress, 1, newPidns, pidnsFD, &ct)
                }
            }
        }
    }

    /// Why the child stopped before exec (its exit status 100 + step).
    static func childFailure(_ status: Int32) -> String? {
        switch status {
        case 101: "could not put itself into the container's cgroup (write to cgroup.procs)"
        case 102: "could not join the container's namespaces (setns)"
        case 103: "could not set the container's hostname"
        case 104: "could not make its mounts private in the new mount namespace"
        case 105: "could not set the container's domainname"
        case 106: "could not bring the loopback device of its network namespace up"
        default: nil
        }
    }
}

/// Where the cgroup hierarchies are mounted (from /proc/self/mounts).
struct CgroupMounts {
    /// v1 controller → mount point.
    var v1: [String: String] = [:]
    /// The cgroup2 mount point and its controllers.
    var v2: String?
    var v2Controllers: Set<String> = []
    /// For tests over plain directories: files are created when written.
    var createFiles = false

    static func current() -> CgroupMounts {
        var m = CgroupMounts()
        let known: Set<String> = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                                  "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"]
        for line in ((try? ProcFS.text("/proc/self/mounts")) ?? "").split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 4 else { continue }
            let point = String(f[1])
            if f[2] == "cgroup" {
                for opt in f[3].split(separator: ",") where known.contains(String(opt)) && m.v1[String(opt)] == nil {
                    m.v1[String(opt)] = point
                }
            } else if f[2] == "cgroup2", m.v2 == nil {
                m.v2 = point
                let ctrls = ((try? ProcFS.text(point + "/cgroup.controllers")) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
                m.v2Controllers = Set(ctrls.map(String.init))
            }
        }
        return m
    }
}
#endif
