import Foundation
import Testing
@testable import FerryContainer

private let fullConfig = """
{"ociVersion":"1.0.2","hostname":"web","domainname":"example.org","root":{"path":"/srv/web","readonly":true},
 "process":{"args":["sh"],"rlimits":[{"type":"RLIMIT_NOFILE","soft":1024,"hard":4096}]},
 "linux":{"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},
   {"type":"user"},{"type":"cgroup"},{"type":"time"}],
  "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
  "gidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
  "resources":{"cpu":{"quota":50000,"period":100000,"shares":512,"cpus":"0-3,6","mems":"0"},
   "memory":{"limit":536870912,"swap":805306368,"reservation":134217728},"pids":{"limit":100},
   "blockIO":{"weight":300,
     "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":10485760}],
     "throttleWriteBpsDevice":[{"major":8,"minor":0,"rate":5242880}],
     "throttleReadIOPSDevice":[{"major":8,"minor":0,"rate":1000}],
     "throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":500}]},
   "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]}}}
"""

@Test func ociReadsEveryField() throws {
    let t = try OCIConfig.read(ociData(fullConfig))
    #expect(t.output == linuxOnlySpec)
    #expect(t.notes.isEmpty)
}

@Test func ociWriteThenReadIsIdentity() throws {
    let text = OCIConfig.write(linuxOnlySpec)
    #expect(text.notes.isEmpty)
    #expect(try OCIConfig.read(ociData(text.output)).output == linuxOnlySpec)
}

/// One OCI field at a time: the JSON fragment under linux.resources and the spec's limits.
@Test(arguments: [
    (#"{"cpu":{"quota":-1,"period":100000}}"#, Limits(cpu: CPULimits(period: 100_000))),
    (#"{"cpu":{"quota":150000,"period":100000}}"#, Limits(cpu: CPULimits(quota: 150_000, period: 100_000))),
    (#"{"cpu":{"shares":2048}}"#, Limits(cpu: CPULimits(shares: 2048))),
    (#"{"cpu":{"cpus":"1,3"}}"#, Limits(cpuset: CPUSetLimits(cpus: CPUList([1, 3])))),
    (#"{"cpu":{"mems":"0-1"}}"#, Limits(cpuset: CPUSetLimits(mems: CPUList([0, 1])))),
    (#"{"memory":{"limit":-1}}"#, Limits()),
    (#"{"memory":{"limit":1000,"swap":1000}}"#, Limits(memory: MemoryLimits(limit: 1000, swap: 0))),
    (#"{"memory":{"reservation":4096}}"#, Limits(memory: MemoryLimits(reservation: 4096))),
    (#"{"pids":{"limit":-1}}"#, Limits()),
    (#"{"pids":{"limit":7}}"#, Limits(pidsMax: 7)),
    (#"{"blockIO":{"throttleWriteIOPSDevice":[{"major":259,"minor":1,"rate":9}]}}"#,
     Limits(blockIO: BlockIOLimits(writeIops: [DeviceRate(device: DeviceNumber(259, 1), rate: 9)]))),
    (#"{"devices":[{"allow":true,"type":"b","major":8,"access":"r"}]}"#,
     Limits(devices: [DeviceRule(allow: true, type: .block, major: 8, access: "r")])),
])
func ociResourceField(json: String, limits: Limits) throws {
    let t = try OCIConfig.read(ociData(#"{"linux":{"resources":"# + json + "}}"))
    #expect(t.output.limits == limits)
    let back = try OCIConfig.read(ociData(OCIConfig.write(t.output).output))
    #expect(back.output == t.output)
}

@Test func ociLinuxOnlyFieldsAreNoted() throws {
    let t = try OCIConfig.read(ociData(#"""
    {"linux":{"sysctl":{"net.ipv4.ip_forward":"1"},"resources":{"memory":{"swappiness":10},
     "hugepageLimits":[{"pageSize":"2MB","limit":1}],"cpu":{"realtimeRuntime":5}}}}
    """#))
    #expect(Set(t.notes.map(\.field)) == ["linux.sysctl", "linux.resources.memory.swappiness",
                                          "linux.resources.hugepageLimits", "linux.resources.cpu.realtimeRuntime"])
}

/// Bad input: the error names the field.
@Test(arguments: [
    (#"{"linux": "#, "config.json"),
    (#"{"linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#, "linux.namespaces[1].type"),
    (#"{"linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#, "linux.namespaces[1].type"),
    (#"{"linux":{"resources":{"cpu":{"quota":50000}}}}"#, "linux.resources.cpu.quota"),
    (#"{"linux":{"resources":{"cpu":{"quota":-5,"period":100000}}}}"#, "linux.resources.cpu.quota"),
    (#"{"linux":{"resources":{"memory":{"limit":-2}}}}"#, "linux.resources.memory.limit"),
    (#"{"linux":{"resources":{"memory":{"limit":100000000000000000000}}}}"#, "linux.resources.memory.limit"),
    (#"{"linux":{"resources":{"memory":{"limit":1000,"swap":10}}}}"#, "linux.resources.memory.swap"),
    (#"{"linux":{"resources":{"pids":{"limit":"many"}}}}"#, "linux.resources.pids.limit"),
    (#"{"linux":{"resources":{"cpu":{"cpus":"3-1"}}}}"#, "linux.resources.cpu.cpus"),
    (#"{"linux":{"resources":{"cpu":{"quota":50000,"period":10}}}}"#, "cpu.period"),
    (#"{"linux":{"resources":{"blockIO":{"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":-1}]}}}}"#,
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate"),
    (#"{"linux":{"resources":{"devices":[{"allow":true,"type":"x"}]}}}"#, "linux.resources.devices[0].type"),
    (#"{"process":{"rlimits":[{"type":"RLIMIT_BOGUS","soft":1,"hard":1}]}}"#, "process.rlimits[0].type"),
    (#"{"linux":{"uidMappings":[{"containerID":0,"hostID":5000000000,"size":1}]}}"#, "linux.uidMappings[0].hostID"),
])
func ociBadInput(json: String, field: String) {
    do {
        _ = try OCIConfig.read(ociData(json))
        Issue.record("accepted \(json)")
    } catch {
        let message = "\(error)"
        #expect(message.hasPrefix(field + ":"), "\(message)")
        #expect(!message.contains("\n"))
    }
}
