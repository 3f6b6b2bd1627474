import Testing
import FerryImage
@testable import FerryCore

/// A host's filesystem as a resolver sees it: symlinks (absolute targets) and existing paths.
struct FakeFS {
    var links: [String: String] = [:]
    var files: Set<String> = []

    /// realpath: each component's symlink followed, `..` taken after that.
    func resolve(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return nil }
        var out: [String] = []
        var pending = path.split(separator: "/").map(String.init)
        var hops = 0
        while !pending.isEmpty {
            let c = pending.removeFirst()
            if c == "." || c.isEmpty { continue }
            if c == ".." { _ = out.popLast(); continue }
            let here = "/" + (out + [c]).joined(separator: "/")
            if let target = links[here] {
                hops += 1
                if hops > 40 { return nil }
                out = []
                pending = target.split(separator: "/").map(String.init) + pending
                continue
            }
            out.append(c)
        }
        let result = "/" + out.joined(separator: "/")
        return files.contains(result) || files.contains(where: { $0.hasPrefix(result + "/") }) ? result : nil
    }
}

func process(pid: Int32 = 10, uids: (UInt32, UInt32, UInt32, UInt32) = (1000, 1000, 1000, 1000), exe: String? = "/usr/bin/app",
             libraries: [String] = [], data: [String] = []) -> ProcessImage {
    var p = ProcessImage(pid: pid, comm: "app",
                         credentials: Credentials(uid: uids.0, euid: uids.1, suid: uids.2, fsuid: uids.3, gid: 1000, egid: 1000, sgid: 1000, fsgid: 1000),
                         exe: exe.map { FileIdentity(path: $0, size: 1, mtimeNs: 0) })
    var at: UInt64 = 0x7000_0000
    for (path, prot) in libraries.map({ ($0, Protection([.read, .exec])) }) + data.map({ ($0, Protection([.read])) }) {
        p.mappings.append(Mapping(start: at, end: at + 4096, protection: prot, kind: .privateFile, file: FileIdentity(path: path, size: 1, mtimeNs: 0)))
        at += 4096
    }
    return p
}

func metadata(_ processes: ProcessImage...) -> ImageMetadata {
    ImageMetadata(source: SourceHost(os: "linux", kernelRelease: "6.18", cpu: CPUFeatures(xcr0: 7, xsaveSize: 832, flags: [])),
                  processes: processes)
}

let fs = FakeFS(links: ["/bin": "/usr/bin", "/tmp/evil/link": "/usr/bin/app", "/opt/app": "/srv/app"],
                files: ["/usr/bin/app", "/usr/bin2/app", "/usr/lib/libc.so.6", "/tmp/evil/x", "/srv/app/run", "/etc/data"])

@Suite struct RestorePolicyTests {
    @Test("no options: everything passes")
    func open() {
        let p = RestorePolicy()
        #expect(p.isOpen)
        #expect(p.refusal(metadata(process(uids: (0, 0, 0, 0)), process(pid: 11, exe: "/tmp/evil/x")), resolve: fs.resolve) == nil)
    }

    @Test("--allow-uids: each of real, effective, saved and fs uid is checked, the refusal names process, uid and option",
          arguments: [0, 1, 2, 3])
    func uids(_ which: Int) {
        var u: [UInt32] = [1000, 1000, 1000, 1000]
        u[which] = 0
        let p = RestorePolicy(allowedUIDs: [1000, 1001])
        let r = p.refusal(metadata(process(), process(pid: 42, uids: (u[0], u[1], u[2], u[3]))), resolve: fs.resolve)
        let name = ["real", "effective", "saved", "fs"][which]
        #expect(r == .uid(pid: 42, comm: "app", which: name, uid: 0, allowed: [1000, 1001]))
        #expect(r?.description == "cannot restore: process 42 (app) runs with \(name) uid 0, which --allow-uids 1000,1001 does not allow")
        #expect(p.refusal(metadata(process()), resolve: fs.resolve) == nil)
    }

