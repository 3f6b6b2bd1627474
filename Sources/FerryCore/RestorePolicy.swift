import FerryImage

// What this host's operator lets a restore create (`ferry serve` and
// `ferry restore` with --allow-uids / --allow-exe-prefix). An image says
// which executable runs, with which uids, and what its memory and registers
// hold; the restorer is root and creates exactly that. The policy is decided
// here, on the metadata alone, before anything is created. Paths are
// compared as components after the caller's resolver (realpath on the host)
// has followed symlinks and `..`; the decision itself touches no file.

/// Why an image may not be restored here under the operator's policy.
public enum PolicyRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// A process holds a uid (real, effective, saved or fs) outside --allow-uids.
    /// `peer`: the policy is the one for a non-root peer on a Unix socket.
    case uid(pid: Int32, comm: String, which: String, uid: UInt32, allowed: [UInt32], peer: UInt32? = nil)
    /// An executable (the image's or a file mapped executable) lies outside every --allow-exe-prefix.
    case executable(pid: Int32, comm: String, what: String, path: String, resolved: String?, prefixes: [String])
    /// An executable path that is not its own canonical form (a symlink or `..` on the way, or relative):
    /// what is checked must be what is executed.
    case notCanonical(pid: Int32, comm: String, what: String, path: String, resolved: String?)
    /// --allow-exe-prefix is set and a process names no executable.
    case noExecutable(pid: Int32, comm: String)
    /// Under --allow-uids, a file the image has open, mapped or as its
    /// executable or cwd that its own uid could not reach here (restore
    /// opens them as root, before the credentials are set).
    case fileAccess(pid: Int32, comm: String, uid: UInt32, what: String, path: String, access: FileAccess)
    /// Under --allow-uids, an attribute a process of that uid could not set
    /// itself (ferry, as root, would set it).
    case privilege(pid: Int32, comm: String, uid: UInt32, what: String)

    public var description: String {
        switch self {
        case let .uid(pid, comm, which, uid, _, peer?):
            return "cannot restore: process \(pid) (\(comm)) runs with \(which) uid \(uid); a peer connected as uid \(peer) may migrate only processes running as itself (and within --allow-uids)"
        case let .uid(pid, comm, which, uid, allowed, nil):
            return "cannot restore: process \(pid) (\(comm)) runs with \(which) uid \(uid), which --allow-uids \(allowed.map(String.init).joined(separator: ",")) does not allow"
        case let .executable(pid, comm, what, path, resolved, prefixes):
            let shown = resolved.map { $0 == path ? path : "\(path) (\($0) here)" } ?? path
            return "cannot restore: process \(pid) (\(comm)) \(what) \(shown), outside --allow-exe-prefix \(prefixes.joined(separator: ","))"
        case let .notCanonical(pid, comm, what, path, resolved):
            let why = resolved.map { "it resolves to \($0) here" } ?? "it does not exist here"
            return "cannot restore: process \(pid) (\(comm)) \(what) \(path), but \(why); --allow-exe-prefix checks only paths without symlinks or '..'"
        case let .noExecutable(pid, comm):
            return "cannot restore: process \(pid) (\(comm)) names no executable, so --allow-exe-prefix cannot be checked"
        case let .privilege(pid, comm, uid, what):
            return "cannot restore: process \(pid) (\(comm)) runs as uid \(uid) but has \(what), which only a privileged process may set; under --allow-uids a process gets only what its own uid could set"
        case let .fileAccess(pid, comm, uid, what, path, access):
            return "cannot restore: process \(pid) (\(comm)) runs as uid \(uid), which may not \(access) \(path) (\(what)) here; under --allow-uids a process gets only the files its own uid could open"
        }
    }
}

/// The operator's limits on what a restore may create.
public struct RestorePolicy: Sendable, Equatable {
    /// Uids a restored process may hold (real, effective, saved and fs); nil: any.
    public var allowedUIDs: Set<UInt32>?
    /// Directories every executable must lie in (absolute, compared by path
    /// component after resolving); empty: anywhere.
    public var exePrefixes: [String]
    /// Set by `forPeer`: the non-root uid the policy was narrowed to.
    public var peerUID: UInt32?

    public init(allowedUIDs: Set<UInt32>? = nil, exePrefixes: [String] = []) {
        self.allowedUIDs = allowedUIDs; self.exePrefixes = exePrefixes
    }

