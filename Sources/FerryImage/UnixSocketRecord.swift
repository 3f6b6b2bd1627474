/// One end of a Unix socket pair whose both ends are in the tree (an
/// unnamed socketpair, shared by fork or not): what `FileDescriptorImage.unixSocket` holds.
public struct UnixSocketImage: Codable, Equatable, Sendable {
    /// The socket's inode on the source: its identity in the image (the
    /// fds of every process holding this end name the same inode).
    public var inode: UInt64
    /// The inode of the other end, which is in the image too.
    public var peer: UInt64
    /// SOCK_STREAM (1), SOCK_DGRAM (2) or SOCK_SEQPACKET (5).
    public var type: Int32
    /// SO_SNDBUF / SO_RCVBUF as getsockopt reports them (the doubled value).
    public var sendBuffer: Int32
    public var receiveBuffer: Int32
    public var passCredentials: Bool
    /// SO_PEEK_OFF; -1 when unset.
    public var peekOffset: Int32
    /// The kernel's shutdown bits: 1 receive side, 2 send side.
    public var shutdown: UInt8
    /// What this end has to read, oldest first: one chunk for a stream
    /// socket, one entry per message for datagram and seqpacket sockets.
    public var queue: [Bytes]
    /// The abstract name the end is bound to, without its leading NUL (an
    /// autobind name after SO_PASSCRED, or bind(2) on a pair end); nil when unbound.
    public var abstractName: Bytes?
    /// A listening socket (no peer, no queue): its listen(2) backlog.
    public var listenBacklog: Int32?
    /// The path a listening socket is bound to: absolute, or relative to
    /// `directory` (the name bind(2) was given, which getsockname reports).
    public var path: String?
    /// A listener bound to a relative `path`: the absolute directory its
    /// socket file was found in (the process's working directory at
    /// checkpoint). The restore binds `path` from that directory.
    public var directory: String?
    /// The socket file at `path`: its inode on the source (to recognize the
    /// file the source leaves behind), permission bits and owner; `pathRemoved`
    /// when the program had unlinked it (it is recreated for the bind and removed again).
    public var pathInode: UInt64?
    public var pathMode: UInt32?
    public var pathOwner: UInt32?
    public var pathGroup: UInt32?
    public var pathRemoved: Bool?
    /// The peer is outside the tree and the user named it external
    /// (`--ext-unix-sk`): the name it is bound to (sun_path bytes: a path,
    /// or NUL and an abstract name), connected to again on restore.
    public var externalPeer: Bytes?
    /// This end was accepted from the listening socket `acceptedFrom` of the
    /// tree (its name is the listener's): restored by connecting its peer to
    /// the listener and accepting.
    public var acceptedFrom: UInt64?
    /// Not one end of a pair: a socket never connected (`peer` 0), bound to
    /// `path` or `abstractName` or unnamed, or a datagram socket connected
    /// by name to `peer`, a socket of the tree that is not connected back (a
    /// client of a bound datagram socket) or itself.
    public var unpaired: Bool?
    /// An unpaired datagram socket's queue: each datagram's sender name
    /// (sun_path bytes: a path, or NUL and an abstract name; empty when the
    /// sender had none), one per `queue` entry.
    public var senders: [Bytes]?
    /// A listening socket's connections not yet accepted, oldest first: the
    /// inode of each one's client, a socket of the tree (`queuedOn` names
    /// this listener) connected to it again on restore, in this order.
    public var queuedClients: [UInt64]?
    /// This end is the client of a connection waiting in the accept queue of
    /// the listening socket `queuedOn` of the tree (`peer` is the kernel's
    /// socket for the server end, which no process holds yet): restored by
    /// connecting to that listener, which then holds the connection again.
    public var queuedOn: UInt64?

    public init(inode: UInt64, peer: UInt64, type: Int32, sendBuffer: Int32, receiveBuffer: Int32,
                passCredentials: Bool, peekOffset: Int32, shutdown: UInt8, queue: [[UInt8]]) {
        self.inode = inode; self.peer = peer; self.type = type; self.sendBuffer = sendBuffer
        self.receiveBuffer = receiveBuffer; self.passCredentials = passCredentials; self.peekOffset = peekOffset
        self.shutdown = shutdown; self.queue = queue.map(Bytes.init)
    }

    public static let stream: Int32 = 1, datagram: Int32 = 2, seqpacket: Int32 = 5
    /// Bounds a restore accepts: 64 MiB queued per socket, 1 GiB buffers, 65,536 messages.
    public static let maxQueuedBytes = 64 << 20, maxBuffer: Int32 = 1 << 30, maxMessages = 65536
    /// Connections waiting on one listener that a checkpoint carries (the sock_diag list ferry reads).
    public static let maxQueuedConnections = 256

