import FerryImage

/// Decisions about TCP and UDP sockets, pure: which ones ferry carries, which
/// options it reads, and the system calls that recreate a saved socket after
/// validating every field of its record. Values are Linux's.
public enum InetSocketPlan {
    public static let afInet: Int32 = 2, afInet6: Int32 = 10
    public static let sockStream: Int32 = 1, sockDgram: Int32 = 2
    public static let ipprotoTCP: Int32 = 6, ipprotoUDP: Int32 = 17
    public static let solSocket: Int32 = 1, solIP: Int32 = 0, solIPv6: Int32 = 41, solTCP: Int32 = 6

    /// The largest backlog ferry passes to listen(2) (the kernel clamps to somaxconn anyway).
    public static let maxBacklog: Int32 = 65535
    /// More options than this in one record is a damaged image.
    public static let maxOptions = 64

    /// One integer option ferry reads from a socket and sets again when it differs from a fresh socket's.
    public struct Option: Equatable, Sendable {
        public var level: Int32
        public var name: Int32
        public var label: String
        /// SO_SNDBUF/SO_RCVBUF: getsockopt reports twice what setsockopt was given.
        public var doubled: Bool
        init(_ level: Int32, _ name: Int32, _ label: String, doubled: Bool = false) {
            self.level = level; self.name = name; self.label = label; self.doubled = doubled
        }
    }

