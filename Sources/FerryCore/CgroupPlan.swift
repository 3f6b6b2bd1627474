import FerryImage

/// Cgroup membership as pure functions: what a checkpoint records from
/// /proc/PID/cgroup, and which cgroup directory a restore writes each task
/// into, given the hierarchies mounted on the restoring host.
///
/// A hierarchy is named by its controllers as /proc/PID/cgroup lists them
/// ("cpu,cpuacct", "name=systemd"; "" for the v2 unified one): hierarchy
/// numbers differ between hosts, controller sets do not.
public enum CgroupPlan {
    /// A cgroup or cgroup2 mount (a line of /proc/self/mountinfo).
    public struct Mount: Equatable, Sendable {
        /// Sorted controller list ("" for cgroup2), as `key` makes it.
        public var controllers: String
        public var point: String
        /// The cgroup of the hierarchy shown at `point` ("/" for a whole-hierarchy mount).
        public var root: String
        public init(controllers: String, point: String, root: String = "/") {
            self.controllers = CgroupPlan.key(controllers); self.point = point; self.root = root
        }
        public var isV2: Bool { controllers.isEmpty }
    }

    /// One write that puts a task into a cgroup.
    public struct Move: Equatable, Sendable {
        /// The hierarchy's controllers, for messages.
        public var hierarchy: String
        /// The cgroup's path in its hierarchy.
        public var path: String
        /// Its directory on this host (created when missing).
        public var directory: String
        /// `cgroup.procs` for a process; `tasks` (v1) or `cgroup.threads` (v2) for one thread.
        public var file: String
        public init(hierarchy: String, path: String, directory: String, file: String) {
            self.hierarchy = hierarchy; self.path = path; self.directory = directory; self.file = file
        }
    }

    /// Writes for one restore: per process (right after it is created,
    /// before it forks its children) and per thread (once created).
    public struct Placement: Equatable, Sendable {
        public var processes: [Int32: [Move]] = [:]
        public var threads: [Int32: [Move]] = [:]
        public init() {}
        public var isEmpty: Bool { processes.values.allSatisfy(\.isEmpty) && threads.values.allSatisfy(\.isEmpty) }
    }

    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// A controller list in one order ("cpuacct,cpu" and "cpu,cpuacct" are one hierarchy).
    public static func key(_ controllers: String) -> String {
        controllers.split(separator: ",").map(String.init).sorted().joined(separator: ",")
    }

    static func label(_ key: String) -> String { key.isEmpty ? "the cgroup v2 hierarchy" : "cgroup hierarchy \(key)" }

