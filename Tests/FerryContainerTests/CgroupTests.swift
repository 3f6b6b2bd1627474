import Foundation
import Testing
@testable import FerryContainer

private let v1Files: [String: [String: String]] = [
    "cpu": ["cpu.cfs_quota_us": "50000\n", "cpu.cfs_period_us": "100000\n", "cpu.shares": "512\n"],
    "cpuset": ["cpuset.cpus": "0-3,6\n", "cpuset.mems": "0\n"],
    "memory": ["memory.limit_in_bytes": "536870912\n", "memory.memsw.limit_in_bytes": "805306368\n",
               "memory.soft_limit_in_bytes": "134217728\n"],
    "pids": ["pids.max": "100\n"],
    "blkio": ["blkio.throttle.read_bps_device": "8:0 10485760\n", "blkio.throttle.write_bps_device": "8:0 5242880\n",
              "blkio.throttle.read_iops_device": "8:0 1000\n", "blkio.throttle.write_iops_device": "8:0 500\n",
              "blkio.weight": "300\n"],
    "devices": ["devices.list": "c 1:3 rw\n"],
]

private let v2Files: [String: String] = [
    "cpu.max": "50000 100000\n", "cpu.weight": "20\n", "cpuset.cpus": "0-3,6\n", "cpuset.mems": "0\n",
    "memory.max": "536870912\n", "memory.swap.max": "268435456\n", "memory.low": "134217728\n",
    "memory.high": "max\n", "memory.min": "0\n", "pids.max": "100\n",
    "io.max": "8:0 rbps=10485760 wbps=5242880 riops=1000 wiops=500\n", "io.weight": "default 2930\n",
]

private func v1(_ files: [String: [String: String]]) -> [String: CgroupFiles] { files.mapValues { .memory($0) } }

private var v1Expected: Limits {
    var l = linuxOnlySpec.limits
    l.rlimits = []
    return l
}

@Test func cgroupV1ReadsEveryLimit() throws {
    let t = try CgroupV1.read(v1(v1Files))
    #expect(t.output == v1Expected)
    #expect(t.notes.isEmpty)
}

@Test func cgroupV2ReadsEveryLimit() throws {
    let t = try CgroupV2.read(.memory(v2Files))
    var expected = v1Expected
    expected.devices = []
    expected.cpu.shares = CPUWeight.shares(fromWeight: 20)
    #expect(t.output == expected)
    #expect(t.notes.isEmpty)
}

@Test func cgroupDefaultsReadAsUnset() throws {
    let v1Defaults: [String: [String: String]] = [
        "cpu": ["cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000", "cpu.shares": "1024"],
        "memory": ["memory.limit_in_bytes": "9223372036854771712", "memory.memsw.limit_in_bytes": "9223372036854771712",
                   "memory.soft_limit_in_bytes": "9223372036854771712"],
        "pids": ["pids.max": "max"], "devices": ["devices.list": "a *:* rwm"], "freezer": ["freezer.state": "THAWED"],
    ]
    #expect(try CgroupV1.read(v1(v1Defaults)).output == Limits(cpu: CPULimits(period: 100_000)))
    let v2Defaults = ["cpu.max": "max 100000", "cpu.weight": "100", "memory.max": "max", "memory.swap.max": "max",
                      "memory.low": "0", "pids.max": "max", "io.weight": "default 100", "cpuset.cpus": ""]
    #expect(try CgroupV2.read(.memory(v2Defaults)).output == Limits(cpu: CPULimits(period: 100_000)))
}

@Test func cgroupUntranslatedControllersAreNoted() throws {
    let t1 = try CgroupV1.read(v1(["freezer": ["freezer.state": "FROZEN"], "net_cls": ["net_cls.classid": "1048577"],
                                   "hugetlb": ["hugetlb.2MB.limit_in_bytes": "2097152"]]))
    #expect(t1.notes.map(\.value) == ["FROZEN", "1048577", "2097152"])
    let t2 = try CgroupV2.read(.memory(["memory.high": "1000000", "memory.min": "4096", "cgroup.freeze": "1",
                                        "hugetlb.2MB.max": "max", "hugetlb.1GB.max": "1073741824"]))
    #expect(Set(t2.notes.map(\.field)) == ["cgroup v2 memory.high", "cgroup v2 memory.min", "cgroup v2 cgroup.freeze",
                                           "cgroup v2 hugetlb.1GB.max"])
}

@Test(arguments: [
    ("cpu", "cpu.cfs_quota_us", "-5", "cpu/cpu.cfs_quota_us"),
    ("cpu", "cpu.cfs_quota_us", "abc", "cpu/cpu.cfs_quota_us"),
    ("pids", "pids.max", "99999999999999999999999", "pids/pids.max"),
    ("blkio", "blkio.throttle.read_bps_device", "8 100", "blkio/blkio.throttle.read_bps_device"),
    ("cpuset", "cpuset.cpus", "2-1", "cpuset/cpuset.cpus"),
    ("devices", "devices.list", "q 1:3 rw", "devices/devices.list"),
])
func cgroupV1BadValues(controller: String, file: String, value: String, field: String) {
    #expect { try CgroupV1.read(v1([controller: [file: value]])) } throws: { error in
        "\(error)".hasPrefix("cgroup v1 \(field):")
    }
}

