#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage
import FerryCore

/// Netlink route and generic sockets: ferry reads a copy of the socket
/// (pidfd_getfd) with getsockname, getpeername, NETLINK_LIST_MEMBERSHIPS and
/// getsockopt, and its queue and dump state from /proc/PID/net/netlink;
/// restore re-creates it inside the process with socket, setsockopt, bind to
/// the same port id, NETLINK_ADD_MEMBERSHIP and connect. Other protocols,
/// queued messages and dumps in progress are refused by name.
enum NetlinkSocket {
    static let afNetlink: Int32 = 16, solNetlink: Int32 = 270
    static let addMembership: Int32 = 1, listMemberships: Int32 = 9

    /// What a copy of socket `fd` of `pid` says: nil when it is not a netlink socket.
    static func look(pid: Int32, fd: Int32, link: String) throws -> (image: NetlinkSocketImage, refusal: String?)? {
        let copy = ferry_fd_of_process(pid, fd)
        guard copy >= 0 else { throw SystemError("pidfd_getfd(\(pid), \(fd))", errno: -copy, "reading socket fd \(fd) of \(pid)") }
        defer { close(copy) }
        guard InetSocket.intOption(copy, 1, InetSocket.soDomain) == afNetlink else { return nil }
        let type = InetSocket.intOption(copy, 1, InetSocket.soType) ?? -1
        let proto = InetSocket.intOption(copy, 1, InetSocket.soProtocol) ?? -1
        let inode = InetSocket.socketInode(link)
        let text = (try? ProcFS.text("/proc/\(pid)/net/netlink")) ?? ""
        var img = NetlinkSocketImage(proto: proto, type: type, portID: address(copy, peer: false)?.port ?? 0, groups: groups(copy), options: [])
        // A socket never bound is in no table and can receive nothing; another one not
        // listed (another namespace's table) is taken as having messages, so refused.
        let q = inode.flatMap { NetlinkSocketPlan.queue(procNetlink: text, inode: $0) } ?? (img.portID == 0 ? 0 : 1, false)
        if let p = address(copy, peer: true), p.port != 0 || p.groups != 0 { img.peerPortID = p.port; img.peerGroups = p.groups }
        img.options = differingOptions(copy, type: type, proto: proto)
        return (img, NetlinkSocketPlan.refusal(proto: proto, type: type, waiting: q.waiting, dumping: q.dumping))
    }

    /// The record of socket `fd` of `pid`, a refusal naming it, or nil when it is not a netlink socket.
    static func dump(pid: Int32, fd: Int32, link: String) throws -> NetlinkSocketImage? {
        guard let seen = try look(pid: pid, fd: fd, link: link) else { return nil }
        if let why = seen.refusal { throw FerryError("cannot checkpoint \(pid): fd \(fd) \(why)") }
        return seen.image
    }

    /// `ferry check`: one line for socket `fd` of `pid`, or nil when it is not a netlink socket.
    static func report(pid: Int32, fd: Int32, link: String) -> String? {
        guard let seen = try? look(pid: pid, fd: fd, link: link) else { return nil }
        if let why = seen.refusal { return "fd \(fd): NOT carried: it \(why)" }
        return "fd \(fd): netlink \(seen.image.proto == NetlinkSocketImage.route ? "route" : "generic") socket, port id \(seen.image.portID): carried"
    }

    static func address(_ fd: Int32, peer: Bool) -> (port: UInt32, groups: UInt32)? {
        var a = [UInt8](repeating: 0, count: 12)
        var len = socklen_t(12)
        let r = a.withUnsafeMutableBytes { b in
            b.baseAddress!.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd, $0, &len) : getsockname(fd, $0, &len) }
        }
        guard r == 0, len >= 12 else { return nil }
        return a.withUnsafeBytes { (UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
                                    UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self))) }
    }

    /// NETLINK_LIST_MEMBERSHIPS, trailing zero words dropped.
    static func groups(_ fd: Int32) -> [UInt32] {
        var words = [UInt32](repeating: 0, count: NetlinkSocketImage.maxGroupWords)
        var len = socklen_t(words.count * 4)
        guard words.withUnsafeMutableBytes({ getsockopt(fd, solNetlink, listMemberships, $0.baseAddress, &len) }) == 0 else { return [] }
        var out = Array(words.prefix(min(Int(len) / 4, words.count)))
        while out.last == 0 { out.removeLast() }
        return out
    }

    static func differingOptions(_ fd: Int32, type: Int32, proto: Int32) -> [SocketOptionValue] {
        let fresh = socket(afNetlink, type | Int32(SOCK_CLOEXEC.rawValue), proto)
        defer { if fresh >= 0 { close(fresh) } }
        return NetlinkSocketImage.settable.compactMap { o in
            guard let v = InetSocket.intOption(fd, o.level, o.name) else { return nil }
            if fresh >= 0, let d = InetSocket.intOption(fresh, o.level, o.name), d == v { return nil }
            return SocketOptionValue(level: o.level, name: o.name, value: v)
        }
    }

    /// Creates the socket `f` describes at a new descriptor in the process.
    static func create(_ f: FileDescriptorImage, injector: Injector, scratch: ScratchArea) throws -> Int64 {
        guard let s = f.netlink else { throw FerryError("cannot restore fd \(f.fd): no netlink record") }
        let steps: [NetlinkSocketPlan.Step]
        do { steps = try NetlinkSocketPlan.steps(s) } catch let e as InetSocketPlan.Invalid { throw FerryError("cannot restore fd \(f.fd): \(e)") }
        var sock: Int64 = -1
        func setInt(_ level: Int32, _ name: Int32, _ value: Int32) throws {
            try injector.memory.write(scratch.data, withUnsafeBytes(of: value.littleEndian, Array.init))
            try injector.call(54 /* setsockopt */, [UInt64(sock), UInt64(level), UInt64(name), scratch.data, 4], "setsockopt(\(level), \(name), \(value)) for fd \(f.fd)")
        }
        do {
            for step in steps {
                switch step {
                case .socket(let type, let proto):
                    sock = try injector.call(41 /* socket */, [UInt64(afNetlink), UInt64(type) | UInt64(O_CLOEXEC), UInt64(proto)], "socket(AF_NETLINK, \(type), \(proto)) for fd \(f.fd)")
                case .setsockopt(let level, let name, let value):
                    try setInt(level, name, value)
                case .bind(let port):
                    try injector.memory.write(scratch.data, NetlinkSocketPlan.sockaddr(port: port, groups: 0))
                    let r = try injector.raw(49 /* bind */, [UInt64(sock), scratch.data, 12])
                    if r == -Int64(EADDRINUSE) {
                        throw FerryError("cannot restore fd \(f.fd): netlink port id \(port) is in use on this host (is the checkpointed program still running?)")
                    }
                    if r < 0 { throw SystemError("bind(netlink port \(port)) for fd \(f.fd)", errno: Int32(-r), "in process \(injector.memory.pid)") }
                case .addMembership(let group):
                    try setInt(solNetlink, addMembership, Int32(bitPattern: group))
                case .connect(let port, let groups):
                    try injector.memory.write(scratch.data, NetlinkSocketPlan.sockaddr(port: port, groups: groups))
                    try injector.call(42 /* connect */, [UInt64(sock), scratch.data, 12], "connect(netlink port \(port)) for fd \(f.fd)")
                }
            }
        } catch {
            if sock >= 0 { _ = try? injector.raw(SYS.close, [UInt64(sock)]) }
            throw error
        }
        return sock
    }
}
#endif
