#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage
import FerryCore

/// Unix sockets: the ends of socketpairs held inside the tree (stream,
/// datagram, seqpacket; shared by fork or not) with their queued data,
/// buffer sizes, SO_PASSCRED, SO_PEEK_OFF and shutdown state. The kernel's
/// view comes from sock_diag (peer, name, queue lengths, shutdown); the
/// data is read through a copy of the socket (pidfd_getfd) with MSG_PEEK, so
/// the source keeps it. Named, listening or unconnected sockets, a peer
/// outside the tree and descriptors in flight are refused by name.
public enum UnixSocket {
    static let SOL_SOCKET: Int32 = 1
    static let SO_TYPE: Int32 = 3, SO_SNDBUF: Int32 = 7, SO_RCVBUF: Int32 = 8, SO_PASSCRED: Int32 = 16
    static let SO_SNDBUFFORCE: Int32 = 32, SO_RCVBUFFORCE: Int32 = 33, SO_PROTOCOL: Int32 = 38, SO_DOMAIN: Int32 = 39, SO_PEEK_OFF: Int32 = 42
    static let TCP_LISTEN: UInt8 = 10, TCP_ESTABLISHED: UInt8 = 1
    static let openatNr = 257, chdirNr = 80, fchdirNr = 81
    static let socketpairNr = 53, socketNr = 41, bindNr = 49, listenNr = 50, unlinkNr = 87, chmodNr = 90, lchownNr = 94, setsockoptNr = 54, sendtoNr = 44, shutdownNr = 48

    // MARK: dump

    /// The family of a socket for a refusal ("a TCP socket", "a netlink socket" …).
    static func familyName(domain: Int32, type: Int32, protocol proto: Int32) -> String {
        switch domain {
        case 2, 10:
            let v = domain == 2 ? "" : "v6"
            if type == 1 && (proto == 6 || proto == 0) { return "a TCP\(v) socket" }
            if type == 2 && (proto == 17 || proto == 0) { return "a UDP\(v) socket" }
            return type == 3 ? "a raw IP\(v) socket" : "an IP\(v) socket of type \(type) protocol \(proto)"
        case 16: return "a netlink socket"
        case 17: return "a packet socket"
        default: return "a socket of family \(domain)"
        }
    }

    static func option(_ fd: Int32, _ name: Int32) throws -> Int32 {
        var v: Int32 = 0
        var len = socklen_t(4)
        try checkLibc(getsockopt(fd, SOL_SOCKET, name, &v, &len), "getsockopt(\(name))", "reading a socket option")
        return v
    }

    /// What sock_diag says of socket `inode`, or nil when it knows no such Unix socket.
    static func diag(_ inode: UInt64) throws -> ferry_unix_info? {
        var info = ferry_unix_info()
        guard let ino = UInt32(exactly: inode) else { return nil }
        let r = ferry_unix_diag(ino, &info)
        if r == -ENOENT { return nil }
        guard r == 0 else { throw SystemError("sock_diag(unix socket \(inode))", errno: -r, "reading a unix socket's peer") }
        return info
    }

