#if os(Linux)
import Glibc
import FerryCore
import FerryImage

/// Cgroup membership of the tree's processes and threads.
///
/// Checkpoint: /proc/PID/cgroup of every process (and
/// /proc/PID/task/TID/cgroup of each other thread, kept where it differs,
/// as a v1 hierarchy places threads one by one), each entry marked where the
/// checkpointing ferry is in the same cgroup (`CgroupPlan.record`).
///
/// Restore: `CgroupPlan.placement` decides, before anything is created,
/// which cgroup directory each task is written into (refusing a hierarchy
/// that is not mounted here); ferry then writes each process's pid into
/// `cgroup.procs` right after the process is created (before it forks its
/// children, which inherit it, and before ferry writes its memory, so the
/// pages are charged there) and each thread's tid into `tasks` (v1) or
/// `cgroup.threads` (v2) once it exists. A missing directory is created
/// (a new v1 cpuset takes its parent's cpus and mems); the directories
/// created are removed again when the restore fails. Hierarchies a
/// container restore places itself (`ContainerRestore`) are left to it.
enum CgroupState {
    // MARK: checkpoint

    /// The process's memberships and those of its other threads that differ.
    static func dump(pid: Int32, threads: [Int32]) throws -> (process: [CgroupMembership], threads: [Int32: [CgroupMembership]]) {
        let own = CgroupPlan.parseMembership((try? ProcFS.text("/proc/self/cgroup")) ?? "")
        let process = CgroupPlan.parseMembership(try ProcFS.text("/proc/\(pid)/cgroup"))
        var perThread: [Int32: [CgroupMembership]] = [:]
        for tid in threads where tid != pid {
            let t = CgroupPlan.parseMembership(try ProcFS.text("/proc/\(pid)/task/\(tid)/cgroup"))
            if let diff = CgroupPlan.threadDifferences(thread: t, process: process) {
                perThread[tid] = CgroupPlan.record(task: diff, own: own)
            }
        }
        return (CgroupPlan.record(task: process, own: own), perThread)
    }

    // MARK: restore

    /// The cgroup hierarchies mounted in ferry's mount namespace.
    static func mounts() -> [CgroupPlan.Mount] {
        var known = Set<String>()
        for line in ((try? ProcFS.text("/proc/cgroups")) ?? "").split(separator: "\n") where !line.hasPrefix("#") {
            if let name = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).first { known.insert(String(name)) }
        }
        return CgroupPlan.parseMountinfo((try? ProcFS.text("/proc/self/mountinfo")) ?? "", known: known)
    }
}

/// The cgroup writes of one restore (see `CgroupState`).
final class CgroupPlacement {
    private(set) var plan: CgroupPlan.Placement
    private let skipping: Set<String>
    /// Directories created, parents first.
    private(set) var createdDirs: [String] = []

    private init(plan: CgroupPlan.Placement, skipping: Set<String>) { self.plan = plan; self.skipping = skipping }

    /// Decides every write; throws one line naming the hierarchy a task
    /// needs and this host lacks. `skipping`: mount points a container restore places itself.
    static func prepare(_ meta: ImageMetadata, skipping: Set<String>) throws -> CgroupPlacement {
        CgroupPlacement(plan: try decide(meta, skipping: skipping), skipping: skipping)
    }

    /// Decides again from pre-copy's final metadata (its processes' cgroups
    /// are the preliminary's, `PhasedRestore.mismatch`; threads may be new).
    func update(_ meta: ImageMetadata) throws {
        plan = try CgroupPlacement.decide(meta, skipping: skipping)
    }

    private static func decide(_ meta: ImageMetadata, skipping: Set<String>) throws -> CgroupPlan.Placement {
        let tasks = meta.processes.map { p in
            CgroupPlan.Task(pid: p.pid, ppid: p.ppid, cgroups: p.cgroups ?? [],
                            threads: p.threads.dropFirst().compactMap { t in t.cgroups.map { (t.tid, $0) } })
        }
        let own = CgroupPlan.parseMembership((try? ProcFS.text("/proc/self/cgroup")) ?? "")
        switch CgroupPlan.placement(tasks, restorer: own, mounts: CgroupState.mounts(), skipping: skipping) {
        case .success(let plan): return plan
        case .failure(let r): throw FerryError(r.message)
        }
    }

    /// Puts the restored process `pid` (the image's `imagePid`) into its cgroups.
    func place(process imagePid: Int32, as pid: Int32) throws {
        for m in plan.processes[imagePid] ?? [] { try write(pid, m, who: "process \(imagePid)") }
    }

    /// Puts the restored threads of `process` into theirs. `live`: image tid → tid here.
    func placeThreads(of process: ProcessImage, live: (Int32) throws -> Int32) throws {
        for t in process.threads {
            guard let moves = plan.threads[t.tid] else { continue }
            let here = try live(t.tid)
            for m in moves { try write(here, m, who: "thread \(t.tid) of process \(process.pid)") }
        }
    }

    private func write(_ id: Int32, _ m: CgroupPlan.Move, who: String) throws {
        let context = "putting \(who) into cgroup \(m.path) of hierarchy \(m.hierarchy)"
        try makeDirectory(m.directory, cpuset: m.hierarchy.split(separator: ",").contains("cpuset"), context: context)
        let file = m.directory + "/" + m.file
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError("open(\(file))", errno: errno, context) }
        defer { close(fd) }
        let bytes = Array("\(id)".utf8)
        if Glibc.write(fd, bytes, bytes.count) != bytes.count { throw SystemError("write(\(file), \"\(id)\")", errno: errno, context) }
    }

    /// mkdir -p of a cgroup directory (its mount point exists).
    private func makeDirectory(_ dir: String, cpuset: Bool, context: String) throws {
        if access(dir, F_OK) == 0 { return }
        let parent = String(dir[..<(dir.lastIndex(of: "/") ?? dir.startIndex)])
        if !parent.isEmpty { try makeDirectory(parent, cpuset: cpuset, context: context) }
        if mkdir(dir, 0o755) != 0 {
            if errno == EEXIST { return }
            throw SystemError("mkdir(\(dir))", errno: errno, context)
        }
        createdDirs.append(dir)
        if cpuset, !parent.isEmpty { try CgroupFiles.inheritCpuset(from: parent, to: dir) }
    }

    /// Removes the directories created (after a failed restore, once its processes are gone).
    func remove() {
        for dir in createdDirs.reversed() {
            for _ in 0..<50 {
                if rmdir(dir) == 0 || errno == ENOENT { break }
                usleep(20_000)
            }
        }
        createdDirs.removeAll()
    }
}

/// Files of a v1 cgroup directory both restores write.
enum CgroupFiles {
    /// A new v1 cpuset has no cpus or mems (nothing can join it); it takes its parent's.
    static func inheritCpuset(from parent: String, to dir: String,
                              write: (String, String) throws -> Void = CgroupFiles.write) throws {
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let current = ((try? ProcFS.text(dir + "/" + f)) ?? "").trimmingWhitespace()
            if current.isEmpty, let v = try? ProcFS.text(parent + "/" + f) { try write(dir + "/" + f, v.trimmingWhitespace()) }
        }
    }

    static func write(_ path: String, _ value: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError("open(\(path))", errno: errno, "setting up a cgroup") }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        if Glibc.write(fd, bytes, bytes.count) != bytes.count {
            throw SystemError("write(\(path), \"\(value)\")", errno: errno, "setting up a cgroup")
        }
    }
}
#endif
