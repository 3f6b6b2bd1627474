import FerryImage

/// One fd holding a Unix socket, in the process `pid` of the tree.
public struct UnixSocketEnd: Equatable, Sendable {
    public var pid: Int32
    public var fd: Int32
    public var socket: UnixSocketImage
    public init(pid: Int32, fd: Int32, socket: UnixSocketImage) { self.pid = pid; self.fd = fd; self.socket = socket }
}

/// Why a tree's Unix sockets cannot be carried.
public enum UnixSocketRefusal: Error, Equatable, CustomStringConvertible {
    /// The other end is held by no process of the tree.
    case peerOutside(pid: Int32, fd: Int32, inode: UInt64, peer: UInt64, peerName: String?)
    /// Two ends that do not name each other or differ in type.
    case notAPair(pid: Int32, fd: Int32, inode: UInt64, peer: UInt64)
    /// One socket recorded twice with different state.
    case inconsistent(pid: Int32, fd: Int32, inode: UInt64)
    /// A connected socket bound to a path that is not an open listener's of the tree.
    case namedNotAccepted(pid: Int32, fd: Int32, inode: UInt64, name: String)
    /// A connection waiting in a listener's accept queue whose client no process of the tree holds.
    case queuedClientOutside(pid: Int32, fd: Int32, inode: UInt64, name: String, client: UInt64)
    /// A listener's queued connection and its client do not name each other.
    case queueMismatch(inode: UInt64, client: UInt64)

    public var description: String {
        switch self {
        case let .peerOutside(pid, fd, inode, peer, name):
            let who = name.map { " (bound to \(UnixSocketPlan.printable($0)))" } ?? ""
            let ext = name == nil ? "" : ", or pass --ext-unix-sk to connect it to \(UnixSocketPlan.printable(name!)) again on restore"
            return "cannot checkpoint \(pid): fd \(fd) is a unix socket (socket:[\(inode)]) whose peer socket:[\(peer)]\(who) is outside the tree; checkpoint the process holding the peer with it\(ext), or close the socket"
        case let .notAPair(pid, fd, inode, peer):
            return "unix socket fd \(fd) of process \(pid) (socket:[\(inode)]) and its peer socket:[\(peer)] do not form a pair of the same type"
        case let .inconsistent(pid, fd, inode):
            return "unix socket fd \(fd) of process \(pid) (socket:[\(inode)]) is recorded twice with different state"
        case let .queuedClientOutside(pid, fd, inode, name, client):
            return "cannot checkpoint \(pid): fd \(fd) is a listening unix socket on \(UnixSocketPlan.printable(name)) (socket:[\(inode)]) with a connection waiting to be accepted from socket:[\(client)], which no process of the tree holds; ferry cannot connect it again — let the program accept it first, or checkpoint the client's process with it"
        case let .queueMismatch(inode, client):
            return "listening unix socket \(inode) and its queued client socket \(client) do not name each other or differ in type"
        case let .namedNotAccepted(pid, fd, inode, name):
            return "cannot checkpoint \(pid): fd \(fd) is a unix socket (socket:[\(inode)]) bound to \(UnixSocketPlan.printable(name)) that was not accepted from a listener open in the tree; ferry carries path names only on listeners and the connections they accepted — checkpoint the listener's process with it"
        }
    }
}

/// Which Unix sockets of a tree are pairs, and the order they are created in.
public enum UnixSocketPlan {
    /// Every fd of `processes` holding a Unix socket record (dups within a
    /// process follow their twin and are left out).
    public static func ends(_ processes: [ProcessImage]) -> [UnixSocketEnd] {
        processes.flatMap { p in
            p.files.compactMap { f in f.sharedWith == nil ? f.unixSocket.map { UnixSocketEnd(pid: p.pid, fd: f.fd, socket: $0) } : nil }
        }
    }