    static let socketLevel: [Option] = [
        Option(1, 2, "SO_REUSEADDR"), Option(1, 15, "SO_REUSEPORT"), Option(1, 9, "SO_KEEPALIVE"),
        Option(1, 7, "SO_SNDBUF", doubled: true), Option(1, 8, "SO_RCVBUF", doubled: true),
        Option(1, 6, "SO_BROADCAST"), Option(1, 12, "SO_PRIORITY"), Option(1, 18, "SO_RCVLOWAT"), Option(1, 36, "SO_MARK"),
        Option(1, 10, "SO_OOBINLINE"), Option(1, 5, "SO_DONTROUTE"), Option(1, 11, "SO_NO_CHECK"),
        Option(1, 29, "SO_TIMESTAMP"), Option(1, 35, "SO_TIMESTAMPNS"), Option(1, 40, "SO_RXQ_OVFL"),
        Option(1, 45, "SO_SELECT_ERR_QUEUE"), Option(1, 60, "SO_ZEROCOPY"), Option(1, 42, "SO_PEEK_OFF"),
        // After the buffer sizes, which set the lock bits it puts exactly.
        Option(1, 72, "SO_BUF_LOCK"),
    ]
    /// SO_BUF_LOCK: which of the buffer sizes are fixed (1 send, 2 receive); kept off, the kernel autotunes them.
    public static let bufLock = (level: solSocket, name: Int32(72))
    /// Longest interface name SO_BINDTODEVICE takes (IFNAMSIZ - 1).
    public static let maxDeviceName = 15
    static let tcpLevel: [Option] = [
        Option(6, 1, "TCP_NODELAY"), Option(6, 4, "TCP_KEEPIDLE"), Option(6, 5, "TCP_KEEPINTVL"), Option(6, 6, "TCP_KEEPCNT"),
        Option(6, 9, "TCP_DEFER_ACCEPT"), Option(6, 23, "TCP_FASTOPEN"), Option(6, 18, "TCP_USER_TIMEOUT"),
        Option(6, 3, "TCP_CORK"), Option(6, 12, "TCP_QUICKACK"), Option(6, 7, "TCP_SYNCNT"), Option(6, 8, "TCP_LINGER2"),
        Option(6, 25, "TCP_NOTSENT_LOWAT"), Option(6, 16, "TCP_THIN_LINEAR_TIMEOUTS"),
    ]
    static let ipLevel: [Option] = [
        Option(0, 1, "IP_TOS"), Option(0, 2, "IP_TTL"), Option(0, 15, "IP_FREEBIND"), Option(0, 19, "IP_TRANSPARENT"),
        Option(0, 11, "IP_RECVERR"), Option(0, 8, "IP_PKTINFO"), Option(0, 10, "IP_MTU_DISCOVER"),
        Option(0, 13, "IP_RECVTOS"), Option(0, 12, "IP_RECVTTL"), Option(0, 24, "IP_BIND_ADDRESS_NO_PORT"),
        Option(0, 20, "IP_RECVORIGDSTADDR"), Option(0, 50, "IP_UNICAST_IF"),
    ]
    /// Multicast options (setsockopt refuses them on stream sockets).
    static let udpIPLevel: [Option] = [Option(0, 33, "IP_MULTICAST_TTL"), Option(0, 34, "IP_MULTICAST_LOOP"), Option(0, 49, "IP_MULTICAST_ALL"),
                                          // struct in_addr, read and set as 4 bytes.
                                          Option(0, 32, "IP_MULTICAST_IF")]
    static let udpIPv6Level: [Option] = [Option(41, 18, "IPV6_MULTICAST_HOPS"), Option(41, 19, "IPV6_MULTICAST_LOOP"), Option(41, 17, "IPV6_MULTICAST_IF")]
    static let ipv6Level: [Option] = [
        Option(41, 26, "IPV6_V6ONLY"), Option(41, 16, "IPV6_UNICAST_HOPS"), Option(41, 67, "IPV6_TCLASS"),
        Option(41, 78, "IPV6_FREEBIND"), Option(41, 75, "IPV6_TRANSPARENT"), Option(41, 25, "IPV6_RECVERR"),
        Option(41, 49, "IPV6_RECVPKTINFO"), Option(41, 23, "IPV6_MTU_DISCOVER"), Option(41, 66, "IPV6_RECVTCLASS"),
        Option(41, 51, "IPV6_RECVHOPLIMIT"), Option(41, 62, "IPV6_DONTFRAG"), Option(41, 74, "IPV6_RECVORIGDSTADDR"),
        Option(41, 76, "IPV6_UNICAST_IF"),
    ]
    /// Integer options ferry does not set again: refused by name when their
    /// value differs from a fresh socket's.
    public static let refusedWhenChanged: [Option] = [
        Option(1, 37, "SO_TIMESTAMPING"), Option(1, 46, "SO_BUSY_POLL"), Option(1, 47, "SO_MAX_PACING_RATE"),
        Option(1, 69, "SO_PREFER_BUSY_POLL"), Option(1, 70, "SO_BUSY_POLL_BUDGET"), Option(1, 74, "SO_TXREHASH"),
        Option(1, 75, "SO_RCVMARK"),
    ]

    /// The options ferry reads (and may set again) on a socket of this family and type.
    public static func options(family: Int32, type: Int32) -> [Option] {
        socketLevel + (type == sockStream ? tcpLevel : []) + (family == afInet6 ? ipv6Level : ipLevel)
            + (type == sockDgram ? (family == afInet6 ? udpIPv6Level : udpIPLevel) : [])
    }

    /// The value to pass to setsockopt for an option read as `value`.
    public static func setValue(_ o: SocketOptionValue) -> Int32 {
        let doubled = (socketLevel.first { $0.level == o.level && $0.name == o.name })?.doubled ?? false
        return doubled ? o.value / 2 : o.value
    }

    /// Linux's TCP states (include/net/tcp_states.h), by number.
    public static let tcpStates = ["", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
                                   "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV", "BOUND_INACTIVE"]

    public static func tcpStateName(_ s: Int) -> String {
        s > 0 && s < tcpStates.count ? tcpStates[s] : "state \(s)"
    }

    public static let pollHup: Int16 = 0x10, pollRdHup: Int16 = 0x2000

