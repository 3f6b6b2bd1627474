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
