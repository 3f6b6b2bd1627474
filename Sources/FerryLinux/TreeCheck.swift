#if os(Linux)
import Glibc
import FerryCore
import FerryImage

/// `ferry check PID`: what a checkpoint of the tree under PID would refuse,
/// found without freezing it (so a check of a running tree can miss a
/// change the next instant). Each descriptor and each process is checked on
/// its own, so every problem is listed, not only the first. State only an
/// injected call can read (securebits, membarrier registrations,
/// parent-death signal, capability sets against the uid) is not checked:
/// the checkpoint still refuses it.
public enum TreeCheck {
    /// One line per problem found; empty when none.
    public static func problems(root: Int32) -> [String] {
        var tree: [Int32] = [], queue = [root]
        while let pid = queue.first {
            queue.removeFirst()
            guard !tree.contains(pid) else { continue }
            tree.append(pid)
            queue += ProcFS.children(pid)
        }
        let members = Set(tree)
        var out: [String] = []
        func note(_ body: () throws -> Void) {
            do { try body() } catch { out.append("\(error)") }
        }
        var images: [ProcessImage] = []
        var maps: [(pid: Int32, maps: [ProcFS.MapEntry])] = []
        for pid in tree {
            guard let stat = try? ProcFS.stat(pid) else { out.append("cannot check \(pid): it is gone"); continue }
            var p = ProcessImage(pid: pid)
            p.comm = stat.comm
            p.ppid = Int32(stat.field(4)); p.pgid = Int32(stat.field(5)); p.sid = Int32(stat.field(6))
            p.root = (try? ProcFS.readlink("/proc/\(pid)/root")) ?? "/"
            p.threads = ((try? ProcFS.threads(pid)) ?? []).map { ThreadImage(tid: $0) }
            let fds = (try? ProcFS.fds(pid)) ?? []
            // Sockets are looked at by `sockets(root:)`: their dump would peek
            // at queues and put TCP connections into repair mode.
            let socketFDs = Set(fds.filter { ((try? ProcFS.readlink("/proc/\(pid)/fd/\($0)")) ?? "").hasPrefix("socket:") })
            for fd in fds where !socketFDs.contains(fd) {
                note {
                    // The tree runs: a pty's queues are not read.
                    let files = try FileState.dump(pid: pid, ignoring: Set(fds).subtracting([fd]), readPtys: false)
                    p.files += files
                    var one = p
                    one.files = files
                    try ProcFileState.refuse(one, tree: members)
                }
            }
            images.append(p)
            note {
                let entries = try ProcFS.maps(pid, withFlags: false)
                maps.append((pid, entries))
                let mappings = try entries.map { try MemoryState.mapping(from: $0, pid: pid) }
                try AttributeState.refuseUncarried(pid: pid, comm: p.comm, status: try ProcFS.status(pid), mappings: mappings,
                                                   root: !members.contains(p.ppid), threads: [])
            }
            note { try ProcessChecks.refuse(p, tree: members) }
        }
        out += sockets(root: root).filter(refusesSocket)
        if let why = SharedMemory.refusal(tree: maps) { out.append(why) }
        note { try AttributeState.refuseSharedResources(tree) }
        note { try SemUndoState.refuse(images) }
        note { _ = try FileTableState.sharers(images) }
        note { try JobControl.refuseOutsideLeaders(images, shellJob: false) }
        note { try Terminals.controllingTerminals(&images) }
        return out
    }

    /// One line per socket of the tree under `root`: what it is and whether
    /// a checkpoint carries it, read without changing it (queues are not read).
    public static func sockets(root: Int32) -> [String] {
        var lines = (try? UnixSocket.survey(pid: root)) ?? []
        for pid in ProcFS.tree(of: root) {
            lines += ((try? InetSocket.report(pid: pid)) ?? []).map { "process \(pid) \($0)" }
        }
        return lines
    }

    /// Whether a line of `sockets(root:)` says the socket is not carried.
    static func refusesSocket(_ line: String) -> Bool {
        let l = line.lowercased()
        return l.contains("not carried") || l.contains("cannot be read")
    }
}
#endif