    /// The shutdown bits of a socket that was never bound (sock_diag lists
    /// no such socket) from the events poll(2) reports on it: POLLRDHUP is
    /// the receive bit; on UDP POLLHUP means both (TCP reports POLLHUP for
    /// every socket in state CLOSE). A send bit alone shows in neither.
    public static func unboundShutdown(pollEvents: Int16, udp: Bool) -> UInt8 {
        if udp && pollEvents & pollHup != 0 { return 3 }
        return pollEvents & pollRdHup != 0 ? 1 : 0
    }

    /// Whether what was seen is a socket never bound: no port, no peer.
    public static func isUnbound(_ f: Facts) -> Bool {
        (f.local?.port ?? 0) == 0 && f.peer == nil && (f.tcpState ?? 7) == 7
    }

    /// What ferry saw of one socket.
    public struct Facts: Equatable, Sendable {
        public var family: Int32
        public var type: Int32
        public var proto: Int32
        /// TCP: tcpi_state; nil for UDP.
        public var tcpState: Int?
        public var local: InetEndpoint?
        public var peer: InetEndpoint?
        /// A listener's accepted-but-not-yet-accept(2)ed connections.
        public var acceptQueue: Int
        /// A UDP socket has at least one datagram waiting to be read.
        public var datagramQueued: Bool
        /// Options set that ferry does not carry (SO_LINGER on, timeouts, a filter …), by name.
        public var uncarriedOptions: [String]
        /// sk_shutdown (1 receive, 2 send); nil when it could not be read.
        public var shutdown: UInt8?
        /// The interface named with SO_BINDTODEVICE; nil when none.
        public var device: String?
        /// SO_LINGER's l_linger when it is on; nil when off.
        public var linger: Int32?
        /// The classic socket filter the program attached (sock_filter bytes); nil when none.
        public var filter: [UInt8]?
        /// SO_LOCK_FILTER is on.
        public var filterLocked = false
        public init(family: Int32, type: Int32, proto: Int32, tcpState: Int? = nil, local: InetEndpoint? = nil,
                    peer: InetEndpoint? = nil, acceptQueue: Int = 0, datagramQueued: Bool = false, uncarriedOptions: [String] = []) {
            self.family = family; self.type = type; self.proto = proto; self.tcpState = tcpState; self.local = local
            self.peer = peer; self.acceptQueue = acceptQueue; self.datagramQueued = datagramQueued; self.uncarriedOptions = uncarriedOptions
            self.shutdown = 0
        }
    }

    public enum Verdict: Equatable, Sendable {
        /// Carried, in this state ("listen", "closed", "bound", "connected").
        case carry(String)
        /// Not carried; why, and the way out.
        case refuse(String)
    }

    /// Whether a socket is carried, from what was seen of it.
    public static func decide(_ f: Facts) -> Verdict {
        let what = describe(f)
        guard f.family == afInet || f.family == afInet6 else {
            return .refuse("\(what): ferry carries only TCP and UDP sockets")
        }
        let tcp = f.type == sockStream && (f.proto == ipprotoTCP || f.proto == 0)
        let udp = f.type == sockDgram && (f.proto == ipprotoUDP || f.proto == 0)
        if tcp || udp, let o = f.uncarriedOptions.first {
            return .refuse("\(what) has \(o) set, which ferry does not carry — run the program without it")
        }
        if tcp && f.tcpState == 1 && f.filter != nil {
            return .refuse("\(what) has a socket filter (SO_ATTACH_FILTER) on an established connection, which ferry does not carry (its network lock replaces the filter during the checkpoint) — run the program without it")
        }
        if tcp || udp, f.shutdown == nil {
            return .refuse("\(what): its shutdown state cannot be read (sock_diag: inet_diag/udp_diag missing, or the socket is in another network namespace), so ferry cannot carry it")
        }
        switch (f.type, f.proto) {
        case (sockStream, ipprotoTCP), (sockStream, 0):
            switch f.tcpState ?? 0 {
            case 10:
                if f.acceptQueue > 0 {
                    return .refuse("\(what) has \(f.acceptQueue) connection(s) waiting to be accepted, which ferry does not carry — checkpoint when the server has accepted them")
                }
                return .carry("listen")
            case 7:
                return .carry("closed")
            case 1:
                return .carry("established")
            case let s:
                return .refuse("\(what) is a TCP connection in state \(tcpStateName(s)); ferry does not carry connections — checkpoint when it is closed")
            }
        case (sockDgram, ipprotoUDP), (sockDgram, 0):
            if f.datagramQueued {
                return .refuse("\(what) has datagrams waiting to be read, which ferry does not carry — checkpoint when the program has read them")
            }
            return .carry(f.peer == nil ? "bound" : "connected")
        default:
            return .refuse("\(what): ferry carries only TCP and UDP sockets (type \(f.type), protocol \(f.proto))")
        }
    }

