import Foundation

/// The contents of a container's network namespace that a restore
/// re-creates: its interfaces (loopback and veth), their addresses and the
/// routes of its main table. Part of `ContainerRecord` (the image's
/// CONTAINER record, JSON); read at checkpoint by rtnetlink inside the
/// namespace (FerryLinux `NetworkNamespace`), decided by FerryCore's
/// `NetworkPlan`. Addresses are text (`10.0.0.2`, `fd00::2`).
/// Validated on decode (`validate`): bounded counts, kernel-valid names,
/// parseable addresses, prefix lengths within the family.
public struct NetworkRecord: Codable, Equatable, Sendable {
    public var interfaces: [NetInterface]
    public var routes: [NetRoute]

    public init(interfaces: [NetInterface] = [], routes: [NetRoute] = []) {
        self.interfaces = interfaces
        self.routes = routes
    }

    public static let maxInterfaces = 64
    public static let maxAddresses = 256
    public static let maxRoutes = 1024
}

public struct NetInterface: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable { case loopback, veth }
    public var name: String
    public var kind: Kind
    /// `aa:bb:cc:dd:ee:ff` (veth only).
    public var mac: String?
    public var mtu: UInt32?
    public var up: Bool
    public var addresses: [NetAddress]
    /// The veth's other end, when it was in the checkpointing ferry's network
    /// namespace: its name and the bridge it was attached to (information; a
    /// restore attaches the new host end where its operator says).
    public var hostEnd: String?
    public var hostBridge: String?

    public init(name: String, kind: Kind, mac: String? = nil, mtu: UInt32? = nil, up: Bool, addresses: [NetAddress] = [],
                hostEnd: String? = nil, hostBridge: String? = nil) {
        self.name = name; self.kind = kind; self.mac = mac; self.mtu = mtu; self.up = up
        self.addresses = addresses; self.hostEnd = hostEnd; self.hostBridge = hostBridge
    }
}

public struct NetAddress: Codable, Equatable, Sendable {
    public var address: String
    public var prefix: UInt8
    /// rtnetlink scope (0 global, 253 link, 254 host).
    public var scope: UInt8
    /// IFA_F_* bits as the kernel reported them (a restore adds IFA_F_NODAD for IPv6).
    public var flags: UInt32
    public var broadcast: String?
    /// An IPv4 label other than the interface's name (`eth0:1`).
    public var label: String?

    public init(address: String, prefix: UInt8, scope: UInt8 = 0, flags: UInt32 = 0, broadcast: String? = nil, label: String? = nil) {
        self.address = address; self.prefix = prefix; self.scope = scope; self.flags = flags
        self.broadcast = broadcast; self.label = label
    }
}

public struct NetRoute: Codable, Equatable, Sendable {
    /// nil: the default route of `family`.
    public var destination: String?
    public var prefix: UInt8
    /// "inet" or "inet6".
    public var family: String
    public var gateway: String?
    /// The interface name (the index changes on restore).
    public var device: String?
    public var metric: UInt32?
    public var source: String?
    public var scope: UInt8
    public var proto: UInt8

    public init(destination: String?, prefix: UInt8, family: String, gateway: String? = nil, device: String? = nil,
                metric: UInt32? = nil, source: String? = nil, scope: UInt8 = 0, proto: UInt8 = 3) {
        self.destination = destination; self.prefix = prefix; self.family = family; self.gateway = gateway
        self.device = device; self.metric = metric; self.source = source; self.scope = scope; self.proto = proto
    }

    public var description: String {
        "\(destination.map { "\($0)/\(prefix)" } ?? "default")\(gateway.map { " via \($0)" } ?? "")\(device.map { " dev \($0)" } ?? "")"
    }
}

// MARK: validation

