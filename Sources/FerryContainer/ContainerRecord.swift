import Foundation

/// What `ferry checkpoint` stores in an image's CONTAINER record: the
/// neutral spec of the container the processes ran in, and what the
/// checkpoint could not capture or a restore will not re-create (so the
/// image itself says it; nothing is dropped silently).
public struct ContainerRecord: Codable, Equatable, Sendable {
    public var spec: ContainerSpec
    public var notes: [Untranslated]
    /// With a network namespace of its own: whether its loopback device was up
    /// (nil: not known). Linux-only state the neutral spec does not hold.
    public var loopbackUp: Bool?
    /// With a network namespace of its own: its interfaces, addresses and
    /// routes (nil: an image from before they were captured; the namespace
    /// comes back with its loopback only).
    public var network: NetworkRecord?

    public init(spec: ContainerSpec, notes: [Untranslated] = [], loopbackUp: Bool? = nil, network: NetworkRecord? = nil) {
        self.spec = spec
        self.notes = notes
        self.loopbackUp = loopbackUp
        self.network = network
    }

    /// JSON bytes, keys sorted (stable across runs).
    public func encoded() throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return Array(try e.encode(self))
    }

    public static func decode(_ bytes: [UInt8]) throws -> ContainerRecord {
        do {
            let r = try JSONDecoder().decode(ContainerRecord.self, from: Data(bytes))
            try r.spec.validate()
            try r.network?.validate()
            if r.network != nil, !r.spec.isolation.has(.network) {
                throw ContainerError.invalid(field: "network", reason: "interfaces without a network namespace")
            }
            return r
        } catch let e as ContainerError {
            throw e
        } catch {
            throw ContainerError.invalid(field: "CONTAINER record", reason: "not a container record: \(error)")
        }
    }

    /// One line per fact, for `ferry inspect`.
    public var summary: [String] {
        var out: [String] = []
        let iso = spec.isolation
        out.append("namespaces: " + (iso.namespaces.isEmpty ? "none" : iso.namespaces.map { ns in ns.path.map { "\(ns.kind.rawValue)=\($0)" } ?? ns.kind.rawValue }.joined(separator: " ")))
        if let h = iso.hostname { out.append("hostname: \(h)") }
        if let d = iso.domainname { out.append("domainname: \(d)") }
        if let r = iso.rootPath { out.append("root: \(r)") }
        if let up = loopbackUp { out.append("loopback: \(up ? "up" : "down")") }
        for i in network?.interfaces ?? [] where i.kind != .loopback || !i.addresses.isEmpty {
            var line = "interface: \(i.name) \(i.kind.rawValue)\(i.up ? " up" : " down")"
            if let m = i.mac { line += " mac \(m)" }
            if let m = i.mtu { line += " mtu \(m)" }
            for a in i.addresses { line += " \(a.address)/\(a.prefix)" }
            if let h = i.hostEnd { line += " (host end \(h)\(i.hostBridge.map { " on bridge \($0)" } ?? ""))" }
            out.append(line)
        }
        for r in network?.routes ?? [] { out.append("route: \(r.description)") }
        let l = spec.limits
        var limits: [String] = []
        if let p = l.cpu.period { limits.append("cpu quota \(l.cpu.quota.map(String.init) ?? "max")/\(p) µs") }
        if let s = l.cpu.shares { limits.append("cpu shares \(s)") }
        if let c = l.cpuset.cpus { limits.append("cpus \(c)") }
        if let m = l.cpuset.mems { limits.append("mems \(m)") }
        if let m = l.memory.limit { limits.append("memory \(m) bytes") }
        if let s = l.memory.swap { limits.append("swap \(s) bytes") }
        if let r = l.memory.reservation { limits.append("memory reservation \(r) bytes") }
        if let p = l.pidsMax { limits.append("pids \(p)") }
        if let w = l.blockIO.weight { limits.append("blkio weight \(w)") }
        for kind in BlockIOLimits.Kind.allCases where !l.blockIO[kind].isEmpty {
            limits.append("blkio \(kind.rawValue) \(l.blockIO[kind].map { "\($0.device.map(\.description) ?? "*") \($0.rate)" }.joined(separator: ", "))")
        }
        if !l.devices.isEmpty { limits.append("\(l.devices.count) device rule(s)") }
        out.append("limits: " + (limits.isEmpty ? "none" : limits.joined(separator: ", ")))
        for n in notes { out.append("note: \(n)") }
        return out
    }
}