    @Test("--allow-exe-prefix: inside passes, outside and sibling-prefix strings are refused")
    func exePrefix() {
        let p = RestorePolicy(exePrefixes: ["/usr/bin"])
        #expect(p.refusal(metadata(process()), resolve: fs.resolve) == nil)
        let sibling = p.refusal(metadata(process(exe: "/usr/bin2/app")), resolve: fs.resolve)
        #expect(sibling == .executable(pid: 10, comm: "app", what: "executes", path: "/usr/bin2/app", resolved: "/usr/bin2/app", prefixes: ["/usr/bin"]))
        #expect(sibling?.description.contains("outside --allow-exe-prefix /usr/bin") == true)
        #expect(p.refusal(metadata(process(exe: "/tmp/evil/x")), resolve: fs.resolve) != nil)
    }

    @Test("a prefix that is a symlink is resolved (/bin → /usr/bin); the executable's path must be canonical")
    func symlinks() {
        let viaLink = RestorePolicy(exePrefixes: ["/bin"])
        #expect(viaLink.refusal(metadata(process()), resolve: fs.resolve) == nil)
        let p = RestorePolicy(exePrefixes: ["/usr/bin"])
        // A symlink in an executable's path could be swapped after the check.
        let linked = p.refusal(metadata(process(exe: "/tmp/evil/link")), resolve: fs.resolve)
        #expect(linked == .notCanonical(pid: 10, comm: "app", what: "executes", path: "/tmp/evil/link", resolved: "/usr/bin/app"))
        // `..` is not a way out of, or into, the prefix.
        #expect(p.refusal(metadata(process(exe: "/usr/bin/../../tmp/evil/x")), resolve: fs.resolve) != nil)
        #expect(p.refusal(metadata(process(exe: "/tmp/evil/../../usr/bin/app")), resolve: fs.resolve)
                == .notCanonical(pid: 10, comm: "app", what: "executes", path: "/tmp/evil/../../usr/bin/app", resolved: "/usr/bin/app"))
        #expect(p.refusal(metadata(process(exe: "usr/bin/app")), resolve: fs.resolve) != nil)
        #expect(p.refusal(metadata(process(exe: "/usr/bin/missing")), resolve: fs.resolve)
                == .notCanonical(pid: 10, comm: "app", what: "executes", path: "/usr/bin/missing", resolved: nil))
        // A prefix reached through a symlinked directory (/opt/app → /srv/app).
        #expect(RestorePolicy(exePrefixes: ["/opt/app"]).refusal(metadata(process(exe: "/srv/app/run")), resolve: fs.resolve) == nil)
    }

    @Test("file mappings that are executable must lie inside a prefix too; data files need not")
    func mappedExecutables() {
        let p = RestorePolicy(exePrefixes: ["/usr/bin", "/usr/lib"])
        #expect(p.refusal(metadata(process(libraries: ["/usr/lib/libc.so.6"], data: ["/etc/data"])), resolve: fs.resolve) == nil)
        let r = p.refusal(metadata(process(libraries: ["/usr/lib/libc.so.6", "/tmp/evil/x"])), resolve: fs.resolve)
        #expect(r == .executable(pid: 10, comm: "app", what: "maps executable", path: "/tmp/evil/x", resolved: "/tmp/evil/x",
                                 prefixes: ["/usr/bin", "/usr/lib"]))
        #expect(p.refusal(metadata(process(exe: nil)), resolve: fs.resolve) == .noExecutable(pid: 10, comm: "app"))
    }

    @Test("a non-root peer may restore only processes of its own uid; root keeps the operator's policy")
    func peerPolicy() {
        let open = RestorePolicy()
        #expect(open.forPeer(uid: nil) == open && open.forPeer(uid: 0) == open)
        #expect(open.forPeer(uid: 1000).allowedUIDs == [1000])
        #expect(RestorePolicy(allowedUIDs: [1000, 1001]).forPeer(uid: 1001).allowedUIDs == [1001])
        #expect(RestorePolicy(allowedUIDs: [1000]).forPeer(uid: 1001).allowedUIDs == [])
        let r = open.forPeer(uid: 1000).refusal(metadata(process(uids: (1000, 0, 1000, 1000))), resolve: fs.resolve)
        #expect(r == .uid(pid: 10, comm: "app", which: "effective", uid: 0, allowed: [1000], peer: 1000))
        #expect(r?.description.contains("a peer connected as uid 1000 may migrate only processes running as itself") == true)
    }

    @Test("paths compare by component")
    func components() {
        #expect(PathComponents.isWithin("/usr/bin/x", directory: "/usr/bin"))
        #expect(PathComponents.isWithin("/usr/bin", directory: "/usr/bin/"))
        #expect(!PathComponents.isWithin("/usr/bin2/x", directory: "/usr/bin"))
        #expect(PathComponents.isWithin("/anything", directory: "/"))
        #expect(!PathComponents.isWithin("relative/x", directory: "/"))
        #expect(PathComponents.normalized("/a/./b//c/../d") == "/a/b/d")
        #expect(PathComponents.normalized("/../..") == "/")
    }
}