    /// "TCP IPv6 [::]:8080" / "UDP IPv4 127.0.0.1:53 → 10.0.0.1:53" / "raw IPv4 socket".
    public static func describe(_ f: Facts) -> String {
        let fam = f.family == afInet ? "IPv4" : f.family == afInet6 ? "IPv6" : "family \(f.family)"
        let kind: String
        switch f.type {
        case sockStream: kind = f.proto == ipprotoTCP || f.proto == 0 ? "TCP" : "stream (protocol \(f.proto))"
        case sockDgram: kind = f.proto == ipprotoUDP || f.proto == 0 ? "UDP" : "datagram (protocol \(f.proto))"
        case 3: kind = "raw"
        case 5: kind = "seqpacket"
        default: kind = "type \(f.type)"
        }
        var s = "\(kind) \(fam) socket"
        if let l = f.local { s += " " + endpointText(l) }
        if let p = f.peer { s += " → " + endpointText(p) }
        return s
    }

    /// "1.2.3.4:80", "[::1]:80" (IPv6 in full hex groups, zeros shortened).
    public static func endpointText(_ e: InetEndpoint) -> String {
        if e.address.count == 4 {
            return e.address.map(String.init).joined(separator: ".") + ":\(e.port)"
        }
        guard e.address.count == 16 else { return "(\(e.address.count)-byte address):\(e.port)" }
        var groups: [UInt16] = []
        for i in stride(from: 0, to: 16, by: 2) { groups.append(UInt16(e.address[i]) << 8 | UInt16(e.address[i + 1])) }
        // The longest run of two or more zero groups becomes "::".
        var best = (start: -1, len: 0), i = 0
        while i < 8 {
            var j = i
            while j < 8 && groups[j] == 0 { j += 1 }
            if j - i > best.len && j - i >= 2 { best = (i, j - i) }
            i = j == i ? i + 1 : j
        }
        let hex = groups.map { String($0, radix: 16) }
        let text = best.start < 0 ? hex.joined(separator: ":")
            : hex[0..<best.start].joined(separator: ":") + "::" + hex[(best.start + best.len)...].joined(separator: ":")
        return "[\(text)]:\(e.port)"
    }

    /// The bytes of a struct sockaddr_in / sockaddr_in6 for `e` (Linux layout).
    public static func sockaddr(family: Int32, _ e: InetEndpoint) -> [UInt8] {
        var b: [UInt8] = [UInt8(truncatingIfNeeded: family), UInt8(truncatingIfNeeded: family >> 8),
                          UInt8(e.port >> 8), UInt8(e.port & 0xff)]
        if family == afInet {
            b += e.address + [UInt8](repeating: 0, count: 8)
        } else {
            let scope = e.scopeID ?? 0
            b += [0, 0, 0, 0] + e.address
            b += [UInt8(scope & 0xff), UInt8(scope >> 8 & 0xff), UInt8(scope >> 16 & 0xff), UInt8(scope >> 24)]
        }
        return b
    }

