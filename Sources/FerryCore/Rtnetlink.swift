/// rtnetlink (NETLINK_ROUTE) messages as bytes, both ways: the requests
/// ferry sends to read and re-create a network namespace's interfaces,
/// addresses and routes, and the parsing of the kernel's answers into typed
/// values. Pure: the sockets are in FerryLinux (NetworkNamespace.swift).
///
/// Netlink is in the host's byte order (little-endian on every machine
/// ferry runs on); addresses are in network order, as raw bytes.
/// Every length is checked before it is used: a truncated or lying message
/// gives `RtnetlinkError`, never a trap.
public enum Rtnetlink {
    // Message types and flags (linux/netlink.h, linux/rtnetlink.h).
    public static let nlmsgError: UInt16 = 2, nlmsgDone: UInt16 = 3
    public static let newLink: UInt16 = 16, getLink: UInt16 = 18
    public static let newAddr: UInt16 = 20, getAddr: UInt16 = 22
    public static let newRoute: UInt16 = 24, getRoute: UInt16 = 26
    public static let getRule: UInt16 = 34
    public static let fRequest: UInt16 = 0x1, fAck: UInt16 = 0x4, fDump: UInt16 = 0x300
    public static let fExcl: UInt16 = 0x200, fCreate: UInt16 = 0x400

    public static let afUnspec: UInt8 = 0, afInet: UInt8 = 2, afInet6: UInt8 = 10
    public static let iffUp: UInt32 = 0x1
    public static let arphrdLoopback: UInt16 = 772
    public static let ifaFNodad: UInt32 = 0x02, ifaFPermanent: UInt32 = 0x80
    public static let tableMain: UInt32 = 254, tableLocal: UInt32 = 255
    public static let protoKernel: UInt8 = 2, protoRA: UInt8 = 9
    public static let rtnUnicast: UInt8 = 1

    /// One message: type, flags, sequence number and the payload after the 16-byte header.
    public struct Message: Equatable, Sendable {
        public var type: UInt16
        public var flags: UInt16
        public var seq: UInt32
        public var payload: [UInt8]
    }

    /// One attribute: its type (nested and byte-order bits cleared) and value.
    public struct Attribute: Equatable, Sendable {
        public var type: UInt16
        public var value: [UInt8]
    }

    // MARK: reading

    /// The messages of one received datagram.
    public static func messages(_ bytes: [UInt8]) throws -> [Message] {
        var out: [Message] = []
        var off = 0
        while off < bytes.count {
            guard bytes.count - off >= 16 else { throw RtnetlinkError("a netlink header cut short (\(bytes.count - off) bytes)") }
            let len = Int(u32(bytes, off))
            guard len >= 16, len <= bytes.count - off else { throw RtnetlinkError("a netlink message of \(len) bytes in \(bytes.count - off)") }
            out.append(Message(type: u16(bytes, off + 4), flags: u16(bytes, off + 6), seq: u32(bytes, off + 8),
                               payload: Array(bytes[(off + 16)..<(off + len)])))
            off += min(align(len), bytes.count - off)
        }
        return out
    }

    /// The attributes after `from` bytes of fixed header in `bytes`.
    public static func attributes(_ bytes: [UInt8], from: Int) throws -> [Attribute] {
        guard from <= bytes.count else { throw RtnetlinkError("a message of \(bytes.count) bytes, shorter than its \(from)-byte header") }
        var out: [Attribute] = []
        var off = from
        while bytes.count - off >= 4 {
            let len = Int(u16(bytes, off))
            guard len >= 4, len <= bytes.count - off else { throw RtnetlinkError("an attribute of \(len) bytes in \(bytes.count - off)") }
            out.append(Attribute(type: u16(bytes, off + 2) & 0x3fff, value: Array(bytes[(off + 4)..<(off + len)])))
            off += min(align(len), bytes.count - off)
        }
        return out
    }

    /// The errno of an NLMSG_ERROR message (0: an acknowledgement).
    public static func errorCode(_ m: Message) throws -> Int32 {
        guard m.payload.count >= 4 else { throw RtnetlinkError("an error message of \(m.payload.count) bytes") }
        return -Int32(bitPattern: u32(m.payload, 0))
    }