    /// The name a socket is bound to ("" when none; an abstract name starts with NUL).
    static func name(_ info: ferry_unix_info) -> String {
        let n = max(0, min(Int(info.name_len), 108))
        var bytes = withUnsafeBytes(of: info.name) { Array($0.prefix(n)) }
        // A path name ends at its first NUL (bind may count the terminator in the address length).
        if bytes.first != 0, let end = bytes.firstIndex(of: 0) { bytes = Array(bytes[..<end]) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The peer's name, for a refusal.
    static func peerName(_ inode: UInt64) -> String? {
        guard let i = try? diag(inode) else { return nil }
        let n = name(i)
        return n.isEmpty ? nil : n
    }

    /// Checks socket fd `fd` of `pid` (inode `inode`) and reads its state
    /// and queue; anything ferry does not carry throws a one-line refusal.
    static func dump(pid: Int32, fd: Int32, inode: UInt64, fdinfo: String) throws -> UnixSocketImage {
        let what = "cannot checkpoint \(pid): fd \(fd)"
        let copy = ferry_fd_of_process(pid, fd)
        guard copy >= 0 else { throw SystemError("pidfd_getfd(\(pid), \(fd))", errno: -copy, "reading socket fd \(fd) of \(pid)") }
        defer { close(copy) }
        let domain = try option(copy, SO_DOMAIN), type = try option(copy, SO_TYPE)
        let proto = domain == 1 ? 0 : ((try? option(copy, SO_PROTOCOL)) ?? 0)
        let info = domain == 1 ? try diag(inode) : nil
        let connected = hasPeer(copy)
        // A stream or seqpacket client whose connection waits in an accept queue also has no peer
        // sock_diag can name (the server end has no inode): checkTree tells it from a closed peer.
        let queuedOrClosed = connected && (info?.peer ?? 1) == 0 && type != UnixSocketImage.datagram && info?.state != TCP_LISTEN
        if let why = refusal(inode: inode, domain: domain, type: type, protocol: proto, fdinfo: fdinfo, info: info, connected: connected, queued: queuedOrClosed) {
            throw FerryError("\(what) \(why)")
        }
        guard let info else { throw FerryError("\(what): no sock_diag record") }
        if queuedOrClosed, let why = refusal(inode: inode, domain: domain, type: type, protocol: proto, fdinfo: fdinfo, info: info, connected: connected) {
            peerClosed[inode] = "\(what) \(why)"
        }
        if info.state == TCP_LISTEN { return try dumpListener(copy, pid: pid, inode: inode, type: type, info: info, what: what) }
        var senders: [[UInt8]]? = type == UnixSocketImage.datagram ? [] : nil
        // A stream or seqpacket socket never connected has no queue (and recv says EINVAL).
        let queue = info.peer == 0 && type != UnixSocketImage.datagram ? [] : try peekQueue(copy, type: type, expected: type == UnixSocketImage.datagram ? nil : Int(info.rqueue),
                                  headLength: Int(info.rqueue), shutDown: info.shutdown & 1 != 0,
                                  what: "\(what) (unix socket:[\(inode)])", senders: &senders)
        let s = UnixSocketImage(inode: inode, peer: UInt64(info.peer), type: type,
                                sendBuffer: try option(copy, SO_SNDBUF), receiveBuffer: try option(copy, SO_RCVBUF),
                                passCredentials: try option(copy, SO_PASSCRED) != 0, peekOffset: try option(copy, SO_PEEK_OFF),
                                shutdown: info.shutdown & 3, queue: queue)
        var named = s
        let bound = name(info)
        if bound.first == "\0" {
            named.abstractName = Bytes(Array(bound.utf8.dropFirst()))
        } else if !bound.isEmpty, info.peer == 0 || type == UnixSocketImage.datagram {
            try recordPath(&named, bound: bound, info: info, what: what)
        }
        // Not connected, or a datagram socket that may be connected to one that is
        // not connected back: checkTree decides over the tree (and clears it on pair ends).
        if info.peer == 0 || type == UnixSocketImage.datagram {
            named.unpaired = true
            if !queue.isEmpty { named.senders = senders?.map(Bytes.init) }
        }
        if let why = named.problem() { throw FerryError("\(what): \(why)") }
        if !bound.isEmpty { connectedNames[inode] = UnixSocketPlan.ConnectedName(name: bound, fileInode: bound.first == "\0" ? nil : UInt64(info.vfs_inode)) }
        if info.wqueue > 0 { unreadSent[inode] = info.wqueue }
        return named
    }

    /// A listening socket with no connection waiting: name, backlog, buffers, SO_PASSCRED and its socket file.
    static func dumpListener(_ copy: Int32, pid: Int32, inode: UInt64, type: Int32, info: ferry_unix_info, what: String) throws -> UnixSocketImage {
        var s = UnixSocketImage(inode: inode, peer: 0, type: type, sendBuffer: try option(copy, SO_SNDBUF), receiveBuffer: try option(copy, SO_RCVBUF),
                                passCredentials: try option(copy, SO_PASSCRED) != 0, peekOffset: -1, shutdown: info.shutdown & 3, queue: [])
        s.listenBacklog = Int32(clamping: info.wqueue)
        if info.incoming > 0 {
            let n = Int(min(info.incoming, UInt32(FERRY_UNIX_MAX_ICONS)))
            s.queuedClients = withUnsafeBytes(of: info.icons) { b in (0..<n).map { UInt64(b.load(fromByteOffset: $0 * 4, as: UInt32.self)) } }
        }
        let bound = name(info)
        if bound.first == "\0" {
            let n = max(0, min(Int(info.name_len), 108))
            s.abstractName = Bytes(withUnsafeBytes(of: info.name) { Array($0.prefix(n).dropFirst()) })
        } else if bound.hasPrefix("/") {
            try recordPath(&s, bound: bound, info: info, what: what)
        } else {
            // A relative name: its file is looked for from the process's working directory.
            let cwd = try ProcFS.readlink("/proc/\(pid)/cwd")
            try recordPath(&s, bound: bound, in: cwd, info: info, what: what)
        }
        if let why = s.problem() { throw FerryError("\(what): \(why)") }
        return s
    }

    /// The path `bound` of socket `s` with its file's mode, owner and inode,
    /// or `pathRemoved` when the program removed it after bind.
    /// A relative `bound` is looked for in `directory`; a relative name whose
    /// file is not there (the program changed directory after bind, or removed it) is refused.
    static func recordPath(_ s: inout UnixSocketImage, bound: String, in directory: String? = nil, info: ferry_unix_info, what: String) throws {
        s.path = bound
        s.directory = directory
        let file = s.filePath ?? bound
        var st = stat()
        if let directory, lstat(file, &st) != 0 || st.st_mode & S_IFMT != S_IFSOCK || UInt64(st.st_ino) != UInt64(info.vfs_inode) {
            throw FerryError("\(what) is a unix socket bound to the relative path \(bound), whose socket file is not in the process's working directory \(directory) (it changed directory after bind, or removed the file); ferry cannot find where to bind it again")
        }
        if lstat(file, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK, UInt64(st.st_ino) == UInt64(info.vfs_inode) else {
                throw FerryError("\(what) is a unix socket bound to \(bound), but that path now names another file; ferry cannot recreate the name")
            }
            s.pathMode = UInt32(st.st_mode) & 0o7777
            s.pathOwner = st.st_uid
            s.pathGroup = st.st_gid
            s.pathInode = UInt64(st.st_ino)
        } else if errno == ENOENT {
            s.pathRemoved = true
            // The removed file's inode: the connections a listener accepted name it too (UNIX_DIAG_VFS).
            s.pathInode = UInt64(info.vfs_inode)
            s.pathMode = 0o755; s.pathOwner = 0; s.pathGroup = 0
        } else {
            throw SystemError("lstat(\(bound))", errno: errno, "reading the socket file of fd \(what)")
        }
    }

    /// Why a socket is not carried (the words after "fd N"), or nil when it is
    /// a connected pair end without a path name (its peer is checked over the tree).
    /// Whether `fd` is connected: getpeername answers while the peer it was
    /// connected to is referenced, closed or not (sock_diag then reports no peer).
    static func hasPeer(_ fd: Int32) -> Bool {
        var a = sockaddr_un()
        var len = socklen_t(MemoryLayout<sockaddr_un>.size)
        return withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) } } == 0
    }

    /// `connected`: getpeername answers on the socket (`hasPeer`).
    /// `queued`: the socket is the client of a connection waiting in a listener's queue (no peer-closed refusal).
    static func refusal(inode: UInt64, domain: Int32, type: Int32, protocol proto: Int32, fdinfo: String, info: ferry_unix_info?, connected: Bool, queued: Bool = false) -> String? {
        guard domain == 1 /* AF_UNIX */ else {
            return "is \(familyName(domain: domain, type: type, protocol: proto)) (socket:[\(inode)]); ferry carries only Unix socket pairs inside the tree — close it or run the program without it"
        }
        if let n = ProcFS.parseStatus(fdinfo)["scm_fds"].flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }), n > 0 {
            return "is a unix socket (socket:[\(inode)]) with \(n) file descriptor(s) in flight (SCM_RIGHTS not yet received); ferry does not carry descriptors in flight — let the program receive them first"
        }
        guard let info else {
            return "is a unix socket (socket:[\(inode)]) that sock_diag does not report (another network namespace?); ferry cannot see its peer"
        }
        let bound = name(info)
        if info.state == TCP_LISTEN {
            // Queued connections are carried when sock_diag lists every one (their clients are checked over the tree).
            if info.rqueue > 0, info.incoming != info.rqueue || info.incoming > UInt32(UnixSocketImage.maxQueuedConnections) {
                return "is a listening unix socket on \(UnixSocketPlan.printable(bound)) with \(info.rqueue) connection(s) not yet accepted (sock_diag lists \(info.incoming), ferry carries at most \(UnixSocketImage.maxQueuedConnections)); let the program accept them first"
            }
            if bound.isEmpty { return "is a listening unix socket without a name; ferry does not carry it" }
            return nil
        }
        if !bound.isEmpty && bound.first != "\0" && !bound.hasPrefix("/") && (info.peer == 0 || type == UnixSocketImage.datagram) {
            return "is a unix socket bound to the relative path \(bound); ferry carries absolute paths only"
        }
        if info.peer == 0 && connected && !queued {
            return "is a unix socket (socket:[\(inode)]) whose peer is closed; ferry does not carry it — let the program read its data and close it first"
        }
        guard [UnixSocketImage.stream, UnixSocketImage.datagram, UnixSocketImage.seqpacket].contains(type) else {
            return "is a unix socket of type \(type); ferry carries stream, datagram and seqpacket sockets"
        }
        return nil
    }

    /// `ferry check PID`: each Unix socket of the tree under `pid` and whether a
    /// checkpoint carries it, read without freezing (queues are not read).
    public static func survey(pid: Int32) throws -> [String] {
        guard ProcFS.exists("/proc/\(pid)") else { throw FerryError("no process \(pid)") }
        let tree = ProcFS.tree(of: pid)
        var found: [(pid: Int32, fd: Int32, inode: UInt64)] = []
        for p in tree {
            for fd in (try? ProcFS.fds(p)) ?? [] {
                guard let link = try? ProcFS.readlink("/proc/\(p)/fd/\(fd)"), link.hasPrefix("socket:["),
                      let inode = UInt64(link.dropFirst(8).dropLast()) else { continue }
                found.append((p, fd, inode))
            }
        }
        let inTree = Set(found.map(\.inode))
        // The clients of connections waiting in the accept queue of a listener of the tree.
        var queuedOn: [UInt64: UInt64] = [:]
        for s in found {
            guard let info = (try? diag(s.inode)) ?? nil, info.state == TCP_LISTEN else { continue }
            let n = Int(min(info.incoming, UInt32(FERRY_UNIX_MAX_ICONS)))
            withUnsafeBytes(of: info.icons) { b in for i in 0..<n { queuedOn[UInt64(b.load(fromByteOffset: i * 4, as: UInt32.self))] = s.inode } }
        }
        return found.compactMap { s in
            let head = "process \(s.pid) fd \(s.fd) socket:[\(s.inode)]:"
            let copy = ferry_fd_of_process(s.pid, s.fd)
            guard copy >= 0 else { return "\(head) cannot be read (pidfd_getfd: errno \(-copy))" }
            defer { close(copy) }
            let domain = (try? option(copy, SO_DOMAIN)) ?? -1, type = (try? option(copy, SO_TYPE)) ?? -1
            // Other families are InetSocket's to report.
            guard domain == 1 else { return nil }
            let proto = domain == 1 ? 0 : ((try? option(copy, SO_PROTOCOL)) ?? 0)
            let info = domain == 1 ? (try? diag(s.inode)) ?? nil : nil
            let fdinfo = (try? ProcFS.text("/proc/\(s.pid)/fdinfo/\(s.fd)")) ?? ""
            if let why = refusal(inode: s.inode, domain: domain, type: type, protocol: proto, fdinfo: fdinfo, info: info, connected: hasPeer(copy),
                                 queued: queuedOn[s.inode] != nil) {
                return "\(head) not carried: \(why)"
            }
            if let info, info.state == TCP_LISTEN {
                let waiting = info.incoming > 0 ? ", \(info.incoming) connection(s) waiting, carried when their clients are in the tree" : ""
                return "\(head) carried (unix listening socket on \(UnixSocketPlan.printable(name(info)))\(waiting))"
            }
            if let l = queuedOn[s.inode] {
                return "\(head) carried (unix client of a connection waiting in the accept queue of socket:[\(l)], unless it sent data not yet read)"
            }
            let peer = UInt64(info?.peer ?? 0)
            let kind = type == UnixSocketImage.stream ? "stream" : type == UnixSocketImage.datagram ? "datagram" : "seqpacket"
            if peer == 0 {
                let n = info.map(name) ?? ""
                return "\(head) carried (unix \(kind) socket, not connected\(n.isEmpty ? "" : ", bound to \(UnixSocketPlan.printable(n))"))"
            }
            guard inTree.contains(peer) else {
                let n = peerName(peer).map { " (bound to \(UnixSocketPlan.printable($0)))" } ?? ""
                return "\(head) not carried: its peer socket:[\(peer)]\(n) is outside the tree\(n.isEmpty ? "" : " (--ext-unix-sk connects it again)")"
            }
            // A datagram socket may be one client of a bound socket rather than one end of a pair.
            return "\(head) carried (unix \(kind) \(type == UnixSocketImage.datagram ? "socket connected to" : "pair with") socket:[\(peer)])"
        }
    }

    /// The queued data of a socket, read with MSG_PEEK from offset 0 with
    /// SO_PEEK_OFF (one message per call for datagrams), which is then put
    /// back as it was: the source's queue and peek offset are unchanged.
    static func peekQueue(_ s: Int32, type: Int32, expected: Int?, headLength: Int? = nil, shutDown: Bool, what: String,
                          senders: UnsafeMutablePointer<[[UInt8]]?>? = nil) throws -> [[UInt8]] {
        let saved = try option(s, SO_PEEK_OFF)
        var zero: Int32 = 0
        try checkLibc(setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &zero, 4), "setsockopt(SO_PEEK_OFF, 0)", "peeking at a socket queue")
        defer {
            var v = saved
            _ = setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &v, 4)
        }
        let cap = 1 << 20
        var buf = [UInt8](repeating: 0, count: cap)
        var out: [[UInt8]] = []
        var total = 0
        // MSG_TRUNC: a datagram's whole length, to tell one too long for the buffer.
        let flags = Int32(MSG_PEEK | MSG_DONTWAIT) | (type == UnixSocketImage.stream ? 0 : Int32(MSG_TRUNC))
        while true {
            var from = sockaddr_un()
            var fromLength = socklen_t(MemoryLayout<sockaddr_un>.size)
            let n = buf.withUnsafeMutableBytes { b in
                withUnsafeMutablePointer(to: &from) { a in
                    a.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(s, b.baseAddress, cap, flags, $0, &fromLength) }
                }
            }
            if n < 0 {
                if errno == EAGAIN { break }
                throw SystemError("recv(MSG_PEEK)", errno: errno, what)
            }
            if n == 0 {
                // A stream's end of data; an empty message cannot be told from it.
                if type == UnixSocketImage.stream { break }
                throw FerryError(shutDown
                    ? "\(what) is shut down for reading, and an empty message cannot be told from its end of data; ferry does not carry empty messages"
                    : "\(what) has an empty message queued; ferry does not carry empty messages")
            }
            guard n <= cap else { throw FerryError("\(what) has a queued message of \(n) bytes, over ferry's \(cap)") }
            if type == UnixSocketImage.stream, !out.isEmpty { out[0] += buf[0..<n] } else { out.append(Array(buf[0..<n])) }
            if senders != nil, type == UnixSocketImage.datagram {
                // The sender's name: sun_path after the family (a path with its terminator).
                let length = max(0, min(Int(fromLength) - 2, 108))
                var name = withUnsafeBytes(of: from.sun_path) { Array($0.prefix(length)) }
                if name.first != 0, let end = name.firstIndex(of: 0) { name = Array(name[..<end]) }
                senders?.pointee?.append(name)
            }
            total += n
            guard total <= UnixSocketImage.maxQueuedBytes, out.count <= UnixSocketImage.maxMessages else {
                throw FerryError("\(what) has over \(UnixSocketImage.maxQueuedBytes) bytes or \(UnixSocketImage.maxMessages) messages queued; ferry does not carry that much")
            }
        }
        // A peek skips an empty message the program already peeked at: at the
        // head of a datagram queue its length (the kernel's queue length)
        // differs from the first message read; in an otherwise empty queue poll still sees it.
        var unseen = false
        if type == UnixSocketImage.datagram, let first = out.first, let head = headLength, first.count != head { unseen = true }
        if out.isEmpty && !shutDown {
            var p = pollfd(fd: s, events: Int16(POLLIN), revents: 0)
            unseen = poll(&p, 1, 0) == 1 && p.revents & Int16(POLLIN) != 0
        }
        if unseen {
            throw FerryError("\(what) has a queued message a peek does not show (an empty message the program already peeked at); ferry does not carry empty messages")
        }
        if let e = expected, e != total {
            throw FerryError("\(what): \(total) queued bytes read but the kernel reports \(e); the queue could not be read whole")
        }
        return out
    }

    /// Refuses the tree's sockets whose peer is outside it (naming the peer's address when it has one).
    /// `--ext-unix-sk`: sockets whose peer outside the tree is bound to a
    /// name are carried and connected to that name again on restore.
    nonisolated(unsafe) public static var externalPeersAllowed = false

    /// The name socket `inode` is bound to, as sun_path bytes (a path without
    /// its terminator, or NUL and an abstract name); nil when unbound or unknown.
    static func rawName(_ inode: UInt64) -> [UInt8]? {
        guard let info = try? diag(inode) else { return nil }
        let n = max(0, min(Int(info.name_len), 108))
        var bytes = withUnsafeBytes(of: info.name) { Array($0.prefix(n)) }
        if bytes.first != 0, let end = bytes.firstIndex(of: 0) { bytes = Array(bytes[..<end]) }
        return bytes.isEmpty ? nil : bytes
    }

    /// With `--ext-unix-sk`: marks each socket whose peer is outside the tree
    /// with the peer's name, or refuses it by name (no name, data queued, seqpacket).
    static func markExternal(_ processes: inout [ProcessImage]) throws {
        let inTree = Set(UnixSocketPlan.ends(processes).map(\.socket.inode))
        for pi in processes.indices {
            for fi in processes[pi].files.indices {
                guard let s = processes[pi].files[fi].unixSocket, s.listenBacklog == nil, s.queuedOn == nil, s.peer != 0, !inTree.contains(s.peer) else { continue }
                let name = rawName(s.peer)
                if let why = UnixSocketPlan.externalRefusal(s, peerName: name) {
                    throw FerryError("cannot checkpoint \(processes[pi].pid): fd \(processes[pi].files[fi].fd) \(why)")
                }
                processes[pi].files[fi].unixSocket?.externalPeer = name.map(Bytes.init)
            }
        }
    }

    /// The names of the connected ends dumped (by inode), for `checkTree` to
    /// tell the connections a listener of the tree accepted.
    nonisolated(unsafe) static var connectedNames: [UInt64: UnixSocketPlan.ConnectedName] = [:]
    /// What the connected ends dumped sent that their peer has not read
    /// (sock_diag's send-side memory, by inode): for a client whose
    /// connection waits in an accept queue, bytes ferry cannot read.
    nonisolated(unsafe) static var unreadSent: [UInt64: UInt32] = [:]
    /// Connected stream and seqpacket sockets dumped with no peer sock_diag
    /// can name, by inode, with their refusal: a closed peer, unless
    /// `markQueued` finds the socket in a listener's accept queue.
    nonisolated(unsafe) static var peerClosed: [UInt64: String] = [:]

    /// Marks each client of a connection waiting in the accept queue of a
    /// listener of the tree with that listener (`queuedOn`), or refuses it
    /// by name: a client outside the tree, or one that sent bytes the server
    /// end holds (no process can read them before the program accepts).
    static func markQueued(_ processes: inout [ProcessImage]) throws {
        let queued: [UInt64: UInt64]
        do { queued = try UnixSocketPlan.queuedOn(UnixSocketPlan.ends(processes)) } catch let r as UnixSocketRefusal { throw FerryError(r.description) }
        for pi in processes.indices {
            for fi in processes[pi].files.indices {
                guard let s = processes[pi].files[fi].unixSocket, s.listenBacklog == nil else { continue }
                guard let l = queued[s.inode] else {
                    if let why = peerClosed[s.inode] { throw FerryError(why) }
                    continue
                }
                if let path = s.path {
                    throw FerryError("cannot checkpoint \(processes[pi].pid): fd \(processes[pi].files[fi].fd) is a unix socket bound to \(path) whose connection listener socket:[\(l)] has not accepted yet; ferry carries a path name on a client only once accepted — let the program accept it first")
                }
                if let n = unreadSent[s.inode] {
                    throw FerryError("cannot checkpoint \(processes[pi].pid): fd \(processes[pi].files[fi].fd) is a unix socket (socket:[\(s.inode)]) that sent data (\(n) bytes of buffer) on a connection listener socket:[\(l)] has not accepted yet; ferry cannot read it before the program does — let the program accept the connection first")
                }
                processes[pi].files[fi].unixSocket?.queuedOn = l
                processes[pi].files[fi].unixSocket?.unpaired = nil
                processes[pi].files[fi].unixSocket?.senders = nil
            }
        }
    }

    static func checkTree(_ processes: inout [ProcessImage]) throws {
        // Filled by this capture's dumps; a later capture fills it again.
        defer { connectedNames = [:]; unreadSent = [:]; peerClosed = [:] }
        try markQueued(&processes)
        if externalPeersAllowed { try markExternal(&processes) }
        let loose = UnixSocketPlan.unpairedInodes(UnixSocketPlan.ends(processes))
        for pi in processes.indices {
            for fi in processes[pi].files.indices where processes[pi].files[fi].unixSocket?.unpaired == true {
                guard let inode = processes[pi].files[fi].unixSocket?.inode, !loose.contains(inode) else { continue }
                // One end of a pair after all: created with socketpair, its sender names not needed.
                processes[pi].files[fi].unixSocket?.unpaired = nil
                processes[pi].files[fi].unixSocket?.senders = nil
                if let path = processes[pi].files[fi].unixSocket?.path {
                    throw FerryError("cannot checkpoint \(processes[pi].pid): fd \(processes[pi].files[fi].fd) is a datagram unix socket bound to \(path) and connected to a socket outside the tree or connected back to it; ferry carries a path name on a datagram socket only when it is not connected, or connected to a socket of the tree that is not connected back")
                }
            }
        }
        let all = UnixSocketPlan.ends(processes)
        for e in all where e.socket.unpaired == true {
            do {
                _ = try UnixSocketPlan.connectTarget(of: e.socket, among: all.map(\.socket))
                _ = try UnixSocketPlan.senders(of: e.socket, among: all.map(\.socket))
            } catch let u as UnixSocketPlan.Uncarried {
                throw FerryError("cannot checkpoint \(e.pid): fd \(e.fd) \(u)")
            }
        }
        do {
            let accepted = try UnixSocketPlan.acceptedFrom(UnixSocketPlan.ends(processes).filter { $0.socket.unpaired != true }, names: connectedNames)
            for pi in processes.indices {
                for fi in processes[pi].files.indices {
                    guard let inode = processes[pi].files[fi].unixSocket?.inode, let l = accepted[inode] else { continue }
                    processes[pi].files[fi].unixSocket?.acceptedFrom = l
                    processes[pi].files[fi].unixSocket?.abstractName = nil
                }
            }
        } catch let r as UnixSocketRefusal {
            throw FerryError(r.description)
        }
        do {
            _ = try UnixSocketPlan.pairs(UnixSocketPlan.ends(processes), peerName: peerName)
        } catch let r as UnixSocketRefusal {
            throw FerryError(r.description)
        }
    }

    // MARK: restore

    /// Creates every socket pair of the tree in the root at pool slots, with
    /// buffers, queued data, options and shutdown state; returns the slot of each socket by inode.
    static func createPairs(_ processes: [ProcessImage], reserve: (Int32) throws -> Int32,
                            injector: Injector, scratch: ScratchArea) throws -> [UInt64: Int32] {
        let pairs: [(UnixSocketImage, UnixSocketImage)]
        do { pairs = try UnixSocketPlan.pairs(UnixSocketPlan.ends(processes)) } catch let r as UnixSocketRefusal {
            throw FerryError("cannot restore: \(r.description)")
        }
        var slots: [UInt64: Int32] = [:]
        for l in UnixSocketPlan.listeners(UnixSocketPlan.ends(processes)) {
            slots[l.inode] = try createListener(l, reserve: reserve, injector: injector, scratch: scratch)
        }
        let loose = UnixSocketPlan.unpaired(UnixSocketPlan.ends(processes))
        for u in loose {
            if let path = u.filePath { try clearStalePath(path, inode: u.pathInode, socket: u.inode, type: u.type) }
            let fd = try reserve(1)
            try makeSocket(u, at: fd, injector: injector, scratch: scratch)
            try bindName(u, at: fd, injector: injector, scratch: scratch)
            slots[u.inode] = fd
        }
        for e in UnixSocketPlan.externals(UnixSocketPlan.ends(processes)) {
            slots[e.inode] = try connectExternal(e, reserve: reserve, injector: injector, scratch: scratch)
        }
        for (a, b) in pairs {
            let first = try reserve(2)
            let ends: [(UnixSocketImage, Int32)]
            if let l = a.acceptedFrom ?? b.acceptedFrom {
                // A connection the listener accepted: the other end connects to it, the listener accepts.
                guard let listener = slots[l] else { throw FerryError("cannot restore socket \(a.inode): its listener \(l) is not in the image") }
                let (server, client) = a.acceptedFrom != nil ? (a, b) : (b, a)
                ends = [(client, first), (server, first + 1)]
                try connectAccepted(client: client, at: first, server: server, at: first + 1, listener: listener,
                                    listenerImage: UnixSocketPlan.listeners(UnixSocketPlan.ends(processes)).first { $0.inode == l }!, injector: injector, scratch: scratch)
            } else {
                try injector.call(socketpairNr, [1 /* AF_UNIX */, UInt64(a.type) | UInt64(O_CLOEXEC), 0, scratch.data],
                                  "socketpair(AF_UNIX, \(a.type)) for socket \(a.inode)")
                let fds = try injector.memory.read(scratch.data, count: 8).withUnsafeBytes { ($0.load(as: Int32.self), $0.load(fromByteOffset: 4, as: Int32.self)) }
                for (from, to) in [(fds.0, first), (fds.1, first + 1)] {
                    try injector.call(SYS.dup2, [UInt64(from), UInt64(to)], "dup2")
                    try injector.call(SYS.close, [UInt64(from)], "close")
                }
                ends = [(a, first), (b, first + 1)]
                for (s, fd) in ends {
                    if let name = s.abstractName?.value { try bindAbstract(fd, name, s, injector, scratch) }
                }
            }
            for (s, fd) in ends {
                try set(fd, SO_SNDBUFFORCE, s.sendBuffer / 2, s, injector, scratch)
                try set(fd, SO_RCVBUFFORCE, s.receiveBuffer / 2, s, injector, scratch)
            }
            for (i, (s, _)) in ends.enumerated() {
                let sender = ends[1 - i].1
                for m in s.queue { try send(m.value, from: sender, to: s, injector, scratch) }
            }
            for (s, fd) in ends {
                if s.passCredentials { try set(fd, SO_PASSCRED, 1, s, injector, scratch) }
                if s.peekOffset >= 0 { try set(fd, SO_PEEK_OFF, s.peekOffset, s, injector, scratch) }
                for how in UnixSocketPlan.shutdownCalls(s.shutdown) {
                    try injector.call(shutdownNr, [UInt64(fd), UInt64(how)], "shutdown(\(how)) of socket \(s.inode)")
                }
                slots[s.inode] = fd
            }
        }
        // After the accepted connections (each accept takes the head of its listener's queue):
        // the connections not yet accepted, queued again in order.
        let queued: [(listener: UnixSocketImage, clients: [UnixSocketImage])]
        do { queued = try UnixSocketPlan.queuedConnections(UnixSocketPlan.ends(processes)) } catch let r as UnixSocketRefusal {
            throw FerryError("cannot restore: \(r.description)")
        }
        for (l, clients) in queued {
            for c in clients {
                slots[c.inode] = try connectQueued(c, to: l, reserve: reserve, injector: injector, scratch: scratch)
            }
        }
        try connectUnpaired(loose, all: UnixSocketPlan.ends(processes).map(\.socket), slots: slots, injector: injector, scratch: scratch)
        // A path the program had removed after bind goes once its connections are made and datagrams queued.
        for l in UnixSocketPlan.listeners(UnixSocketPlan.ends(processes)) + loose where l.pathRemoved == true {
            guard let path = l.filePath else { continue }
            try injector.memory.write(scratch.data, Array(path.utf8) + [0])
            try injector.call(unlinkNr, [scratch.data], "unlink(\(path)), removed on the source")
        }
        return slots
    }

    /// The unpaired sockets (created and named in `createPairs`): each
    /// datagram socket connects to its peer's name, then every queued
    /// datagram is sent again from a socket with its sender's name (or none),
    /// then SO_PEEK_OFF and shutdown.
    static func connectUnpaired(_ loose: [UnixSocketImage], all: [UnixSocketImage], slots: [UInt64: Int32],
                                injector: Injector, scratch: ScratchArea) throws {
        func planned<T>(_ s: UnixSocketImage, _ f: () throws -> T) throws -> T {
            do { return try f() } catch let u as UnixSocketPlan.Uncarried { throw FerryError("cannot restore socket \(s.inode): it \(u)") }
        }
        for u in loose {
            guard let fd = slots[u.inode], let target = try planned(u, { try UnixSocketPlan.connectTarget(of: u, among: all) }) else { continue }
            let addr = UnixSocketPlan.sockaddr(target)
            try injector.memory.write(scratch.data, addr)
            try injector.call(42 /* connect */, [UInt64(fd), scratch.data, UInt64(addr.count)],
                              "connect(\(UnixSocketPlan.printable(String(decoding: target, as: UTF8.self)))) for socket \(u.inode)")
        }
        for u in loose where !u.queue.isEmpty {
            let senders = try planned(u) { try UnixSocketPlan.senders(of: u, among: all) }
            guard let name = u.nameBytes else { continue }
            let addr = UnixSocketPlan.sockaddr(name)
            for (m, who) in zip(u.queue, senders) {
                guard m.count + 128 <= scratch.dataSize else {
                    throw FerryError("cannot restore socket \(u.inode): a queued datagram of \(m.count) bytes exceeds ferry's \(scratch.dataSize - 128)-byte working area")
                }
                let from: Int64
                switch who {
                case .temporary:
                    from = try injector.call(socketNr, [1 /* AF_UNIX */, UInt64(UnixSocketImage.datagram) | UInt64(O_CLOEXEC), 0], "socket(AF_UNIX, datagram) to queue a datagram for socket \(u.inode)")
                case .socket(let inode):
                    guard let fd = slots[inode] else { throw FerryError("cannot restore socket \(u.inode): the sender of a queued datagram, socket \(inode), was not created") }
                    from = Int64(fd)
                }
                defer { if case .temporary = who { _ = try? injector.raw(SYS.close, [UInt64(from)]) } }
                try injector.memory.write(scratch.data, addr)
                try injector.memory.write(scratch.data + 128, m.value)
                let sent = try injector.call(sendtoNr, [UInt64(from), scratch.data + 128, UInt64(m.count), UInt64(MSG_DONTWAIT), scratch.data, UInt64(addr.count)],
                                             "sendto(a queued datagram of socket \(u.inode))")
                guard sent == Int64(m.count) else { throw FerryError("cannot restore socket \(u.inode): a queued datagram of \(m.count) bytes went out as \(sent)") }
            }
        }
        for u in loose {
            guard let fd = slots[u.inode] else { continue }
            if u.peekOffset >= 0 { try set(fd, SO_PEEK_OFF, u.peekOffset, u, injector, scratch) }
            for how in UnixSocketPlan.shutdownCalls(u.shutdown) {
                // On a socket that is not connected shutdown sets the bits all the same.
                let r = try injector.raw(shutdownNr, [UInt64(fd), UInt64(how)])
                if r < 0 && r != -Int64(ENOTCONN) { throw SystemError("shutdown(\(how)) of socket \(u.inode)", errno: Int32(-r), "in process \(injector.memory.pid)") }
            }
        }
    }

    /// Re-creates a connection a listener of the tree accepted: a new socket
    /// (the client end, bound to its abstract name if it had one) connects
    /// to the listener at `listener` and the listener accepts the server end,
    /// whose name is the listener's as on the source.
    static func connectAccepted(client: UnixSocketImage, at clientFD: Int32, server: UnixSocketImage, at serverFD: Int32, listener: Int32,
                                listenerImage l: UnixSocketImage, injector: Injector, scratch: ScratchArea) throws {
        try makeSocket(client, at: clientFD, injector: injector, scratch: scratch)
        if let name = client.abstractName?.value { try bindAbstract(clientFD, name, client, injector, scratch) }
        let addr: [UInt8] = l.filePath.map { [1, 0] + Array($0.utf8) + [0] } ?? ([1, 0, 0] + (l.abstractName?.value ?? []))
        try injector.memory.write(scratch.data, addr)
        try injector.call(42 /* connect */, [UInt64(clientFD), scratch.data, UInt64(addr.count)],
                          "connect(\(UnixSocketPlan.printable(l.path ?? "\0" + String(decoding: l.abstractName?.value ?? [], as: UTF8.self)))) for socket \(client.inode)")
        let accepted = try injector.call(288 /* accept4 */, [UInt64(listener), 0, 0, UInt64(O_CLOEXEC)], "accept4 for socket \(server.inode)")
        try injector.call(SYS.dup2, [UInt64(accepted), UInt64(serverFD)], "dup2")
        try injector.call(SYS.close, [UInt64(accepted)], "close")
        // The accepted end starts with the listener's SO_PASSCRED; the image's value is set for both.
        try set(serverFD, SO_PASSCRED, server.passCredentials ? 1 : 0, server, injector, scratch)
        try set(clientFD, SO_PASSCRED, client.passCredentials ? 1 : 0, client, injector, scratch)
    }

    /// The client of a connection that waited in listener `l`'s accept queue,
    /// at a pool slot: a new socket (bound to its abstract name if it had
    /// one) connects to the restored listener and is left for the program
    /// to accept; then SO_PEEK_OFF and shutdown.
    static func connectQueued(_ c: UnixSocketImage, to l: UnixSocketImage, reserve: (Int32) throws -> Int32, injector: Injector, scratch: ScratchArea) throws -> Int32 {
        let fd = try reserve(1)
        try makeSocket(c, at: fd, injector: injector, scratch: scratch)
        if let name = c.abstractName?.value { try bindAbstract(fd, name, c, injector, scratch) }
        // A relative name is reached through its directory.
        guard let target = l.filePath.map({ Array($0.utf8) }) ?? l.nameBytes else { throw FerryError("cannot restore socket \(c.inode): its listener \(l.inode) has no name") }
        let addr = UnixSocketPlan.sockaddr(target)
        try injector.memory.write(scratch.data, addr)
        // Non-blocking for the connect: a listener whose queue is full (a smaller somaxconn here) is an error, not a hang.
        try injector.call(72 /* fcntl */, [UInt64(fd), 4 /* F_SETFL */, UInt64(O_NONBLOCK)], "fcntl(F_SETFL) for socket \(c.inode)")
        let r = try injector.raw(42 /* connect */, [UInt64(fd), scratch.data, UInt64(addr.count)])
        guard r == 0 else {
            throw SystemError("connect(\(UnixSocketPlan.printable(String(decoding: target, as: UTF8.self)))) for socket \(c.inode), queued on listener \(l.inode)",
                              errno: Int32(truncatingIfNeeded: -r), "re-queueing a connection not yet accepted (backlog \(l.listenBacklog ?? 0))")
        }
        try injector.call(72 /* fcntl */, [UInt64(fd), 4 /* F_SETFL */, 0], "fcntl(F_SETFL) for socket \(c.inode)")
        if c.peekOffset >= 0 { try set(fd, SO_PEEK_OFF, c.peekOffset, c, injector, scratch) }
        for how in UnixSocketPlan.shutdownCalls(c.shutdown) {
            try injector.call(shutdownNr, [UInt64(fd), UInt64(how)], "shutdown(\(how)) of socket \(c.inode)")
        }
        return fd
    }

    /// A listening socket at a pool slot: bound to its name (a path left
    /// behind by the source is reused once nothing listens on it; a path
    /// the program had removed is removed again), with mode, owner and backlog.
    static func createListener(_ l: UnixSocketImage, reserve: (Int32) throws -> Int32, injector: Injector, scratch: ScratchArea) throws -> Int32 {
        guard let backlog = l.listenBacklog else { throw FerryError("cannot restore socket \(l.inode): not a listener") }
        if let path = l.filePath { try clearStalePath(path, inode: l.pathInode, socket: l.inode, type: l.type) }
        let fd = try reserve(1)
        try makeSocket(l, at: fd, injector: injector, scratch: scratch)
        try bindName(l, at: fd, injector: injector, scratch: scratch)
        try injector.call(listenNr, [UInt64(fd), UInt64(backlog)], "listen(socket \(l.inode), \(backlog))")
        for how in UnixSocketPlan.shutdownCalls(l.shutdown) {
            try injector.call(shutdownNr, [UInt64(fd), UInt64(how)], "shutdown(\(how)) of socket \(l.inode)")
        }
        return fd
    }

    /// Binds `fd` to `s`'s abstract name or path (the file then gets its
    /// mode and owner; a path the program had removed is removed once the
    /// socket's connections and datagrams are made, in createPairs).
    static func bindName(_ s: UnixSocketImage, at fd: Int32, injector: Injector, scratch: ScratchArea) throws {
        if let name = s.abstractName?.value {
            try bindAbstract(fd, name, s, injector, scratch)
        } else if let name = s.path, let path = s.filePath {
            let addr = UnixSocketPlan.sockaddr(Array(name.utf8))
            try injector.memory.write(scratch.data, addr)
            if let dir = s.directory {
                // A relative name is bound from its directory; the working directory is put back after.
                try injector.memory.write(scratch.data + 128, Array(".".utf8) + [0])
                let saved = try injector.call(openatNr, [UInt64(bitPattern: -100 /* AT_FDCWD */), scratch.data + 128, 0x290000 /* O_PATH | O_DIRECTORY | O_CLOEXEC */],
                                              "open(.) to bind \(name) in \(dir)")
                defer {
                    _ = try? injector.raw(fchdirNr, [UInt64(saved)])
                    _ = try? injector.raw(SYS.close, [UInt64(saved)])
                }
                try injector.memory.write(scratch.data + 128, Array(dir.utf8) + [0])
                try injector.call(chdirNr, [scratch.data + 128], "chdir(\(dir)) to bind the relative name \(name)")
                try injector.call(bindNr, [UInt64(fd), scratch.data, UInt64(addr.count)], "bind(\(name)) in \(dir) of unix socket \(s.inode)")
            } else {
                try injector.call(bindNr, [UInt64(fd), scratch.data, UInt64(addr.count)], "bind(\(path)) of unix socket \(s.inode)")
            }
            let at = scratch.data + 128
            try injector.memory.write(at, Array(path.utf8) + [0])
            if s.pathRemoved != true {
                try injector.call(chmodNr, [at, UInt64(s.pathMode ?? 0o755)], "chmod(\(path))")
                try injector.call(lchownNr, [at, UInt64(s.pathOwner ?? 0), UInt64(s.pathGroup ?? 0)], "lchown(\(path))")
            }
        }
    }

    /// A new socket of `s`'s type at descriptor `fd`, with its buffer sizes and SO_PASSCRED.
    static func makeSocket(_ s: UnixSocketImage, at fd: Int32, injector: Injector, scratch: ScratchArea) throws {
        let made = try injector.call(socketNr, [1 /* AF_UNIX */, UInt64(s.type) | UInt64(O_CLOEXEC), 0], "socket(AF_UNIX, \(s.type)) for socket \(s.inode)")
        try injector.call(SYS.dup2, [UInt64(made), UInt64(fd)], "dup2")
        try injector.call(SYS.close, [UInt64(made)], "close")
        try set(fd, SO_SNDBUFFORCE, s.sendBuffer / 2, s, injector, scratch)
        try set(fd, SO_RCVBUFFORCE, s.receiveBuffer / 2, s, injector, scratch)
        if s.passCredentials { try set(fd, SO_PASSCRED, 1, s, injector, scratch) }
    }

    /// A socket whose peer was outside the tree (`--ext-unix-sk`), at a pool
    /// slot: connected to the peer's name again, with buffers, options and shutdown state.
    static func connectExternal(_ e: UnixSocketImage, reserve: (Int32) throws -> Int32, injector: Injector, scratch: ScratchArea) throws -> Int32 {
        guard let name = e.externalPeer?.value else { throw FerryError("cannot restore socket \(e.inode): no external peer") }
        let shown = UnixSocketPlan.printable(String(decoding: name, as: UTF8.self))
        let fd = try reserve(1)
        try makeSocket(e, at: fd, injector: injector, scratch: scratch)
        if let own = e.abstractName?.value { try bindAbstract(fd, own, e, injector, scratch) }
        let addr: [UInt8] = [1, 0] + name + (name.first == 0 ? [] : [0])
        try injector.memory.write(scratch.data, addr)
        let r = try injector.raw(42 /* connect */, [UInt64(fd), scratch.data, UInt64(addr.count)])
        guard r == 0 else {
            throw FerryError("cannot restore socket \(e.inode): connect to its external peer \(shown) failed (\(String(cString: strerror(Int32(-r))))); start the peer's server first")
        }
        if e.peekOffset >= 0 { try set(fd, SO_PEEK_OFF, e.peekOffset, e, injector, scratch) }
        for how in UnixSocketPlan.shutdownCalls(e.shutdown) {
            try injector.call(shutdownNr, [UInt64(fd), UInt64(how)], "shutdown(\(how)) of socket \(e.inode)")
        }
        return fd
    }

    /// Removes the socket file the source left at `path` (the same inode, and
    /// a connect of a socket of `type` finds nobody there); any other file there is refused.
    static func clearStalePath(_ path: String, inode: UInt64?, socket: UInt64, type: Int32) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard st.st_mode & S_IFMT == S_IFSOCK, inode == UInt64(st.st_ino) else {
            throw FerryError("cannot restore unix socket \(socket): \(path) exists and is not the socket file the source left; remove it")
        }
        let probe = Glibc.socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw SystemError("socket(AF_UNIX)", errno: errno, "probing \(path)") }
        defer { close(probe) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            for (i, b) in path.utf8.prefix(buf.count - 1).enumerated() { buf[i] = b }
        }
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        if r == 0 || errno != ECONNREFUSED {
            throw FerryError("cannot restore unix socket \(socket): something is still bound to \(path) (the source, during a same-host migration or --leave-running?); stop it first")
        }
        guard unlink(path) == 0 else { throw SystemError("unlink(\(path))", errno: errno, "replacing the socket file the source left") }
    }

    /// Binds `fd` to the abstract name `name`; a kernel-chosen (autobind) name
    /// still held by the source (a stream or same-host migration) is chosen anew.
    static func bindAbstract(_ fd: Int32, _ name: [UInt8], _ s: UnixSocketImage, _ injector: Injector, _ scratch: ScratchArea) throws {
        // struct sockaddr_un: AF_UNIX, then NUL and the abstract name.
        let addr: [UInt8] = [1, 0, 0] + name
        try injector.memory.write(scratch.data, addr)
        let shown = "@" + String(decoding: name, as: UTF8.self)
        var r = try injector.raw(bindNr, [UInt64(fd), scratch.data, UInt64(addr.count)])
        if r == -Int64(EADDRINUSE) && UnixSocketPlan.isAutobindName(name) {
            // An address length of 2 autobinds.
            r = try injector.raw(bindNr, [UInt64(fd), scratch.data, 2])
        }
        guard r == 0 else {
            throw SystemError("bind(\(shown))", errno: Int32(truncatingIfNeeded: -r), "restoring the name of unix socket \(s.inode)")
        }
    }

    static func set(_ fd: Int32, _ opt: Int32, _ value: Int32, _ s: UnixSocketImage, _ injector: Injector, _ scratch: ScratchArea) throws {
        try injector.memory.write(scratch.data, withUnsafeBytes(of: value.littleEndian, Array.init))
        try injector.call(setsockoptNr, [UInt64(fd), UInt64(SOL_SOCKET), UInt64(opt), scratch.data, 4],
                          "setsockopt(\(opt), \(value)) on socket \(s.inode)")
    }

    /// Queues `bytes` for socket `s` to read by sending them from its peer `from`.
    static func send(_ bytes: [UInt8], from: Int32, to s: UnixSocketImage, _ injector: Injector, _ scratch: ScratchArea) throws {
        if s.type != UnixSocketImage.stream && bytes.count > scratch.dataSize {
            throw FerryError("cannot restore socket \(s.inode): a queued message of \(bytes.count) bytes exceeds ferry's \(scratch.dataSize)-byte working area")
        }
        var off = 0
        while off < bytes.count {
            let n = min(bytes.count - off, scratch.dataSize)
            try injector.memory.write(scratch.data, Array(bytes[off..<off + n]))
            let sent = try injector.call(sendtoNr, [UInt64(from), scratch.data, UInt64(n), UInt64(MSG_DONTWAIT), 0, 0],
                                         "sendto(queued data of socket \(s.inode))")
            guard sent > 0 else { throw FerryError("cannot restore socket \(s.inode): its queued data does not fit") }
            off += Int(sent)
        }
    }
}
#endif
