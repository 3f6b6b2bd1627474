/// A TCP or UDP socket (IPv4 or IPv6) as the image carries it: a listening
/// TCP socket, an unconnected TCP socket, or a UDP socket (bound, connected
/// or neither). Values are Linux's (AF_INET 2, AF_INET6 10; SOCK_STREAM 1,
/// SOCK_DGRAM 2; IPPROTO_TCP 6, IPPROTO_UDP 17); addresses are in network
/// byte order (4 bytes for IPv4, 16 for IPv6).
public struct InetSocketImage: Codable, Equatable, Sendable {
    public var family: Int32
    public var type: Int32
    public var proto: Int32
    /// What the socket is doing: "listen" (TCP), "closed" (TCP, neither
    /// listening nor connected), "bound" or "connected" (UDP; "bound" also
    /// for a UDP socket that is not bound, with no `local`).
    public var state: String
    /// The address it is bound to; nil when it is not bound.
    public var local: InetEndpoint?
    /// The peer of a connected UDP socket.
    public var peer: InetEndpoint?
    /// listen(2) backlog of a listening socket (the kernel's sk_max_ack_backlog).
    public var backlog: Int32?
    /// Options whose value differs from a fresh socket's of the same kind, set again on restore.
    public var options: [SocketOptionValue]
    /// shutdown(2) already done: 1 receive, 2 send, 3 both (the kernel's sk_shutdown); nil for none.
    public var shutdown: Int32?
    /// An established TCP connection (state "established"), read in TCP_REPAIR mode.
    public var tcp: TCPConnectionState?
    /// Another socket of the tree is bound to the same port (same type): the
    /// restore binds with SO_REUSEPORT on and puts the recorded value back
    /// once every socket of the process (or of the tree's pool) is bound.
    public var portSharedInTree: Bool?
    /// The bound address was not an address of the host at checkpoint (bound
    /// with IP_FREEBIND/IP_TRANSPARENT, or removed since): the restore binds
    /// with IP_FREEBIND on and puts the recorded value back after bind.
    public var nonLocalAddress: Bool?
    /// The interface the socket is bound to with SO_BINDTODEVICE (1 to 15
    /// bytes, no NUL or "/"); set again before bind on restore.
    public var device: String?
    /// SO_LINGER is on, with l_linger this many seconds (0: close resets the
    /// connection); nil when off. Set again with the other options on restore.
    public var linger: Int32?
    /// A classic BPF socket filter the program attached (SO_ATTACH_FILTER,
    /// read with SO_GET_FILTER): its struct sock_filter instructions, 8 bytes
    /// each (code u16, jt u8, jf u8, k u32, little-endian), 1 to 4096 of them.
    /// Attached again before bind on restore; the kernel checks the program.
    public var filter: Bytes?
    /// SO_LOCK_FILTER was on: set again after the filter is attached.
    public var filterLocked: Bool?

    public init(family: Int32, type: Int32, proto: Int32, state: String, local: InetEndpoint? = nil,
                peer: InetEndpoint? = nil, backlog: Int32? = nil, options: [SocketOptionValue] = []) {
        self.family = family; self.type = type; self.proto = proto; self.state = state
        self.local = local; self.peer = peer; self.backlog = backlog; self.options = options
    }
}

/// An IP address and port.
public struct InetEndpoint: Codable, Equatable, Sendable {
    /// 4 (IPv4) or 16 (IPv6) bytes, network order.
    public var address: [UInt8]
    public var port: UInt16
    /// IPv6 scope (interface index of a link-local address); nil for IPv4 or 0.
    public var scopeID: UInt32?
    public init(address: [UInt8], port: UInt16, scopeID: UInt32? = nil) {
        self.address = address; self.port = port; self.scopeID = scopeID
    }
}

/// An integer socket option: setsockopt(level, name, value), Linux values.
public struct SocketOptionValue: Codable, Equatable, Sendable {
    public var level: Int32
    public var name: Int32
    public var value: Int32
    public init(level: Int32, name: Int32, value: Int32) { self.level = level; self.name = name; self.value = value }
}

/// What TCP_REPAIR reads of an established connection and sets again.
public struct TCPConnectionState: Codable, Equatable, Sendable {
    /// Sequence number of the first byte of `sendQueue` (snd_una).
    public var sendSeq: UInt32
    /// Sequence number of the first byte of `recvQueue` (the first byte not read by the program).
    public var recvSeq: UInt32
    /// Bytes written by the program and not acknowledged by the peer (sent or not).
    public var sendQueue: Bytes
    /// How many bytes at the end of `sendQueue` were never sent (SIOCOUTQNSD:
    /// the peer's window was full, or the program wrote faster than the
    /// network); nil for none. The restore queues the others in repair mode
    /// and writes these with send(2) once every socket of the tree exists.
    public var unsent: UInt32?
    /// Bytes received and not read by the program.
    public var recvQueue: Bytes
    /// The connection's MSS (TCP_MAXSEG).
    public var mss: UInt32
    /// Window scaling negotiated: our send and receive shifts; nil without it.
    public var sendWindowScale: UInt8?
    public var recvWindowScale: UInt8?
    public var sack: Bool
    /// TCP timestamps negotiated: the current timestamp value (TCP_TIMESTAMP); nil without them.
    public var timestamp: UInt32?
    /// struct tcp_repair_window: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup.
    public var window: [UInt32]

    public init(sendSeq: UInt32, recvSeq: UInt32, sendQueue: [UInt8], recvQueue: [UInt8], mss: UInt32,
                sendWindowScale: UInt8?, recvWindowScale: UInt8?, sack: Bool, timestamp: UInt32?, window: [UInt32]) {
        self.sendSeq = sendSeq; self.recvSeq = recvSeq; self.sendQueue = Bytes(sendQueue); self.recvQueue = Bytes(recvQueue)
        self.mss = mss; self.sendWindowScale = sendWindowScale; self.recvWindowScale = recvWindowScale; self.sack = sack
        self.timestamp = timestamp; self.window = window
    }
}
