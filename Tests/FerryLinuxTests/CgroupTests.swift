import Foundation
import Testing
import FerryTestSupport

/// Cgroup membership through checkpoint and restore, with `wl_cgroup_member`
/// (Tests/Workloads/cgroup_member.c): a process, its child and one of its
/// threads in three different cgroups of a v1 hierarchy (the freezer one,
/// or a named hierarchy the workload mounts), and the v2 one where mounted.
/// Needs root (cgroup writes, mount, ptrace).
@Suite(.serialized, .enabled(if: getuid() == 0, "cgroup writes and checkpoint/restore need root"))
struct CgroupTests {
    static let ferry = TestPaths.ferry
    static let workloads = TestPaths.workloads
    static let out = TestPaths.out
    /// Removes the workload's cgroup directories (deepest first; a dead task may linger a moment).
    static let removeDirs = #"while read -r d; do for _ in $(seq 50); do rmdir "$d" 2>/dev/null || [ ! -d "$d" ] && break; sleep 0.1; done; done < "$ctl/cgroup_dirs""#

    static func run(_ args: [String], env: [String: String] = [:]) throws -> String {
        try TestPaths.buildWorkloads()
        return try Child.run(["/bin/bash", workloads + "/run_cr.sh", ferry, out] + args, env: env, stderr: .null).stdout
    }

    @Test("cgroups of processes and threads are kept", arguments: ["cgroup_member", "cgroup_member named"])
    func kept(_ spec: String) throws {
        let r = try Self.run(spec.split(separator: " ").map(String.init))
        #expect(r.hasPrefix("PASS"), "\(spec): \(r)")
    }

    @Test("missing cgroup directories are created again", arguments: ["cgroup_member", "cgroup_member named"])
    func created(_ spec: String) throws {
        let r = try Self.run(spec.split(separator: " ").map(String.init), env: ["BEFORE_RESTORE": Self.removeDirs])
        #expect(r.hasPrefix("PASS"), "\(spec): \(r)")
    }

    /// The named hierarchy is unmounted (and so gone) before the restore: one line naming it, nothing restored.
    @Test("a hierarchy not mounted here fails the restore with one line naming it")
    func unmounted() throws {
        let r = try Self.run(["cgroup_member", "named"], env: ["BEFORE_RESTORE": Self.removeDirs + #"; umount "$ctl/cg""#])
        #expect(r.hasPrefix("FAIL cgroup_member: restore"), "\(r)")
        #expect(r.contains("of cgroup hierarchy name=ferry_wl, which is not mounted here; mount it"), "\(r)")
        #expect(r.split(separator: "\n").count == 1, "\(r)")
    }
}