    /// The pairs to create, each once, lower inode first, ordered by that
    /// inode. Every end's peer must be in `ends`, name it back and have its
    /// type; several fds (processes after fork) may hold one end, with one state.
    public static func pairs(_ ends: [UnixSocketEnd], peerName: (UInt64) -> String? = { _ in nil }) throws -> [(UnixSocketImage, UnixSocketImage)] {
        var byInode: [UInt64: UnixSocketImage] = [:]
        for e in ends {
            if let seen = byInode[e.socket.inode] {
                guard seen == e.socket else { throw UnixSocketRefusal.inconsistent(pid: e.pid, fd: e.fd, inode: e.socket.inode) }
            } else {
                byInode[e.socket.inode] = e.socket
            }
        }
        var out: [(UnixSocketImage, UnixSocketImage)] = []
        for e in ends where e.socket.listenBacklog == nil && e.socket.externalPeer == nil && e.socket.unpaired != true && e.socket.queuedOn == nil {
            let s = e.socket
            guard let p = byInode[s.peer] else {
                throw UnixSocketRefusal.peerOutside(pid: e.pid, fd: e.fd, inode: s.inode, peer: s.peer, peerName: peerName(s.peer))
            }
            guard p.peer == s.inode, p.type == s.type, p.inode != s.inode else {
                throw UnixSocketRefusal.notAPair(pid: e.pid, fd: e.fd, inode: s.inode, peer: s.peer)
            }
        }
        for (inode, s) in byInode where s.listenBacklog == nil && s.externalPeer == nil && s.unpaired != true && s.queuedOn == nil && inode < s.peer {
            if let p = byInode[s.peer] { out.append((s, p)) }
        }
        return out.sorted { $0.0.inode < $1.0.inode }
    }

    /// Which sockets of `ends` are not one end of a pair (`UnixSocketImage.unpaired`):
    /// never connected (peer 0), or datagram sockets connected to a socket
    /// of the tree that is not connected back, or to themselves. Listeners,
    /// sockets connected outside the tree and accepted ones are not.
    public static func unpairedInodes(_ ends: [UnixSocketEnd]) -> Set<UInt64> {
        var byInode: [UInt64: UnixSocketImage] = [:]
        for e in ends { byInode[e.socket.inode] = e.socket }
        var out = Set<UInt64>()
        for s in byInode.values where s.listenBacklog == nil && s.externalPeer == nil && s.acceptedFrom == nil && s.queuedOn == nil {
            if s.peer == 0 {
                out.insert(s.inode)
            } else if s.type == UnixSocketImage.datagram, s.peer == s.inode || byInode[s.peer].map({ $0.peer != s.inode }) == true {
                out.insert(s.inode)
            }
        }
        return out
    }

    /// The unpaired sockets to create, each once, in inode order.
    public static func unpaired(_ ends: [UnixSocketEnd]) -> [UnixSocketImage] {
        var seen = Set<UInt64>()
        return ends.compactMap { e in e.socket.unpaired == true && seen.insert(e.socket.inode).inserted ? e.socket : nil }
            .sorted { $0.inode < $1.inode }
    }

    /// Why an unpaired socket cannot be carried (the words after "fd N").
    public struct Uncarried: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// The name an unpaired datagram socket connects to again on restore
    /// (its peer's, as sun_path bytes); nil when it is not connected.
    public static func connectTarget(of s: UnixSocketImage, among all: [UnixSocketImage]) throws -> [UInt8]? {
        guard s.peer != 0 else { return nil }
        guard let p = all.first(where: { $0.inode == s.peer }), let name = p.nameBytes else {
            throw Uncarried(description: "is a datagram unix socket (socket:[\(s.inode)]) connected to socket:[\(s.peer)], which has no name in the tree to connect to again")
        }
        return name
    }

    /// Who sends a datagram again on restore.
    public enum Sender: Equatable, Sendable {
        /// A new socket with no name, closed after.
        case temporary
        /// The socket of the tree with this inode (the datagram's sender name is its name).
        case socket(UInt64)
    }

