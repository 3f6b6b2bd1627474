import FerryImage

/// Which netlink sockets a checkpoint carries and the calls that re-create
/// them: route and generic sockets with no message waiting and no dump in
/// progress; every other protocol is refused by name.
public enum NetlinkSocketPlan {
    /// Why a netlink socket of protocol `proto` is not carried (the words
    /// after "fd N"), or nil. `waiting`: bytes of messages queued to read
    /// (/proc/net/netlink Rmem); `dumping`: a dump the kernel is still sending.
    public static func refusal(proto: Int32, type: Int32, waiting: Int, dumping: Bool) -> String? {
        let name: String
        switch proto {
        case NetlinkSocketImage.route: name = "route"
        case NetlinkSocketImage.generic: name = "generic"
        default:
            return "is a netlink socket of protocol \(proto); ferry carries route (0) and generic (16) netlink sockets only — close it or run the program without it"
        }
        guard type == 2 || type == 3 else { return "is a netlink \(name) socket of type \(type), which ferry does not carry" }
        if dumping {
            return "is a netlink \(name) socket with a dump in progress, which ferry cannot carry — checkpoint when the program has read it"
        }
        if waiting > 0 {
            return "is a netlink \(name) socket with messages waiting to be read (\(waiting) bytes of buffer), which ferry does not carry — checkpoint when the program has read them"
        }
        return nil
    }

    /// One system call of a netlink socket's restore.
    public enum Step: Equatable, Sendable {
        case socket(type: Int32, proto: Int32)
        case setsockopt(level: Int32, name: Int32, value: Int32)
        /// bind(2) to this port id, no groups.
        case bind(UInt32)
        /// NETLINK_ADD_MEMBERSHIP of this group (1-based).
        case addMembership(UInt32)
        case connect(port: UInt32, groups: UInt32)
    }

    /// The calls that re-create `s`: socket, options (buffers forced and
    /// halved, as getsockopt reports them doubled), bind to its port id,
    /// each group joined, connect. A damaged record throws.
    public static func steps(_ s: NetlinkSocketImage) throws -> [Step] {
        if let why = s.problem() { throw InetSocketPlan.Invalid(description: "the image's netlink socket record is damaged: \(why)") }
        var out: [Step] = [.socket(type: s.type, proto: s.proto)]
        for o in s.options {
            if o.level == 1 {
                out.append(.setsockopt(level: 1, name: o.name == 7 ? 32 : 33, value: o.value / 2))
            } else {
                out.append(.setsockopt(level: o.level, name: o.name, value: o.value))
            }
        }
        if s.portID != 0 { out.append(.bind(s.portID)) }
        for (w, word) in s.groups.enumerated() {
            for bit in 0..<32 where word & (1 << UInt32(bit)) != 0 { out.append(.addMembership(UInt32(w * 32 + bit + 1))) }
        }
        if let p = s.peerPortID { out.append(.connect(port: p, groups: s.peerGroups ?? 0)) }
        return out
    }

    /// struct sockaddr_nl bytes: AF_NETLINK, pad, nl_pid, nl_groups (little-endian).
    public static func sockaddr(port: UInt32, groups: UInt32) -> [UInt8] {
        [16, 0, 0, 0] + withUnsafeBytes(of: port.littleEndian, Array.init) + withUnsafeBytes(of: groups.littleEndian, Array.init)
    }

    /// The Rmem and Dump columns of `/proc/net/netlink` for socket `inode`
    /// (columns: sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode); nil when not listed.
    public static func queue(procNetlink text: String, inode: UInt64) -> (waiting: Int, dumping: Bool)? {
        for line in text.split(separator: "\n").dropFirst() {
            let c = line.split(separator: " ", omittingEmptySubsequences: true)
            guard c.count >= 10, UInt64(c[9]) == inode, let rmem = Int(c[4]), let dump = Int(c[6]) else { continue }
            return (rmem, dump != 0)
        }
        return nil
    }
}
