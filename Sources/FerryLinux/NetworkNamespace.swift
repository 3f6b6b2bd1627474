#if os(Linux)
import Glibc
import CFerryLinux
import FerryContainer
import FerryCore

/// A container's network namespace: its interfaces, addresses and routes,
/// read at checkpoint and re-created at restore, over rtnetlink
/// (NETLINK_ROUTE). The socket for the container's namespace is made there
/// (`ferry_netns_socket`: setns on the calling thread, socket, setns back)
/// and stays there; requests and answers are `Rtnetlink`'s, the decisions
/// `NetworkPlan`'s.
///
/// Restore, for each veth of the record: one RTM_NEWLINK here makes the
/// pair, the host end in ferry's namespace and the container end (name,
/// MAC, MTU) straight in the container's (IFLA_NET_NS_FD); the host end is
/// attached to `--bridge` (IFLA_MASTER) and brought up, or handed to
/// `--net-hook`, or left unattached (its name printed). Inside, the
/// interfaces go up as they were, then the addresses (IPv6 with NODAD), then
/// the routes (`NetworkPlan.restoreOrder`); last a gratuitous ARP announces
/// each IPv4 address (IPv6 addresses are not announced). Nothing needs undoing on a failed
/// restore: the namespace dies with its processes, and a veth pair with it.
enum NetworkNamespace {
    /// Where the host end of each veth goes (`restore`/`serve --bridge`, `--net-hook`).
    struct Attachment: Sendable {
        var bridge: String?
        var hook: String?
    }

    // MARK: checkpoint

    /// The record of `pid`'s network namespace and what it leaves out;
    /// throws a one-line refusal naming the part ferry cannot re-create.
    static func dump(pid: Int32) throws -> NetworkPlan.Capture {
        let inside = try Socket(namespaceOf: pid)
        defer { inside.close() }
        let here = try Socket(namespaceOf: nil)
        defer { here.close() }
        let links = try inside.dump(Rtnetlink.getLink, family: Rtnetlink.afUnspec).map(Rtnetlink.link)
        let addresses = try inside.dump(Rtnetlink.getAddr, family: Rtnetlink.afUnspec).map(Rtnetlink.address)
        let routes = try inside.dump(Rtnetlink.getRoute, family: Rtnetlink.afInet).map(Rtnetlink.route)
            + inside.dump(Rtnetlink.getRoute, family: Rtnetlink.afInet6).map(Rtnetlink.route)
        var rules: [UInt8: Int] = [:]
        for family in [Rtnetlink.afInet, Rtnetlink.afInet6] {
            rules[family] = try inside.dump(Rtnetlink.getRule, family: family).count
        }
        let hostLinks = try here.dump(Rtnetlink.getLink, family: Rtnetlink.afUnspec).map(Rtnetlink.link)
        var capture: NetworkPlan.Capture
        do {
            capture = try NetworkPlan.capture(links: links, addresses: addresses, routes: routes, rules: rules, hostLinks: hostLinks)
        } catch let r as NetworkPlan.Refusal {
            throw FerryError("cannot checkpoint pid \(pid): its network namespace cannot be re-created: \(r)")
        }
        capture.notes += firewallNotes(pid: pid)
        return capture
    }

    /// What a namespace may hold that ferry neither reads nor carries.
    static func firewallNotes(pid: Int32) -> [Untranslated] {
        var notes: [Untranslated] = []
        for (file, what) in [("ip_tables_names", "iptables"), ("ip6_tables_names", "ip6tables")] {
            let tables = ((try? ProcFS.text("/proc/\(pid)/net/\(file)")) ?? "").split(separator: "\n").map(String.init)
            if !tables.isEmpty {
                notes.append(Untranslated(field: "network \(what)", value: tables.joined(separator: ","),
                                          reason: "the namespace's legacy \(what) tables (rules, if any) are not carried: set them up again after restore"))
            }
        }
        notes.append(Untranslated(field: "network namespace", value: "firewall and sysctls",
                                  reason: "nftables rules, net.* sysctls and neighbour entries of the namespace are not read nor carried (the restored namespace has the kernel's defaults)"))
        return notes
    }

    // MARK: restore

