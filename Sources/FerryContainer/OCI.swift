import Foundation

/// OCI runtime-spec `config.json`: the parts that describe a container's
/// isolation and limits (`hostname`, `domainname`, `root`, `process.rlimits`,
/// `linux.namespaces`, `linux.uidMappings`/`gidMappings`, `linux.resources`).
///
/// Reading keeps OCI's conventions in mind: `memory.swap` is memory + swap
/// (the spec stores swap alone), -1 means unlimited, `cpu.shares` is in
/// cgroup v1 units. Linux-only fields the neutral spec does not hold
/// (hugepage limits, swappiness, `linux.sysctl`, …) come back as notes.
/// Writing produces a fragment with only those parts, to merge into a
/// runtime's full config.json.
public enum OCIConfig {
    public static func read(_ data: Data, source: String = "config.json") throws -> Translated<ContainerSpec> {
        let root = try JSONObject(JSONValue.parse(data, source: source), path: "")
        var notes = NoteList()
        var spec = ContainerSpec()
        let linux = try root.object("linux")

        spec.isolation.hostname = try root.string("hostname")
        spec.isolation.domainname = try root.string("domainname")
        if let fsRoot = try root.object("root") {
            spec.isolation.rootPath = try fsRoot.string("path")
            spec.isolation.rootReadonly = try fsRoot.bool("readonly") ?? false
        }
        if let process = try root.object("process") {
            spec.limits.rlimits = try process.objects("rlimits").map(readRLimit)
        }
        for key in ["mounts", "hooks"] where root.fields[key] != nil {
            notes.drop(key, root.fields[key]!, "not part of the container spec: filesystems and hooks are handled by the runtime")
        }

        if let linux {
            for ns in try linux.objects("namespaces") {
                let type = try ns.string("type") ?? ""
                guard let kind = NamespaceKind(ociName: type) else {
                    throw ContainerError.invalid(field: ns.field("type"), reason: "unknown namespace type \"\(type)\"")
                }
                try spec.isolation.add(Namespace(kind, path: try ns.string("path")), field: ns.field("type"))
            }
            spec.isolation.uidMappings = try linux.objects("uidMappings").map(readIDMapping)
            spec.isolation.gidMappings = try linux.objects("gidMappings").map(readIDMapping)
            if let resources = try linux.object("resources") {
                spec.limits = try readResources(resources, rlimits: spec.limits.rlimits, notes: &notes)
            }
            notes.append(contentsOf: linux.unhandled(
                except: ["namespaces", "uidMappings", "gidMappings", "resources"],
                reason: "not part of the neutral container spec"))
        }
        try spec.validate()
        return Translated(spec, notes: notes.items)
    }

    // MARK: Reading pieces

    private static func readIDMapping(_ o: JSONObject) throws -> IDMapping {
        func id(_ key: String) throws -> UInt32 {
            guard let v = try o.unsigned(key) else {
                throw ContainerError.invalid(field: o.field(key), reason: "missing")
            }
            guard let u = UInt32(exactly: v) else {
                throw ContainerError.invalid(field: o.field(key), reason: "\(v) overflows a 32-bit id")
            }
            return u
        }
        return IDMapping(containerID: try id("containerID"), hostID: try id("hostID"), size: try id("size"))
    }

    private static func readRLimit(_ o: JSONObject) throws -> RLimit {
        let type = try o.string("type") ?? ""
        guard RLimit.knownTypes.contains(type) else {
            throw ContainerError.invalid(field: o.field("type"), reason: "unknown rlimit \"\(type)\"")
        }
        guard let soft = try o.unsigned("soft"), let hard = try o.unsigned("hard") else {
            throw ContainerError.invalid(field: o.path, reason: "an rlimit needs soft and hard")
        }
        return RLimit(type: type, soft: soft, hard: hard)
    }

