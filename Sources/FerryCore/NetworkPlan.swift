import FerryContainer

/// What of a container's network namespace ferry carries, refuses or
/// reports, decided once from what rtnetlink showed (`Rtnetlink`), and the
/// order a restore re-creates it in. Pure; FerryLinux's `NetworkNamespace`
/// reads the namespace and sends the requests.
///
/// Carried: the loopback (up or down, and addresses besides 127.0.0.1/8
/// and ::1/128, which the kernel makes), veth interfaces (name, MAC, MTU,
/// up), their IPv4 and static IPv6 addresses (prefix, scope, flags,
/// broadcast, label), and the unicast routes of the main table (destination,
/// gateway, device, metric, preferred source, scope, protocol).
/// Skipped as the kernel's own (re-made by the kernel on restore): the routes
/// of protocol `kernel` and the whole `local` table, IPv6 link-local
/// addresses (fe80::/10, made from the MAC, which is carried), the fallback
/// tunnel devices a loaded module puts in every namespace (tunl0, sit0, …)
/// while down. Reported (a note, not carried): IPv6 addresses and routes
/// learnt from router advertisements (not permanent; the router sends them
/// again). Refused at checkpoint: every other interface kind, any other
/// routing table, other route types, multipath and other route attributes.
public enum NetworkPlan {
    /// A part of the namespace ferry cannot re-create.
    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case interfaceKind(name: String, kind: String)
        case vethPairInside(name: String)
        case pointToPoint(interface: String, address: String)
        case routeTable(table: UInt32, route: String)
        case routeType(type: UInt8, route: String)
        case routeAttribute(what: String, route: String)
        case routeDevice(index: Int32, route: String)
        case policyRules(family: String, count: Int)
        case tooMany(what: String, count: Int, limit: Int)