    /// One system call of a socket's restore.
    public enum Step: Equatable, Sendable {
        case socket(family: Int32, type: Int32, proto: Int32)
        case setsockopt(level: Int32, name: Int32, value: Int32)
        /// SO_BINDTODEVICE with this interface name.
        case bindToDevice(String)
        /// SO_LINGER on, with l_linger this many seconds.
        case linger(Int32)
        /// SO_ATTACH_FILTER with these sock_filter instructions, then SO_LOCK_FILTER when `lock`.
        case attachFilter([UInt8], lock: Bool)
        case bind([UInt8])
        case listen(Int32)
        case connect([UInt8])
        /// shutdown(2) with SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2.
        case shutdown(Int32)
        /// TCP_REPAIR_QUEUE `queue`, then these bytes sent into it (repair mode).
        case fillQueue(queue: Int32, [UInt8])
        /// TCP_REPAIR_OPTIONS: (code, value) pairs.
        case repairOptions([UInt32])
        /// TCP_REPAIR_WINDOW: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup.
        case repairWindow([UInt32])
    }

    /// BPF_MAXINSNS: the most instructions a classic socket filter has.
    public static let maxFilterInstructions = 4096
    public static let tcpRepair: Int32 = 19, tcpRepairQueue: Int32 = 20, tcpQueueSeq: Int32 = 21, tcpTimestamp: Int32 = 24
    public static let recvQueue: Int32 = 1, sendQueue: Int32 = 2
    /// The most bytes ferry carries in one queue of a connection.
    public static let maxQueueBytes = 64 << 20

    /// An established connection through TCP_REPAIR, in the order the
    /// kernel needs: options, repair on, bind, both sequence numbers,
    /// connect (no handshake), TCP options and timestamp, the queues, the
    /// window, repair off, SO_REUSEADDR again (repair mode overrides it).
    static func establishedSteps(_ s: InetSocketImage, options: [Step], bad: (String) -> Invalid) throws -> [Step] {
        guard let t = s.tcp else { throw bad("an established connection without its TCP state") }
        guard let l = s.local, let p = s.peer, p.port != 0 else { throw bad("an established connection without both addresses") }
        guard t.sendQueue.value.count <= maxQueueBytes, t.recvQueue.value.count <= maxQueueBytes else { throw bad("a queue over \(maxQueueBytes) bytes") }
        guard t.window.count == 5 else { throw bad("a TCP window of \(t.window.count) fields") }
        guard (1...65535).contains(t.mss) else { throw bad("MSS \(t.mss)") }
        guard (t.sendWindowScale == nil) == (t.recvWindowScale == nil), t.sendWindowScale ?? 0 <= 14, t.recvWindowScale ?? 0 <= 14 else {
            throw bad("window scaling \(t.sendWindowScale.map(String.init) ?? "-")/\(t.recvWindowScale.map(String.init) ?? "-")")
        }
        // struct tcp_repair_opt pairs: TCPOPT_MSS 2, TCPOPT_WINDOW 3, TCPOPT_SACK_PERM 4, TCPOPT_TIMESTAMP 8.
        var tcpOptions: [UInt32] = [2, t.mss]
        if let snd = t.sendWindowScale, let rcv = t.recvWindowScale { tcpOptions += [3, UInt32(snd) | UInt32(rcv) << 16] }
        if t.sack { tcpOptions += [4, 0] }
        if t.timestamp != nil { tcpOptions += [8, 0] }
        let recvStart = t.recvSeq, sendStart = t.sendSeq
        // Repair on after the options: it forces address reuse, which SO_REUSEADDR would undo.
        // Buffers grown by autotuning go past wmem_max/rmem_max, and the queues
        // must fit: SO_SNDBUFFORCE/SO_RCVBUFFORCE (CAP_NET_ADMIN, which repair needs too).
        let forced = options.map { step -> Step in
            if case .setsockopt(solSocket, let name, let v) = step, name == 7 || name == 8 {
                return .setsockopt(level: solSocket, name: name == 7 ? 32 : 33, value: v)
            }
            return step
        }
        var out: [Step] = [.socket(family: s.family, type: s.type, proto: s.proto)] + forced
        // The unread bytes must fit the receive buffer whatever it was (the kernel doubles the value).
        let need = Int32(min(t.recvQueue.value.count + (1 << 16), Int(Int32.max / 2)))
        let rcv = forced.compactMap { step -> Int32? in if case .setsockopt(solSocket, 33, let v) = step { return v } else { return nil } }.last
        if !t.recvQueue.value.isEmpty, rcv ?? 0 < need {
            out.append(.setsockopt(level: solSocket, name: 33, value: need))
            // The forced size locks the buffer: the recorded lock bits go after it.
            let lock = out.firstIndex { if case .setsockopt(bufLock.level, bufLock.name, _) = $0 { return true } else { return false } }
            if let i = lock { out.append(out.remove(at: i)) }
        }
        out.append(.setsockopt(level: solTCP, name: tcpRepair, value: 1))
        out += [.bind(sockaddr(family: s.family, l)),
                .setsockopt(level: solTCP, name: tcpRepairQueue, value: recvQueue),
                .setsockopt(level: solTCP, name: tcpQueueSeq, value: Int32(bitPattern: recvStart)),
                .setsockopt(level: solTCP, name: tcpRepairQueue, value: sendQueue),
                .setsockopt(level: solTCP, name: tcpQueueSeq, value: Int32(bitPattern: sendStart)),
                .connect(sockaddr(family: s.family, p)),
                .repairOptions(tcpOptions)]
        if let ts = t.timestamp { out.append(.setsockopt(level: solTCP, name: tcpTimestamp, value: Int32(bitPattern: ts))) }
        let sent = try sentPart(t, bad: bad)
        if !sent.isEmpty { out.append(.fillQueue(queue: sendQueue, sent)) }
        if !t.recvQueue.value.isEmpty { out.append(.fillQueue(queue: recvQueue, t.recvQueue.value)) }
        // Repair off without a window probe (TCP_REPAIR_OFF_NO_WP): the peer of a
        // connection within the tree may not exist yet, and a probe to its
        // port would be answered with a reset.
        out += [.repairWindow(t.window), .setsockopt(level: solTCP, name: tcpRepair, value: -1)]
        out += options.filter { $0 == .setsockopt(level: solSocket, name: 2, value: 1) }
        return out
    }

