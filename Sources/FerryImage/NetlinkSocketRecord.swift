/// A netlink socket of the route (0) or generic (16) family as the image
/// carries it: what a program needs to use it again after restore (its
/// port id, the multicast groups it joined, the port it is connected to,
/// its options). Linux values (AF_NETLINK 16, SOCK_RAW 3 or SOCK_DGRAM 2).
public struct NetlinkSocketImage: Codable, Equatable, Sendable {
    /// NETLINK_ROUTE (0) or NETLINK_GENERIC (16).
    public var proto: Int32
    /// SOCK_RAW (3) or SOCK_DGRAM (2).
    public var type: Int32
    /// The port id it is bound to (getsockname's nl_pid); 0 when never bound.
    public var portID: UInt32
    /// Multicast groups joined (NETLINK_LIST_MEMBERSHIPS): bit n of word n/32 is group n+1.
    public var groups: [UInt32]
    /// The port and groups it is connected to (getpeername); nil when not connected.
    public var peerPortID: UInt32?
    public var peerGroups: UInt32?
    /// Integer options (SOL_NETLINK, SOL_SOCKET buffers) that differ from a fresh socket's.
    public var options: [SocketOptionValue]

    public init(proto: Int32, type: Int32, portID: UInt32, groups: [UInt32], options: [SocketOptionValue]) {
        self.proto = proto; self.type = type; self.portID = portID; self.groups = groups; self.options = options
    }

    public static let route: Int32 = 0, generic: Int32 = 16
    /// The options a restore sets: SOL_NETLINK (270) PKTINFO 3, BROADCAST_ERROR 4,
    /// NO_ENOBUFS 5, LISTEN_ALL_NSID 8, CAP_ACK 10, EXT_ACK 11, GET_STRICT_CHK 12;
    /// SOL_SOCKET (1) SO_SNDBUF 7, SO_RCVBUF 8 (set with the …FORCE options, halved).
    public static let settable: [(level: Int32, name: Int32)] = [(270, 3), (270, 4), (270, 5), (270, 8), (270, 10), (270, 11), (270, 12), (1, 7), (1, 8)]
    /// At most 32 words of groups (1024 groups) and 16 options.
    public static let maxGroupWords = 32, maxOptions = 16

    /// Why this record cannot be restored, or nil.
    public func problem() -> String? {
        guard proto == Self.route || proto == Self.generic else { return "netlink protocol \(proto) (route 0 or generic 16 only)" }
        guard type == 2 || type == 3 else { return "netlink socket type \(type)" }
        guard groups.count <= Self.maxGroupWords else { return "\(groups.count) netlink group words" }
        guard options.count <= Self.maxOptions else { return "\(options.count) netlink socket options" }
        for o in options {
            guard Self.settable.contains(where: { $0.level == o.level && $0.name == o.name }) else { return "netlink option \(o.level)/\(o.name)" }
            if o.level == 1, !(0...(1 << 30)).contains(o.value) { return "netlink socket buffer \(o.value)" }
        }
        guard (peerPortID == nil) == (peerGroups == nil) else { return "a netlink peer without its groups" }
        return nil
    }
}