    /// No limits at all.
    public var isOpen: Bool { allowedUIDs == nil && exePrefixes.isEmpty }

    /// The policy for a migration from a peer running as `uid` (a Unix
    /// socket's SO_PEERCRED): root keeps the operator's policy; any other
    /// user may restore only processes running as itself, within it.
    public func forPeer(uid: UInt32?) -> RestorePolicy {
        guard let uid, uid != 0 else { return self }
        var p = self
        p.allowedUIDs = (allowedUIDs ?? [uid]).intersection([uid])
        p.peerUID = uid
        return p
    }

    /// The first rule `meta` breaks, or nil. `resolve` gives a path's
    /// canonical form on this host (every symlink followed, `.` and `..`
    /// gone), nil where it does not exist; `owner` a file's owner and mode
    /// (nil: not known, not checked).
    public func refusal(_ meta: ImageMetadata, resolve: (String) -> String?,
                        owner: (String) -> FileOwnership? = { _ in nil }) -> PolicyRefusal? {
        let prefixes = exePrefixes.map { resolve($0) ?? PathComponents.normalized($0) ?? $0 }
        for p in meta.processes {
            if let allowed = allowedUIDs {
                let c = p.credentials
                for (which, uid) in [("real", c.uid), ("effective", c.euid), ("saved", c.suid), ("fs", c.fsuid)] where !allowed.contains(uid) {
                    return .uid(pid: p.pid, comm: p.comm, which: which, uid: uid, allowed: allowed.sorted(), peer: peerUID)
                }
                if let r = Self.privilegedAttribute(p) ?? Self.inaccessibleFile(p, resolve: resolve, owner: owner) { return r }
            }
            guard !prefixes.isEmpty else { continue }
            guard let exe = p.exe else { return .noExecutable(pid: p.pid, comm: p.comm) }
            var executables = [("executes", exe.path)]
            for m in p.mappings where m.protection.contains(.exec) && (m.kind == .privateFile || m.kind == .sharedFile) {
                if let f = m.file, !executables.contains(where: { $0.1 == f.path }) { executables.append(("maps executable", f.path)) }
            }
            for (what, path) in executables {
                let resolved = resolve(path)
                guard let canonical = resolved, PathComponents.normalized(path) == path, canonical == path else {
                    return .notCanonical(pid: p.pid, comm: p.comm, what: what, path: path, resolved: resolved)
                }
                if !prefixes.contains(where: { PathComponents.isWithin(canonical, directory: $0) }) {
                    return .executable(pid: p.pid, comm: p.comm, what: what, path: path, resolved: canonical, prefixes: exePrefixes)
                }
            }
        }
        return nil
    }
}

/// What a process wants of a file.
public struct FileAccess: OptionSet, Sendable, Equatable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = FileAccess(rawValue: 4), write = FileAccess(rawValue: 2), execute = FileAccess(rawValue: 1)

    public var description: String {
        if self == .execute { return "execute or enter" }
        return [contains(.read) ? "read" : nil, contains(.write) ? "write" : nil].compactMap { $0 }.joined(separator: " and ")
    }
}

/// Owner, group and permission bits of a file on the target.
public struct FileOwnership: Sendable, Equatable {
    public var uid: UInt32, gid: UInt32
    /// The permission bits (st_mode & 0o777).
    public var mode: UInt32
    public init(uid: UInt32, gid: UInt32, mode: UInt32) { self.uid = uid; self.gid = gid; self.mode = mode }
}

extension RestorePolicy {
    /// The kernel's permission check for `c` (fs uid and gid, supplementary
    /// groups) on a file: owner, group or other bits. ACLs are not read, and
    /// a fs uid of 0 passes, as root's does.
    public static func permits(_ c: Credentials, _ f: FileOwnership, _ want: FileAccess) -> Bool {
        if c.fsuid == 0 { return true }
        let bits: UInt32
        if c.fsuid == f.uid { bits = f.mode >> 6 & 7 } else if c.fsgid == f.gid || c.groups.contains(f.gid) { bits = f.mode >> 3 & 7 } else { bits = f.mode & 7 }
        return bits & want.rawValue == want.rawValue
    }

