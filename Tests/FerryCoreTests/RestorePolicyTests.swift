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
