#if os(Linux)
import Glibc
import FerryCore
import FerryImage

/// fds on files of a process under /proc (ProcFilePlan decides): recorded
/// at checkpoint with the pid of the process they belong to (`procPid`;
/// refused once the tree is known when that process is outside it, for a
/// thread's files, or when several processes share the open file), and on
/// restore reopened by path, like a regular file or directory with its
/// flags and position, under the pid the restored process has in ferry's /proc.
enum ProcFileState {
    /// At checkpoint, after the tree's shared open files are marked.
    static func checkTree(_ processes: [ProcessImage]) throws {
        let tree = Set(processes.map(\.pid))
        for p in processes { try refuse(p, tree: tree) }
    }

    /// The /proc files of `p` a checkpoint of the tree `tree` refuses (also `ferry check`).
    static func refuse(_ p: ProcessImage, tree: Set<Int32>) throws {
        for f in p.files where f.sharedWith == nil {
            guard let pid = f.procPid else { continue }
            let d = DescriptorFacts(pid: p.pid, fd: f.fd, path: f.path)
            if let why = ProcFilePlan.refusal(d, procPid: pid, tree: tree, sharedAcrossProcesses: f.treeShareID != nil) {
                throw FerryError(why)
            }
        }
    }

    /// `files` with each /proc file's path naming the restored process
    /// (`live`: image pid → pid in ferry's /proc), before they are opened.
    static func livePaths(_ files: [FileDescriptorImage], live: [Int32: Int32], of pid: Int32) throws -> [FileDescriptorImage] {
        try files.map { f in
            guard let old = f.procPid else { return f }
            guard let now = live[old], let path = ProcFilePlan.livePath(f.path, procPid: old, live: now) else {
                throw FerryError("cannot restore fd \(f.fd) of process \(pid): it is \(f.path), a /proc file of process \(old), which the image does not restore")
            }
            var g = f
            g.path = path
            return g
        }
    }
}
#endif