/// Owners and modes of the fake host's files.
let owners: [String: FileOwnership] = [
    "/usr": FileOwnership(uid: 0, gid: 0, mode: 0o755), "/usr/bin": FileOwnership(uid: 0, gid: 0, mode: 0o755),
    "/usr/bin/app": FileOwnership(uid: 0, gid: 0, mode: 0o755), "/usr/lib": FileOwnership(uid: 0, gid: 0, mode: 0o755),
    "/usr/lib/libc.so.6": FileOwnership(uid: 0, gid: 0, mode: 0o644),
    "/etc": FileOwnership(uid: 0, gid: 0, mode: 0o755), "/etc/data": FileOwnership(uid: 0, gid: 0, mode: 0o644),
    "/etc/shadow": FileOwnership(uid: 0, gid: 42, mode: 0o640), "/root": FileOwnership(uid: 0, gid: 0, mode: 0o700),
    "/root/notes": FileOwnership(uid: 0, gid: 0, mode: 0o644), "/srv": FileOwnership(uid: 0, gid: 0, mode: 0o755),
    "/srv/app": FileOwnership(uid: 1000, gid: 1000, mode: 0o700), "/srv/app/run": FileOwnership(uid: 1000, gid: 1000, mode: 0o700),
]
let hostFiles = FakeFS(links: fs.links, files: fs.files.union(["/etc/shadow", "/root/notes"]))

func withFD(_ p: ProcessImage, _ path: String, flags: Int32) -> ProcessImage {
    var p = p
    p.files.append(FileDescriptorImage(fd: 3, kind: .regular, flags: flags, path: path))
    return p
}

@Suite struct FileAccessPolicyTests {
    let policy = RestorePolicy(allowedUIDs: [1000])

    func refusal(_ p: ProcessImage) -> PolicyRefusal? {
        policy.refusal(metadata(p), resolve: hostFiles.resolve, owner: { owners[$0] })
    }