@Test func cgroupV1QuotaWithoutPeriodIsAnError() {
    #expect { try CgroupV1.read(v1(["cpu": ["cpu.cfs_quota_us": "50000"]])) } throws: { error in
        "\(error)".contains("cpu.cfs_quota_us") && "\(error)".contains("period")
    }
}

@Test(arguments: ["50000", "50000 100000 1", "x 100000", "50000 max"])
func cgroupV2BadCPUMax(value: String) {
    #expect(throws: ContainerError.self) { try CgroupV2.read(.memory(["cpu.max": value])) }
}

@Test(arguments: ["8:0 rbps=1 zbps=2", "sda rbps=1", "8:0 rbps=-3"])
func cgroupV2BadIOMax(value: String) {
    #expect { try CgroupV2.read(.memory(["io.max": value])) } throws: { "\($0)".hasPrefix("cgroup v2 io.max:") }
}

// MARK: Apply plans

@Test func linuxApplyPlanV1() {
    let plan = LinuxApplyPlan(linuxOnlySpec, cgroup: .v1)
    #expect(plan.cgroupWrites.map(\.description) == [
        "cpu/cpu.cfs_period_us = 100000", "cpu/cpu.cfs_quota_us = 50000", "cpu/cpu.shares = 512",
        "cpuset/cpuset.cpus = 0-3,6", "cpuset/cpuset.mems = 0",
        "memory/memory.limit_in_bytes = 536870912", "memory/memory.memsw.limit_in_bytes = 805306368",
        "memory/memory.soft_limit_in_bytes = 134217728", "pids/pids.max = 100",
        "blkio/blkio.throttle.read_bps_device = 8:0 10485760", "blkio/blkio.throttle.write_bps_device = 8:0 5242880",
        "blkio/blkio.throttle.read_iops_device = 8:0 1000", "blkio/blkio.throttle.write_iops_device = 8:0 500",
        "blkio/blkio.weight = 300", "devices/devices.deny = a *:* rwm", "devices/devices.allow = c 1:3 rw",
    ])
    #expect(plan.controllers.isEmpty)
    #expect(plan.newNamespaces == [.pid, .mount, .uts, .ipc, .network, .user, .cgroup, .time])
    #expect(plan.uidMap == "0 100000 65536\n")
    #expect(plan.hostname == "web")
    #expect(plan.rlimits == linuxOnlySpec.limits.rlimits)
    #expect(plan.notes.map(\.field) == ["root.readonly"])
}

@Test func linuxApplyPlanV2() {
    let plan = LinuxApplyPlan(linuxOnlySpec, cgroup: .v2)
    #expect(plan.cgroupWrites.map(\.description) == [
        "cpu.max = 50000 100000", "cpu.weight = 20", "cpuset.cpus = 0-3,6", "cpuset.mems = 0",
        "memory.max = 536870912", "memory.swap.max = 268435456", "memory.low = 134217728", "pids.max = 100",
        "io.max = 8:0 rbps=10485760 wbps=5242880 riops=1000 wiops=500", "io.weight = default 2930",
    ])
    #expect(plan.controllers == ["cpu", "cpuset", "memory", "pids", "io"])
    #expect(Set(plan.notes.map(\.field)) == ["cpu.shares", "devices", "root.readonly"])
}

@Test(arguments: [CgroupVersion.v1, .v2])
func applyPlanReadsBackTheSameLimits(version: CgroupVersion) throws {
    var spec = linuxOnlySpec
    spec.limits.rlimits = []
    spec.limits.blockIO.readBps.append(DeviceRate(device: DeviceNumber(8, 16), rate: 42))
    if version == .v2 {
        spec.limits.devices = []
        spec.limits.cpu.shares = CPUWeight.shares(fromWeight: 20)  // a share value v2 can hold exactly
    }
    let dirs = applyWrites(LinuxApplyPlan(spec, cgroup: version).cgroupWrites)
    let read = version == .v1 ? try CgroupV1.read(v1(dirs)) : try CgroupV2.read(.memory(dirs[""] ?? [:]))
    #expect(read.output == spec.limits)
}

@Test func applyPlanReportsDevicelessRates() {
    let spec = ContainerSpec(limits: Limits(blockIO: BlockIOLimits(readBps: [DeviceRate(device: nil, rate: 5)])))
    for version in [CgroupVersion.v1, .v2] {
        let plan = LinuxApplyPlan(spec, cgroup: version)
        #expect(plan.cgroupWrites.isEmpty)
        #expect(plan.notes.map(\.field) == ["blockIO.readBps"])
    }
}

@Test func cgroupV1EmptyDevicesListDeniesAll() throws {
    #expect(try CgroupV1.read(v1(["devices": ["devices.list": ""]])).output.devices == [DeviceRule(allow: false, type: .all)])
}