extension NetworkRecord {
    public func validate() throws {
        func bad(_ field: String, _ why: String) -> ContainerError { .invalid(field: "network.\(field)", reason: why) }
        guard interfaces.count <= Self.maxInterfaces else { throw bad("interfaces", "\(interfaces.count) interfaces, more than \(Self.maxInterfaces)") }
        guard routes.count <= Self.maxRoutes else { throw bad("routes", "\(routes.count) routes, more than \(Self.maxRoutes)") }
        var names = Set<String>()
        for i in interfaces {
            if let why = NetInterface.nameProblem(i.name) { throw bad("interfaces", "name \"\(i.name.prefix(40))\": \(why)") }
            guard names.insert(i.name).inserted else { throw bad("interfaces", "\(i.name) given twice") }
            if let h = i.hostEnd, let why = NetInterface.nameProblem(h) { throw bad("interfaces.hostEnd", "name \"\(h.prefix(40))\": \(why)") }
            if let h = i.hostBridge, let why = NetInterface.nameProblem(h) { throw bad("interfaces.hostBridge", "name \"\(h.prefix(40))\": \(why)") }
            if let mac = i.mac, IPText.mac(mac) == nil { throw bad("interfaces.mac", "\"\(mac.prefix(40))\" is not a MAC address") }
            if let mtu = i.mtu, !(68...65536).contains(mtu) { throw bad("interfaces.mtu", "\(mtu) is outside 68...65536") }
            guard i.addresses.count <= Self.maxAddresses else { throw bad("interfaces.addresses", "\(i.addresses.count) addresses on \(i.name), more than \(Self.maxAddresses)") }
            for a in i.addresses {
                guard let bytes = IPText.parse(a.address) else { throw bad("addresses", "\"\(a.address.prefix(60))\" is not an IP address") }
                guard Int(a.prefix) <= bytes.count * 8 else { throw bad("addresses", "prefix /\(a.prefix) of \(a.address)") }
                if let b = a.broadcast, IPText.parse(b)?.count != 4 || bytes.count != 4 { throw bad("addresses", "broadcast \"\(b.prefix(60))\" of \(a.address)") }
                if let l = a.label, l.isEmpty || l.utf8.count > 15 || l.contains("/") { throw bad("addresses", "label \"\(l.prefix(40))\" of \(a.address)") }
            }
        }
        for r in routes {
            let len: Int
            switch r.family {
            case "inet": len = 4
            case "inet6": len = 16
            default: throw bad("routes", "family \"\(r.family.prefix(20))\"")
            }
            for (what, text) in [("destination", r.destination), ("gateway", r.gateway), ("source", r.source)] {
                if let text, IPText.parse(text)?.count != len { throw bad("routes", "\(what) \"\(text.prefix(60))\" is not an \(r.family) address") }
            }
            guard Int(r.prefix) <= len * 8, r.destination != nil || r.prefix == 0 else { throw bad("routes", "prefix /\(r.prefix) of \(r.description)") }
            if let d = r.device, !names.contains(d) { throw bad("routes", "route \(r.description) names an interface the record lacks") }
        }
    }
}

extension NetInterface {
    /// Why the kernel would refuse `name` as an interface name (nil: it takes it).
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "empty" }
        if name.utf8.count > 15 { return "longer than 15 bytes (IFNAMSIZ)" }
        if name == "." || name == ".." { return "not a name" }
        if name.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 32 || $0 == 127 }) {
            return "holds '/', ':', a space or a control character"
        }
        return nil
    }
}

/// IP addresses and MACs as text, both ways (no OS call: FerryContainer is OS-neutral).
public enum IPText {
    /// 4 bytes for dotted IPv4, 16 for IPv6 (with `::` and a dotted tail); nil otherwise.
    public static func parse(_ text: String) -> [UInt8]? {
        if text.contains(":") { return v6(Substring(text)) }
        return v4(Substring(text))
    }

    static func v4(_ s: Substring) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard (1...3).contains(p.count), p.allSatisfy(\.isASCII), let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }

    static func v6(_ s: Substring) -> [UInt8]? {
        guard s.count <= 45 else { return nil }
        let halves = s.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ h: String) -> [UInt8]? {
            if h.isEmpty { return [] }
            var out: [UInt8] = []
            let parts = h.split(separator: ":", omittingEmptySubsequences: false)
            for (i, p) in parts.enumerated() {
                if i == parts.count - 1, p.contains(".") {
                    guard let v4 = v4(p) else { return nil }
                    out += v4
                } else {
                    guard (1...4).contains(p.count), p.allSatisfy(\.isHexDigit), let v = UInt16(p, radix: 16) else { return nil }
                    out += [UInt8(v >> 8), UInt8(v & 0xff)]
                }
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 16 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count <= 14 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }

    /// Text of 4 or 16 bytes (IPv6 with the longest run of zero groups as `::`); nil for other lengths.
    public static func format(_ b: [UInt8]) -> String? {
        if b.count == 4 { return b.map(String.init).joined(separator: ".") }
        guard b.count == 16 else { return nil }
        let g = (0..<8).map { UInt16(b[2 * $0]) << 8 | UInt16(b[2 * $0 + 1]) }
        var best = (start: -1, len: 0), cur = (start: -1, len: 0)
        for (i, v) in g.enumerated() {
            if v == 0 {
                cur = cur.start < 0 ? (i, 1) : (cur.start, cur.len + 1)
                if cur.len > best.len { best = cur }
            } else { cur = (-1, 0) }
        }
        let hex = g.map { String($0, radix: 16) }
        guard best.len >= 2 else { return hex.joined(separator: ":") }
        return hex[..<best.start].joined(separator: ":") + "::" + hex[(best.start + best.len)...].joined(separator: ":")
    }

    public static func mac(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard p.count == 2, p.allSatisfy(\.isHexDigit), let v = UInt8(p, radix: 16) else { return nil }
            out.append(v)
        }
        return out
    }

    public static func formatMAC(_ b: [UInt8]) -> String {
        b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}