        public var description: String {
            switch self {
            case .interfaceKind(let name, let kind):
                return "it has interface \(name) of kind \(kind); ferry re-creates only loopback and veth interfaces: delete it (ip link del \(name)) or give the container a veth instead"
            case .vethPairInside(let name):
                return "its veth \(name) has its other end in the same namespace; ferry re-creates a veth with one end outside only: delete the pair or move one end out"
            case .pointToPoint(let i, let a):
                return "address \(a) on \(i) has a peer address (point-to-point), which ferry does not re-create: replace it with a plain address"
            case .routeTable(let t, let r):
                return "route \(r) is in routing table \(t); ferry re-creates only the main table: move the route to the main table or delete it"
            case .routeType(let t, let r):
                return "route \(r) is of type \(t) (not unicast), which ferry does not re-create: delete it"
            case .routeAttribute(let what, let r):
                return "route \(r) has \(what), which ferry does not re-create: replace it with a plain route"
            case .routeDevice(let i, let r):
                return "route \(r) goes out interface index \(i), which is not among the namespace's interfaces"
            case .policyRules(let f, let n):
                return "it has \(n) \(f) routing policy rules besides the kernel's defaults (ip rule), which ferry does not re-create: delete them"
            case .tooMany(let what, let n, let limit):
                return "it has \(n) \(what), more than the \(limit) ferry carries"
            }
        }
    }

    /// Fallback devices of tunnel modules, made down in every new namespace.
    public static let fallbackDevices: Set<String> = ["tunl0", "sit0", "ip6tnl0", "gre0", "gretap0", "erspan0", "ip_vti0", "ip6_vti0", "ip6gre0"]

    /// The kernel's default policy rules per family (local, main, default; IPv6 lacks default).
    public static let defaultRuleCount: [UInt8: Int] = [Rtnetlink.afInet: 3, Rtnetlink.afInet6: 2]

    public struct Capture: Equatable {
        public var record: NetworkRecord
        public var notes: [Untranslated]
    }

    /// The record of a namespace from its links, addresses, routes and
    /// number of policy rules per family; `hostLinks`: the checkpointing
    /// ferry's own links (to name a veth's host end when it is there).
    /// Throws the first part ferry cannot re-create.
    public static func capture(links: [Rtnetlink.Link], addresses: [Rtnetlink.Address], routes: [Rtnetlink.Route],
                               rules: [UInt8: Int] = [:], hostLinks: [Rtnetlink.Link] = []) throws -> Capture {
        var notes: [Untranslated] = []
        var interfaces: [NetInterface] = []
        var names: [Int32: String] = [:]
        for l in links {
            let loopback = l.arpType == Rtnetlink.arphrdLoopback
            if !loopback, l.kind != "veth" {
                if fallbackDevices.contains(l.name), !l.isUp { continue }
                throw Refusal.interfaceKind(name: l.name, kind: l.kind ?? "device (arp type \(l.arpType))")
            }
            names[l.index] = l.name
            var i = NetInterface(name: l.name, kind: loopback ? .loopback : .veth, up: l.isUp)
            if !loopback {
                i.mac = l.mac.count == 6 ? IPText.formatMAC(l.mac) : nil
                i.mtu = l.mtu
                guard l.peerInOtherNamespace else { throw Refusal.vethPairInside(name: l.name) }
                if let peer = hostEnd(of: l, among: hostLinks) {
                    i.hostEnd = peer.name
                    i.hostBridge = peer.master.flatMap { m in hostLinks.first { $0.index == m }?.name }
                } else {
                    notes.append(Untranslated(.approximated, field: "network veth", value: l.name,
                                              reason: "its other end is in a namespace other than the checkpointing ferry's; a restore puts the new other end in the restoring ferry's namespace"))
                }
            }
            interfaces.append(i)
        }
        guard interfaces.count <= NetworkRecord.maxInterfaces else {
            throw Refusal.tooMany(what: "interfaces", count: interfaces.count, limit: NetworkRecord.maxInterfaces)
        }
        for a in addresses {
            guard let n = interfaces.firstIndex(where: { names[a.index] == $0.name }), let text = IPText.format(a.local) else { continue }
            let i = interfaces[n]
            if i.kind == .loopback, (a.family == Rtnetlink.afInet && text == "127.0.0.1" && a.prefix == 8) || (a.family == Rtnetlink.afInet6 && text == "::1") {
                continue
            }
            if a.family == Rtnetlink.afInet6 {
                if a.local.count == 16, a.local[0] == 0xfe, a.local[1] & 0xc0 == 0x80 { continue }
                if a.flags & Rtnetlink.ifaFPermanent == 0 {
                    notes.append(Untranslated(field: "network address", value: "\(text)/\(a.prefix) on \(i.name)",
                                              reason: "learnt from a router advertisement (not permanent): not re-created; the router advertises it again"))
                    continue
                }
            }
            if a.address != a.local { throw Refusal.pointToPoint(interface: i.name, address: "\(text)/\(a.prefix)") }
            guard interfaces[n].addresses.count < NetworkRecord.maxAddresses else {
                throw Refusal.tooMany(what: "addresses on \(i.name)", count: interfaces[n].addresses.count + 1, limit: NetworkRecord.maxAddresses)
            }
            // The kernel's state bits are not the address's: keep what was asked for.
            let kept: UInt32 = 0x02 | 0x10 | 0x100 | 0x200 | 0x400   // NODAD, HOMEADDRESS, MANAGETEMPADDR, NOPREFIXROUTE, MCAUTOJOIN
            interfaces[n].addresses.append(NetAddress(address: text, prefix: a.prefix, scope: a.scope, flags: a.flags & kept,
                                                      broadcast: a.broadcast.flatMap(IPText.format),
                                                      label: a.label.flatMap { $0 == i.name ? nil : $0 }))
        }
        var out: [NetRoute] = []
        for r in routes {
            let family = r.family == Rtnetlink.afInet6 ? "inet6" : "inet"
            let dst = r.destination.isEmpty ? nil : IPText.format(r.destination)
            var shown = NetRoute(destination: dst, prefix: r.dstLength, family: family, gateway: r.gateway.flatMap(IPText.format),
                                 device: r.outputIndex.flatMap { names[$0] }, metric: r.priority,
                                 source: r.preferredSource.flatMap(IPText.format), scope: r.scope, proto: r.proto)
            if r.table == Rtnetlink.tableLocal || r.proto == Rtnetlink.protoKernel { continue }
            if r.proto == Rtnetlink.protoRA {
                notes.append(Untranslated(field: "network route", value: shown.description,
                                          reason: "learnt from a router advertisement: not re-created; the router advertises it again"))
                continue
            }
            guard r.table == Rtnetlink.tableMain else { throw Refusal.routeTable(table: r.table, route: shown.description) }
            guard r.type == Rtnetlink.rtnUnicast else { throw Refusal.routeType(type: r.type, route: shown.description) }
            if let what = r.uncarried.first { throw Refusal.routeAttribute(what: what, route: shown.description) }
            if let oif = r.outputIndex, names[oif] == nil {
                throw Refusal.routeDevice(index: oif, route: shown.description)
            }
            if r.srcLength != 0 { throw Refusal.routeAttribute(what: "a source prefix", route: shown.description) }
            shown.prefix = r.dstLength
            out.append(shown)
        }
        guard out.count <= NetworkRecord.maxRoutes else { throw Refusal.tooMany(what: "routes", count: out.count, limit: NetworkRecord.maxRoutes) }
        for (family, count) in rules.sorted(by: { $0.key < $1.key }) where count > (defaultRuleCount[family] ?? 0) {
            throw Refusal.policyRules(family: family == Rtnetlink.afInet6 ? "IPv6" : "IPv4", count: count - (defaultRuleCount[family] ?? 0))
        }
        return Capture(record: NetworkRecord(interfaces: interfaces, routes: out), notes: notes)
    }

    /// The host end of the container's veth `l` among `hostLinks` (the
    /// links of ferry's namespace): a veth there whose peer index is `l`'s
    /// and whose index is `l`'s peer index, both with their peer in another
    /// namespace. (Indexes are per namespace: a veth pair elsewhere with the
    /// same two indexes would be taken for it.)
    public static func hostEnd(of l: Rtnetlink.Link, among hostLinks: [Rtnetlink.Link]) -> Rtnetlink.Link? {
        guard l.kind == "veth", l.peerInOtherNamespace else { return nil }
        return hostLinks.first { $0.kind == "veth" && $0.index == l.link && $0.link == l.index && $0.peerInOtherNamespace }
    }

    /// The routes in the order a restore adds them: those without a gateway
    /// first (a gateway must be reachable through one of them or an
    /// address's own prefix route when its route is added).
    public static func restoreOrder(_ routes: [NetRoute]) -> [NetRoute] {
        routes.filter { $0.gateway == nil } + routes.filter { $0.gateway != nil }
    }

    /// A host-end name for `interface` on restore: the recorded one when
    /// free here, else `fy<restorer pid>-<n>` (at most 15 bytes).
    public static func hostEndName(recorded: String?, taken: Set<String>, restorer: Int32, n: Int) -> String {
        if let recorded, !taken.contains(recorded) { return recorded }
        return String("fy\(restorer)-\(n)".prefix(15))
    }

    /// A gratuitous ARP request (an Ethernet frame) announcing that `ip`
    /// (4 bytes) is at `mac` (6 bytes): neighbours and switches that knew
    /// the address at the source update their entry at once. nil for other lengths.
    public static func gratuitousARP(mac: [UInt8], ip: [UInt8]) -> [UInt8]? {
        guard mac.count == 6, ip.count == 4 else { return nil }
        let ethernet: [UInt8] = [UInt8](repeating: 0xff, count: 6) + mac + [0x08, 0x06]
        let arp: [UInt8] = [0, 1, 0x08, 0x00, 6, 4, 0, 1] + mac + ip + [UInt8](repeating: 0, count: 6) + ip
        return ethernet + arp
    }

    /// The address's flags to ask for on restore: IPv6 without duplicate
    /// address detection (the address was in use a moment ago: it must work
    /// at once, as the connections of the restored sockets go on).
    public static func restoreFlags(_ a: NetAddress) -> UInt32 {
        (IPText.parse(a.address)?.count == 16) ? a.flags | Rtnetlink.ifaFNodad : a.flags
    }
}
