import FerryCore
import FerryImage
import Testing

struct InetSocketPlanTests {
    typealias P = InetSocketPlan
    static let lo4 = InetEndpoint(address: [127, 0, 0, 1], port: 8080)
    static let any6 = InetEndpoint(address: [UInt8](repeating: 0, count: 16), port: 443)

    @Test func listenersAndUDPAreCarriedOthersRefusedByName() {
        let listen = P.Facts(family: P.afInet, type: P.sockStream, proto: 6, tcpState: 10, local: Self.lo4)
        #expect(P.decide(listen) == .carry("listen"))
        var pending = listen
        pending.acceptQueue = 2
        guard case .refuse(let why) = P.decide(pending) else { Issue.record("accept queue carried"); return }
        #expect(why.contains("TCP IPv4 socket 127.0.0.1:8080") && why.contains("2 connection(s) waiting"))
        var est = listen
        est.tcpState = 1
        est.peer = InetEndpoint(address: [127, 0, 0, 1], port: 5000)
        #expect(P.decide(est) == .carry("established"))
        var closing = est
        closing.tcpState = 8
        guard case .refuse(let c) = P.decide(closing) else { Issue.record("CLOSE_WAIT carried"); return }
        #expect(c.contains("CLOSE_WAIT"))
        let udp = P.Facts(family: P.afInet6, type: P.sockDgram, proto: 17, local: Self.any6)
        #expect(P.decide(udp) == .carry("bound"))
        var queued = udp
        queued.datagramQueued = true
        guard case .refuse(let q) = P.decide(queued) else { Issue.record("queued datagrams carried"); return }
        #expect(q.contains("UDP IPv6 socket [::]:443") && q.contains("datagrams"))
        var timeout = listen
        timeout.uncarriedOptions = ["SO_RCVTIMEO"]
        guard case .refuse(let l) = P.decide(timeout) else { Issue.record("SO_RCVTIMEO carried"); return }
        #expect(l.contains("SO_RCVTIMEO"))
        // A classic filter is carried, except on an established connection (the network lock replaces it).
        var filtered = listen
        filtered.filter = [UInt8](repeating: 0, count: 8)
        #expect(P.decide(filtered) == .carry("listen"))
        filtered.tcpState = 1
        guard case .refuse(let f) = P.decide(filtered) else { Issue.record("a filter on a connection carried"); return }
        #expect(f.contains("socket filter") && f.contains("established"))
        guard case .refuse(let raw) = P.decide(P.Facts(family: P.afInet, type: 3, proto: 1)) else { Issue.record("raw carried"); return }
        #expect(raw.contains("raw IPv4 socket"))
        guard case .refuse(let pk) = P.decide(P.Facts(family: 17, type: 3, proto: 768)) else { Issue.record("packet carried"); return }
        #expect(pk.contains("family 17"))
    }

    @Test func shutdownIsCarriedOrRefusedWhenUnknown() throws {
        var f = P.Facts(family: P.afInet, type: P.sockDgram, proto: 17, local: Self.lo4)
        f.shutdown = nil
        guard case .refuse(let why) = P.decide(f) else { Issue.record("unknown shutdown state carried"); return }
        #expect(why.contains("shutdown state"))
        var img = InetSocketImage(family: P.afInet, type: P.sockDgram, proto: 17, state: "bound", local: Self.lo4)
        img.shutdown = 2
        #expect(try P.steps(img).last == .shutdown(1))
        img.shutdown = 4
        #expect(throws: P.Invalid.self) { try P.steps(img) }
    }

