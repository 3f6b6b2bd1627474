import FerryContainer
@testable import FerryCore
import Testing

/// rtnetlink bytes both ways, and what of a network namespace is carried, skipped or refused.
struct NetworkPlanTests {
    typealias R = Rtnetlink

    /// A link answer as the kernel sends it.
    static func linkMessage(index: Int32, name: String, arp: UInt16 = 1, up: Bool = true, kind: String? = nil, mac: [UInt8] = [],
                            mtu: UInt32 = 1500, peer: Int32? = nil, master: Int32? = nil, netnsid: Bool = false) -> [UInt8] {
        var h = R.ifinfo(index: index, flags: up ? 0x41 : 0)
        h[2] = UInt8(arp & 0xff); h[3] = UInt8(arp >> 8)
        var r = R.Request(type: R.newLink, flags: 2, seq: 7, header: h)
        r.add(3, string: name)
        if !mac.isEmpty { r.add(1, mac) }
        r.add(4, u32: mtu)
        if let peer { r.add(5, u32: UInt32(bitPattern: peer)) }
        if let master { r.add(10, u32: UInt32(bitPattern: master)) }
        if netnsid { r.add(37, u32: 0) }
        if let kind { r.nest(18, R.Request.attribute(1, Array(kind.utf8) + [0])) }
        return r.message
    }

