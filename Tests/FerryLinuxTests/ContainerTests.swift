import Foundation
import Testing
import FerryContainer
import FerryTestSupport
@testable import FerryLinux

/// Containers: a real one (unshare'd namespaces, cgroups with limits made by
/// the test) checkpointed and restored, its limits measured after restore;
/// and the cgroup routing of a restore over fake hierarchies.
@Suite(.serialized, .enabled(if: getuid() == 0, "containers need root (cgroups, namespaces, ptrace)"))
struct ContainerTests {
    static let cg = "/sys/fs/cgroup"

    /// Every cgroup directory a run leaves: the test's own (`ferry-test/`) and the restore's leaves (`ferry/ct…`).
    static func leftovers() -> [String] {
        var found: [String] = []
        for c in ["cpu", "memory", "pids", "cpuset"] {
            if FileManager.default.fileExists(atPath: "\(cg)/\(c)/ferry-test") { found.append("\(cg)/\(c)/ferry-test") }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "\(cg)/\(c)/ferry")) ?? []
            found += entries.filter { $0.hasPrefix("ct") }.map { "\(cg)/\(c)/ferry/\($0)" }
        }
        return found
    }

    /// MODE init: the workload is the container's pid 1 (one clone3 makes every namespace);
    /// child: it is pid 2+ under a shell (ferry's init makes them, the workload joins with setns).
    @Test("container checkpoint → restore: namespaces, hostname, pid inside, cgroup limits in force",
          .enabled(if: HostFeatures.cgroupV1, "the test container's limits are made in cgroup v1 hierarchies (cpu, memory, pids, cpuset), which this host does not mount"),
          arguments: ["init", "child"])
    func realContainer(_ mode: String) throws {
        try WorkloadTests.buildWorkloads()
        let before = Set(Self.leftovers())
        let r = try WorkloadTests.run(["/bin/bash", WorkloadTests.workloads + "/run_container.sh", WorkloadTests.ferry, WorkloadTests.out, mode])
        #expect(r.output.hasPrefix("PASS"), "\(mode): \(r.output)")
        print(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
        let left = Set(Self.leftovers()).subtracting(before)
        #expect(left.isEmpty, "cgroups left behind: \(left.sorted())")
    }

    /// A process in ferry's own namespaces gets no CONTAINER record. (Run from
    /// a shell: a workload started with Foundation's Process and seized by
    /// ferry confused Process's child reaping here, and the test hung.)
    @Test("a plain process has no container record")
    func plainProcess() throws {
        try WorkloadTests.buildWorkloads()
        let script = """
            ctl=$(mktemp -d /tmp/ferry_ct_plain.XXXXXX); trap 'rm -rf "$ctl"' EXIT
            python3 "$1/launch.py" "$2/wl_container_check" "$ctl" & pid=$!
            for i in $(seq 100); do [ -e "$ctl/ready" ] && break; sleep 0.1; done
            "$3" checkpoint $pid -o "$ctl/image" --leave-running >/dev/null 2>&1 || { kill -9 $pid; echo "checkpoint failed"; exit 1; }
            "$3" inspect "$ctl/image" | grep '^container'
            touch "$ctl/stop"; wait $pid; echo "exit $?"
            """
        let r = try WorkloadTests.run(["/bin/bash", "-c", script, "plain", WorkloadTests.workloads, WorkloadTests.out, WorkloadTests.ferry])
        #expect(r.output == "container: none\nexit 0\n", "\(r.output)")
    }

    /// A descendant in namespaces of its own would be restored in the root's: refused, and the tree left running.
    @Test("a descendant in its own namespace is refused at checkpoint")
    func descendantNamespaceRefused() throws {
        let script = """
            d=$(mktemp -d /tmp/ferry_ct_ref.XXXXXX); trap 'rm -rf "$d"' EXIT
            python3 "$1/launch.py" /bin/sh -c 'unshare --uts sleep 30 & wait' & l=$!
            # The child has unshared and exec'd sleep (frozen mid-exec it is refused for another reason).
            for i in $(seq 300); do c=$(pgrep -P $l) && [ "$(readlink /proc/$c/ns/uts)" != "$(readlink /proc/self/ns/uts)" ] \
                && [ "$(cat /proc/$c/comm)" = sleep ] && break; sleep 0.1; done
            out=$("$2" checkpoint $l -o "$d/image" 2>&1); echo "rc $?"
            echo "$out" | grep -o 'runs in a uts namespace of its own' || echo "$out"
            kill -0 $l && echo alive
            kill $(pgrep -P $l); wait $l
            """
        let r = try WorkloadTests.run(["/bin/bash", "-c", script, "refuse", WorkloadTests.workloads, WorkloadTests.ferry])
        #expect(r.output == "rc 1\nruns in a uts namespace of its own\nalive\n", "\(r.output)")
    }

    static func spec() -> ContainerSpec {
        var s = ContainerSpec(name: "ct42")
        s.isolation.namespaces = [Namespace(.pid), Namespace(.uts), Namespace(.user)]
        s.isolation.hostname = "box"
        s.limits.cpu.quota = 50_000
        s.limits.cpu.period = 100_000
        s.limits.memory.limit = 256 << 20
        s.limits.pidsMax = 50
        return s
    }

    static func tempTree(_ dirs: [String]) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ferry_cgfake_\(getpid())_\(UInt32.random(in: 0...UInt32.max))").path
        for d in dirs { try FileManager.default.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true) }
        return root
    }

    static func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    /// Only a v2 hierarchy with cpu, memory and pids: the v2 plan's writes go there, controllers enabled on the way down.
    @Test("restore cgroups: v2-only host gets cpu.max, memory.max, pids.max")
    func v2Route() throws {
        let root = try Self.tempTree(["unified"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let mounts = CgroupMounts(v1: [:], v2: root + "/unified", v2Controllers: ["cpu", "memory", "pids"], createFiles: true)
        let c = try ContainerRestore.prepare(ContainerRecord(spec: Self.spec()), cgroups: mounts, leafName: "ct42-1")
        let leaf = root + "/unified/ferry/ct42-1"
        #expect(Self.read(leaf + "/cpu.max") == "50000 100000")
        #expect(Self.read(leaf + "/memory.max") == "\(256 << 20)")
        #expect(Self.read(leaf + "/pids.max") == "50")
        #expect(Self.read(root + "/unified/cgroup.subtree_control") == "+cpu +memory +pids")
        #expect(Self.read(root + "/unified/ferry/cgroup.subtree_control") == "+cpu +memory +pids")
        #expect(c.procsFiles == [leaf + "/cgroup.procs"])
        #expect(c.notes.contains { $0.contains("user") }, "\(c.notes)")
        c.remove()
    }

    /// A leaf name that is not one plain component is refused before any directory is made.
    @Test("restore cgroups: a leaf name with a path in it makes nothing", arguments: ["../escape-1", "a/b", ".."])
    func leafNameWithAPath(_ leaf: String) throws {
        let root = try Self.tempTree(["unified"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let mounts = CgroupMounts(v1: [:], v2: root + "/unified", v2Controllers: ["cpu", "memory", "pids"], createFiles: true)
        let e = #expect(throws: FerryError.self) {
            try ContainerRestore.prepare(ContainerRecord(spec: Self.spec()), cgroups: mounts, leafName: leaf)
        }
        #expect(e?.description.contains("cgroup name") == true, "\(String(describing: e))")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: root + "/unified")) == [], "nothing may be created")
        #expect(!FileManager.default.fileExists(atPath: root + "/escape-1"))
    }

    /// v1 for cpu and pids, nothing for memory: the memory limit is reported, not dropped.
    @Test("restore cgroups: v1 writes per hierarchy; a limit no hierarchy takes is a note")
    func v1RouteAndNote() throws {
        let root = try Self.tempTree(["cpu", "pids"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let mounts = CgroupMounts(v1: ["cpu": root + "/cpu", "cpuacct": root + "/cpu", "pids": root + "/pids"], v2: nil, v2Controllers: [], createFiles: true)
        let c = try ContainerRestore.prepare(ContainerRecord(spec: Self.spec()), cgroups: mounts, leafName: "ct42-1")
        #expect(Self.read(root + "/cpu/ferry/ct42-1/cpu.cfs_quota_us") == "50000")
        #expect(Self.read(root + "/cpu/ferry/ct42-1/cpu.cfs_period_us") == "100000")
        #expect(Self.read(root + "/pids/ferry/ct42-1/pids.max") == "50")
        #expect(c.procsFiles.sorted() == [root + "/cpu/ferry/ct42-1/cgroup.procs", root + "/pids/ferry/ct42-1/cgroup.procs"])
        #expect(c.notes.contains { $0.contains("not applied: memory/memory.limit_in_bytes") }, "\(c.notes)")
        #expect(c.namespaceFlags == 0x0400_0000, "only uts besides pid (user is not created)")
    }

    /// A limit that cannot be written (here: the limit file does not exist, as in a
    /// hierarchy without that knob): prepare fails and removes the cgroup it made.
    @Test("restore cgroups: a failed write removes the cgroups already made")
    func failureCleansUp() throws {
        let root = try Self.tempTree(["cpu"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let mounts = CgroupMounts(v1: ["cpu": root + "/cpu"], v2: nil, v2Controllers: [], createFiles: false)
        #expect(throws: SystemError.self) {
            _ = try ContainerRestore.prepare(ContainerRecord(spec: Self.spec()), cgroups: mounts, leafName: "ct42-1")
        }
        #expect(FileManager.default.fileExists(atPath: root + "/cpu/ferry"), "the shared parent stays")
        #expect(!FileManager.default.fileExists(atPath: root + "/cpu/ferry/ct42-1"))
    }

    /// The record round-trips and says what a restore will not re-create.
    @Test("the image notes namespaces a restore does not create")
    func restoreNotes() throws {
        var s = Self.spec()
        s.isolation.namespaces.append(Namespace(.network))
        let notes = ContainerState.restoreNotes(s)
        #expect(notes.contains { $0.field == "namespace user" && $0.kind == .notTranslated })
        #expect(notes.contains { $0.field == "namespace network" && $0.kind == .approximated })
        let bytes = try ContainerRecord(spec: s, notes: notes).encoded()
        #expect(try ContainerRecord.decode(bytes) == ContainerRecord(spec: s, notes: notes))
    }
}