    /// The part of a connection's send queue that was sent (restored in
    /// repair mode, as sent); the rest (`unsentPart`) is written after.
    static func sentPart(_ t: TCPConnectionState, bad: (String) -> Invalid) throws -> [UInt8] {
        let q = t.sendQueue.value
        guard let n = t.unsent, n > 0 else { return q }
        guard Int(n) <= q.count else { throw bad("\(n) unsent bytes in a send queue of \(q.count)") }
        return Array(q.prefix(q.count - Int(n)))
    }

    /// The bytes of `s`'s send queue that were never sent, written with
    /// send(2) once every socket of the tree exists (repair mode off): empty
    /// when none. A damaged count throws.
    public static func unsentPart(_ s: InetSocketImage) throws -> [UInt8] {
        guard let t = s.tcp, let n = t.unsent, n > 0 else { return [] }
        let q = t.sendQueue.value
        guard Int(n) <= q.count else { throw Invalid(description: "the image's socket record is damaged: \(n) unsent bytes in a send queue of \(q.count)") }
        return Array(q.suffix(Int(n)))
    }

    /// Which connections of `sockets` (the tree's, one entry per socket)
    /// hold bytes never sent while their peer is not a connection of the
    /// tree (no socket whose local and peer addresses are this one's peer
    /// and local): their indices. Those are refused: restored, such a
    /// connection to a peer outside the tree stalled (zdtm socket-tcpbuf).
    public static func unsentToOutside(_ sockets: [InetSocketImage]) -> [Int] {
        sockets.indices.filter { i in
            let s = sockets[i]
            guard s.tcp?.unsent ?? 0 > 0 else { return false }
            return !sockets.contains { $0.tcp != nil && $0.family == s.family && $0.local == s.peer && $0.peer == s.local }
        }
    }

