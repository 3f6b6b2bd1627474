#if os(Linux)
import Glibc
import FerryImage

/// A working directory removed while a process kept it (zdtm cwd01). The
/// kernel shows it as "PATH (deleted)" and its link count is 0. The
/// checkpoint records PATH with the directory's mode and owner; the restore
/// creates PATH (it must not exist, its parent must), lets every process
/// that had it enter it, then removes it, so the processes hold a deleted
/// directory of the same name again.
enum DeletedDirectoryState {
    static let suffix = " (deleted)"

    /// The working directory of `pid`, and its attributes when it was removed.
    static func dump(pid: Int32) throws -> (path: String, deleted: DeletedDirectory?) {
        let link = try ProcFS.readlink("/proc/\(pid)/cwd")
        var st = stat()
        guard stat("/proc/\(pid)/cwd", &st) == 0 else {
            throw SystemError("stat(/proc/\(pid)/cwd)", errno: errno, "reading the working directory of \(pid)")
        }
        guard link.hasSuffix(suffix) else { return (link, nil) }
        // A /proc or /sys directory (of an exited process, say) cannot be made again.
        let virtual = ["/proc", "/sys"].contains { mount in
            var m = stat()
            return link.hasPrefix(mount + "/") || (stat(mount, &m) == 0 && m.st_dev == st.st_dev)
        }
        guard st.st_nlink == 0, !virtual, link.count > suffix.count + 1 else {
            let comm = (try? ProcFS.stat(pid))?.comm ?? "?"
            throw FerryError("cannot checkpoint process \(pid) (\(comm)): its working directory \(link) was removed and is not a plain directory ferry can create again (a /proc or /sys directory of an exited process?); let it chdir elsewhere first")
        }
        return (String(link.dropLast(suffix.count)), DeletedDirectory(mode: st.st_mode & 0o7777, uid: st.st_uid, gid: st.st_gid))
    }
}

/// The deleted working directories of one restore, present only while its
/// processes enter them.
final class GhostDirectories {
    private var created: [String] = []

    /// Refuses, before anything is created, a deleted working directory whose
    /// path exists here or whose parent does not.
    static func preflight(_ processes: [ProcessImage]) throws {
        for p in processes {
            guard p.cwdDeleted != nil else { continue }
            var st = stat()
            if lstat(p.cwd, &st) == 0 {
                throw FerryError("cannot restore process \(p.pid): its working directory \(p.cwd) was deleted at the checkpoint, and that path exists here; remove it (ferry re-creates the directory while the process enters it)")
            }
            let parent = String(p.cwd[..<(p.cwd.lastIndex(of: "/") ?? p.cwd.startIndex)])
            guard stat(parent.isEmpty ? "/" : parent, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                throw FerryError("cannot restore process \(p.pid): its working directory \(p.cwd) was deleted at the checkpoint, and its parent \(parent) is not a directory here")
            }
        }
    }

    /// Creates `p`'s deleted working directory if it has one and no process
    /// of this restore made it yet.
    func prepare(_ p: ProcessImage) throws {
        guard let d = p.cwdDeleted, !created.contains(p.cwd) else { return }
        guard mkdir(p.cwd, 0o700) == 0 else {
            throw SystemError("mkdir(\(p.cwd))", errno: errno, "re-creating the deleted working directory of process \(p.pid)")
        }
        created.append(p.cwd)
        guard chown(p.cwd, d.uid, d.gid) == 0, chmod(p.cwd, mode_t(d.mode)) == 0 else {
            throw SystemError("chown/chmod(\(p.cwd))", errno: errno, "giving the re-created working directory of process \(p.pid) its owner and mode")
        }
    }

    /// Removes what `prepare` created (every process has entered it, or the restore failed).
    func removeAll() {
        for path in created.reversed() { rmdir(path) }
        created = []
    }
}
#endif
