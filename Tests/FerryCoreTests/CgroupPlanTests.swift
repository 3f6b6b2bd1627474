import FerryCore
import FerryImage
import Testing

/// /proc/PID/cgroup and mountinfo → what a checkpoint records and which
/// cgroup directories a restore writes each task into.
struct CgroupPlanTests {
    static let known: Set<String> = ["cpu", "cpuacct", "cpuset", "memory", "freezer", "pids"]
    static let mountinfo = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpuacct,cpu
        37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
        52 40 0:37 /ct /srv/my\\040ct rw,relatime - cgroup cgroup rw,xattr,name=systemd
        60 23 0:50 / /tmp/x rw - ext4 /dev/sda1 rw
        """
    static var mounts: [CgroupPlan.Mount] { CgroupPlan.parseMountinfo(mountinfo, known: known) }
    static let restorer = CgroupPlan.parseMembership("""
        4:cpu,cpuacct:/
        3:freezer:/
        2:name=systemd:/user.slice
        0::/
        """)

    func m(_ c: String, _ p: String, own: Bool? = nil) -> CgroupMembership { CgroupMembership(controllers: c, path: p, checkpointerOwn: own) }

    @Test func membershipLinesAreParsedWithSortedControllers() {
        let parsed = CgroupPlan.parseMembership("5:cpuacct,cpu:/a:b\n3:name=systemd:/\n0::/x\nbroken\n")
        #expect(parsed == [m("cpu,cpuacct", "/a:b"), m("name=systemd", "/"), m("", "/x")])
    }

    @Test func cgroupMountsKeepControllersOnlyAndUnescapePaths() {
        #expect(Self.mounts == [
            CgroupPlan.Mount(controllers: "cpu,cpuacct", point: "/sys/fs/cgroup/cpu,cpuacct"),
            CgroupPlan.Mount(controllers: "freezer", point: "/sys/fs/cgroup/freezer"),
            CgroupPlan.Mount(controllers: "name=systemd", point: "/sys/fs/cgroup/systemd"),
            CgroupPlan.Mount(controllers: "", point: "/sys/fs/cgroup/unified"),
            CgroupPlan.Mount(controllers: "name=systemd", point: "/srv/my ct", root: "/ct"),
        ])
    }

    @Test func checkpointMarksTheCheckpointersOwnCgroups() {
        let task = [m("freezer", "/"), m("name=systemd", "/app"), m("", "/")]
        #expect(CgroupPlan.record(task: task, own: Self.restorer) == [m("freezer", "/", own: true), m("name=systemd", "/app"), m("", "/", own: true)])
        #expect(CgroupPlan.threadDifferences(thread: task, process: task) == nil)
        #expect(CgroupPlan.threadDifferences(thread: [m("freezer", "/t"), m("", "/")], process: task) == [m("freezer", "/t")])
    }

    @Test func onlyCgroupsThatDifferFromTheInheritedOneAreWritten() throws {
        let tasks = [
            CgroupPlan.Task(pid: 10, ppid: 1, cgroups: [m("freezer", "/a"), m("name=systemd", "/app"), m("", "/", own: true)]),
            // Same as its parent: inherited, nothing written.
            CgroupPlan.Task(pid: 11, ppid: 10, cgroups: [m("freezer", "/a"), m("name=systemd", "/app"), m("", "/", own: true)]),
            // Back in the checkpointer's own cgroup while its parent is elsewhere: moved to the restorer's.
            CgroupPlan.Task(pid: 12, ppid: 10, cgroups: [m("freezer", "/a/b"), m("name=systemd", "/old-ferry", own: true)],
                            threads: [(13, [m("freezer", "/t")])]),
        ]
        let plan = try CgroupPlan.placement(tasks, restorer: Self.restorer, mounts: Self.mounts).get()
        #expect(plan.processes[10] == [
            CgroupPlan.Move(hierarchy: "freezer", path: "/a", directory: "/sys/fs/cgroup/freezer/a", file: "cgroup.procs"),
            CgroupPlan.Move(hierarchy: "name=systemd", path: "/app", directory: "/sys/fs/cgroup/systemd/app", file: "cgroup.procs"),
        ])
        #expect(plan.processes[11] == [])
        #expect(plan.processes[12] == [
            CgroupPlan.Move(hierarchy: "freezer", path: "/a/b", directory: "/sys/fs/cgroup/freezer/a/b", file: "cgroup.procs"),
            CgroupPlan.Move(hierarchy: "name=systemd", path: "/user.slice", directory: "/sys/fs/cgroup/systemd/user.slice", file: "cgroup.procs"),
        ])
        #expect(plan.threads[13] == [CgroupPlan.Move(hierarchy: "freezer", path: "/t", directory: "/sys/fs/cgroup/freezer/t", file: "tasks")])
    }

    @Test func aTreeInTheCheckpointersCgroupsNeedsNoWrite() throws {
        let tasks = [CgroupPlan.Task(pid: 10, ppid: 1, cgroups: [m("freezer", "/elsewhere", own: true), m("name=gone", "/", own: true)])]
        #expect(try CgroupPlan.placement(tasks, restorer: Self.restorer, mounts: Self.mounts).get().isEmpty)
    }

    @Test func aHierarchyNotMountedHereIsRefusedByName() {
        let tasks = [CgroupPlan.Task(pid: 10, ppid: 1, cgroups: [m("name=zdtmtst", "/subcg00")])]
        guard case .failure(let r) = CgroupPlan.placement(tasks, restorer: Self.restorer, mounts: Self.mounts) else {
            Issue.record("accepted"); return
        }
        #expect(r.message == "cannot restore process 10: it was in cgroup /subcg00 of cgroup hierarchy name=zdtmtst, which is not mounted here; mount it (mount -t cgroup -o none,name=zdtmtst none DIR) and restore again")
        #expect(!r.message.contains("\n"))
    }

    @Test func aMountOfPartOfTheHierarchyServesOnlyPathsBelowIt() throws {
        let only = Self.mounts.filter { $0.root == "/ct" }
        let inside = [CgroupPlan.Task(pid: 10, ppid: 1, cgroups: [m("name=systemd", "/ct/app")])]
        #expect(try CgroupPlan.placement(inside, restorer: Self.restorer, mounts: only).get().processes[10]?.first?.directory == "/srv/my ct/app")
        let outside = [CgroupPlan.Task(pid: 10, ppid: 1, cgroups: [m("name=systemd", "/other")])]
        guard case .failure(let r) = CgroupPlan.placement(outside, restorer: Self.restorer, mounts: only) else { Issue.record("accepted"); return }
        #expect(r.message.contains("mounted here only from /ct"), "\(r.message)")
    }

    @Test func hierarchiesAContainerPlacesAreLeftToIt() throws {
        let tasks = [CgroupPlan.Task(pid: 10, ppid: 1, cgroups: [m("cpu,cpuacct", "/ct1"), m("freezer", "/a")])]
        let plan = try CgroupPlan.placement(tasks, restorer: Self.restorer, mounts: Self.mounts,
                                            skipping: ["/sys/fs/cgroup/cpu,cpuacct"]).get()
        #expect(plan.processes[10]?.map(\.hierarchy) == ["freezer"])
    }

    @Test func aV2ThreadGoesThroughCgroupThreads() throws {
        let tasks = [CgroupPlan.Task(pid: 10, ppid: 1, cgroups: [m("", "/svc")], threads: [(11, [m("", "/svc/worker")])])]
        let plan = try CgroupPlan.placement(tasks, restorer: Self.restorer, mounts: Self.mounts).get()
        #expect(plan.processes[10] == [CgroupPlan.Move(hierarchy: "cgroup2", path: "/svc", directory: "/sys/fs/cgroup/unified/svc", file: "cgroup.procs")])
        #expect(plan.threads[11]?.first?.file == "cgroup.threads")
    }
}
