import Foundation

/// cgroup v2: one directory, files prefixed by controller.
///
/// `cpu.max` is "QUOTA PERIOD" or "max PERIOD"; `cpu.weight` (1...10000) is
/// converted to the spec's v1 shares by `CPUWeight`; `memory.swap.max` is swap
/// alone; `memory.low` is the reservation; `io.max` holds
/// "MAJ:MIN rbps=N wbps=N riops=N wiops=N" lines; `io.weight` is
/// "default N". Defaults read as "not set": weight 100, "max", empty cpusets.
/// Device access control in v2 is an eBPF program, which cannot be read back
/// from files: live reading reports it as unknown, and plans leave it to the
/// restore engine.
public enum CgroupV2 {
    public static func read(_ files: CgroupFiles) throws -> Translated<Limits> {
        var limits = Limits()
        var notes = NoteList()
        func field(_ f: String) -> String { "cgroup v2 \(f)" }
        func limit(_ f: String) throws -> UInt64? { try CgroupValue.limit(files.read(f), field: field(f)) }
        func trimmed(_ f: String) -> String? { files.read(f)?.trimmingCharacters(in: .whitespacesAndNewlines) }

        if let cpuMax = trimmed("cpu.max") {
            let parts = cpuMax.split(separator: " ")
            guard parts.count == 2 else {
                throw ContainerError.invalid(field: field("cpu.max"), reason: "expected \"QUOTA PERIOD\", got \"\(cpuMax)\"")
            }
            limits.cpu.quota = try CgroupValue.limit(String(parts[0]), field: field("cpu.max"))
            limits.cpu.period = try CgroupValue.limit(String(parts[1]), field: field("cpu.max"))
            if limits.cpu.quota != nil, limits.cpu.period == nil {
                throw ContainerError.invalid(field: field("cpu.max"), reason: "a quota needs a period")
            }
        }
        if let weight = try limit("cpu.weight"), weight != 100 {
            limits.cpu.shares = CPUWeight.shares(fromWeight: weight)
        }
        limits.cpuset.cpus = try CgroupValue.cpuList(files.read("cpuset.cpus"), field: field("cpuset.cpus"))
        limits.cpuset.mems = try CgroupValue.cpuList(files.read("cpuset.mems"), field: field("cpuset.mems"))
        limits.memory.limit = try limit("memory.max")
        limits.memory.swap = try limit("memory.swap.max")
        limits.memory.reservation = try limit("memory.low").flatMap { $0 == 0 ? nil : $0 }
        if let high = try limit("memory.high") {
            notes.drop(field("memory.high"), high, "a throttling threshold; the container spec has only hard limits")
        }
        if let min = try limit("memory.min"), min != 0 {
            notes.drop(field("memory.min"), min, "hard memory protection is not part of the container spec")
        }
        limits.pidsMax = try limit("pids.max")
        try readIOMax(files.read("io.max"), into: &limits.blockIO, field: field("io.max"))
        if let weight = trimmed("io.weight") {
            let parts = weight.split(separator: " ")
            guard parts.count == 2, parts[0] == "default", let w = UInt64(parts[1]) else {
                throw ContainerError.invalid(field: field("io.weight"), reason: "expected \"default N\", got \"\(weight)\"")
            }
            if w != 100 { limits.blockIO.weight = LinearScale.ioWeight.backward(w) }
        }
        if trimmed("cgroup.freeze") == "1" {
            notes.drop(field("cgroup.freeze"), 1, "freezing is not part of the container spec (FreeBSD has no freezer)")
        }
        notes.append(contentsOf: UntranslatedController.hugetlbNotes(files, field: field, suffixes: [".max"]))
        return Translated(limits, notes: notes.items)
    }

    private static let ioKeys: [(String, BlockIOLimits.Kind)] = [
        ("rbps", .readBps), ("wbps", .writeBps), ("riops", .readIops), ("wiops", .writeIops),
    ]

    static func readIOMax(_ text: String?, into io: inout BlockIOLimits, field: String) throws {
        for line in CgroupValue.lines(text) {
            let parts = line.split(separator: " ")
            let device = try DeviceNumber(parsing: parts[0], field: field)
            for pair in parts.dropFirst() {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2, let kind = ioKeys.first(where: { $0.0 == kv[0] })?.1 else {
                    throw ContainerError.invalid(field: field, reason: "unknown io.max key \"\(pair)\"")
                }
                if let rate = try CgroupValue.limit(String(kv[1]), field: field) {
                    io[kind].append(DeviceRate(device: device, rate: rate))
                }
            }
        }
    }

    /// The writes that set `limits` in a fresh v2 cgroup. The controllers in
    /// `controllers(for:)` must be enabled in the parent's
    /// cgroup.subtree_control first.
    static func plan(_ limits: Limits, notes: inout NoteList) -> [CgroupWrite] {
        var writes: [CgroupWrite] = []
        func put(_ f: String, _ v: CustomStringConvertible?) {
            if let v { writes.append(CgroupWrite(file: f, value: v.description)) }
        }
        if let period = limits.cpu.period {
            put("cpu.max", "\(limits.cpu.quota.map(String.init) ?? "max") \(period)")
        }
        if let shares = limits.cpu.shares {
            let weight = CPUWeight.weight(fromShares: shares)
            put("cpu.weight", weight)
            if CPUWeight.shares(fromWeight: weight) != shares {
                notes.approximate("cpu.shares", shares, "cgroup v2 cpu.weight \(weight) is the nearest weight (v2 is coarser)")
            }
        }
        put("cpuset.cpus", limits.cpuset.cpus)
        put("cpuset.mems", limits.cpuset.mems)
        put("memory.max", limits.memory.limit)
        put("memory.swap.max", limits.memory.swap)
        put("memory.low", limits.memory.reservation)
        put("pids.max", limits.pidsMax)
        var perDevice: [DeviceNumber: [String]] = [:]
        var order: [DeviceNumber] = []
        for (key, kind) in ioKeys {
            for rate in limits.blockIO[kind] {
                guard let device = rate.device else {
                    notes.drop("blockIO.\(kind.rawValue)", rate.rate, "a limit across all devices: cgroup v2 io.max is per device")
                    continue
                }
                if perDevice[device] == nil { order.append(device) }
                perDevice[device, default: []].append("\(key)=\(rate.rate)")
            }
        }
        for device in order { put("io.max", "\(device) \(perDevice[device]!.joined(separator: " "))") }
        if let weight = limits.blockIO.weight {
            let w = LinearScale.ioWeight.forward(weight)
            put("io.weight", "default \(w)")
        }
        if !limits.devices.isEmpty {
            notes.drop("devices", limits.devices.map(\.cgroupLine).joined(separator: "; "),
                       "cgroup v2 controls devices with an eBPF program, which this plan does not build")
        }
        return writes
    }

    /// The controllers a plan's writes need enabled, from their file prefixes.
    static func controllers(for writes: [CgroupWrite]) -> [String] {
        var seen: [String] = []
        for w in writes {
            let c = String(w.file.prefix { $0 != "." })
            if !seen.contains(c) { seen.append(c) }
        }
        return seen
    }
}
