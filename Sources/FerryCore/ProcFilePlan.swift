import FerryImage

/// Files of a process under /proc (/proc/PID/maps, /proc/PID/status, the
/// /proc/PID directory …; /proc/self/… reads back as /proc/PID/…). One of a
/// process of the tree is carried: recorded with that process's pid
/// (`FileDescriptorImage.procPid`) and reopened on restore under the pid the
/// restored process has in ferry's /proc, with its flags and position. One
/// of a process outside the tree, of a thread (/proc/PID/task/TID/…), or one
/// open file several processes share, is refused by name.
public enum ProcFilePlan {
    /// The pid and the rest of `path` (after "/proc/PID", without the
    /// slash; "" for the directory itself), or nil for any other path.
    public static func parse(_ path: String) -> (pid: Int32, rest: String)? {
        guard path.hasPrefix("/proc/") else { return nil }
        let tail = path.dropFirst(6)
        let first = tail.prefix { $0 != "/" }
        guard !first.isEmpty, first.allSatisfy({ $0.isASCII && $0.isNumber }), let pid = Int32(first), pid > 0 else { return nil }
        return (pid, String(tail.dropFirst(first.count).drop { $0 == "/" }))
    }

    /// At checkpoint, once the tree is known: nil when the file is carried.
    public static func refusal(_ d: DescriptorFacts, procPid: Int32, tree: Set<Int32>, sharedAcrossProcesses: Bool) -> String? {
        guard let (_, rest) = parse(d.path) else { return nil }
        if !tree.contains(procPid) {
            return "\(d.who) is a file of process \(procPid) under /proc, outside the tree; ferry reopens /proc files of the processes it restores only: close it, or checkpoint process \(procPid) with the tree"
        }
        if rest == "task" || rest.hasPrefix("task/") {
            return "\(d.who) is a file of a thread under /proc/\(procPid)/task; ferry reopens /proc files of processes, not of threads: open /proc/\(procPid)/… instead, or close it before the checkpoint"
        }
        if sharedAcrossProcesses {
            return "\(d.who) is a /proc file whose open file several processes of the tree share; ferry reopens /proc files per process: open it in each process after the fork, or close it before the checkpoint"
        }
        return nil
    }

    /// The path that names, for the restored process whose pid in ferry's
    /// /proc is `live`, the file `path` named for `procPid`; nil when `path`
    /// is not that process's file (a damaged image).
    public static func livePath(_ path: String, procPid: Int32, live: Int32) -> String? {
        guard let (pid, rest) = parse(path), pid == procPid else { return nil }
        return rest.isEmpty ? "/proc/\(live)" : "/proc/\(live)/\(rest)"
    }
}
