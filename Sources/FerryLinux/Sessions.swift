#if os(Linux)
import Glibc
import FerryImage

/// Session ids and process groups. A process that leads its session or its
/// group is restored leading one again (setsid, setpgid); members follow
/// leaders of the tree. A session or group led from outside the tree (the
/// shell that started the program) cannot be re-created: such a tree is
/// refused at checkpoint unless it is a shell job (`--shell-job`), whose
/// processes then join the restoring ferry's session and group, as CRIU does.
enum JobControl {
    /// Who leads `id` (a session or group id as ferry sees it): a process of
    /// the tree, nobody the process can see (a leader in an ancestor pid
    /// namespace reads as 0 from inside), or someone outside the tree.
    enum Leader: Equatable { case tree, invisible, outside }

    static func leader(of id: Int32, for pid: Int32, tree: Set<Int32>) -> Leader {
        if tree.contains(id) { return .tree }
        guard id > 0 else { return .invisible }
        // Leaders in an ancestor pid namespace are not visible from the process's own.
        let mine = try? ProcFS.readlink("/proc/\(pid)/ns/pid")
        if let theirs = try? ProcFS.readlink("/proc/\(id)/ns/pid"), let mine, theirs != mine {
            return .invisible
        }
        return .outside
    }

    /// Refuses a tree whose session or group is led from outside it, unless `shellJob`.
    static func refuseOutsideLeaders(_ processes: [ProcessImage], shellJob: Bool) throws {
        guard !shellJob else { return }
        let tree = Set(processes.map(\.pid))
        for p in processes {
            for (id, what) in [(p.sid, "session"), (p.pgid, "process group")] where leader(of: id, for: p.pid, tree: tree) == .outside {
                throw FerryError("cannot checkpoint process \(p.pid) (\(p.comm)): its \(what) \(id) is led by a process outside the tree (the shell that started it?), which a restore cannot re-create; start it with setsid, or pass --shell-job to restore it into the restoring ferry's session and group")
            }
        }
    }

    /// The id a process of the tree has where the tree is restored (its
    /// innermost pid in a fresh pid namespace).
    static func restoredID(_ id: Int32, in processes: [ProcessImage], newPidNamespace: Bool) -> Int32? {
        guard let p = processes.first(where: { $0.pid == id }) else { return nil }
        return newPidNamespace ? (p.nsPids.last ?? p.pid) : p.pid
    }
}

extension ProcessBuilder {
    /// A session leader starts its session before it forks its children (they inherit it).
    func startSession() throws {
        guard image.sid == image.pid else { return }
        try main.call(SYS.setsid, [], "setsid (process \(image.pid) leads its session)")
    }

    /// Joins the process group the image names when a process of the tree
    /// leads it (itself included); call for group leaders first.
    func joinGroup(processes: [ProcessImage], newPidNamespace: Bool) throws {
        guard image.pgid != image.sid || image.sid != image.pid else { return }  // a session leader leads its group already
        guard let pgid = JobControl.restoredID(image.pgid, in: processes, newPidNamespace: newPidNamespace) else { return }
        try main.call(SYS.setpgid, [0, UInt64(pgid)], "setpgid(0, \(pgid)) (process \(image.pid))")
    }
}
#endif