    public struct Invalid: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The calls that recreate `s` (socket, options, bind, listen or
    /// connect), after checking every field; a damaged record throws.
    public static func steps(_ s: InetSocketImage) throws -> [Step] {
        func bad(_ why: String) -> Invalid { Invalid(description: "the image's socket record is damaged: \(why)") }
        guard s.family == afInet || s.family == afInet6 else { throw bad("family \(s.family)") }
        let addressBytes = s.family == afInet ? 4 : 16
        for e in [s.local, s.peer].compactMap({ $0 }) where e.address.count != addressBytes {
            throw bad("a \(e.address.count)-byte address for family \(s.family)")
        }
        if s.family == afInet, s.local?.scopeID ?? 0 != 0 || s.peer?.scopeID ?? 0 != 0 { throw bad("an IPv6 scope on an IPv4 address") }
        let tcp = s.type == sockStream && (s.proto == ipprotoTCP || s.proto == 0)
        let udp = s.type == sockDgram && (s.proto == ipprotoUDP || s.proto == 0)
        guard tcp || udp else { throw bad("type \(s.type) protocol \(s.proto)") }
        guard s.options.count <= maxOptions else { throw bad("\(s.options.count) options") }
        let known = options(family: s.family, type: s.type)
        var optionSteps: [Step] = []
        for o in s.options {
            guard known.contains(where: { $0.level == o.level && $0.name == o.name }) else {
                throw bad("option \(o.level)/\(o.name) is not one ferry sets on this kind of socket")
            }
            optionSteps.append(.setsockopt(level: o.level, name: o.name, value: setValue(o)))
        }
        if let d = s.device {
            let bytes = Array(d.utf8)
            guard (1...maxDeviceName).contains(bytes.count), !bytes.contains(0), !bytes.contains(UInt8(ascii: "/")) else {
                throw bad("interface name of \(bytes.count) bytes for SO_BINDTODEVICE")
            }
            optionSteps.append(.bindToDevice(d))
        }
        if let l = s.linger {
            guard l >= 0 else { throw bad("SO_LINGER of \(l) seconds") }
            optionSteps.append(.linger(l))
        }
        if let f = s.filter {
            guard f.count % 8 == 0, (1...maxFilterInstructions).contains(f.count / 8) else { throw bad("a socket filter of \(f.count) bytes") }
            optionSteps.append(.attachFilter(f.value, lock: s.filterLocked == true))
        } else if s.filterLocked != nil {
            throw bad("SO_LOCK_FILTER without a filter")
        }
        guard (0...3).contains(s.shutdown ?? 0) else { throw bad("shutdown bits \(s.shutdown ?? 0)") }
        let shut: [Step] = (s.shutdown ?? 0) == 0 ? [] : [.shutdown((s.shutdown ?? 0) - 1)]
        if tcp && s.state == "established" {
            guard shut.isEmpty else { throw bad("an established connection that was shut down (its state would not be ESTABLISHED)") }
            return try establishedSteps(s, options: optionSteps, bad: bad)
        }
        guard s.tcp == nil else { throw bad("TCP connection state on a socket in state \"\(s.state)\"") }
        var out: [Step] = [.socket(family: s.family, type: s.type, proto: s.proto)] + optionSteps
        /// bind(2) with the temporary options the record asks for around it.
        func bind(_ l: InetEndpoint) -> [Step] {
            var around: [Step] = []
            if s.portSharedInTree == true, value(s, reusePort) != 1 { around.append(.setsockopt(level: reusePort.level, name: reusePort.name, value: 1)) }
            let free = freeBind(family: s.family)
            let temporaryFree = s.nonLocalAddress == true && value(s, free) != 1
            if temporaryFree { around.append(.setsockopt(level: free.level, name: free.name, value: 1)) }
            around.append(.bind(sockaddr(family: s.family, l)))
            if temporaryFree { around.append(.setsockopt(level: free.level, name: free.name, value: 0)) }
            return around
        }
        switch (tcp, s.state) {
        case (true, "listen"):
            guard let l = s.local else { throw bad("a listening socket with no address") }
            guard let backlog = s.backlog, backlog >= 0, backlog <= maxBacklog else { throw bad("backlog \(s.backlog.map(String.init) ?? "missing")") }
            guard s.peer == nil else { throw bad("a listening socket with a peer") }
            out += bind(l) + [.listen(backlog)]
        case (true, "closed"), (false, "bound"):
            guard s.peer == nil else { throw bad("an unconnected socket with a peer") }
            if let l = s.local { out += bind(l) }
        case (false, "connected"):
            guard let p = s.peer else { throw bad("a connected UDP socket with no peer") }
            if let l = s.local { out += bind(l) }
            out.append(.connect(sockaddr(family: s.family, p)))
        default:
            throw bad("state \"\(s.state)\" for a \(tcp ? "TCP" : "UDP") socket")
        }
        return out + shut
    }

    /// (level, name) of SO_REUSEPORT, and of IP_FREEBIND / IPV6_FREEBIND for `family`.
    public static let reusePort = (level: solSocket, name: Int32(15))
    public static func freeBind(family: Int32) -> (level: Int32, name: Int32) {
        family == afInet6 ? (solIPv6, 78) : (solIP, 15)
    }

    /// The recorded value of an option (nil: as on a fresh socket).
    public static func value(_ s: InetSocketImage, _ o: (level: Int32, name: Int32)) -> Int32? {
        s.options.last { $0.level == o.level && $0.name == o.name }?.value
    }

    /// The calls that put back what `steps` set only for bind: SO_REUSEPORT
    /// as recorded, once every socket sharing the port is bound.
    public static func settleSteps(_ s: InetSocketImage) -> [Step] {
        guard s.tcp == nil, s.local != nil, s.portSharedInTree == true, value(s, reusePort) != 1 else { return [] }
        return [.setsockopt(level: reusePort.level, name: reusePort.name, value: 0)]
    }

    /// Which of `sockets` share a port with another (same type, port not 0,
    /// established connections aside: repair mode binds them regardless).
    /// Sharing one took SO_REUSEPORT (or, for UDP, SO_REUSEADDR) when they were bound.
    public static func sharedPorts<K: Hashable>(_ sockets: [(key: K, socket: InetSocketImage)]) -> Set<K> {
        var byPort: [[Int32]: [K]] = [:]
        for (k, s) in sockets where s.tcp == nil {
            guard let l = s.local, l.port != 0 else { continue }
            byPort[[s.type, Int32(l.port)], default: []].append(k)
        }
        return Set(byPort.values.filter { $0.count > 1 }.joined())
    }

    /// The refusal for a socket bound with SO_REUSEPORT whose port a socket
    /// outside the tree shares: restored, it would join that socket's group.
    public static func reusePortOutside(_ s: InetSocketImage, outsideInode: UInt64) -> String {
        "\(describe(Facts(family: s.family, type: s.type, proto: s.proto, local: s.local, peer: s.peer))) shares its port through SO_REUSEPORT with socket:[\(outsideInode)], held by a process outside the tree; restored, it would share the port with that socket — checkpoint every process that shares the port together, or stop the other one"
    }

    /// The transmit and receive queue sizes (bytes) of the socket with
    /// inode `inode` in a /proc/net/{tcp,udp}[6] table; nil when it is not there.
    public static func queues(procNet text: String, inode: UInt64) -> (tx: UInt64, rx: UInt64)? {
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 9, UInt64(f[9]) == inode else { continue }
            let q = f[4].split(separator: ":")
            guard q.count == 2, let tx = UInt64(q[0], radix: 16), let rx = UInt64(q[1], radix: 16) else { return nil }
            return (tx, rx)
        }
        return nil
    }
}