    /// Why `path` (with its file's mode and owner) cannot be bound, or nil.
    func pathProblem() -> String? {
        guard let p = path else { return directory == nil ? nil : "a directory without a socket path" }
        func clean(_ s: String) -> Bool { !s.utf8.contains(0) && !s.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) }
        guard p.hasPrefix("/") == (directory == nil), !p.isEmpty, p.utf8.count <= 107, clean(p) else {
            return "socket path \(p.debugDescription) invalid (absolute, or relative with its directory; at most 107 bytes)"
        }
        if let d = directory {
            guard d.hasPrefix("/"), d.utf8.count + p.utf8.count < 4096, clean(d) else { return "socket directory \(d.debugDescription) invalid" }
            guard pathRemoved != true else { return "a relative socket path \(p) whose file was removed" }
        }
        guard let m = pathMode, m <= 0o7777, pathOwner != nil, pathGroup != nil else { return "socket path \(p) without its mode and owner" }
        return nil
    }

    /// Where the socket file is: `path`, under `directory` when it is relative.
    public var filePath: String? {
        guard let p = path else { return nil }
        return directory.map { ($0.hasSuffix("/") ? $0 : $0 + "/") + p } ?? p
    }

    /// The name as sun_path bytes: the path, or NUL and the abstract name; nil when unnamed.
    public var nameBytes: [UInt8]? {
        if let p = path { return Array(p.utf8) }
        return abstractName.map { [0] + $0.value }
    }

    /// Why this record cannot be restored, or nil when every field is in range.
    public func problem() -> String? {
        guard [Self.stream, Self.datagram, Self.seqpacket].contains(type) else { return "socket type \(type) is not stream, datagram or seqpacket" }
        if let backlog = listenBacklog {
            guard inode != 0, peer == 0, queue.isEmpty, type != Self.datagram, backlog >= 0 else {
                return "listening socket \(inode) with a peer, a queue, datagram type or a negative backlog"
            }
            guard (path != nil) != (abstractName != nil) else { return "listening socket \(inode) needs one name, path or abstract" }
            guard unpaired == nil, senders == nil, queuedOn == nil else { return "listening socket \(inode) marked unpaired or queued" }
            if let q = queuedClients {
                guard q.count <= Self.maxQueuedConnections, q.count <= Int(backlog) + 1, Set(q).count == q.count, !q.contains(0), !q.contains(inode) else {
                    return "listening socket \(inode) with \(q.count) queued connections (backlog \(backlog), at most \(Self.maxQueuedConnections), distinct clients)"
                }
            }
            if let why = pathProblem() { return why }
        } else if unpaired == true {
            guard inode != 0, externalPeer == nil, acceptedFrom == nil, queuedOn == nil, queuedClients == nil, path == nil || abstractName == nil else {
                return "unpaired socket \(inode) with an outside peer, a listener or two names"
            }
            guard peer == 0 || type == Self.datagram else { return "unpaired \(type == Self.stream ? "stream" : "seqpacket") socket \(inode) with peer \(peer)" }
            guard type == Self.datagram || queue.isEmpty else { return "unconnected socket \(inode) with data queued" }
            if let s = senders {
                guard s.count == queue.count, s.allSatisfy({ $0.count <= 108 }) else { return "socket \(inode): \(s.count) datagram senders for \(queue.count) datagrams" }
            } else if !queue.isEmpty {
                return "socket \(inode): datagrams queued without their senders"
            }
            if let why = pathProblem() { return why }
        } else {
            guard path == nil, directory == nil, senders == nil, queuedClients == nil else { return "socket \(inode): a path name, datagram senders or queued connections on a socket pair end" }
            if let l = queuedOn {
                guard l != 0, l != inode, type != Self.datagram, queue.isEmpty, externalPeer == nil, acceptedFrom == nil else {
                    return "socket \(inode): queued on listener \(l) but a datagram socket, with data queued, or connected otherwise"
                }
            }
            if acceptedFrom != nil, externalPeer != nil || abstractName != nil || acceptedFrom == 0 {
                return "socket \(inode): accepted from a listener but also named or connected outside the tree"
            }
            // A queued client's peer is the server end, which has no inode (0).
            guard inode != 0, peer != 0 || queuedOn != nil, peer != inode else { return "socket inode \(inode) / peer \(peer) invalid" }
            if let e = externalPeer {
                guard (1...108).contains(e.count), e.value.first == 0 || !e.value.contains(0) else { return "socket \(inode): external peer name of \(e.count) bytes invalid" }
                guard queue.isEmpty, type == Self.stream || type == Self.datagram else { return "socket \(inode): an external peer on a \(type == Self.seqpacket ? "seqpacket " : "")socket with data queued" }
            }
        }
        guard (0...Self.maxBuffer).contains(sendBuffer), (0...Self.maxBuffer).contains(receiveBuffer) else {
            return "socket buffer sizes \(sendBuffer)/\(receiveBuffer) out of range"
        }
        guard peekOffset >= -1 else { return "SO_PEEK_OFF \(peekOffset) invalid" }
        guard shutdown <= 3 else { return "shutdown bits \(shutdown) invalid" }
        if let n = abstractName, !(1...107).contains(n.count) { return "abstract name of \(n.count) bytes (1…107)" }
        guard queue.count <= Self.maxMessages else { return "\(queue.count) queued messages, over the limit" }
        if type == Self.stream && queue.count > 1 { return "a stream socket with \(queue.count) queue chunks" }
        var total = 0
        for m in queue {
            total += m.count
            guard total <= Self.maxQueuedBytes else { return "over \(Self.maxQueuedBytes) queued bytes" }
            if type != Self.stream && m.count == 0 { return "an empty queued message" }
        }
        return nil
    }
}
