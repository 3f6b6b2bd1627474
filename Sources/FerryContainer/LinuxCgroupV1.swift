import Foundation

/// cgroup v1: one hierarchy per controller (`cpu`, `cpuset`, `memory`,
/// `pids`, `blkio`, `devices`, `freezer`, …), each with its own files.
///
/// Defaults read as "not set": cpu.shares 1024, blkio.weight 500, a
/// memory limit at or above `unlimited` (0x7FFFFFFFFFFFF000), an empty
/// cpuset, a devices list of `a *:* rwm`.
public enum CgroupV1 {
    /// What the kernel shows for "no memory limit" (PAGE_COUNTER_MAX pages).
    public static let unlimited: UInt64 = 0x7FFF_FFFF_FFFF_F000

    /// Reads the limits from the container's directory in each hierarchy
    /// (missing controllers are simply absent from `controllers`).
    public static func read(_ controllers: [String: CgroupFiles]) throws -> Translated<Limits> {
        var limits = Limits()
        var notes = NoteList()
        func file(_ c: String, _ f: String) -> String? { controllers[c]?.read(f) }
        func field(_ c: String, _ f: String) -> String { "cgroup v1 \(c)/\(f)" }
        func limit(_ c: String, _ f: String) throws -> UInt64? {
            try CgroupValue.limit(file(c, f), field: field(c, f))
        }
        func memoryLimit(_ f: String) throws -> UInt64? {
            try limit("memory", f).flatMap { $0 >= unlimited ? nil : $0 }
        }

        limits.cpu.period = try limit("cpu", "cpu.cfs_period_us")
        limits.cpu.quota = try limit("cpu", "cpu.cfs_quota_us")
        if let quota = limits.cpu.quota, limits.cpu.period == nil {
            throw ContainerError.invalid(field: field("cpu", "cpu.cfs_quota_us"), reason: "quota \(quota) without cpu.cfs_period_us")
        }
        limits.cpu.shares = try limit("cpu", "cpu.shares").flatMap { $0 == 1024 ? nil : $0 }
        limits.cpuset.cpus = try CgroupValue.cpuList(file("cpuset", "cpuset.cpus"), field: field("cpuset", "cpuset.cpus"))
        limits.cpuset.mems = try CgroupValue.cpuList(file("cpuset", "cpuset.mems"), field: field("cpuset", "cpuset.mems"))

        limits.memory.limit = try memoryLimit("memory.limit_in_bytes")
        limits.memory.reservation = try memoryLimit("memory.soft_limit_in_bytes")
        if let memsw = try memoryLimit("memory.memsw.limit_in_bytes") {
            if let mem = limits.memory.limit, memsw >= mem {
                limits.memory.swap = memsw - mem
            } else {
                notes.drop(field("memory", "memory.memsw.limit_in_bytes"), memsw,
                           "memory+swap limit without a smaller memory limit: the swap part cannot be derived")
            }
        }
        limits.pidsMax = try limit("pids", "pids.max")

        for kind in BlockIOLimits.Kind.allCases {
            let f = throttleFile(kind)
            limits.blockIO[kind] = try CgroupValue.deviceRates(file("blkio", f), field: field("blkio", f))
        }
        limits.blockIO.weight = try limit("blkio", "blkio.weight").flatMap { $0 == 500 ? nil : $0 }
        limits.devices = try readDevices(file("devices", "devices.list"), field: field("devices", "devices.list"))

        if let state = file("freezer", "freezer.state")?.trimmingCharacters(in: .whitespacesAndNewlines), state != "THAWED" {
            notes.drop(field("freezer", "freezer.state"), state, "freezing is not part of the container spec (FreeBSD has no freezer)")
        }
        if let classid = file("net_cls", "net_cls.classid")?.trimmingCharacters(in: .whitespacesAndNewlines), classid != "0" {
            notes.drop(field("net_cls", "net_cls.classid"), classid, "network classes are not part of the container spec")
        }
        if let hugetlb = controllers["hugetlb"] {
            notes.append(contentsOf: UntranslatedController.hugetlbNotes(
                hugetlb, field: { field("hugetlb", $0) }, suffixes: [".limit_in_bytes"]))
        }
        return Translated(limits, notes: notes.items)
    }