    private static func readResources(_ r: JSONObject, rlimits: [RLimit], notes: inout NoteList) throws -> Limits {
        var limits = Limits(rlimits: rlimits)
        let linuxOnly = "Linux-only; not part of the neutral container spec"
        if let cpu = try r.object("cpu") {
            limits.cpu.shares = try cpu.unsigned("shares")
            limits.cpu.period = try cpu.unsigned("period")
            if let quota = try cpu.int("quota"), quota != -1 {
                guard quota > 0 else { throw ContainerError.invalid(field: cpu.field("quota"), reason: "\(quota) is not positive") }
                guard limits.cpu.period != nil else {
                    throw ContainerError.invalid(field: cpu.field("quota"), reason: "a quota needs a period (cpu.period)")
                }
                limits.cpu.quota = UInt64(quota)
            }
            if let cpus = try cpu.string("cpus"), !cpus.isEmpty {
                limits.cpuset.cpus = try CPUList(parsing: cpus, field: cpu.field("cpus"))
            }
            if let mems = try cpu.string("mems"), !mems.isEmpty {
                limits.cpuset.mems = try CPUList(parsing: mems, field: cpu.field("mems"))
            }
            notes.append(contentsOf: cpu.unhandled(except: ["shares", "quota", "period", "cpus", "mems"], reason: linuxOnly))
        }
        if let memory = try r.object("memory") {
            limits.memory.limit = try memory.limit("limit")
            limits.memory.reservation = try memory.limit("reservation")
            if let memsw = try memory.limit("swap") {
                guard let limit = limits.memory.limit else {
                    throw ContainerError.invalid(field: memory.field("swap"), reason: "memory+swap limit without a memory limit")
                }
                guard memsw >= limit else {
                    throw ContainerError.invalid(field: memory.field("swap"),
                                                 reason: "memory+swap \(memsw) is below the memory limit \(limit)")
                }
                limits.memory.swap = memsw - limit
            }
            notes.append(contentsOf: memory.unhandled(except: ["limit", "reservation", "swap"], reason: linuxOnly))
        }
        if let pids = try r.object("pids") {
            let max = try pids.limit("limit")
            limits.pidsMax = max == 0 ? nil : max
        }
        if let io = try r.object("blockIO") {
            limits.blockIO.weight = try io.unsigned("weight")
            for kind in BlockIOLimits.Kind.allCases {
                limits.blockIO[kind] = try io.objects(ociThrottleKey(kind)).map { entry in
                    guard let major = try entry.unsigned("major"), let minor = try entry.unsigned("minor"),
                          let major32 = UInt32(exactly: major), let minor32 = UInt32(exactly: minor)
                    else { throw ContainerError.invalid(field: entry.path, reason: "needs a 32-bit major and minor") }
                    guard let rate = try entry.unsigned("rate") else {
                        throw ContainerError.invalid(field: entry.field("rate"), reason: "missing")
                    }
                    return DeviceRate(device: DeviceNumber(major32, minor32), rate: rate)
                }
            }
            notes.append(contentsOf: io.unhandled(
                except: Set(["weight"] + BlockIOLimits.Kind.allCases.map(ociThrottleKey)), reason: linuxOnly))
        }
        limits.devices = try r.objects("devices").map(readDeviceRule)
        notes.append(contentsOf: r.unhandled(except: ["cpu", "memory", "pids", "blockIO", "devices"], reason: linuxOnly))
        return limits
    }

    private static func readDeviceRule(_ o: JSONObject) throws -> DeviceRule {
        guard let allow = try o.bool("allow") else {
            throw ContainerError.invalid(field: o.field("allow"), reason: "missing")
        }
        let typeText = try o.string("type") ?? "a"
        guard let type = DeviceRule.DeviceType(rawValue: typeText) else {
            throw ContainerError.invalid(field: o.field("type"), reason: "unknown device type \"\(typeText)\" (a, c or b)")
        }
        func number(_ key: String) throws -> UInt32? {
            guard let v = try o.limit(key) else { return nil }
            guard let u = UInt32(exactly: v) else {
                throw ContainerError.invalid(field: o.field(key), reason: "\(v) overflows a device number")
            }
            return u
        }
        let access = try o.string("access") ?? "rwm"
        guard !access.isEmpty, access.allSatisfy({ "rwm".contains($0) }) else {
            throw ContainerError.invalid(field: o.field("access"), reason: "\"\(access)\" is not some of rwm")
        }
        return DeviceRule(allow: allow, type: type, major: try number("major"), minor: try number("minor"), access: access)
    }

    static func ociThrottleKey(_ kind: BlockIOLimits.Kind) -> String {
        switch kind {
        case .readBps: "throttleReadBpsDevice"
        case .writeBps: "throttleWriteBpsDevice"
        case .readIops: "throttleReadIOPSDevice"
        case .writeIops: "throttleWriteIOPSDevice"
        }
    }

    // MARK: Writing

    /// The config.json fragment for `spec`, pretty-printed with sorted keys.
    public static func write(_ spec: ContainerSpec) -> Translated<String> {
        let t = document(spec)
        return Translated(t.output.rendered(), notes: t.notes)
    }