    /// Re-creates `record` in `pid`'s network namespace (a new one, with its
    /// loopback already up or down as recorded). Returns one line per host end.
    static func recreate(_ record: NetworkRecord, pid: Int32, attach: Attachment) throws -> [String] {
        let inside = try Socket(namespaceOf: pid)
        defer { inside.close() }
        let here = try Socket(namespaceOf: nil)
        defer { here.close() }
        let nsPath = "/proc/\(pid)/ns/net"
        let nsFD = open(nsPath, O_RDONLY | O_CLOEXEC)
        guard nsFD >= 0 else { throw SystemError("open(\(nsPath))", errno: errno, "re-creating the container's network") }
        defer { Glibc.close(nsFD) }
        var bridgeIndex: Int32?
        if let b = attach.bridge {
            let i = if_nametoindex(b)
            guard i != 0 else { throw FerryError("cannot restore the container's network: no bridge \(b) here (--bridge): create it (ip link add \(b) type bridge) or name another") }
            bridgeIndex = Int32(bitPattern: i)
        }
        var lines: [String] = []
        let taken = Set(try here.dump(Rtnetlink.getLink, family: Rtnetlink.afUnspec).map { try Rtnetlink.link($0).name })
        for (n, i) in record.interfaces.enumerated() where i.kind == .veth {
            let host = NetworkPlan.hostEndName(recorded: i.hostEnd, taken: taken, restorer: getpid(), n: n)
            try here.request(Rtnetlink.newVeth(name: host, peer: i.name, peerMAC: i.mac.flatMap(IPText.mac) ?? [], mtu: i.mtu ?? 1500,
                                               namespaceFD: nsFD, seq: here.next()),
                             "RTM_NEWLINK veth \(host) / \(i.name)", "creating the container's veth \(i.name) (host end \(host))")
            let hostIndex = Int32(bitPattern: if_nametoindex(host))
            if let bridgeIndex, let b = attach.bridge {
                try here.request(Rtnetlink.setLink(index: hostIndex, up: true, master: bridgeIndex, seq: here.next()),
                                 "RTM_NEWLINK \(host) master \(b) up", "attaching the host end \(host) of \(i.name) to bridge \(b)")
                lines.append("container: network: \(i.name)'s host end \(host) is attached to bridge \(b)")
            } else if let hook = attach.hook {
                try runHook(hook, hostEnd: host, interface: i.name)
                lines.append("container: network: \(i.name)'s host end \(host) was handed to --net-hook")
            } else {
                try here.request(Rtnetlink.setLink(index: hostIndex, up: true, seq: here.next()),
                                 "RTM_NEWLINK \(host) up", "bringing the host end \(host) of \(i.name) up")
                lines.append("container: network: \(i.name)'s host end \(host) is up and attached to nothing (restore with --bridge NAME or --net-hook CMD)")
            }
        }
        // Inside: indexes by name, interfaces up, addresses, routes.
        var index: [String: Int32] = [:]
        for m in try inside.dump(Rtnetlink.getLink, family: Rtnetlink.afUnspec) {
            let l = try Rtnetlink.link(m)
            index[l.name] = l.index
        }
        func indexOf(_ name: String) throws -> Int32 {
            guard let i = index[name] else { throw FerryError("cannot restore the container's network: interface \(name) is missing in the new namespace") }
            return i
        }
        for i in record.interfaces where i.up && i.kind == .veth {
            try inside.request(Rtnetlink.setLink(index: try indexOf(i.name), up: true, seq: inside.next()),
                               "RTM_NEWLINK \(i.name) up", "bringing the container's \(i.name) up")
        }
        for i in record.interfaces {
            for a in i.addresses {
                guard let local = IPText.parse(a.address) else { continue }   // validated on decode
                try inside.request(Rtnetlink.newAddress(family: local.count == 16 ? Rtnetlink.afInet6 : Rtnetlink.afInet, index: try indexOf(i.name),
                                                        local: local, prefix: a.prefix, scope: a.scope, flags: NetworkPlan.restoreFlags(a),
                                                        broadcast: a.broadcast.flatMap(IPText.parse), label: a.label, seq: inside.next()),
                                   "RTM_NEWADDR \(a.address)/\(a.prefix) dev \(i.name)", "adding the container's address \(a.address)/\(a.prefix) to \(i.name)")
            }
        }
        for r in NetworkPlan.restoreOrder(record.routes) {
            let route = Rtnetlink.Route(family: r.family == "inet6" ? Rtnetlink.afInet6 : Rtnetlink.afInet, dstLength: r.prefix, srcLength: 0,
                                        table: Rtnetlink.tableMain, proto: r.proto, scope: r.scope, type: Rtnetlink.rtnUnicast,
                                        destination: r.destination.flatMap(IPText.parse) ?? [], gateway: r.gateway.flatMap(IPText.parse),
                                        outputIndex: try r.device.map(indexOf), priority: r.metric,
                                        preferredSource: r.source.flatMap(IPText.parse), uncarried: [])
            try inside.request(Rtnetlink.newRoute(route, seq: inside.next()), "RTM_NEWROUTE \(r.description)",
                               "adding the container's route \(r.description)")
        }
        for i in record.interfaces where i.kind == .veth && i.up {
            if let why = announce(i, index: try indexOf(i.name), pid: pid) { lines.append("container: network: \(why)") }
        }
        return lines
    }