    /// /proc/PID/cgroup: one "ID:CONTROLLERS:PATH" line per hierarchy (the
    /// path may hold ':'). Lines that are not of that shape are skipped.
    public static func parseMembership(_ text: String) -> [CgroupMembership] {
        var out: [CgroupMembership] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, Int(parts[0]) != nil, parts[2].hasPrefix("/") else { continue }
            out.append(CgroupMembership(controllers: key(String(parts[1])), path: String(parts[2])))
        }
        return out
    }

    /// The cgroup and cgroup2 mounts of a /proc/PID/mountinfo text.
    /// `known`: the controller names of /proc/cgroups; a v1 mount's
    /// controllers are its super options that are known or `name=…`.
    public static func parseMountinfo(_ text: String, known: Set<String>) -> [Mount] {
        var out: [Mount] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let dash = f.firstIndex(of: "-"), dash >= 5, f.count >= dash + 4 else { continue }
            let type = f[dash + 1]
            guard type == "cgroup" || type == "cgroup2" else { continue }
            let root = unescape(f[3]), point = unescape(f[4])
            if type == "cgroup2" {
                out.append(Mount(controllers: "", point: point, root: root))
                continue
            }
            let ctrls = f[dash + 3].split(separator: ",").map(String.init).filter { known.contains($0) || $0.hasPrefix("name=") }
            guard !ctrls.isEmpty else { continue }
            out.append(Mount(controllers: ctrls.joined(separator: ","), point: point, root: root))
        }
        return out
    }

    /// mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash).
    static func unescape(_ s: Substring) -> String {
        guard s.contains("\\") else { return String(s) }
        var bytes: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            if u[i] == 0x5c, i + 3 < u.count,
               let v = UInt8(String(decoding: u[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                bytes.append(v)
                i += 4
            } else {
                bytes.append(u[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// What a checkpoint records for a task: each hierarchy's path, marked
    /// `checkpointerOwn` where the checkpointing ferry is in the same cgroup.
    public static func record(task: [CgroupMembership], own: [CgroupMembership]) -> [CgroupMembership] {
        let mine = Dictionary(own.map { ($0.controllers, $0.path) }, uniquingKeysWith: { a, _ in a })
        return task.map { m in
            var r = m
            r.checkpointerOwn = mine[m.controllers] == m.path ? true : nil
            return r
        }
    }

    /// The entries of a thread that differ from its process's (nil: none).
    public static func threadDifferences(thread: [CgroupMembership], process: [CgroupMembership]) -> [CgroupMembership]? {
        let diff = thread.filter { t in !process.contains { $0.controllers == t.controllers && $0.path == t.path } }
        return diff.isEmpty ? nil : diff
    }

    /// One process of the tree as the placement needs it.
    public struct Task: Sendable {
        public var pid: Int32
        public var ppid: Int32
        public var cgroups: [CgroupMembership]
        /// Threads (other than the main one) whose cgroups differ from the process's.
        public var threads: [(tid: Int32, cgroups: [CgroupMembership])]
        public init(pid: Int32, ppid: Int32, cgroups: [CgroupMembership], threads: [(tid: Int32, cgroups: [CgroupMembership])] = []) {
            self.pid = pid; self.ppid = ppid; self.cgroups = cgroups; self.threads = threads
        }
    }

    /// Where each task of the tree goes. `tasks`: root first, each parent
    /// before its children. A task inherits its parent's cgroups (the root:
    /// the restorer's, `restorer`), so a write happens only where its
    /// cgroup differs from the inherited one; an entry marked
    /// `checkpointerOwn` goes to the restorer's own cgroup of that hierarchy
    /// (the root then needs no write). `skipping`: mount points whose
    /// hierarchy the restore places otherwise (a container's cgroups).
    /// Refused, naming the hierarchy, where a needed hierarchy is not
    /// mounted here or is mounted only from a cgroup outside the path.
    public static func placement(_ tasks: [Task], restorer: [CgroupMembership], mounts: [Mount],
                                 skipping: Set<String> = []) -> Result<Placement, Refusal> {
        let restorerPaths = Dictionary(restorer.map { ($0.controllers, $0.path) }, uniquingKeysWith: { a, _ in a })
        let skippedKeys = Set(mounts.filter { skipping.contains($0.point) }.map(\.controllers))
        var placed: [Int32: [String: String]] = [:]   // pid → hierarchy → the cgroup it is in once placed
        var out = Placement()
        func target(_ m: CgroupMembership) -> String? {
            m.checkpointerOwn == true ? restorerPaths[m.controllers] : m.path
        }
        func move(_ m: CgroupMembership, to path: String, file: (Mount) -> String, who: String) -> Result<Move, Refusal> {
            let candidates = mounts.filter { $0.controllers == m.controllers }
            guard !candidates.isEmpty else {
                let how = m.controllers.isEmpty ? "mount -t cgroup2 none DIR" : "mount -t cgroup -o \(m.controllers.hasPrefix("name=") ? "none," : "")\(m.controllers) none DIR"
                return .failure(Refusal(message: "cannot restore \(who): it was in cgroup \(path) of \(label(m.controllers)), which is not mounted here; mount it (\(how)) and restore again"))
            }
            // The mount that shows the most of the hierarchy holding `path`.
            let fitting = candidates.filter { isWithin(path, $0.root) }.sorted { $0.root.count < $1.root.count }
            guard let mnt = fitting.first else {
                return .failure(Refusal(message: "cannot restore \(who): it was in cgroup \(path) of \(label(m.controllers)), which is mounted here only from \(candidates[0].root); mount the whole hierarchy and restore again"))
            }
            let rel = mnt.root == "/" ? path : String(path.dropFirst(mnt.root.count))
            let dir = rel == "/" || rel.isEmpty ? mnt.point : (mnt.point.hasSuffix("/") ? String(mnt.point.dropLast()) : mnt.point) + rel
            return .success(Move(hierarchy: m.controllers.isEmpty ? "cgroup2" : m.controllers, path: path, directory: dir, file: file(mnt)))
        }
        for t in tasks {
            var inherited = placed[t.ppid] ?? restorerPaths
            var moves: [Move] = []
            for m in t.cgroups where !skippedKeys.contains(m.controllers) {
                guard let path = target(m) else { continue }   // the restorer is not in that hierarchy: nothing to follow
                if inherited[m.controllers] == path { continue }
                switch move(m, to: path, file: { _ in "cgroup.procs" }, who: "process \(t.pid)") {
                case .success(let mv): moves.append(mv)
                case .failure(let r): return .failure(r)
                }
                inherited[m.controllers] = path
            }
            placed[t.pid] = inherited
            out.processes[t.pid] = moves
            for th in t.threads {
                var tm: [Move] = []
                for m in th.cgroups where !skippedKeys.contains(m.controllers) {
                    guard let path = target(m), inherited[m.controllers] != path else { continue }
                    switch move(m, to: path, file: { $0.isV2 ? "cgroup.threads" : "tasks" }, who: "thread \(th.tid) of process \(t.pid)") {
                    case .success(let mv): tm.append(mv)
                    case .failure(let r): return .failure(r)
                    }
                }
                if !tm.isEmpty { out.threads[th.tid] = tm }
            }
        }
        return .success(out)
    }

    /// `path` is `root` or below it, component-wise.
    static func isWithin(_ path: String, _ root: String) -> Bool {
        root == "/" || path == root || path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }
}