    @Test func unboundSocketsAreCarriedWithTheShutdownPollShows() throws {
        // TCP in CLOSE always reports POLLHUP: only POLLRDHUP tells the receive bit.
        #expect(P.unboundShutdown(pollEvents: P.pollHup, udp: false) == 0)
        #expect(P.unboundShutdown(pollEvents: P.pollHup | P.pollRdHup, udp: false) == 1)
        #expect(P.unboundShutdown(pollEvents: 0, udp: true) == 0)
        #expect(P.unboundShutdown(pollEvents: P.pollRdHup, udp: true) == 1)
        #expect(P.unboundShutdown(pollEvents: P.pollHup | P.pollRdHup, udp: true) == 3)
        let any4 = InetEndpoint(address: [0, 0, 0, 0], port: 0)
        var tcp = P.Facts(family: P.afInet, type: P.sockStream, proto: 6, tcpState: 7, local: any4)
        #expect(P.isUnbound(tcp))
        #expect(P.decide(tcp) == .carry("closed"))
        tcp.local = Self.lo4
        #expect(!P.isUnbound(tcp))
        let udp = P.Facts(family: P.afInet6, type: P.sockDgram, proto: 17, local: InetEndpoint(address: [UInt8](repeating: 0, count: 16), port: 0))
        #expect(P.isUnbound(udp))
        var connected = udp
        connected.peer = Self.lo4
        #expect(!P.isUnbound(connected))
        // No address at all: restored with socket and its options only.
        var img = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "closed",
                                  options: [SocketOptionValue(level: 1, name: 5, value: 1)])
        img.shutdown = 1
        #expect(try P.steps(img) == [.socket(family: P.afInet, type: P.sockStream, proto: 6), .setsockopt(level: 1, name: 5, value: 1), .shutdown(0)])
    }

    @Test func boundDeviceIsSetBeforeBindAndValidated() throws {
        var img = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "listen", local: Self.lo4, backlog: 5)
        img.device = "lo"
        let steps = try P.steps(img)
        let dev = try #require(steps.firstIndex(of: .bindToDevice("lo")))
        let bind = try #require(steps.firstIndex { if case .bind = $0 { return true } else { return false } })
        #expect(dev < bind)
        for bad in ["", "sixteen-bytes-xx", "a/b", "e\u{0}0"] {
            img.device = bad
            #expect(throws: P.Invalid.self, "\(bad)") { try P.steps(img) }
        }
    }

    /// SO_LINGER is carried (set with the options, before bind and before
    /// repair mode on a connection); a negative time is a damaged record.
    @Test func lingerIsSetWithTheOptionsAndValidated() throws {
        var img = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "listen", local: Self.lo4, backlog: 5)
        #expect(try !P.steps(img).contains(.linger(0)))
        img.linger = 0
        let steps = try P.steps(img)
        let linger = try #require(steps.firstIndex(of: .linger(0)))
        let bind = try #require(steps.firstIndex { if case .bind = $0 { return true } else { return false } })
        #expect(linger < bind)
        img.linger = -1
        #expect(throws: P.Invalid.self) { try P.steps(img) }
        img.linger = nil
        // A filter of whole instructions (1…4096) goes before bind, locked when it was; anything else is damaged.
        img.filter = Bytes([UInt8](repeating: 6, count: 16)); img.filterLocked = true
        let f = try P.steps(img)
        let fbind = try #require(f.firstIndex { if case .bind = $0 { return true } else { return false } })
        #expect(try #require(f.firstIndex(of: .attachFilter([UInt8](repeating: 6, count: 16), lock: true))) < fbind)
        for n in [0, 12, 8 * 4097] {
            img.filter = Bytes([UInt8](repeating: 0, count: n))
            #expect(throws: P.Invalid.self, "\(n) bytes") { try P.steps(img) }
        }
        img.filter = nil
        #expect(throws: P.Invalid.self, "a lock without a filter") { try P.steps(img) }
        var conn = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "established", local: Self.lo4,
                                   peer: InetEndpoint(address: [127, 0, 0, 1], port: 5000))
        conn.tcp = TCPConnectionState(sendSeq: 1, recvSeq: 2, sendQueue: [], recvQueue: [], mss: 1460,
                                      sendWindowScale: nil, recvWindowScale: nil, sack: false, timestamp: nil, window: [0, 0, 0, 0, 0])
        conn.linger = 30
        let c = try P.steps(conn)
        let repair = try #require(c.firstIndex(of: .setsockopt(level: P.solTCP, name: P.tcpRepair, value: 1)))
        #expect(try #require(c.firstIndex(of: .linger(30))) < repair)
    }

    /// Bytes never sent stay out of the repair-mode send queue and are
    /// written after; a count over the queue is a damaged record.
    @Test func unsentBytesAreWrittenAfterRepair() throws {
        var conn = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "established", local: Self.lo4,
                                   peer: InetEndpoint(address: [127, 0, 0, 1], port: 5000))
        conn.tcp = TCPConnectionState(sendSeq: 1, recvSeq: 2, sendQueue: [1, 2, 3, 4, 5], recvQueue: [], mss: 1460,
                                      sendWindowScale: nil, recvWindowScale: nil, sack: false, timestamp: nil, window: [0, 0, 0, 0, 0])
        #expect(try P.steps(conn).contains(.fillQueue(queue: P.sendQueue, [1, 2, 3, 4, 5])))
        #expect(try P.unsentPart(conn).isEmpty)
        conn.tcp?.unsent = 2
        #expect(try P.steps(conn).contains(.fillQueue(queue: P.sendQueue, [1, 2, 3])))
        #expect(try P.unsentPart(conn) == [4, 5])
        conn.tcp?.unsent = 5
        #expect(try !P.steps(conn).contains { if case .fillQueue(P.sendQueue, _) = $0 { return true } else { return false } })
        #expect(try P.unsentPart(conn) == [1, 2, 3, 4, 5])
        conn.tcp?.unsent = 6
        #expect(throws: P.Invalid.self) { try P.steps(conn) }
        #expect(throws: P.Invalid.self) { try P.unsentPart(conn) }
        // Carried only when the peer is a connection of the tree.
        conn.tcp?.unsent = 2
        var other = conn
        other.local = conn.peer; other.peer = conn.local; other.tcp?.unsent = nil
        #expect(P.unsentToOutside([conn]) == [0])
        #expect(P.unsentToOutside([conn, other]).isEmpty)
        #expect(P.unsentToOutside([other]).isEmpty)
    }

    /// Netlink: route and generic carried, other protocols, queued messages
    /// and dumps refused; the restore joins each group and binds the port id.
    @Test func netlinkSocketsArePlannedAndValidated() throws {
        typealias N = NetlinkSocketPlan
        #expect(N.refusal(proto: 0, type: 3, waiting: 0, dumping: false) == nil)
        #expect(N.refusal(proto: 15, type: 3, waiting: 0, dumping: false)?.contains("protocol 15") == true)
        #expect(N.refusal(proto: 0, type: 3, waiting: 768, dumping: false)?.contains("waiting") == true)
        #expect(N.refusal(proto: 16, type: 3, waiting: 0, dumping: true)?.contains("dump in progress") == true)
        var s = NetlinkSocketImage(proto: 0, type: 3, portID: 4242, groups: [0b10001, 0, 1], options: [SocketOptionValue(level: 270, name: 5, value: 1)])
        #expect(try N.steps(s) == [.socket(type: 3, proto: 0), .setsockopt(level: 270, name: 5, value: 1), .bind(4242),
                                   .addMembership(1), .addMembership(5), .addMembership(65)])
        s.portID = 0; s.groups = []; s.options = []
        #expect(try N.steps(s) == [.socket(type: 3, proto: 0)])
        for bad in [NetlinkSocketImage(proto: 15, type: 3, portID: 0, groups: [], options: []),
                    NetlinkSocketImage(proto: 0, type: 1, portID: 0, groups: [], options: []),
                    NetlinkSocketImage(proto: 0, type: 3, portID: 0, groups: [UInt32](repeating: 1, count: 33), options: []),
                    NetlinkSocketImage(proto: 0, type: 3, portID: 0, groups: [], options: [SocketOptionValue(level: 1, name: 2, value: 1)])] {
            #expect(throws: P.Invalid.self) { try N.steps(bad) }
        }
        let text = "sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode\n0000 0 77 00000011 768 0 0 2 0 555\n0001 16 0 00000000 0 0 1 2 0 556\n"
        #expect(N.queue(procNetlink: text, inode: 555)! == (768, false))
        #expect(N.queue(procNetlink: text, inode: 556)! == (0, true))
        #expect(N.queue(procNetlink: text, inode: 9) == nil)
    }

    @Test func bufferLockFollowsTheForcedReceiveBuffer() throws {
        var img = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "established", local: Self.lo4,
                                  peer: InetEndpoint(address: [127, 0, 0, 1], port: 5000),
                                  options: [SocketOptionValue(level: 1, name: 8, value: 4096), SocketOptionValue(level: 1, name: 72, value: 0)])
        img.tcp = TCPConnectionState(sendSeq: 1, recvSeq: 2, sendQueue: [], recvQueue: [UInt8](repeating: 7, count: 100_000), mss: 1460,
                                     sendWindowScale: nil, recvWindowScale: nil, sack: false, timestamp: nil, window: [0, 0, 0, 0, 0])
        let steps = try P.steps(img)
        let need = try #require(steps.firstIndex { if case .setsockopt(1, 33, let v) = $0 { return v > 2048 } else { return false } })
        let lock = try #require(steps.firstIndex(of: .setsockopt(level: 1, name: 72, value: 0)))
        #expect(need < lock)
        let repair = try #require(steps.firstIndex(of: .setsockopt(level: 6, name: 19, value: 1)))
        #expect(lock < repair)
    }

    @Test func sharedPortsBindWithReusePortAndPutItBackAfter() throws {
        let reuse = SocketOptionValue(level: 1, name: 15, value: 1)
        let a = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "listen", local: Self.lo4, backlog: 5)
        let b = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "listen", local: Self.lo4, backlog: 5, options: [reuse])
        let udp = InetSocketImage(family: P.afInet, type: P.sockDgram, proto: 17, state: "bound", local: Self.lo4)
        var conn = a
        conn.state = "established"
        conn.tcp = TCPConnectionState(sendSeq: 1, recvSeq: 2, sendQueue: [], recvQueue: [], mss: 1460, sendWindowScale: nil,
                                      recvWindowScale: nil, sack: false, timestamp: nil, window: [0, 0, 0, 0, 0])
        // Same type and port: a and b; the UDP socket and the connection are not in the group.
        #expect(P.sharedPorts([(1, a), (2, b), (3, udp), (4, conn)]) == [1, 2])
        #expect(P.sharedPorts([(1, a), (3, udp)]).isEmpty)
        var shared = a
        shared.portSharedInTree = true
        let steps = try P.steps(shared)
        let on = try #require(steps.firstIndex(of: .setsockopt(level: 1, name: 15, value: 1)))
        let bind = try #require(steps.firstIndex { if case .bind = $0 { return true } else { return false } })
        #expect(on < bind)
        #expect(P.settleSteps(shared) == [.setsockopt(level: 1, name: 15, value: 0)])
        // Recorded on: set like any option, nothing to put back.
        var sharedOn = b
        sharedOn.portSharedInTree = true
        #expect(try P.steps(sharedOn).filter { $0 == .setsockopt(level: 1, name: 15, value: 1) }.count == 1)
        #expect(P.settleSteps(sharedOn).isEmpty && P.settleSteps(a).isEmpty)
        let refusal = P.reusePortOutside(b, outsideInode: 99)
        #expect(refusal.contains("TCP IPv4 socket 127.0.0.1:8080") && refusal.contains("socket:[99]") && refusal.contains("outside the tree"))
    }

    @Test func aNonLocalAddressIsBoundWithFreebindThenPutBack() throws {
        let far = InetEndpoint(address: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0x42, 0x83, 0x29], port: 56789)
        var s = InetSocketImage(family: P.afInet6, type: P.sockDgram, proto: 17, state: "bound", local: far)
        #expect(!(try P.steps(s)).contains(.setsockopt(level: 41, name: 78, value: 1)))
        s.nonLocalAddress = true
        let steps = try P.steps(s)
        guard let b = steps.firstIndex(where: { if case .bind = $0 { return true } else { return false } }) else { Issue.record("no bind"); return }
        #expect(steps[b - 1] == .setsockopt(level: 41, name: 78, value: 1) && steps[b + 1] == .setsockopt(level: 41, name: 78, value: 0))
        // Recorded on (IP_FREEBIND kept): set as an option, not turned off.
        s.options = [SocketOptionValue(level: 41, name: 78, value: 1)]
        #expect(!(try P.steps(s)).contains(.setsockopt(level: 41, name: 78, value: 0)))
        var v4 = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "closed", local: InetEndpoint(address: [192, 0, 2, 1], port: 9))
        v4.nonLocalAddress = true
        #expect(try P.steps(v4).contains(.setsockopt(level: 0, name: 15, value: 0)))
    }

    @Test func endpointsPrintLikeTheKernelTools() {
        #expect(P.endpointText(Self.any6) == "[::]:443")
        var a = [UInt8](repeating: 0, count: 16)
        a[15] = 1
        #expect(P.endpointText(InetEndpoint(address: a, port: 1)) == "[::1]:1")
        let b: [UInt8] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2]
        #expect(P.endpointText(InetEndpoint(address: b, port: 2)) == "[2001:db8::1:0:0:2]:2")
    }

    @Test func stepsRecreateAListenerInOrder() throws {
        let img = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "listen", local: Self.lo4, backlog: 7,
                                  options: [SocketOptionValue(level: 1, name: 2, value: 1), SocketOptionValue(level: 1, name: 8, value: 131072)])
        let s = try P.steps(img)
        #expect(s.count == 5)
        #expect(s[0] == .socket(family: 2, type: 1, proto: 6))
        #expect(s[1] == .setsockopt(level: 1, name: 2, value: 1))
        // SO_RCVBUF reads doubled: set half.
        #expect(s[2] == .setsockopt(level: 1, name: 8, value: 65536))
        #expect(s[3] == .bind([2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]))
        #expect(s[4] == .listen(7))
        let udp = InetSocketImage(family: P.afInet6, type: P.sockDgram, proto: 17, state: "connected",
                                  local: InetEndpoint(address: Self.any6.address, port: 9, scopeID: 3), peer: Self.any6)
        let u = try P.steps(udp)
        #expect(u.count == 3)
        guard case .bind(let addr) = u[1] else { Issue.record("no bind"); return }
        #expect(addr.count == 28 && addr[0] == 10 && addr[3] == 9 && addr[24] == 3)
        guard case .connect = u[2] else { Issue.record("no connect"); return }
    }

    static let tcpState = TCPConnectionState(sendSeq: 1000, recvSeq: 5000, sendQueue: [1, 2, 3], recvQueue: [], mss: 65483,
                                             sendWindowScale: 7, recvWindowScale: 7, sack: true, timestamp: 123, window: [1, 2, 3, 4, 5])

    @Test func stepsRepairAnEstablishedConnection() throws {
        var img = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "established", local: Self.lo4,
                                  peer: InetEndpoint(address: [127, 0, 0, 1], port: 5000), options: [SocketOptionValue(level: 1, name: 2, value: 1)])
        img.tcp = Self.tcpState
        let s = try P.steps(img)
        let repairOn = try #require(s.firstIndex(of: .setsockopt(level: 6, name: 19, value: 1)))
        let bind = try #require(s.firstIndex { if case .bind = $0 { return true } else { return false } })
        let connect = try #require(s.firstIndex { if case .connect = $0 { return true } else { return false } })
        let sendSeq = try #require(s.firstIndex(of: .setsockopt(level: 6, name: 21, value: 1000)))
        let fill = try #require(s.firstIndex(of: .fillQueue(queue: 2, [1, 2, 3])))
        let off = try #require(s.firstIndex(of: .setsockopt(level: 6, name: 19, value: -1)))
        // SO_REUSEADDR before repair (which forces reuse) and again after it.
        #expect(s[1] == .setsockopt(level: 1, name: 2, value: 1) && s.last == .setsockopt(level: 1, name: 2, value: 1))
        #expect(repairOn < bind && bind < sendSeq && sendSeq < connect && connect < fill && fill < off)
        #expect(s.contains(.repairOptions([2, 65483, 3, 7 | 7 << 16, 4, 0, 8, 0])))
        #expect(s.contains(.setsockopt(level: 6, name: 24, value: 123)))
        #expect(!s.contains { if case .fillQueue(queue: 1, _) = $0 { return true } else { return false } }, "an empty receive queue is not filled")
    }

    @Test(arguments: [
        TCPConnectionState(sendSeq: 0, recvSeq: 0, sendQueue: [], recvQueue: [], mss: 0, sendWindowScale: nil, recvWindowScale: nil,
                           sack: false, timestamp: nil, window: [1, 2, 3, 4, 5]),
        TCPConnectionState(sendSeq: 0, recvSeq: 0, sendQueue: [], recvQueue: [], mss: 1460, sendWindowScale: 15, recvWindowScale: 7,
                           sack: false, timestamp: nil, window: [1, 2, 3, 4, 5]),
        TCPConnectionState(sendSeq: 0, recvSeq: 0, sendQueue: [], recvQueue: [], mss: 1460, sendWindowScale: 7, recvWindowScale: nil,
                           sack: false, timestamp: nil, window: [1, 2, 3, 4, 5]),
        TCPConnectionState(sendSeq: 0, recvSeq: 0, sendQueue: [], recvQueue: [], mss: 1460, sendWindowScale: nil, recvWindowScale: nil,
                           sack: false, timestamp: nil, window: [1, 2, 3]),
    ])
    func damagedConnectionsAreRefused(_ t: TCPConnectionState) {
        var img = InetSocketImage(family: P.afInet, type: P.sockStream, proto: 6, state: "established", local: Self.lo4,
                                  peer: InetEndpoint(address: [127, 0, 0, 1], port: 5000))
        img.tcp = t
        #expect(throws: P.Invalid.self) { try P.steps(img) }
        img.tcp = Self.tcpState
        img.peer = nil
        #expect(throws: P.Invalid.self) { try P.steps(img) }
        img.peer = InetEndpoint(address: [127, 0, 0, 1], port: 5000)
        img.state = "listen"
        img.backlog = 1
        #expect(throws: P.Invalid.self, "TCP state on a listener") { try P.steps(img) }
    }

    @Test(arguments: [
        InetSocketImage(family: 1, type: 1, proto: 0, state: "listen", local: lo4, backlog: 1),
        InetSocketImage(family: 2, type: 1, proto: 6, state: "listen", local: any6, backlog: 1),
        InetSocketImage(family: 2, type: 1, proto: 6, state: "listen", local: lo4, backlog: -1),
        InetSocketImage(family: 2, type: 1, proto: 6, state: "listen", local: lo4, backlog: 1 << 20),
        InetSocketImage(family: 2, type: 1, proto: 6, state: "listen", local: nil, backlog: 1),
        InetSocketImage(family: 2, type: 1, proto: 6, state: "established", local: lo4),
        InetSocketImage(family: 2, type: 2, proto: 17, state: "connected", local: lo4),
        InetSocketImage(family: 2, type: 3, proto: 1, state: "bound"),
        InetSocketImage(family: 2, type: 1, proto: 17, state: "closed"),
        InetSocketImage(family: 2, type: 1, proto: 6, state: "closed", options: [SocketOptionValue(level: 1, name: 25, value: 0)]),
        InetSocketImage(family: 2, type: 2, proto: 17, state: "bound", options: [SocketOptionValue(level: 6, name: 1, value: 1)]),
        InetSocketImage(family: 2, type: 2, proto: 17, state: "bound", local: InetEndpoint(address: [1, 2, 3, 4], port: 1, scopeID: 2)),
        InetSocketImage(family: 2, type: 2, proto: 17, state: "bound",
                        options: Array(repeating: SocketOptionValue(level: 1, name: 2, value: 1), count: 65)),
    ])
    func damagedRecordsAreRefused(_ img: InetSocketImage) {
        #expect(throws: P.Invalid.self) { try P.steps(img) }
    }

    @Test func procNetQueues() {
        let text = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
          12: 0100007F:A1B2 00000000:0000 07 00000000:00000340 00:00000000 00000000     0        0 55123 2 0000000000000000 0
          13: 0100007F:A1B3 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 55124 2 0000000000000000 0
        """
        #expect(P.queues(procNet: text, inode: 55123)?.rx == 0x340)
        #expect(P.queues(procNet: text, inode: 55124)?.rx == 0)
        #expect(P.queues(procNet: text, inode: 1) == nil)
    }
}