    /// Who sends each datagram queued on the unpaired socket `r` on
    /// restore, so that the receiver sees the same sender name and the
    /// kernel lets it send (a connected receiver takes datagrams from its
    /// peer only): a datagram from an unnamed socket comes from a temporary
    /// one, a named one from the socket of the tree with that name.
    public static func senders(of r: UnixSocketImage, among all: [UnixSocketImage]) throws -> [Sender] {
        guard !r.queue.isEmpty else { return [] }
        let what = "is a datagram unix socket (socket:[\(r.inode)]) with \(r.queue.count) datagram(s) queued"
        guard let own = r.nameBytes else {
            throw Uncarried(description: "\(what) and no name to send them to again; ferry cannot queue them — let the program read them first")
        }
        let names = r.senders?.map(\.value) ?? []
        guard names.count == r.queue.count else { throw Uncarried(description: "\(what) whose senders were not read") }
        return try names.map { n -> Sender in
            let shown = n.isEmpty ? "an unnamed socket" : printable(String(decoding: n, as: UTF8.self))
            if r.peer != 0 {
                let peerName = r.peer == r.inode ? own : all.first { $0.inode == r.peer }?.nameBytes ?? []
                guard n == peerName else {
                    throw Uncarried(description: "\(what), one from \(shown) sent before it connected to socket:[\(r.peer)]; ferry cannot queue it again — let the program read it first")
                }
                return .socket(r.peer)
            }
            if n.isEmpty { return .temporary }
            guard let s = all.first(where: { $0.type == UnixSocketImage.datagram && $0.nameBytes == n }) else {
                throw Uncarried(description: "\(what), one from \(shown), which no socket of the tree holds (closed, or outside the tree); ferry cannot queue it again — let the program read it first")
            }
            return .socket(s.inode)
        }
    }

    /// sun_path bytes as a struct sockaddr_un for bind, connect or sendto: a path ends with NUL.
    public static func sockaddr(_ name: [UInt8]) -> [UInt8] {
        [1, 0] + name + (name.first == 0 ? [] : [0])
    }

    /// The sockets connected to a peer outside the tree (`--ext-unix-sk`), each once, in inode order.
    public static func externals(_ ends: [UnixSocketEnd]) -> [UnixSocketImage] {
        var seen = Set<UInt64>()
        return ends.compactMap { e in e.socket.externalPeer != nil && seen.insert(e.socket.inode).inserted ? e.socket : nil }
            .sorted { $0.inode < $1.inode }
    }

    /// Why a socket whose peer is outside the tree cannot be reconnected with
    /// `--ext-unix-sk` (the words after "fd N"), or nil when it can.
    public static func externalRefusal(_ s: UnixSocketImage, peerName: [UInt8]?) -> String? {
        guard let n = peerName, !n.isEmpty else {
            return "is a unix socket (socket:[\(s.inode)]) whose peer socket:[\(s.peer)] outside the tree has no name, so --ext-unix-sk cannot connect it again; checkpoint the peer's process with it, or close the socket"
        }
        let shown = printable(String(decoding: n, as: UTF8.self))
        if s.type == UnixSocketImage.seqpacket {
            return "is a seqpacket unix socket connected to \(shown) outside the tree; --ext-unix-sk reconnects stream and datagram sockets only"
        }
        if !s.queue.isEmpty {
            let bytes = s.queue.reduce(0) { $0 + $1.count }
            return "is a unix socket connected to \(shown) outside the tree with \(bytes) byte(s) it sent not yet read; ferry cannot queue them again from that peer — let the program read them first"
        }
        return nil
    }

    /// What a connected end's name says of it, seen at checkpoint.
    public struct ConnectedName: Equatable, Sendable {
        /// The path, or NUL and the abstract name.
        public var name: String
        /// The inode of a path's socket file (UNIX_DIAG_VFS): an accepted socket shares its listener's.
        public var fileInode: UInt64?
        public init(name: String, fileInode: UInt64?) { self.name = name; self.fileInode = fileInode }
    }

    /// For each connected end whose name is an open listener's of the tree
    /// (same path and socket file, or same abstract name): that listener's
    /// inode. A path-named end that matches no listener is refused by name; an
    /// abstract-named one that matches none keeps its name (bound again).
    public static func acceptedFrom(_ ends: [UnixSocketEnd], names: [UInt64: ConnectedName]) throws -> [UInt64: UInt64] {
        var byName: [String: (inode: UInt64, file: UInt64?)] = [:]
        for l in listeners(ends) {
            if let p = l.path { byName[p] = (l.inode, l.pathInode) } else if let a = l.abstractName { byName["\0" + String(decoding: a.value, as: UTF8.self)] = (l.inode, nil) }
        }
        var out: [UInt64: UInt64] = [:]
        for e in ends where e.socket.listenBacklog == nil {
            guard let n = names[e.socket.inode], !n.name.isEmpty else { continue }
            let abstract = n.name.first == "\0"
            if let l = byName[n.name], abstract || (l.file != nil && l.file == n.fileInode) {
                out[e.socket.inode] = l.inode
            } else if !abstract {
                throw UnixSocketRefusal.namedNotAccepted(pid: e.pid, fd: e.fd, inode: e.socket.inode, name: n.name)
            }
        }
        return out
    }