    static func link(_ bytes: [UInt8]) throws -> R.Link { try R.link(try #require(R.messages(bytes).first)) }

    static func addressMessage(index: Int32, family: UInt8, local: [UInt8], prefix: UInt8, scope: UInt8 = 0, flags: UInt32 = 0x80) -> R.Address {
        let bytes = R.newAddress(family: family, index: index, local: local, prefix: prefix, scope: scope, flags: flags, broadcast: nil, label: nil, seq: 3)
        return try! R.address(R.messages(bytes)[0])
    }

    static func route(family: UInt8 = R.afInet, dst: [UInt8] = [], len: UInt8 = 0, gw: [UInt8]? = nil, oif: Int32? = 2,
                      table: UInt32 = 254, proto: UInt8 = 3, type: UInt8 = 1) -> R.Route {
        R.Route(family: family, dstLength: len, srcLength: 0, table: table, proto: proto, scope: 0, type: type, destination: dst,
                gateway: gw, outputIndex: oif, priority: nil, preferredSource: nil, uncarried: [])
    }

    let lo = try! Self.link(Self.linkMessage(index: 1, name: "lo", arp: 772, mtu: 65536))
    let eth0 = try! Self.link(Self.linkMessage(index: 2, name: "eth0", kind: "veth", mac: [2, 0, 0, 0, 0, 9], mtu: 1400, peer: 40, netnsid: true))

    @Test func linkAnswerIsParsed() throws {
        #expect(eth0.name == "eth0" && eth0.kind == "veth" && eth0.mtu == 1400 && eth0.link == 40 && eth0.peerInOtherNamespace && eth0.isUp)
        #expect(eth0.mac == [2, 0, 0, 0, 0, 9])
        #expect(lo.arpType == 772 && lo.kind == nil && !lo.peerInOtherNamespace)
    }

    @Test func truncatedAndLyingMessagesAreErrorsNotTraps() throws {
        let good = Self.linkMessage(index: 2, name: "eth0", kind: "veth")
        for cut in [1, 8, 15, 17, 20, good.count - 1] {
            var bytes = Array(good.prefix(cut))
            if cut >= 4 { bytes[0] = UInt8(cut & 0xff); bytes[1] = 0; bytes[2] = 0; bytes[3] = 0 }
            _ = try? R.messages(bytes).map(R.link)   // must not trap
        }
        var lying = good
        lying[0] = 0xff; lying[1] = 0xff
        #expect(throws: RtnetlinkError.self) { try R.messages(lying) }
        var badAttr = good
        badAttr[32] = 0xff   // the first attribute's length
        #expect(throws: RtnetlinkError.self) { try R.link(R.messages(badAttr)[0]) }
        #expect(throws: RtnetlinkError.self) { try R.attributes([1, 2], from: 3) }
        #expect(throws: RtnetlinkError.self) { try R.errorCode(R.Message(type: 2, flags: 0, seq: 0, payload: [1])) }
    }

    @Test func vethRequestNestsThePeerWithItsNamespace() throws {
        let bytes = R.newVeth(name: "vh1", peer: "eth0", peerMAC: [2, 0, 0, 0, 0, 9], mtu: 1400, namespaceFD: 5, seq: 9)
        let m = try #require(R.messages(bytes).first)
        #expect(m.type == R.newLink && m.flags == R.fRequest | R.fAck | R.fCreate | R.fExcl && m.seq == 9)
        let attrs = try R.attributes(m.payload, from: 16)
        #expect(attrs.first { $0.type == 3 }.map { R.string($0.value) } == "vh1")
        let info = try R.attributes(try #require(attrs.first { $0.type == 18 }).value, from: 0)
        #expect(info.first { $0.type == 1 }.map { R.string($0.value) } == "veth")
        let peerInfo = try R.attributes(try #require(info.first { $0.type == 2 }).value, from: 0)
        let peer = try #require(peerInfo.first { $0.type == 1 })
        let peerAttrs = try R.attributes(peer.value, from: 16)
        #expect(peerAttrs.first { $0.type == 3 }.map { R.string($0.value) } == "eth0")
        #expect(peerAttrs.first { $0.type == 28 }?.value == [5, 0, 0, 0])
        #expect(peerAttrs.first { $0.type == 1 }?.value == [2, 0, 0, 0, 0, 9])
    }

    @Test func routeRequestRoundTrips() throws {
        let r = Self.route(dst: [10, 1, 0, 0], len: 16, gw: [10, 0, 0, 1], oif: 3)
        let back = try R.route(R.messages(R.newRoute(r, seq: 4))[0])
        #expect(back == r)
    }

    @Test func captureCarriesLoopbackVethAddressesAndMainRoutes() throws {
        let host = try Self.link(Self.linkMessage(index: 40, name: "vh1", kind: "veth", peer: 2, master: 41, netnsid: true))
        let bridge = try Self.link(Self.linkMessage(index: 41, name: "br0", kind: "bridge"))
        let addresses = [
            Self.addressMessage(index: 1, family: R.afInet, local: [127, 0, 0, 1], prefix: 8, scope: 254),
            Self.addressMessage(index: 2, family: R.afInet, local: [10, 0, 0, 2], prefix: 24),
            Self.addressMessage(index: 2, family: R.afInet6, local: [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [2], prefix: 64),
            Self.addressMessage(index: 2, family: R.afInet6, local: [0xfe, 0x80] + [UInt8](repeating: 0, count: 13) + [9], prefix: 64, scope: 253),
            Self.addressMessage(index: 2, family: R.afInet6, local: [0x20, 1, 0xd, 0xb8] + [UInt8](repeating: 0, count: 11) + [7], prefix: 64, flags: 0),
        ]
        let routes = [
            Self.route(dst: [10, 0, 0, 0], len: 24, proto: 2),            // the address's own: kernel
            Self.route(gw: [10, 0, 0, 1]),                                 // default
            Self.route(dst: [10, 0, 0, 1], len: 32, table: 255, proto: 2), // local table
        ]
        let c = try NetworkPlan.capture(links: [lo, eth0], addresses: addresses, routes: routes, rules: [2: 3, 10: 2], hostLinks: [host, bridge])
        #expect(c.record.interfaces.map(\.name) == ["lo", "eth0"])
        let e = c.record.interfaces[1]
        #expect(e.kind == .veth && e.mac == "02:00:00:00:00:09" && e.mtu == 1400 && e.up && e.hostEnd == "vh1" && e.hostBridge == "br0")
        #expect(e.addresses.map(\.address) == ["10.0.0.2", "fd00::2"])
        #expect(c.record.interfaces[0].addresses.isEmpty)
        #expect(c.record.routes == [NetRoute(destination: nil, prefix: 0, family: "inet", gateway: "10.0.0.1", device: "eth0", proto: 3)])
        #expect(c.notes.count == 1 && c.notes[0].value.contains("2001:db8::7/64"))
        try c.record.validate()
    }

    @Test func otherKindsTablesTypesAndRulesAreRefusedByName() throws {
        let tun = try Self.link(Self.linkMessage(index: 3, name: "tun0", arp: 65534, kind: "tun"))
        #expect(throws: NetworkPlan.Refusal.interfaceKind(name: "tun0", kind: "tun")) {
            try NetworkPlan.capture(links: [lo, tun], addresses: [], routes: [])
        }
        let bridge = try Self.link(Self.linkMessage(index: 3, name: "br1", kind: "bridge"))
        #expect((try? NetworkPlan.capture(links: [bridge], addresses: [], routes: [])) == nil)
        // A fallback tunnel device, down, is the kernel's: skipped.
        let sit = try Self.link(Self.linkMessage(index: 4, name: "sit0", arp: 776, up: false, kind: "sit"))
        #expect(try NetworkPlan.capture(links: [lo, sit], addresses: [], routes: []).record.interfaces.map(\.name) == ["lo"])
        #expect(throws: NetworkPlan.Refusal.routeTable(table: 100, route: "default via 10.0.0.1 dev eth0")) {
            try NetworkPlan.capture(links: [lo, eth0], addresses: [], routes: [Self.route(gw: [10, 0, 0, 1], table: 100)])
        }
        #expect(throws: NetworkPlan.Refusal.routeType(type: 6, route: "10.9.0.0/16")) {
            try NetworkPlan.capture(links: [lo, eth0], addresses: [], routes: [Self.route(dst: [10, 9, 0, 0], len: 16, oif: nil, type: 6)])
        }
        var multipath = Self.route(dst: [10, 9, 0, 0], len: 16)
        multipath.uncarried = ["multipath"]
        #expect(throws: NetworkPlan.Refusal.routeAttribute(what: "multipath", route: "10.9.0.0/16 dev eth0")) {
            try NetworkPlan.capture(links: [lo, eth0], addresses: [], routes: [multipath])
        }
        #expect(throws: NetworkPlan.Refusal.policyRules(family: "IPv4", count: 1)) {
            try NetworkPlan.capture(links: [lo, eth0], addresses: [], routes: [], rules: [2: 4])
        }
        // Both ends of a veth inside: refused; the other end in a third namespace: carried, with a note.
        let inner = try Self.link(Self.linkMessage(index: 5, name: "va", kind: "veth", peer: 6))
        #expect(throws: NetworkPlan.Refusal.vethPairInside(name: "va")) { try NetworkPlan.capture(links: [lo, inner], addresses: [], routes: []) }
        let elsewhere = try NetworkPlan.capture(links: [lo, eth0], addresses: [], routes: [], hostLinks: [])
        #expect(elsewhere.record.interfaces[1].hostEnd == nil && elsewhere.notes.count == 1 && elsewhere.notes[0].value == "eth0")
        let refusal = NetworkPlan.Refusal.interfaceKind(name: "tun0", kind: "tun").description
        #expect(refusal.contains("tun0") && refusal.contains("ip link del tun0"))
    }