    /// A null-terminated string attribute.
    public static func string(_ v: [UInt8]) -> String {
        String(decoding: v.prefix { $0 != 0 }, as: UTF8.self)
    }

    public static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    public static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }

    static func u32(_ v: [UInt8]) -> UInt32? { v.count >= 4 ? u32(v, 0) : nil }

    static func align(_ n: Int) -> Int { (n + 3) & ~3 }

    // MARK: typed answers

    /// An interface (RTM_NEWLINK answer).
    public struct Link: Equatable, Sendable {
        public var index: Int32
        public var arpType: UInt16
        public var flags: UInt32
        public var name: String
        public var mac: [UInt8]
        public var mtu: UInt32?
        /// IFLA_INFO_KIND: "veth", "bridge", … (nil: none, as for lo or a physical device).
        public var kind: String?
        /// IFLA_LINK: a veth's peer index (in the peer's namespace).
        public var link: Int32?
        /// IFLA_MASTER: the bridge (or bond) the interface is attached to.
        public var master: Int32?
        /// IFLA_LINK_NETNSID present: the peer is in another namespace.
        public var peerInOtherNamespace: Bool

        public var isUp: Bool { flags & iffUp != 0 }
    }

    public static func link(_ m: Message) throws -> Link {
        guard m.payload.count >= 16 else { throw RtnetlinkError("a link message of \(m.payload.count) bytes") }
        let p = m.payload
        var l = Link(index: Int32(bitPattern: u32(p, 4)), arpType: u16(p, 2), flags: u32(p, 8), name: "", mac: [],
                     mtu: nil, kind: nil, link: nil, master: nil, peerInOtherNamespace: false)
        for a in try attributes(p, from: 16) {
            switch a.type {
            case 1: l.mac = a.value
            case 3: l.name = string(a.value)
            case 4: l.mtu = u32(a.value)
            case 5: l.link = u32(a.value).map { Int32(bitPattern: $0) }
            case 10: l.master = u32(a.value).map { Int32(bitPattern: $0) }
            case 37: l.peerInOtherNamespace = true
            case 18:
                for info in try attributes(a.value, from: 0) where info.type == 1 { l.kind = string(info.value) }
            default: break
            }
        }
        return l
    }

    /// An address (RTM_NEWADDR answer).
    public struct Address: Equatable, Sendable {
        public var family: UInt8
        public var prefix: UInt8
        public var scope: UInt8
        public var index: Int32
        /// IFA_FLAGS when present (it has every bit), else the header's 8.
        public var flags: UInt32
        /// IFA_LOCAL, else IFA_ADDRESS.
        public var local: [UInt8]
        /// IFA_ADDRESS: the peer of a point-to-point address (equal to local otherwise).
        public var address: [UInt8]
        public var broadcast: [UInt8]?
        public var label: String?
    }

    public static func address(_ m: Message) throws -> Address {
        guard m.payload.count >= 8 else { throw RtnetlinkError("an address message of \(m.payload.count) bytes") }
        let p = m.payload
        var a = Address(family: p[0], prefix: p[1], scope: p[3], index: Int32(bitPattern: u32(p, 4)), flags: UInt32(p[2]),
                        local: [], address: [], broadcast: nil, label: nil)
        for attr in try attributes(p, from: 8) {
            switch attr.type {
            case 1: a.address = attr.value
            case 2: a.local = attr.value
            case 3: a.label = string(attr.value)
            case 4: a.broadcast = attr.value
            case 8: if let f = u32(attr.value) { a.flags = f }
            default: break
            }
        }
        if a.local.isEmpty { a.local = a.address }
        if a.address.isEmpty { a.address = a.local }
        return a
    }

    /// A route (RTM_NEWROUTE answer).
    public struct Route: Equatable, Sendable {
        public var family: UInt8
        public var dstLength: UInt8
        public var srcLength: UInt8
        public var table: UInt32
        public var proto: UInt8
        public var scope: UInt8
        public var type: UInt8
        public var destination: [UInt8]
        public var gateway: [UInt8]?
        public var outputIndex: Int32?
        public var priority: UInt32?
        public var preferredSource: [UInt8]?
        /// RTA_MULTIPATH, RTA_VIA, RTA_METRICS, RTA_SRC…: what ferry does not re-create, by name.
        public var uncarried: [String]

        public init(family: UInt8, dstLength: UInt8, srcLength: UInt8, table: UInt32, proto: UInt8, scope: UInt8, type: UInt8,
                    destination: [UInt8], gateway: [UInt8]?, outputIndex: Int32?, priority: UInt32?, preferredSource: [UInt8]?,
                    uncarried: [String]) {
            self.family = family; self.dstLength = dstLength; self.srcLength = srcLength; self.table = table; self.proto = proto
            self.scope = scope; self.type = type; self.destination = destination; self.gateway = gateway
            self.outputIndex = outputIndex; self.priority = priority; self.preferredSource = preferredSource; self.uncarried = uncarried
        }
    }

    public static func route(_ m: Message) throws -> Route {
        guard m.payload.count >= 12 else { throw RtnetlinkError("a route message of \(m.payload.count) bytes") }
        let p = m.payload
        var r = Route(family: p[0], dstLength: p[1], srcLength: p[2], table: UInt32(p[4]), proto: p[5], scope: p[6], type: p[7],
                      destination: [], gateway: nil, outputIndex: nil, priority: nil, preferredSource: nil, uncarried: [])
        for a in try attributes(p, from: 12) {
            switch a.type {
            case 1: r.destination = a.value
            case 4: r.outputIndex = u32(a.value).map { Int32(bitPattern: $0) }
            case 5: r.gateway = a.value
            case 6: r.priority = u32(a.value)
            case 7: r.preferredSource = a.value
            case 15: if let t = u32(a.value) { r.table = t }
            case 2: r.uncarried.append("source prefix")
            case 3: r.uncarried.append("input interface")
            case 9: r.uncarried.append("multipath")
            case 18: r.uncarried.append("via")
            case 8:
                // RTA_METRICS: the kernel lists it (empty or not) on some routes; only non-empty is state.
                if !(try attributes(a.value, from: 0)).isEmpty { r.uncarried.append("metrics (mtu, window…)") }
            case 14: r.uncarried.append("mark")
            case 21: r.uncarried.append("encapsulation")
            default: break
            }
        }
        return r
    }

    // MARK: requests

    /// Builds one request: header, fixed part, attributes.
    public struct Request {
        var bytes: [UInt8]

        public init(type: UInt16, flags: UInt16, seq: UInt32, header: [UInt8]) {
            bytes = [UInt8](repeating: 0, count: 16) + header
            put16(type, at: 4)
            put16(flags, at: 6)
            put32(seq, at: 8)
        }

        mutating func put16(_ v: UInt16, at: Int) { bytes[at] = UInt8(v & 0xff); bytes[at + 1] = UInt8(v >> 8) }
        mutating func put32(_ v: UInt32, at: Int) { for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }

        public mutating func add(_ type: UInt16, _ value: [UInt8]) {
            bytes += Request.attribute(type, value)
        }

        public mutating func add(_ type: UInt16, u32 v: UInt32) { add(type, Rtnetlink.le32(v)) }

        public mutating func add(_ type: UInt16, string: String) { add(type, Array(string.utf8) + [0]) }

        /// An attribute holding attributes (NLA_F_NESTED set).
        public mutating func nest(_ type: UInt16, _ inner: [UInt8]) { add(type | 0x8000, inner) }

        static func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
            let len = 4 + value.count
            var a: [UInt8] = [UInt8(len & 0xff), UInt8(len >> 8), UInt8(type & 0xff), UInt8(type >> 8)] + value
            a += [UInt8](repeating: 0, count: Rtnetlink.align(len) - len)
            return a
        }

        /// The finished message, its length written in.
        public var message: [UInt8] {
            var b = self
            b.put32(UInt32(bytes.count), at: 0)
            return b.bytes
        }
    }

    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }

    static func ifinfo(family: UInt8 = 0, index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) -> [UInt8] {
        [family, 0, 0, 0] + le32(UInt32(bitPattern: index)) + le32(flags) + le32(change)
    }

    /// RTM_GETLINK / GETADDR / GETROUTE / GETRULE over every entry of `family`.
    public static func dump(_ type: UInt16, family: UInt8, seq: UInt32) -> [UInt8] {
        let header: [UInt8] = type == getLink ? ifinfo(family: family) : type == getAddr ? [family] + [UInt8](repeating: 0, count: 7)
            : [family] + [UInt8](repeating: 0, count: 11)
        return Request(type: type, flags: fRequest | fDump, seq: seq, header: header).message
    }

    /// A veth pair: `name` here (host end), `peer` created straight in the
    /// namespace of `namespaceFD`, with its MAC and both MTUs.
    public static func newVeth(name: String, peer: String, peerMAC: [UInt8], mtu: UInt32, namespaceFD: Int32, seq: UInt32) -> [UInt8] {
        var peerMsg = Request(type: 0, flags: 0, seq: 0, header: [])
        peerMsg.bytes = ifinfo()
        peerMsg.add(3, string: peer)
        if !peerMAC.isEmpty { peerMsg.add(1, peerMAC) }
        peerMsg.add(4, u32: mtu)
        peerMsg.add(28, u32: UInt32(bitPattern: namespaceFD))
        let data = Request.attribute(1 | 0x8000, peerMsg.bytes)               // VETH_INFO_PEER
        let info = Request.attribute(1, Array("veth".utf8) + [0]) + Request.attribute(2 | 0x8000, data)   // IFLA_INFO_KIND, _DATA
        var r = Request(type: newLink, flags: fRequest | fAck | fCreate | fExcl, seq: seq, header: ifinfo())
        r.add(3, string: name)
        r.add(4, u32: mtu)
        r.nest(18, info)
        return r.message
    }

    /// Sets an interface up or down and, with `master`, attaches it to that bridge.
    public static func setLink(index: Int32, up: Bool, master: Int32? = nil, seq: UInt32) -> [UInt8] {
        var r = Request(type: newLink, flags: fRequest | fAck, seq: seq, header: ifinfo(index: index, flags: up ? iffUp : 0, change: iffUp))
        if let master { r.add(10, u32: UInt32(bitPattern: master)) }
        return r.message
    }

    /// An address on interface `index` (IFA_FLAGS carries every flag bit).
    public static func newAddress(family: UInt8, index: Int32, local: [UInt8], peer: [UInt8]? = nil, prefix: UInt8, scope: UInt8,
                                  flags: UInt32, broadcast: [UInt8]?, label: String?, seq: UInt32) -> [UInt8] {
        var r = Request(type: newAddr, flags: fRequest | fAck | fCreate | fExcl, seq: seq,
                        header: [family, prefix, UInt8(truncatingIfNeeded: flags), scope] + le32(UInt32(bitPattern: index)))
        r.add(2, local)
        r.add(1, peer ?? local)
        if let broadcast { r.add(4, broadcast) }
        if let label { r.add(3, string: label) }
        r.add(8, u32: flags)
        return r.message
    }

    /// A route of the main table.
    public static func newRoute(_ route: Route, seq: UInt32) -> [UInt8] {
        var h: [UInt8] = [route.family, route.dstLength, 0, 0, UInt8(truncatingIfNeeded: min(route.table, 252)), route.proto, route.scope, route.type]
        h += le32(0)
        if route.table < 256 { h[4] = UInt8(route.table) }
        var r = Request(type: newRoute, flags: fRequest | fAck | fCreate | fExcl, seq: seq, header: h)
        if !route.destination.isEmpty { r.add(1, route.destination) }
        if let oif = route.outputIndex { r.add(4, u32: UInt32(bitPattern: oif)) }
        if let gw = route.gateway { r.add(5, gw) }
        if let p = route.priority { r.add(6, u32: p) }
        if let s = route.preferredSource { r.add(7, s) }
        r.add(15, u32: route.table)
        return r.message
    }
}

/// A malformed netlink message (from the kernel, or bytes in a test).
public struct RtnetlinkError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ d: String) { description = "rtnetlink: " + d }
}
