import Foundation
import Testing
import FerryTestSupport
@testable import FerryContainer

/// A fake filesystem root: /proc/{1,PID}, /sys/fs/cgroup/{v1 hierarchies, unified}.
private struct FakeTree {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    func write(_ path: String, _ text: String) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    func link(_ path: String, to target: String) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: url.path, withDestinationPath: target)
    }

    func namespaces(pid: Int, differing: Set<NamespaceKind>) throws {
        for kind in NamespaceKind.allCases {
            let inode = differing.contains(kind) && pid != 1 ? 5000 : 4000
            try link("proc/\(pid)/ns/\(kind.procName)", to: "\(kind.procName):[\(inode + kind.procName.count)]")
        }
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}

@Test func liveReadsAFakeContainer() throws {
    let tree = try FakeTree()
    defer { tree.remove() }
    try tree.namespaces(pid: 1, differing: [])
    try tree.namespaces(pid: 42, differing: [.pid, .mount, .uts, .user])
    try tree.write("proc/42/uid_map", "         0     100000      65536\n")
    try tree.write("proc/42/gid_map", "         0     100000      65536\n")
    let rootfs = tree.root.appendingPathComponent("rootfs").path
    try tree.write("rootfs/etc/hostname", "box\n")
    try tree.link("proc/42/root", to: rootfs)
    try tree.write("proc/42/cgroup", """
    9:name=systemd:/
    8:pids:/box
    4:memory:/box
    3:cpuset:/box
    1:cpu,cpuacct:/box
    0::/box
    """)
    try tree.write("sys/fs/cgroup/pids/box/pids.max", "64\n")
    try tree.write("sys/fs/cgroup/memory/box/memory.limit_in_bytes", "1073741824\n")
    try tree.write("sys/fs/cgroup/memory/box/memory.memsw.limit_in_bytes", "9223372036854771712\n")
    try tree.write("sys/fs/cgroup/cpuset/box/cpuset.cpus", "1\n")
    try tree.write("sys/fs/cgroup/cpuset/box/cpuset.mems", "0\n")
    try tree.write("sys/fs/cgroup/cpu,cpuacct/box/cpu.cfs_quota_us", "25000\n")
    try tree.write("sys/fs/cgroup/cpu,cpuacct/box/cpu.cfs_period_us", "100000\n")
    try tree.write("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n")
    try tree.write("sys/fs/cgroup/unified/box/hugetlb.2MB.max", "4194304\n")
    try tree.write("proc/42/limits", """
    Limit                     Soft Limit           Hard Limit           Units
    Max cpu time              unlimited            unlimited            seconds
    Max stack size            8388608              unlimited            bytes
    Max open files            1024                 524288               files
    """)

    let t = try LinuxLive(root: tree.root.path).read(pid: 42)
    #expect(t.output == ContainerSpec(
        isolation: Isolation(namespaces: [Namespace(.pid), Namespace(.mount), Namespace(.uts), Namespace(.user)],
                             hostname: "box", rootPath: rootfs,
                             uidMappings: [IDMapping(containerID: 0, hostID: 100_000, size: 65_536)],
                             gidMappings: [IDMapping(containerID: 0, hostID: 100_000, size: 65_536)]),
        limits: Limits(cpu: CPULimits(quota: 25_000, period: 100_000), cpuset: CPUSetLimits(cpus: CPUList([1]), mems: CPUList([0])),
                       memory: MemoryLimits(limit: 1 << 30), pidsMax: 64,
                       rlimits: [RLimit(type: "RLIMIT_STACK", soft: 8_388_608, hard: .max),
                                 RLimit(type: "RLIMIT_NOFILE", soft: 1024, hard: 524_288)])))
    #expect(t.notes.map(\.field) == ["cgroup v2 hugetlb.2MB.max", "cgroup v2 devices"])
}

@Test func liveErrorsNameWhatFailed() throws {
    let tree = try FakeTree()
    defer { tree.remove() }
    #expect { try LinuxLive(root: tree.root.path).read(pid: 7) } throws: { "\($0)".contains("no such process") }
    try tree.namespaces(pid: 7, differing: [.uts])
    #expect { try LinuxLive(root: tree.root.path).read(pid: 7) } throws: { "\($0)".contains("/proc/1/ns/") }
    try tree.namespaces(pid: 1, differing: [])
    try tree.write("proc/7/cgroup", "1:cpu:/x\n")
    try tree.write("sys/fs/cgroup/cpu/x/cpu.cfs_quota_us", "banana\n")
    #expect { try LinuxLive(root: tree.root.path).read(pid: 7) } throws: { "\($0)".hasPrefix("cgroup v1 cpu/cpu.cfs_quota_us:") }
}

private let isRoot = getuid() == 0

@Test func liveReadsThisTestProcess() throws {
    let pid = ProcessInfo.processInfo.processIdentifier
    let t = try LinuxLive().read(pid: pid)
    // Our own namespaces are pid 1's (or, where pid 1's are unreadable, compared with themselves).
    #expect(t.output.isolation.namespaces.isEmpty)
    #expect(t.notes.allSatisfy { $0.field == "/proc/1/ns" || $0.field.hasPrefix("cgroup v2") })
    // cpuset.cpus, when the cpuset hierarchy is mounted, is at least CPU 0.
    if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpuset/cpuset.cpus") {
        #expect(t.output.limits.cpuset.cpus?.cpus.isEmpty == false)
    }
    #expect(t.output.limits.rlimits.contains { $0.type == "RLIMIT_NOFILE" })
}

@Test(.enabled(if: isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")))
func liveSeesTheNamespacesOfAnUnsharedChild() throws {
    let child = try Child(["/usr/bin/unshare", "--uts", "--ipc", "sleep", "20"], stdout: .null, stderr: .null)
    defer { child.kill(); child.wait() }
    // unshare execs sleep in place; wait until its namespaces differ from ours.
    let pid = child.pid
    var kinds: [NamespaceKind] = []
    for _ in 0..<100 {
        kinds = try LinuxLive().read(pid: pid).output.isolation.namespaces.map(\.kind)
        if kinds == [.uts, .ipc] { break }
        usleep(20_000)
    }
    #expect(kinds == [.uts, .ipc])
}