    @Test func restoreOrderNamesAndFlags() {
        let a = NetRoute(destination: nil, prefix: 0, family: "inet", gateway: "10.0.0.1", device: "eth0")
        let b = NetRoute(destination: "10.2.0.0", prefix: 16, family: "inet", device: "eth0")
        #expect(NetworkPlan.restoreOrder([a, b]) == [b, a])
        #expect(NetworkPlan.hostEndName(recorded: "vh1", taken: ["lo"], restorer: 77, n: 1) == "vh1")
        #expect(NetworkPlan.hostEndName(recorded: "vh1", taken: ["vh1"], restorer: 1234567, n: 1) == "fy1234567-1")
        #expect(NetworkPlan.hostEndName(recorded: nil, taken: [], restorer: 2_147_483_647, n: 63).utf8.count <= 15)
        #expect(NetworkPlan.restoreFlags(NetAddress(address: "fd00::2", prefix: 64)) == R.ifaFNodad)
        #expect(NetworkPlan.restoreFlags(NetAddress(address: "10.0.0.2", prefix: 24)) == 0)
        let arp = NetworkPlan.gratuitousARP(mac: [2, 0, 0, 0, 0, 9], ip: [10, 0, 0, 2])
        #expect(arp?.count == 42 && arp?[12] == 0x08 && arp?[13] == 0x06 && arp?[21] == 1)
        #expect(arp.map { Array($0[28..<32]) } == [10, 0, 0, 2] && arp.map { Array($0[38..<42]) } == [10, 0, 0, 2])
        #expect(NetworkPlan.gratuitousARP(mac: [1], ip: [10, 0, 0, 2]) == nil)
    }
}
