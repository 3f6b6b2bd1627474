import Foundation
@testable import FerryContainer

/// A spec using every field FreeBSD can carry, with Linux-side defaults
/// (100 ms period, one device per I/O limit).
let translatableSpec = ContainerSpec(
    isolation: Isolation(namespaces: [Namespace(.mount), Namespace(.uts), Namespace(.ipc), Namespace(.network)],
                         hostname: "web", domainname: "example.org", rootPath: "/srv/web"),
    limits: Limits(
        cpu: CPULimits(quota: 50_000, period: 100_000),
        cpuset: CPUSetLimits(cpus: CPUList([0, 1, 2, 3, 6]), mems: CPUList([0])),
        memory: MemoryLimits(limit: 512 << 20, swap: 256 << 20),
        pidsMax: 100,
        blockIO: BlockIOLimits(readBps: [DeviceRate(device: DeviceNumber(8, 0), rate: 10 << 20)],
                               writeBps: [DeviceRate(device: DeviceNumber(8, 0), rate: 5 << 20)],
                               readIops: [DeviceRate(device: DeviceNumber(8, 0), rate: 1000)],
                               writeIops: [DeviceRate(device: DeviceNumber(8, 0), rate: 500)])))

/// `translatableSpec` plus everything only Linux has.
var linuxOnlySpec: ContainerSpec {
    var s = translatableSpec
    s.isolation.namespaces += [Namespace(.pid), Namespace(.user), Namespace(.cgroup), Namespace(.time)]
    s.isolation.namespaces.sort { $0.kind < $1.kind }
    s.isolation.uidMappings = [IDMapping(containerID: 0, hostID: 100_000, size: 65_536)]
    s.isolation.gidMappings = [IDMapping(containerID: 0, hostID: 100_000, size: 65_536)]
    s.isolation.rootReadonly = true
    s.limits.cpu.shares = 512
    s.limits.memory.reservation = 128 << 20
    s.limits.blockIO.weight = 300
    s.limits.devices = [DeviceRule(allow: false, type: .all), DeviceRule(allow: true, type: .char, major: 1, minor: 3, access: "rw")]
    s.limits.rlimits = [RLimit(type: "RLIMIT_NOFILE", soft: 1024, hard: 4096)]
    return s
}

func ociData(_ json: String) -> Data { Data(json.utf8) }

/// Applies cgroup writes to an in-memory directory per controller (v1) or one directory (v2, key "").
func applyWrites(_ writes: [CgroupWrite]) -> [String: [String: String]] {
    var dirs: [String: [String: String]] = [:]
    for w in writes {
        let dir = w.controller ?? ""
        // The kernel turns devices.deny/allow writes into devices.list (deny-all empties it).
        if w.file == "devices.deny" {
            dirs[dir, default: [:]]["devices.list"] = ""
            continue
        }
        if w.file == "devices.allow" {
            dirs[dir, default: [:]]["devices.list", default: ""] += w.value + "\n"
            continue
        }
        let existing = dirs[dir, default: [:]][w.file]
        // blkio throttle files and io.max accumulate one line per write; others are replaced.
        let accumulates = w.file.hasSuffix("_device") || w.file == "io.max"
        dirs[dir, default: [:]][w.file] = accumulates && existing != nil ? existing! + "\n" + w.value : w.value
    }
    return dirs
}