    /// Sends a gratuitous ARP for each IPv4 address of `i` from inside the
    /// container (an AF_PACKET socket made there), so that neighbours that
    /// knew the address elsewhere (the source host) update their entries.
    /// Best effort: returns why one could not be sent (a note), nil when all were.
    static func announce(_ i: NetInterface, index: Int32, pid: Int32) -> String? {
        guard let mac = i.mac.flatMap(IPText.mac) else { return nil }
        let frames = i.addresses.compactMap { IPText.parse($0.address) }.compactMap { NetworkPlan.gratuitousARP(mac: mac, ip: $0) }
        guard !frames.isEmpty else { return nil }
        let s = ferry_netns_socket(pid, 17 /* AF_PACKET */, Int32(SOCK_RAW.rawValue), 0)
        guard s >= 0 else { return "\(i.name)'s IPv4 addresses are not announced (socket(AF_PACKET): \(String(cString: strerror(-s))))" }
        defer { Glibc.close(s) }
        // struct sockaddr_ll: family, protocol (ETH_P_ARP, big-endian), ifindex, hatype, pkttype, halen, addr[8].
        var to = [UInt8](repeating: 0, count: 20)
        to[0] = 17
        to[2] = 0x08; to[3] = 0x06
        for k in 0..<4 { to[4 + k] = UInt8(truncatingIfNeeded: UInt32(bitPattern: index) >> (8 * UInt32(k))) }
        to[11] = 6
        for k in 12..<18 { to[k] = 0xff }
        for f in frames {
            let n = f.withUnsafeBytes { frame in
                to.withUnsafeBytes { sendto(s, frame.baseAddress, frame.count, 0, $0.baseAddress?.assumingMemoryBound(to: sockaddr.self), 20) }
            }
            if n != f.count { return "\(i.name)'s IPv4 addresses are not announced (sendto: \(String(cString: strerror(errno))))" }
        }
        return nil
    }