    /// At checkpoint: for each client of a connection waiting in the accept
    /// queue of a listener of `ends` (`queuedClients`), that listener's
    /// inode. A client no process of the tree holds is refused by name.
    public static func queuedOn(_ ends: [UnixSocketEnd], name: (UnixSocketImage) -> String = { $0.path ?? "@" + String(decoding: $0.abstractName?.value ?? [], as: UTF8.self) }) throws -> [UInt64: UInt64] {
        let inTree = Set(ends.map(\.socket.inode))
        var out: [UInt64: UInt64] = [:]
        var seen = Set<UInt64>()
        for e in ends where e.socket.listenBacklog != nil && seen.insert(e.socket.inode).inserted {
            for c in e.socket.queuedClients ?? [] {
                guard inTree.contains(c) else {
                    throw UnixSocketRefusal.queuedClientOutside(pid: e.pid, fd: e.fd, inode: e.socket.inode, name: name(e.socket), client: c)
                }
                out[c] = e.socket.inode
            }
        }
        return out
    }

    /// At restore: each listener with connections waiting, and their clients
    /// in queue order (each connects to the listener again, in that order).
    /// Every client must name its listener back and have its type, and every
    /// socket marked `queuedOn` must be in its listener's queue.
    public static func queuedConnections(_ ends: [UnixSocketEnd]) throws -> [(listener: UnixSocketImage, clients: [UnixSocketImage])] {
        var byInode: [UInt64: UnixSocketImage] = [:]
        for e in ends { byInode[e.socket.inode] = e.socket }
        var out: [(listener: UnixSocketImage, clients: [UnixSocketImage])] = []
        var listed = Set<UInt64>()
        for l in listeners(ends) where !(l.queuedClients ?? []).isEmpty {
            let clients = try (l.queuedClients ?? []).map { c -> UnixSocketImage in
                guard let s = byInode[c], s.queuedOn == l.inode, s.type == l.type else { throw UnixSocketRefusal.queueMismatch(inode: l.inode, client: c) }
                listed.insert(c)
                return s
            }
            out.append((l, clients))
        }
        for s in byInode.values.sorted(by: { $0.inode < $1.inode }) where s.queuedOn != nil && !listed.contains(s.inode) {
            throw UnixSocketRefusal.queueMismatch(inode: s.queuedOn ?? 0, client: s.inode)
        }
        return out
    }

    /// The listening sockets to create, each once, in inode order.
    public static func listeners(_ ends: [UnixSocketEnd]) -> [UnixSocketImage] {
        var seen = Set<UInt64>()
        return ends.compactMap { e in e.socket.listenBacklog != nil && seen.insert(e.socket.inode).inserted ? e.socket : nil }
            .sorted { $0.inode < $1.inode }
    }

    /// Distinct sockets in `processes` (the working descriptors a restore needs for them).
    public static func socketCount(_ processes: [ProcessImage]) -> Int {
        Set(ends(processes).map(\.socket.inode)).count
    }

    /// A socket name for a message: an abstract name (leading NUL) shown as `@name`.
    public static func printable(_ name: String) -> String {
        name.first == "\0" ? "@" + name.dropFirst() : name
    }

    /// A name the kernel chose at autobind: five lowercase hex digits (after the NUL).
    public static func isAutobindName(_ name: [UInt8]) -> Bool {
        name.count == 5 && name.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// How shutdown is replayed on one end: SHUT_WR (1) for the send side,
    /// SHUT_RD (0) for the receive side, in that order.
    public static func shutdownCalls(_ bits: UInt8) -> [Int32] {
        (bits & 2 != 0 ? [1] : []) + (bits & 1 != 0 ? [0] : [])
    }
}