    static func document(_ spec: ContainerSpec) -> Translated<JSONValue> {
        var notes = NoteList()
        var top: [String: JSONValue] = ["ociVersion": .string("1.0.2")]
        let iso = spec.isolation
        if let name = spec.name {
            notes.drop("name", name, "config.json has no container name; give it to the runtime (e.g. runc run NAME)")
        }
        if let h = iso.hostname { top["hostname"] = .string(h) }
        if let d = iso.domainname { top["domainname"] = .string(d) }
        if let path = iso.rootPath {
            top["root"] = .object(["path": .string(path), "readonly": .bool(iso.rootReadonly)])
        }
        if !spec.limits.rlimits.isEmpty {
            top["process"] = .object(["rlimits": .array(spec.limits.rlimits.map {
                .object(["type": .string($0.type), "soft": .uint($0.soft), "hard": .uint($0.hard)])
            })])
        }
        var linux: [String: JSONValue] = [:]
        linux["namespaces"] = .array(iso.namespaces.map { ns in
            var o: [String: JSONValue] = ["type": .string(ns.kind.ociName)]
            if let p = ns.path { o["path"] = .string(p) }
            return .object(o)
        })
        func idMaps(_ maps: [IDMapping]) -> JSONValue {
            .array(maps.map { .object(["containerID": .uint(UInt64($0.containerID)), "hostID": .uint(UInt64($0.hostID)),
                                       "size": .uint(UInt64($0.size))]) })
        }
        if !iso.uidMappings.isEmpty { linux["uidMappings"] = idMaps(iso.uidMappings) }
        if !iso.gidMappings.isEmpty { linux["gidMappings"] = idMaps(iso.gidMappings) }
        let resources = writeResources(spec.limits, notes: &notes)
        if !resources.isEmpty { linux["resources"] = .object(resources) }
        top["linux"] = .object(linux)
        return Translated(.object(top), notes: notes.items)
    }

    private static func writeResources(_ limits: Limits, notes: inout NoteList) -> [String: JSONValue] {
        var r: [String: JSONValue] = [:]
        func put(_ dict: inout [String: JSONValue], _ key: String, _ value: UInt64?) {
            if let value { dict[key] = .uint(value) }
        }
        var cpu: [String: JSONValue] = [:]
        put(&cpu, "shares", limits.cpu.shares)
        put(&cpu, "quota", limits.cpu.quota)
        put(&cpu, "period", limits.cpu.period)
        if let cpus = limits.cpuset.cpus { cpu["cpus"] = .string(cpus.description) }
        if let mems = limits.cpuset.mems { cpu["mems"] = .string(mems.description) }
        if !cpu.isEmpty { r["cpu"] = .object(cpu) }

        var memory: [String: JSONValue] = [:]
        put(&memory, "limit", limits.memory.limit)
        put(&memory, "reservation", limits.memory.reservation)
        if let swap = limits.memory.swap {
            if let limit = limits.memory.limit {
                let (sum, overflow) = limit.addingReportingOverflow(swap)
                if overflow { notes.drop("memory.swap", swap, "memory + swap overflows 64 bits") } else { memory["swap"] = .uint(sum) }
            } else {
                notes.drop("memory.swap", swap, "OCI limits memory+swap, which needs a memory limit")
            }
        }
        if !memory.isEmpty { r["memory"] = .object(memory) }
        if let pids = limits.pidsMax { r["pids"] = .object(["limit": .uint(pids)]) }

        var io: [String: JSONValue] = [:]
        put(&io, "weight", limits.blockIO.weight)
        for kind in BlockIOLimits.Kind.allCases {
            let rates = limits.blockIO[kind]
            for rate in rates where rate.device == nil {
                notes.drop("blockIO.\(kind.rawValue)", rate.rate,
                           "a limit across all devices has no OCI form: OCI throttles per device (MAJ:MIN)")
            }
            let perDevice = rates.compactMap { rate in
                rate.device.map { JSONValue.object(["major": .uint(UInt64($0.major)), "minor": .uint(UInt64($0.minor)),
                                                    "rate": .uint(rate.rate)]) }
            }
            if !perDevice.isEmpty { io[ociThrottleKey(kind)] = .array(perDevice) }
        }
        if !io.isEmpty { r["blockIO"] = .object(io) }

        if !limits.devices.isEmpty {
            r["devices"] = .array(limits.devices.map { d in
                var o: [String: JSONValue] = ["allow": .bool(d.allow), "type": .string(d.type.rawValue), "access": .string(d.access)]
                if let m = d.major { o["major"] = .uint(UInt64(m)) }
                if let m = d.minor { o["minor"] = .uint(UInt64(m)) }
                return .object(o)
            })
        }
        return r
    }
}