    @Test("under --allow-uids a descriptor is reopened only where the process's own uid could open it")
    func descriptors() {
        #expect(refusal(withFD(process(), "/etc/data", flags: 0)) == nil)
        #expect(refusal(withFD(process(), "/etc/data", flags: 2))
                == .fileAccess(pid: 10, comm: "app", uid: 1000, what: "fd 3", path: "/etc/data", access: [.read, .write]))
        let shadow = refusal(withFD(process(), "/etc/shadow", flags: 0))
        #expect(shadow == .fileAccess(pid: 10, comm: "app", uid: 1000, what: "fd 3", path: "/etc/shadow", access: .read))
        #expect(shadow?.description == "cannot restore: process 10 (app) runs as uid 1000, which may not read /etc/shadow (fd 3) here; under --allow-uids a process gets only the files its own uid could open")
        // A directory on the way that the uid cannot enter.
        #expect(refusal(withFD(process(), "/root/notes", flags: 0))
                == .fileAccess(pid: 10, comm: "app", uid: 1000, what: "fd 3", path: "/root/notes", access: .execute))
        // Group membership counts.
        var member = process()
        member.credentials.groups = [42]
        #expect(refusal(withFD(member, "/etc/shadow", flags: 0)) == nil)
    }

    @Test("mappings, executable and cwd are checked too; the uid's own files pass")
    func mappingsExeCwd() {
        #expect(refusal(process(libraries: ["/usr/lib/libc.so.6"], data: ["/etc/data"])) == nil)
        #expect(refusal(process(data: ["/etc/shadow"]))?.description.contains("may not read /etc/shadow (a mapping at 0x") == true)
        #expect(refusal(process(exe: "/srv/app/run")) == nil)
        var p = process()
        p.cwd = "/root"
        #expect(refusal(p) == .fileAccess(pid: 10, comm: "app", uid: 1000, what: "its cwd", path: "/root", access: .execute))
    }

    @Test("without --allow-uids, or for a process running as root, files are not checked here")
    func notChecked() {
        let root = withFD(process(uids: (0, 0, 0, 0)), "/etc/shadow", flags: 2)
        #expect(RestorePolicy(allowedUIDs: [0]).refusal(metadata(root), resolve: hostFiles.resolve, owner: { owners[$0] }) == nil)
        #expect(RestorePolicy().refusal(metadata(withFD(process(), "/etc/shadow", flags: 2)), resolve: hostFiles.resolve, owner: { owners[$0] }) == nil)
    }

    @Test("the permission bits: owner, then group, then others")
    func permits() {
        let c = Credentials(uid: 1000, euid: 1000, suid: 1000, fsuid: 1000, gid: 100, egid: 100, sgid: 100, fsgid: 100, groups: [7])
        #expect(RestorePolicy.permits(c, FileOwnership(uid: 1000, gid: 0, mode: 0o600), [.read, .write]))
        #expect(!RestorePolicy.permits(c, FileOwnership(uid: 1000, gid: 100, mode: 0o077), .read), "the owner's bits decide for the owner")
        #expect(RestorePolicy.permits(c, FileOwnership(uid: 0, gid: 100, mode: 0o040), .read))
        #expect(RestorePolicy.permits(c, FileOwnership(uid: 0, gid: 7, mode: 0o020), .write))
        #expect(!RestorePolicy.permits(c, FileOwnership(uid: 0, gid: 7, mode: 0o604), .read), "the group's bits decide for a member")
        #expect(RestorePolicy.permits(c, FileOwnership(uid: 0, gid: 0, mode: 0o001), .execute))
    }
}

@Suite struct PrivilegedAttributeTests {
    @Test("under --allow-uids a non-root process may not bring real-time scheduling, negative nice or OOM adjustment, or another loginuid")
    func refused() {
        let policy = RestorePolicy(allowedUIDs: [1000])
        func check(_ change: (inout ProcessImage) -> Void) -> PolicyRefusal? {
            var p = process()
            p.threads = [ThreadImage(tid: 10)]
            p.threads[0].attributes = ThreadAttributes()
            p.attributes = ProcessAttributes(loginUID: 1000)
            change(&p)
            return policy.refusal(metadata(p), resolve: fs.resolve)
        }
        #expect(check { _ in } == nil)
        let rt = check { $0.threads[0].attributes?.schedPolicy = 1 | 0x4000_0000; $0.threads[0].attributes?.schedPriority = 50 }
        #expect(rt == .privilege(pid: 10, comm: "app", uid: 1000, what: "real-time scheduling (SCHED_FIFO 50, thread 10)"))
        #expect(rt?.description.contains("only a privileged process may set") == true)
        #expect(check { $0.threads[0].attributes?.nice = -5 } == .privilege(pid: 10, comm: "app", uid: 1000, what: "nice -5 (thread 10)"))
        #expect(check { $0.threads[0].attributes?.nice = 5 } == nil)
        #expect(check { $0.attributes?.oomScoreAdj = -500 } == .privilege(pid: 10, comm: "app", uid: 1000, what: "oom_score_adj -500"))
        #expect(check { $0.attributes?.loginUID = 0 } == .privilege(pid: 10, comm: "app", uid: 1000, what: "loginuid 0"))
        #expect(check { $0.attributes?.loginUID = .max } == nil)
    }
}