    static func throttleFile(_ kind: BlockIOLimits.Kind) -> String {
        switch kind {
        case .readBps: "blkio.throttle.read_bps_device"
        case .writeBps: "blkio.throttle.write_bps_device"
        case .readIops: "blkio.throttle.read_iops_device"
        case .writeIops: "blkio.throttle.write_iops_device"
        }
    }

    /// devices.list holds the allow-list; `a *:* rwm` alone means no restriction.
    static func readDevices(_ text: String?, field: String) throws -> [DeviceRule] {
        guard let text else { return [] }
        let lines = CgroupValue.lines(text)
        if lines == ["a *:* rwm"] { return [] }  // an empty list means everything is denied
        let allowed = try lines.map { line -> DeviceRule in
            let parts = line.split(separator: " ")
            guard parts.count == 3, let type = DeviceRule.DeviceType(rawValue: String(parts[0])) else {
                throw ContainerError.invalid(field: field, reason: "expected \"TYPE MAJ:MIN ACCESS\", got \"\(line)\"")
            }
            let numbers = parts[1].split(separator: ":", omittingEmptySubsequences: false)
            func number(_ s: Substring) throws -> UInt32? {
                if s == "*" { return nil }
                guard let n = UInt32(s) else {
                    throw ContainerError.invalid(field: field, reason: "bad device number \"\(s)\" in \"\(line)\"")
                }
                return n
            }
            guard numbers.count == 2 else {
                throw ContainerError.invalid(field: field, reason: "expected MAJ:MIN in \"\(line)\"")
            }
            return DeviceRule(allow: true, type: type, major: try number(numbers[0]), minor: try number(numbers[1]),
                              access: String(parts[2]))
        }
        return [DeviceRule(allow: false, type: .all)] + allowed
    }

    /// The writes that set `limits` in a fresh v1 cgroup, in a safe order
    /// (period before quota, memory before memory+swap, deny-all before allows).
    /// The restore engine must still fill an empty cpuset.cpus/mems from the
    /// parent before attaching tasks, as v1 requires.
    static func plan(_ limits: Limits, notes: inout NoteList) -> [CgroupWrite] {
        var writes: [CgroupWrite] = []
        func put(_ c: String, _ f: String, _ v: CustomStringConvertible?) {
            if let v { writes.append(CgroupWrite(controller: c, file: f, value: v.description)) }
        }
        put("cpu", "cpu.cfs_period_us", limits.cpu.period)
        put("cpu", "cpu.cfs_quota_us", limits.cpu.quota)
        put("cpu", "cpu.shares", limits.cpu.shares)
        put("cpuset", "cpuset.cpus", limits.cpuset.cpus)
        put("cpuset", "cpuset.mems", limits.cpuset.mems)
        put("memory", "memory.limit_in_bytes", limits.memory.limit)
        if let swap = limits.memory.swap {
            if let mem = limits.memory.limit, case let (sum, false) = mem.addingReportingOverflow(swap) {
                put("memory", "memory.memsw.limit_in_bytes", sum)
            } else {
                notes.drop("memory.swap", swap, "cgroup v1 limits memory+swap, which needs a memory limit")
            }
        }
        put("memory", "memory.soft_limit_in_bytes", limits.memory.reservation)
        put("pids", "pids.max", limits.pidsMax)
        for kind in BlockIOLimits.Kind.allCases {
            for rate in limits.blockIO[kind] {
                guard let device = rate.device else {
                    notes.drop("blockIO.\(kind.rawValue)", rate.rate, "a limit across all devices: cgroup v1 throttles per device")
                    continue
                }
                put("blkio", throttleFile(kind), "\(device) \(rate.rate)")
            }
        }
        put("blkio", "blkio.weight", limits.blockIO.weight)
        for rule in limits.devices {
            put("devices", rule.allow ? "devices.allow" : "devices.deny", rule.cgroupLine)
        }
        return writes
    }
}