    /// The first attribute of a process not running as root that ferry would
    /// set with root's privileges: real-time or deadline scheduling, a
    /// negative nice value, a negative OOM score adjustment, another loginuid.
    /// (RLIMIT_RTPRIO/RLIMIT_NICE could let the uid do some of it; they are
    /// not consulted, the refusal errs on the safe side.)
    static func privilegedAttribute(_ p: ProcessImage) -> PolicyRefusal? {
        let c = p.credentials
        guard c.euid != 0 else { return nil }
        for t in p.threads {
            guard let a = t.attributes else { continue }
            let policy = a.schedPolicy & ~0x4000_0000  // SCHED_RESET_ON_FORK
            if [1, 2, 6].contains(policy) {
                let name = [1: "SCHED_FIFO", 2: "SCHED_RR", 6: "SCHED_DEADLINE"][policy]!
                return .privilege(pid: p.pid, comm: p.comm, uid: c.euid, what: "real-time scheduling (\(name) \(a.schedPriority), thread \(t.tid))")
            }
            if a.nice < 0 { return .privilege(pid: p.pid, comm: p.comm, uid: c.euid, what: "nice \(a.nice) (thread \(t.tid))") }
        }
        if let a = p.attributes {
            if a.oomScoreAdj < 0 { return .privilege(pid: p.pid, comm: p.comm, uid: c.euid, what: "oom_score_adj \(a.oomScoreAdj)") }
            if a.loginUID != .max && a.loginUID != c.uid {
                return .privilege(pid: p.pid, comm: p.comm, uid: c.euid, what: "loginuid \(a.loginUID)")
            }
        }
        return nil
    }

    /// The first file `p` holds (descriptors by path, file mappings, its
    /// executable, its cwd) that its own credentials could not reach: every
    /// directory on the way must be enterable, the file itself allow the
    /// access. Files that do not exist are left to restore's own checks.
    static func inaccessibleFile(_ p: ProcessImage, resolve: (String) -> String?, owner: (String) -> FileOwnership?) -> PolicyRefusal? {
        let c = p.credentials
        guard c.fsuid != 0 else { return nil }
        var wanted: [(what: String, path: String, access: FileAccess)] = []
        if let exe = p.exe { wanted.append(("its executable", exe.path, .execute)) }
        wanted.append(("its cwd", p.cwd, .execute))
        // A /proc file is the restored process's own (its path names the old pid).
        for f in p.files where f.sharedWith == nil && f.procPid == nil && [.regular, .directory, .characterDevice, .fifo].contains(f.kind) && !f.path.isEmpty {
            let mode = f.flags & 3  // O_ACCMODE
            wanted.append(("fd \(f.fd)", f.path, mode == 0 ? .read : mode == 1 ? .write : [.read, .write]))
        }
        for m in p.mappings where m.kind == .privateFile || m.kind == .sharedFile {
            guard let file = m.file else { continue }
            let write = m.kind == .sharedFile && m.protection.contains(.write)
            wanted.append(("a mapping at 0x\(String(m.start, radix: 16))", file.path, write ? [.read, .write] : .read))
        }
        for (what, path, access) in wanted {
            guard let real = resolve(path) else { continue }
            var dir = ""
            for part in real.split(separator: "/").dropLast() {
                dir += "/" + part
                if let o = owner(dir), !permits(c, o, .execute) {
                    return .fileAccess(pid: p.pid, comm: p.comm, uid: c.fsuid, what: what, path: path, access: .execute)
                }
            }
            if let o = owner(real), !permits(c, o, access) {
                return .fileAccess(pid: p.pid, comm: p.comm, uid: c.fsuid, what: what, path: path, access: access)
            }
        }
        return nil
    }
}

/// Absolute paths as lists of components.
public enum PathComponents {
    /// `path` with empty and `.` components dropped and each `..` taking the
    /// component before it (lexically: right only where nothing on the way is
    /// a symlink); nil for a relative path.
    public static func normalized(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return nil }
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." { _ = parts.popLast(); continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Whether `path` is `directory` or lies below it, component by component
    /// (/usr/bin2 is not within /usr/bin). Both are taken lexically as given.
    public static func isWithin(_ path: String, directory: String) -> Bool {
        guard let p = normalized(path), let d = normalized(directory) else { return false }
        let pc = p.split(separator: "/"), dc = d.split(separator: "/")
        return pc.count >= dc.count && Array(pc.prefix(dc.count)) == dc
    }
}
