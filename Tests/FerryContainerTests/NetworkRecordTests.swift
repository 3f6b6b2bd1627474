import Foundation
import Testing
@testable import FerryContainer

/// The network part of the CONTAINER record: addresses as text, and validation on decode.
struct NetworkRecordTests {
    static func record() -> ContainerRecord {
        var spec = ContainerSpec(name: "ct1")
        spec.isolation.namespaces = [Namespace(.network)]
        let eth0 = NetInterface(name: "eth0", kind: .veth, mac: "02:00:0a:00:00:02", mtu: 1400, up: true,
                                addresses: [NetAddress(address: "10.0.0.2", prefix: 24, broadcast: "10.0.0.255"), NetAddress(address: "fd00::2", prefix: 64)],
                                hostEnd: "vh1", hostBridge: "br0")
        let network = NetworkRecord(interfaces: [NetInterface(name: "lo", kind: .loopback, up: true), eth0],
                                    routes: [NetRoute(destination: nil, prefix: 0, family: "inet", gateway: "10.0.0.1", device: "eth0"),
                                             NetRoute(destination: nil, prefix: 0, family: "inet6", gateway: "fd00::1", device: "eth0")])
        return ContainerRecord(spec: spec, loopbackUp: true, network: network)
    }

    @Test func ipTextBothWays() {
        #expect(IPText.parse("10.0.0.2") == [10, 0, 0, 2])
        #expect(IPText.parse("fd00::2") == [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [2])
        #expect(IPText.parse("::") == [UInt8](repeating: 0, count: 16))
        #expect(IPText.parse("::ffff:10.0.0.1") == [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 10, 0, 0, 1])
        for bad in ["", "10.0.0", "10.0.0.256", "1.2.3.4.5", "fd00:::1", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7:8:9", "٣.1.1.1", " 10.0.0.1"] {
            #expect(IPText.parse(bad) == nil, "\(bad)")
        }
        #expect(IPText.format([0xfd, 0] + [UInt8](repeating: 0, count: 13) + [2]) == "fd00::2")
        #expect(IPText.format([0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]) == "2001:db8:1::1")
        #expect(IPText.format([1, 2, 3]) == nil)
        #expect(IPText.mac("02:00:0a:00:00:02") == [2, 0, 10, 0, 0, 2] && IPText.mac("02:00") == nil)
        #expect(IPText.formatMAC([2, 0, 10, 0, 0, 0xff]) == "02:00:0a:00:00:ff")
    }

    @Test func recordRoundTripsAndSummarizes() throws {
        let r = Self.record()
        let back = try ContainerRecord.decode(try r.encoded())
        #expect(back == r)
        #expect(back.summary.contains("interface: eth0 veth up mac 02:00:0a:00:00:02 mtu 1400 10.0.0.2/24 fd00::2/64 (host end vh1 on bridge br0)"))
        #expect(back.summary.contains("route: default via 10.0.0.1 dev eth0"))
    }

    /// One damage to a good record, by name.
    static func damage(_ what: String, _ r: inout ContainerRecord) {
        switch what {
        case "name": r.network!.interfaces[1].name = "a-name-longer-than-15"
        case "slash": r.network!.interfaces[1].name = "a/b"
        case "twice": r.network!.interfaces[1].name = "lo"
        case "hostEnd": r.network!.interfaces[1].hostEnd = ""
        case "mac": r.network!.interfaces[1].mac = "zz:00:00:00:00:00"
        case "mtu": r.network!.interfaces[1].mtu = 1 << 20
        case "prefix4": r.network!.interfaces[1].addresses[0].prefix = 33
        case "prefix6": r.network!.interfaces[1].addresses[1].prefix = 129
        case "address": r.network!.interfaces[1].addresses[0].address = "10.0.0"
        case "broadcast6": r.network!.interfaces[1].addresses[1].broadcast = "10.0.0.255"
        case "family": r.network!.routes[0].family = "inet6"
        case "device": r.network!.routes[0].device = "eth9"
        case "count": r.network!.routes = Array(repeating: r.network!.routes[0], count: 1025)
        case "netns": r.spec.isolation.namespaces = []
        default: Issue.record("no damage \(what)")
        }
    }

    @Test("hostile records are refused on decode, one line each",
          arguments: ["name", "slash", "twice", "hostEnd", "mac", "mtu", "prefix4", "prefix6", "address", "broadcast6", "family", "device", "count", "netns"])
    func hostile(_ what: String) throws {
        var r = Self.record()
        Self.damage(what, &r)
        #expect(throws: ContainerError.self, "\(what)") { try ContainerRecord.decode(try r.encoded()) }
    }
}