    /// `--net-hook CMD`: `/bin/sh -c 'CMD "$1"' ferry-net-hook HOST_END`,
    /// with FERRY_HOST_END and FERRY_CONTAINER_IF in its environment and its
    /// output on ferry's standard error; a non-zero exit fails the restore.
    static func runHook(_ hook: String, hostEnd: String, interface: String) throws {
        var env = [String]()
        var e = environ
        while let p = e.pointee { env.append(String(cString: p)); e += 1 }
        env = env.filter { !$0.hasPrefix("FERRY_HOST_END=") && !$0.hasPrefix("FERRY_CONTAINER_IF=") }
        env += ["FERRY_HOST_END=\(hostEnd)", "FERRY_CONTAINER_IF=\(interface)"]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, 2, 1)
        var pid: pid_t = 0
        let rc = withCStrings(["/bin/sh", "-c", hook + " \"$1\"", "ferry-net-hook", hostEnd]) { argv in
            withCStrings(env) { envp in posix_spawn(&pid, "/bin/sh", &actions, nil, argv, envp) }
        }
        guard rc == 0 else { throw SystemError("posix_spawn(/bin/sh -c \(hook))", errno: rc, "running --net-hook for the host end \(hostEnd)") }
        var st: Int32 = 0
        try check(ferry_wait(pid, &st, 0), "waitpid(\(pid))", "waiting for --net-hook")
        guard case .exited(0) = WaitStatus(st) else {
            throw FerryError("cannot restore the container's network: --net-hook \(hook) \(hostEnd) \(WaitStatus(st).description)")
        }
    }

    // MARK: migration

    /// The host ends, in ferry's namespace, of the veths of `pid`'s network
    /// namespace (none when it is ferry's own).
    static func hostEnds(pid: Int32) throws -> [Rtnetlink.Link] {
        guard (try? ProcFS.readlink("/proc/\(pid)/ns/net")) != (try? ProcFS.readlink("/proc/self/ns/net")) else { return [] }
        let inside = try Socket(namespaceOf: pid)
        defer { inside.close() }
        let here = try Socket(namespaceOf: nil)
        defer { here.close() }
        let hostLinks = try here.dump(Rtnetlink.getLink, family: Rtnetlink.afUnspec).map(Rtnetlink.link)
        return try inside.dump(Rtnetlink.getLink, family: Rtnetlink.afUnspec).map(Rtnetlink.link)
            .compactMap { NetworkPlan.hostEnd(of: $0, among: hostLinks) }
    }

    // MARK: the socket

    /// A NETLINK_ROUTE socket in one network namespace.
    struct Socket {
        let fd: Int32
        let namespace: String
        private let seq = Counter()

        final class Counter { var value: UInt32 = 1 }

        /// nil: ferry's own namespace.
        init(namespaceOf pid: Int32?) throws {
            let family: Int32 = 16 /* AF_NETLINK */, type = Int32(SOCK_RAW.rawValue), proto: Int32 = 0 /* NETLINK_ROUTE */
            if let pid {
                namespace = "the network namespace of pid \(pid)"
                fd = Int32(try check(Int(ferry_netns_socket(pid, family, type, proto)), "setns(/proc/\(pid)/ns/net) + socket(AF_NETLINK)",
                                     "opening rtnetlink in \(namespace)"))
            } else {
                namespace = "ferry's network namespace"
                fd = try checkLibc(socket(family, type | Int32(SOCK_CLOEXEC.rawValue), proto), "socket(AF_NETLINK)", "opening rtnetlink")
            }
        }

        func close() { Glibc.close(fd) }

        func next() -> UInt32 {
            seq.value &+= 1
            return seq.value
        }

        private func send(_ bytes: [UInt8], _ context: String) throws {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard n == bytes.count else { throw SystemError("send(rtnetlink)", errno: errno, context) }
        }

        private func receive(_ context: String) throws -> [Rtnetlink.Message] {
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { throw SystemError("recv(rtnetlink)", errno: n < 0 ? errno : EPIPE, context) }
                do { return try Rtnetlink.messages(Array(buf[0..<n])) } catch { throw FerryError("\(context): \(error)") }
            }
        }

        /// Every message of a dump (until NLMSG_DONE).
        func dump(_ type: UInt16, family: UInt8) throws -> [Rtnetlink.Message] {
            let s = next()
            let context = "reading \(namespace) (rtnetlink dump \(type))"
            try send(Rtnetlink.dump(type, family: family, seq: s), context)
            var out: [Rtnetlink.Message] = []
            while true {
                for m in try receive(context) where m.seq == s {
                    if m.type == Rtnetlink.nlmsgDone { return out }
                    if m.type == Rtnetlink.nlmsgError {
                        let e = try Rtnetlink.errorCode(m)
                        if e == 0 { continue }
                        throw SystemError("rtnetlink dump \(type)", errno: e, context)
                    }
                    out.append(m)
                    guard out.count <= 100_000 else { throw FerryError("\(context): more than 100000 entries") }
                }
            }
        }

        /// One request, acknowledged or failed.
        func request(_ bytes: [UInt8], _ call: String, _ context: String) throws {
            try send(bytes, context)
            let s = Rtnetlink.u32(bytes, 8)
            while true {
                for m in try receive(context) where m.seq == s && m.type == Rtnetlink.nlmsgError {
                    let e = try Rtnetlink.errorCode(m)
                    if e == 0 { return }
                    throw SystemError(call, errno: e, context)
                }
            }
        }
    }
}

/// A migration's hold on a container's traffic: from the freeze on, the
/// host ends of the container's veths (in ferry's namespace) are down, so
/// what peers send to the container is dropped (no reset): they retransmit,
/// to the target once the container runs there. `release` (rollback) brings
/// them up again; on commit the source's container ends, and its veth pairs
/// with it.
public final class NetworkHold {
    private let here: NetworkNamespace.Socket
    private var held: [Rtnetlink.Link]

    private init(here: NetworkNamespace.Socket, held: [Rtnetlink.Link]) {
        self.here = here
        self.held = held
    }

    /// Brings the up host ends of `pid`'s veths down; nil when it has none.
    public static func engage(pid: Int32) throws -> NetworkHold? {
        let ends = try NetworkNamespace.hostEnds(pid: pid).filter(\.isUp)
        guard !ends.isEmpty else { return nil }
        let hold = NetworkHold(here: try NetworkNamespace.Socket(namespaceOf: nil), held: [])
        for e in ends {
            do {
                try hold.here.request(Rtnetlink.setLink(index: e.index, up: false, seq: hold.here.next()),
                                      "RTM_NEWLINK \(e.name) down", "holding the traffic of pid \(pid)'s container during the migration")
            } catch {
                hold.release()
                throw error
            }
            hold.held.append(e)
        }
        return hold
    }

    /// The host ends held, by name.
    public var names: [String] { held.map(\.name) }

    /// Brings the held host ends up again (best effort: one that is gone is skipped).
    public func release() {
        for e in held {
            try? here.request(Rtnetlink.setLink(index: e.index, up: true, seq: here.next()), "RTM_NEWLINK \(e.name) up", "releasing the held traffic")
        }
        held = []
    }

    deinit { here.close() }
}
#endif
