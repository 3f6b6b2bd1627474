#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage
import FerryCore

/// TCP and UDP sockets (IPv4, IPv6): listening and unconnected TCP sockets,
/// bound and connected UDP sockets, with their options. ferry reads a copy
/// of the socket (pidfd_getfd) with getsockname/getpeername/getsockopt and
/// TCP_INFO, and the UDP receive queue from /proc/PID/net/udp[6]; nothing
/// it does changes the socket. Restore recreates it with socket, setsockopt,
/// bind and listen or connect inside the process. What `InetSocketPlan`
/// refuses (established connections, queued connections or datagrams, other
/// families) is refused at checkpoint by name.
public enum InetSocket {
    static let soDomain: Int32 = 39, soProtocol: Int32 = 38, soType: Int32 = 3
    static let soLinger: Int32 = 13, soRcvtimeo: Int32 = 20, soSndtimeo: Int32 = 21
    static let soAttachFilter: Int32 = 26, soLockFilter: Int32 = 44
    static let soBindToDevice: Int32 = 25, soGetFilter: Int32 = 26, tcpInfo: Int32 = 11, tcpCongestion: Int32 = 13

    /// What ferry sees of socket `fd` of `pid`: the facts the plan decides
    /// on, the options that differ from a fresh socket's, and the backlog.
    struct Seen {
        var facts: InetSocketPlan.Facts
        var options: [SocketOptionValue]
        var backlog: Int32?
    }

    /// Reads socket `fd` of `pid` (a copy of it, in ferry).
    static func look(pid: Int32, fd: Int32, link: String) throws -> Seen {
        let copy = ferry_fd_of_process(pid, fd)
        guard copy >= 0 else { throw SystemError("pidfd_getfd(\(pid), \(fd))", errno: -copy, "reading socket fd \(fd) of \(pid)") }
        defer { close(copy) }
        let family = intOption(copy, InetSocketPlan.solSocket, soDomain) ?? -1
        let type = intOption(copy, InetSocketPlan.solSocket, soType) ?? -1
        let proto = intOption(copy, InetSocketPlan.solSocket, soProtocol) ?? -1
        var facts = InetSocketPlan.Facts(family: family, type: type, proto: proto)
        guard family == InetSocketPlan.afInet || family == InetSocketPlan.afInet6 else { return Seen(facts: facts, options: []) }
        facts.local = endpoint(copy, peer: false)
        facts.peer = endpoint(copy, peer: true)
        var backlog: Int32?
        if type == InetSocketPlan.sockStream {
            // struct tcp_info: u8 tcpi_state; for a listener tcpi_unacked (offset 24) is
            // the accept queue and tcpi_sacked (28) the backlog.
            var info = [UInt8](repeating: 0, count: 104)
            var len = socklen_t(info.count)
            let r = info.withUnsafeMutableBytes { getsockopt(copy, InetSocketPlan.solTCP, tcpInfo, $0.baseAddress, &len) }
            try checkLibc(r, "getsockopt(TCP_INFO)", "reading socket fd \(fd) of \(pid)")
            facts.tcpState = Int(info[0])
            if info[0] == 10 {
                facts.acceptQueue = Int(le32(info, 24))
                backlog = Int32(truncatingIfNeeded: le32(info, 28))
            }
        } else if type == InetSocketPlan.sockDgram {
            let inode = socketInode(link)
            let table = "/proc/\(pid)/net/\(family == InetSocketPlan.afInet6 ? "udp6" : "udp")"
            let text = (try? ProcFS.text(table)) ?? ""
            // Not found (UDP-Lite, another namespace's table): taken as having data, so refused.
            facts.datagramQueued = inode.flatMap { InetSocketPlan.queues(procNet: text, inode: $0) }.map { $0.rx > 0 } ?? true
            if facts.datagramQueued, InetSocketPlan.isUnbound(facts), proto == 0 || proto == InetSocketPlan.ipprotoUDP {
                // A socket without a port is in no table: poll shows a queue (POLLIN) unless it is
                // shut down for reading, which sets POLLIN too; then SIOCINQ gives the first datagram's length.
                var p = pollfd(fd: copy, events: Int16(POLLIN) | InetSocketPlan.pollRdHup, revents: 0)
                if poll(&p, 1, 0) >= 0 {
                    if p.revents & InetSocketPlan.pollRdHup == 0 {
                        facts.datagramQueued = p.revents & Int16(POLLIN) != 0
                    } else {
                        var n: Int32 = 0
                        facts.datagramQueued = ioctl(copy, UInt(FIONREAD), &n) != 0 || n > 0
                    }
                }
            }
        }
        facts.uncarriedOptions = uncarried(copy, family: family, type: type, proto: proto)
        facts.device = boundDevice(copy)
        facts.linger = linger(copy)
        if !NetworkLock.isLocked(copy) {
            facts.filter = filter(copy)
            facts.filterLocked = facts.filter != nil && intOption(copy, InetSocketPlan.solSocket, soLockFilter) == 1
        }
        if let inode = socketInode(link), type == InetSocketPlan.sockStream || type == InetSocketPlan.sockDgram {
            facts.shutdown = shutdownBits(family: family, proto: type == InetSocketPlan.sockStream ? 6 : proto == 0 ? 17 : proto, inode: inode, pid: pid)
            if facts.shutdown == nil, InetSocketPlan.isUnbound(facts) {
                // sock_diag lists only bound sockets; poll shows the receive bit of the others.
                var p = pollfd(fd: copy, events: InetSocketPlan.pollRdHup, revents: 0)
                if poll(&p, 1, 0) >= 0 {
                    facts.shutdown = InetSocketPlan.unboundShutdown(pollEvents: p.revents, udp: type == InetSocketPlan.sockDgram)
                }
            }
        }
        return Seen(facts: facts, options: differingOptions(copy, family: family, type: type, proto: proto), backlog: backlog)
    }

    /// The image record of socket `fd` of `pid`, or a refusal naming it;
    /// nil for a Unix socket (not this file's).
    static func dump(pid: Int32, fd: Int32, link: String) throws -> InetSocketImage? {
        let seen = try look(pid: pid, fd: fd, link: link)
        let f = seen.facts
        if f.family == 1 /* AF_UNIX */ { return nil }
        switch InetSocketPlan.decide(f) {
        case .refuse(let why):
            throw FerryError("cannot checkpoint \(pid): fd \(fd): \(why)")
        case .carry(let state):
            // An unbound socket reads as the wildcard address, port 0.
            let local = f.local.flatMap { $0.port == 0 && $0.address.allSatisfy { $0 == 0 } ? nil : $0 }
            var img = InetSocketImage(family: f.family, type: f.type, proto: f.proto, state: state, local: local,
                                      peer: state == "connected" || state == "established" ? f.peer : nil,
                                      backlog: state == "listen" ? seen.backlog : nil, options: seen.options)
            if let bits = f.shutdown, bits != 0 { img.shutdown = Int32(bits) }
            img.device = f.device
            img.linger = f.linger
            img.filter = f.filter.map(Bytes.init)
            if f.filterLocked { img.filterLocked = true }
            if state != "established", let l = local, !isLocalAddress(family: f.family, l, pid: pid) { img.nonLocalAddress = true }
            if state == "established" { img.tcp = try TCPRepair.capture(pid: pid, fd: fd) }
            return img
        }
    }

    /// One line per socket of `pid` for `ferry check PID`: what it is and whether it is carried.
    public static func report(pid: Int32) throws -> [String] {
        var lines: [String] = []
        for fd in try ProcFS.fds(pid) {
            guard let link = try? ProcFS.readlink("/proc/\(pid)/fd/\(fd)"), link.hasPrefix("socket:") else { continue }
            if let line = NetlinkSocket.report(pid: pid, fd: fd, link: link) {
                lines.append(line)
                continue
            }
            do {
                let seen = try look(pid: pid, fd: fd, link: link)
                // Unix sockets are UnixSocket.survey's to report.
                if seen.facts.family == 1 { continue }
                switch InetSocketPlan.decide(seen.facts) {
                case .carry(let state): lines.append("fd \(fd): \(InetSocketPlan.describe(seen.facts)) (\(state)): carried")
                case .refuse(let why): lines.append("fd \(fd): NOT carried: \(why)")
                }
            } catch {
                lines.append("fd \(fd): \(link): cannot be read: \(error)")
            }
        }
        return lines
    }

    // MARK: restore

    /// `files` with established connections moved to the end (in order):
    /// a connection bound first would keep its listener from binding the port.
    static func connectionsLast(_ files: [FileDescriptorImage]) -> [FileDescriptorImage] {
        files.filter { $0.inet?.tcp == nil } + files.filter { $0.inet?.tcp != nil }
    }

    /// Sockets several processes share are created once, from the
    /// preliminary metadata of a pre-copy: a final metadata in which one of
    /// them differs (a connection's sequence numbers or queues moved) cannot
    /// be completed.
    static func sharedSocketsChanged(preliminary: ImageMetadata, final: ImageMetadata) -> String? {
        func shared(_ m: ImageMetadata) -> [String: InetSocketImage] {
            var out: [String: InetSocketImage] = [:]
            for p in m.processes {
                for f in p.files where f.treeShareID != nil { if let s = f.inet { out["\(p.pid)/\(f.fd)"] = s } }
            }
            return out
        }
        let a = shared(preliminary), b = shared(final)
        guard a != b else { return nil }
        let key = (Set(a.keys).union(b.keys)).sorted().first { a[$0] != b[$0] } ?? "?"
        return "the socket at process/fd \(key), shared by several processes, changed during pre-copy"
    }

    /// The hold of the image's connections on this host (`SourceHost.tcpHold`),
    /// let go right before the first connection is connected again.
    nonisolated(unsafe) static var holdToRelease: String?

    /// Checks every TCP/UDP record of the image before anything is created.
    static func preflight(_ meta: ImageMetadata) throws {
        holdToRelease = meta.source.tcpHold
        for p in meta.processes {
            for f in p.files {
                guard let s = f.inet else { continue }
                do { _ = try InetSocketPlan.steps(s) } catch let e as InetSocketPlan.Invalid {
                    throw FerryError("cannot restore fd \(f.fd) of process \(p.pid): \(e)")
                }
            }
        }
    }

    /// Creates the socket `f` describes at a new descriptor in the process.
    static func create(_ f: FileDescriptorImage, injector: Injector, scratch: ScratchArea) throws -> Int64 {
        guard let s = f.inet else {
            throw FerryError("cannot restore fd \(f.fd): it is a socket of a kind ferry does not restore (no TCP/UDP record)")
        }
        let steps: [InetSocketPlan.Step]
        do { steps = try InetSocketPlan.steps(s) } catch let e as InetSocketPlan.Invalid {
            throw FerryError("cannot restore fd \(f.fd): \(e)")
        }
        var sock: Int64 = -1
        func setInt(_ level: Int32, _ name: Int32, _ value: Int32) throws {
            try injector.memory.write(scratch.data, withUnsafeBytes(of: value.littleEndian, Array.init))
            try injector.call(54 /* setsockopt */, [UInt64(sock), UInt64(level), UInt64(name), scratch.data, 4],
                              "setsockopt(\(level), \(name), \(value)) for fd \(f.fd)")
        }
        do {
            for step in steps {
                switch step {
                case .socket(let family, let type, let proto):
                    sock = try injector.call(41 /* socket */, [UInt64(family), UInt64(type), UInt64(proto)], "socket(\(family), \(type), \(proto)) for fd \(f.fd)")
                case .setsockopt(let level, let name, let value):
                    try setInt(level, name, value)
                case .linger(let seconds):
                    // struct linger: l_onoff, l_linger.
                    try injector.memory.write(scratch.data, [Int32(1), seconds].flatMap { v in withUnsafeBytes(of: v.littleEndian, Array.init) })
                    try injector.call(54 /* setsockopt */, [UInt64(sock), UInt64(InetSocketPlan.solSocket), UInt64(soLinger), scratch.data, 8],
                                      "setsockopt(SO_LINGER, \(seconds) s) for fd \(f.fd)")
                case .attachFilter(let code, let lock):
                    // struct sock_fprog: u16 len, then (at 8) the instructions' address.
                    let at = scratch.data + 16
                    guard code.count + 16 <= scratch.dataSize else { throw FerryError("cannot restore fd \(f.fd): a socket filter of \(code.count) bytes exceeds ferry's working area") }
                    try injector.memory.write(at, code)
                    let fprog = withUnsafeBytes(of: UInt16(code.count / 8).littleEndian, Array.init) + [UInt8](repeating: 0, count: 6)
                        + withUnsafeBytes(of: at.littleEndian, Array.init)
                    try injector.memory.write(scratch.data, fprog)
                    try injector.call(54 /* setsockopt */, [UInt64(sock), UInt64(InetSocketPlan.solSocket), UInt64(soAttachFilter), scratch.data, 16],
                                      "setsockopt(SO_ATTACH_FILTER, \(code.count / 8) instructions) for fd \(f.fd)")
                    if lock { try setInt(InetSocketPlan.solSocket, soLockFilter, 1) }
                case .bindToDevice(let name):
                    let bytes = Array(name.utf8) + [0]
                    try injector.memory.write(scratch.data, bytes)
                    let r = try injector.raw(54 /* setsockopt */, [UInt64(sock), UInt64(InetSocketPlan.solSocket), UInt64(soBindToDevice), scratch.data, UInt64(bytes.count)])
                    if r == -Int64(ENODEV) {
                        throw FerryError("cannot restore fd \(f.fd): network interface \(name) (SO_BINDTODEVICE) does not exist on this host")
                    }
                    if r < 0 { throw SystemError("setsockopt(SO_BINDTODEVICE, \(name)) for fd \(f.fd)", errno: Int32(-r), "in process \(injector.memory.pid)") }
                case .bind(let addr):
                    try injector.memory.write(scratch.data, addr)
                    var r = try injector.raw(49 /* bind */, [UInt64(sock), scratch.data, UInt64(addr.count)])
                    if r == -Int64(EADDRINUSE), s.tcp == nil, let hold = holdToRelease {
                        // A listener of the tree shares its port with a held connection
                        // (both ends in the tree): the hold goes before the listener binds.
                        holdToRelease = nil
                        try TCPHold.release(hold)
                        r = try injector.raw(49 /* bind */, [UInt64(sock), scratch.data, UInt64(addr.count)])
                    }
                    if r == -Int64(EADDRINUSE) {
                        throw FerryError("cannot restore fd \(f.fd): \(s.local.map(InetSocketPlan.endpointText) ?? "its address") is in use on this host (is the checkpointed program, or another, still listening there?)")
                    }
                    if r == -Int64(EADDRNOTAVAIL) {
                        throw FerryError("cannot restore fd \(f.fd): \(s.local.map(InetSocketPlan.endpointText) ?? "its address") is not an address of this host, so the socket cannot be bound to it")
                    }
                    if r < 0 { throw SystemError("bind(\(s.local.map(InetSocketPlan.endpointText) ?? "?")) for fd \(f.fd)", errno: Int32(-r), "in process \(injector.memory.pid)") }
                case .listen(let backlog):
                    try injector.call(50 /* listen */, [UInt64(sock), UInt64(backlog)], "listen(\(backlog)) for fd \(f.fd)")
                case .fillQueue(let queue, let bytes):
                    try setInt(InetSocketPlan.solTCP, InetSocketPlan.tcpRepairQueue, queue)
                    var off = 0
                    while off < bytes.count {
                        let n = min(bytes.count - off, scratch.dataSize, 1 << 16)
                        try injector.memory.write(scratch.data, Array(bytes[off..<off + n]))
                        // MSG_DONTWAIT: a full send buffer is an error, not a hang.
                        let sent = try injector.call(44 /* sendto */, [UInt64(sock), scratch.data, UInt64(n), 0x40, 0, 0],
                                                     "send(\(n) bytes into TCP queue \(queue)) for fd \(f.fd)")
                        guard sent > 0 else { throw FerryError("cannot restore fd \(f.fd): the TCP queue took no bytes") }
                        off += Int(sent)
                    }
                case .repairOptions(let pairs):
                    try injector.memory.write(scratch.data, pairs.flatMap { v in withUnsafeBytes(of: v.littleEndian, Array.init) })
                    try injector.call(54, [UInt64(sock), 6, 22 /* TCP_REPAIR_OPTIONS */, scratch.data, UInt64(pairs.count * 4)],
                                      "setsockopt(TCP_REPAIR_OPTIONS) for fd \(f.fd)")
                case .repairWindow(let w):
                    try injector.memory.write(scratch.data, w.flatMap { v in withUnsafeBytes(of: v.littleEndian, Array.init) })
                    try injector.call(54, [UInt64(sock), 6, 29 /* TCP_REPAIR_WINDOW */, scratch.data, UInt64(w.count * 4)],
                                      "setsockopt(TCP_REPAIR_WINDOW) for fd \(f.fd)")
                case .shutdown(let how):
                    // On an unconnected socket shutdown sets the bits and says ENOTCONN.
                    let r = try injector.raw(48 /* shutdown */, [UInt64(sock), UInt64(how)])
                    if r < 0 && r != -Int64(ENOTCONN) { throw SystemError("shutdown(\(how)) for fd \(f.fd)", errno: Int32(-r), "in process \(injector.memory.pid)") }
                case .connect(let addr):
                    if s.tcp != nil, let hold = holdToRelease {
                        // The guard's copies keep the 4-tuples taken until they are closed.
                        holdToRelease = nil
                        try TCPHold.release(hold)
                    }
                    try injector.memory.write(scratch.data, addr)
                    try injector.call(42 /* connect */, [UInt64(sock), scratch.data, UInt64(addr.count)],
                                      "connect(\(s.peer.map(InetSocketPlan.endpointText) ?? "?")) for fd \(f.fd)")
                }
            }
        } catch {
            if sock >= 0 { _ = try? injector.raw(SYS.close, [UInt64(sock)]) }
            throw error
        }
        return sock
    }

    // MARK: reading

    /// One socket sock_diag lists: inode (0 for a TIME_WAIT one), local port, TCP state, shutdown bits.
    struct DiagEntry { var inode: UInt64; var port: UInt16; var state: UInt8; var shutdown: UInt8 }

    /// Every socket of `family` and `proto` in the network namespace of `pid`
    /// (a container's has its own), from sock_diag (inet_diag_req_v2, all
    /// states); nil when it cannot be read.
    static func diagSockets(family: Int32, proto: Int32, pid: Int32) -> [DiagEntry]? {
        let nl = ferry_netns_socket(pid, 16 /* AF_NETLINK */, Int32(SOCK_DGRAM.rawValue), 4 /* NETLINK_SOCK_DIAG */)
        guard nl >= 0 else { return nil }
        defer { close(nl) }
        // nlmsghdr (16) + inet_diag_req_v2 (56): every state, no extensions.
        var req = [UInt8](repeating: 0, count: 72)
        func put32(_ v: UInt32, _ at: Int) { for i in 0..<4 { req[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
        put32(72, 0)
        req[4] = 20 /* SOCK_DIAG_BY_FAMILY */
        req[6] = 0x01; req[7] = 0x03 /* NLM_F_REQUEST | NLM_F_DUMP */
        req[16] = UInt8(family); req[17] = UInt8(proto)
        put32(0xffff_ffff, 20)
        guard req.withUnsafeBytes({ send(nl, $0.baseAddress, 72, 0) }) == 72 else { return nil }
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        var out: [DiagEntry] = []
        while true {
            let n = buf.withUnsafeMutableBytes { recv(nl, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            var off = 0
            while off + 16 <= n {
                let len = Int(le32(buf, off)), type = UInt16(buf[off + 4]) | UInt16(buf[off + 5]) << 8
                guard len >= 16, off + len <= n else { return nil }
                if type == 3 /* NLMSG_DONE */ { return out }
                if type == 2 /* NLMSG_ERROR */ { return nil }
                // inet_diag_msg (72 bytes) after the header: state at 1, sport (big-endian) at 4, idiag_inode at 68.
                if len >= 16 + 72 {
                    let m = off + 16
                    var e = DiagEntry(inode: UInt64(le32(buf, m + 68)), port: UInt16(buf[m + 4]) << 8 | UInt16(buf[m + 5]), state: buf[m + 1], shutdown: 0)
                    var a = m + 72
                    while a + 4 <= off + len {
                        let alen = Int(UInt16(buf[a]) | UInt16(buf[a + 1]) << 8), atype = UInt16(buf[a + 2]) | UInt16(buf[a + 3]) << 8
                        guard alen >= 4 else { break }
                        if atype == 8 /* INET_DIAG_SHUTDOWN */, alen >= 5 { e.shutdown = buf[a + 4] }
                        a += (alen + 3) & ~3
                    }
                    out.append(e)
                }
                off += (len + 3) & ~3
            }
        }
    }

    /// The socket's shutdown bits (1 receive, 2 send) from sock_diag
    /// (INET_DIAG_SHUTDOWN), found by inode among the sockets of `family`
    /// and `proto` in `pid`'s network namespace; nil when it cannot be read.
    static func shutdownBits(family: Int32, proto: Int32, inode: UInt64, pid: Int32) -> UInt8? {
        diagSockets(family: family, proto: proto, pid: pid)?.first { $0.inode == inode }?.shutdown
    }

    /// Whether `e` is an address of `pid`'s network namespace: a fresh
    /// socket of `family` made there binds to it (port 0) without
    /// IP_FREEBIND. A wildcard address is.
    static func isLocalAddress(family: Int32, _ e: InetEndpoint, pid: Int32) -> Bool {
        if e.address.allSatisfy({ $0 == 0 }) { return true }
        let s = ferry_netns_socket(pid, family, Int32(SOCK_DGRAM.rawValue), 0)
        guard s >= 0 else { return true }
        defer { close(s) }
        var probe = e
        probe.port = 0
        let addr = InetSocketPlan.sockaddr(family: family, probe)
        let r = addr.withUnsafeBytes { Glibc.bind(s, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(addr.count)) }
        return !(r != 0 && errno == EADDRNOTAVAIL)
    }

    /// Decisions over the whole tree's TCP/UDP sockets: a socket bound with
    /// SO_REUSEPORT whose port a socket outside the tree shares is refused
    /// by name; sockets of the tree that share a port are marked
    /// (`portSharedInTree`) so that the restore can bind them all.
    static func checkTree(_ processes: inout [ProcessImage]) throws {
        var treeInodes = Set<UInt64>()
        var sockets: [(key: [Int], socket: InetSocketImage)] = []
        var sharedIDs = Set<UInt64>()
        for (pi, p) in processes.enumerated() {
            for (fi, f) in p.files.enumerated() where f.kind == .socket {
                if let i = socketInode(f.path) { treeInodes.insert(i) }
                // One entry per socket: a dup, or the same socket in another process, is not another.
                guard let s = f.inet, f.sharedWith == nil else { continue }
                if let id = f.treeShareID, !sharedIDs.insert(id).inserted { continue }
                sockets.append(([pi, fi], s))
            }
        }
        for i in InetSocketPlan.unsentToOutside(sockets.map(\.socket)) {
            let (k, s) = sockets[i]
            let p = processes[k[0]]
            throw FerryError("cannot checkpoint \(p.pid): fd \(p.files[k[1]].fd): TCP connection \(s.local.map(InetSocketPlan.endpointText) ?? "?") → \(s.peer.map(InetSocketPlan.endpointText) ?? "?") has \(s.tcp?.unsent ?? 0) bytes written and not yet sent to a peer outside the tree; ferry carries unsent bytes only when both ends are in the tree — retry when the peer has caught up, or checkpoint the peer with it")
        }
        var listed: [Int32: [DiagEntry]] = [:]
        for (k, s) in sockets where s.tcp == nil && InetSocketPlan.value(s, InetSocketPlan.reusePort) == 1 {
            guard let port = s.local?.port, port != 0 else { continue }
            let tcp = s.type == InetSocketPlan.sockStream
            let proto = tcp ? InetSocketPlan.ipprotoTCP : InetSocketPlan.ipprotoUDP
            for family in [InetSocketPlan.afInet, InetSocketPlan.afInet6] {
                let key = family * 100 + proto
                if listed[key] == nil { listed[key] = diagSockets(family: family, proto: proto, pid: processes[k[0]].pid) ?? [] }
                // A TCP socket outside the tree on this port that is not a connection (a listener, or bound).
                let other = listed[key]!.first { $0.port == port && $0.inode != 0 && !treeInodes.contains($0.inode) && (!tcp || $0.state == 10 || $0.state == 7) }
                if let o = other {
                    let p = processes[k[0]]
                    throw FerryError("cannot checkpoint \(p.pid): fd \(p.files[k[1]].fd): \(InetSocketPlan.reusePortOutside(s, outsideInode: o.inode))")
                }
            }
        }
        let marked = InetSocketPlan.sharedPorts(sockets)
        let markedIDs = Set(marked.compactMap { processes[$0[0]].files[$0[1]].treeShareID })
        for k in marked { processes[k[0]].files[k[1]].inet?.portSharedInTree = true }
        // The same socket in other processes (treeShareID) and dups carry the same record.
        for pi in processes.indices {
            for fi in processes[pi].files.indices {
                let f = processes[pi].files[fi]
                if let id = f.treeShareID, markedIDs.contains(id) { processes[pi].files[fi].inet?.portSharedInTree = true }
                guard let twin = f.sharedWith,
                      let rec = processes[pi].files.first(where: { $0.fd == twin && $0.sharedWith == nil })?.inet else { continue }
                processes[pi].files[fi].inet = rec
            }
        }
    }

    /// Puts back on the restored socket at `fd` what its bind needed
    /// temporarily (SO_REUSEPORT off as recorded).
    /// Writes the bytes each connection of `files` had not sent at
    /// checkpoint (the end of its send queue), once every process of the
    /// tree has its sockets: a peer in the tree exists by then, so the
    /// segments reach it, not a closed port. A socket several processes
    /// hold is written once (`done`: the tree-share ids already written).
    static func sendUnsent(_ files: [FileDescriptorImage], done: inout Set<UInt64>, injector: Injector, scratch: ScratchArea) throws {
        for f in files where f.sharedWith == nil {
            guard let s = f.inet, s.tcp?.unsent != nil else { continue }
            if let id = f.treeShareID { guard done.insert(id).inserted else { continue } }
            let bytes: [UInt8]
            do { bytes = try InetSocketPlan.unsentPart(s) } catch let e as InetSocketPlan.Invalid { throw FerryError("cannot restore fd \(f.fd): \(e)") }
            // The source's buffer was full (the writer stopped at EAGAIN) and the repair
            // queue's memory differs a little: the buffer is raised for the write, then put back.
            func get(_ name: Int32) throws -> Int32 {
                try injector.memory.write(scratch.data + 8, withUnsafeBytes(of: Int32(4).littleEndian, Array.init))
                try injector.call(55 /* getsockopt */, [UInt64(f.fd), UInt64(InetSocketPlan.solSocket), UInt64(name), scratch.data, scratch.data + 8],
                                  "getsockopt(\(name)) on fd \(f.fd)")
                return try injector.memory.read(scratch.data, count: 4).withUnsafeBytes { $0.load(as: Int32.self) }
            }
            func set(_ name: Int32, _ v: Int32) throws {
                try injector.memory.write(scratch.data, withUnsafeBytes(of: v.littleEndian, Array.init))
                try injector.call(54 /* setsockopt */, [UInt64(f.fd), UInt64(InetSocketPlan.solSocket), UInt64(name), scratch.data, 4],
                                  "setsockopt(\(name), \(v)) on fd \(f.fd)")
            }
            let buffer = try get(7 /* SO_SNDBUF */), lock = try get(InetSocketPlan.bufLock.name)
            try set(32 /* SO_SNDBUFFORCE */, Int32(clamping: min(Int(buffer) + 2 * bytes.count, Int(Int32.max / 4))))
            var off = 0
            while off < bytes.count {
                let n = min(bytes.count - off, scratch.dataSize)
                try injector.memory.write(scratch.data, Array(bytes[off..<off + n]))
                // MSG_DONTWAIT: the source's send buffer held these bytes; one that does not here is an error, not a hang.
                let sent = try injector.call(44 /* sendto */, [UInt64(f.fd), scratch.data, UInt64(n), 0x40, 0, 0],
                                             "send(\(n) unsent bytes) on fd \(f.fd)")
                guard sent > 0 else { throw FerryError("cannot restore fd \(f.fd): its send buffer took none of the \(bytes.count - off) bytes left to send") }
                off += Int(sent)
            }
            // getsockopt gives the doubled size; the lock bits after it (0: autotuned again).
            try set(32 /* SO_SNDBUFFORCE */, buffer / 2)
            try set(InetSocketPlan.bufLock.name, lock)
        }
    }

    static func settle(_ s: InetSocketImage, fd: Int32, injector: Injector, scratch: ScratchArea) throws {
        for case .setsockopt(let level, let name, let value) in InetSocketPlan.settleSteps(s) {
            try injector.memory.write(scratch.data, withUnsafeBytes(of: value.littleEndian, Array.init))
            try injector.call(54 /* setsockopt */, [UInt64(fd), UInt64(level), UInt64(name), scratch.data, 4],
                              "setsockopt(\(level), \(name), \(value)) for fd \(fd) after bind")
        }
    }

    /// Established connections, through a copy of the socket ferry holds
    /// while the tree is frozen: in TCP_REPAIR mode for as long as ferry
    /// reads their state, then out of it again; in repair mode once more
    /// right before the source is killed (`killing()`), so that closing
    /// them sends nothing (no FIN, no RST). Each socket is handed to the
    /// repair guard (RepairGuard.swift) before repair first goes on, so
    /// that a ferry killed while one is in repair mode leaves it working.
    enum TCPRepair {
        struct Held { var copy: Int32; var reuseAddr: Int32 }
        nonisolated(unsafe) static var held: [Held] = []
        nonisolated(unsafe) static var guardian: RepairGuard?
        static var holdSeconds: Int32 { TCPHold.seconds }
        static var holdName: String { TCPHold.name }
        /// The name the checkpoint records in the image: connections are
        /// held after the kill (not when the tree is left running).
        static func holdForImage(leaveRunning: Bool) -> String? {
            leaveRunning || holdSeconds <= 0 || guardian == nil || held.isEmpty ? nil : holdName
        }
        static let siocinq: UInt = 0x541B, siocoutq: UInt = 0x5411

        /// Hands `copy` (socket `fd` of `pid`) to the guard, started on first use.
        static func guarded(_ copy: Int32, pid: Int32, fd: Int32, reuseAddr: Int32) throws {
            if TestKill.repairGuardDisabled { return }
            do {
                if guardian == nil { guardian = try RepairGuard.start() }
                try guardian?.hand(copy, reuseAddr: reuseAddr, owner: pid, "handing TCP connection fd \(fd) of \(pid) to the repair guard")
            } catch {
                throw FerryError("cannot checkpoint \(pid): fd \(fd) is an established TCP connection and the guard that takes it out of repair mode should ferry die cannot hold it (\(error))")
            }
        }

        /// Puts socket `fd` of the frozen `pid` in repair mode, reads its state and takes it out again.
        static func capture(pid: Int32, fd: Int32) throws -> TCPConnectionState {
            let copy = ferry_fd_of_process(pid, fd)
            guard copy >= 0 else { throw SystemError("pidfd_getfd(\(pid), \(fd))", errno: -copy, "reading TCP connection fd \(fd) of \(pid)") }
            let ctx = "reading TCP connection fd \(fd) of \(pid)"
            func set(_ name: Int32, _ v: Int32) throws {
                var v = v
                try checkLibc(setsockopt(copy, InetSocketPlan.solTCP, name, &v, 4), "setsockopt(TCP \(name), \(v))", ctx)
            }
            let reuse = intOption(copy, InetSocketPlan.solSocket, 2) ?? 0
            do {
                try guarded(copy, pid: pid, fd: fd, reuseAddr: reuse)
                try RepairStop.hold()
            } catch {
                close(copy)
                throw error
            }
            do { try NetworkLock.lock(copy, pid: pid, fd: fd) } catch {
                close(copy)
                throw error
            }
            TestKill.point(.repair)
            do { try set(InetSocketPlan.tcpRepair, 1) } catch {
                NetworkLock.unlock(copy)
                close(copy)
                throw FerryError("cannot checkpoint \(pid): fd \(fd) is an established TCP connection and TCP_REPAIR is refused (\(error)); ferry needs CAP_NET_ADMIN to carry connections")
            }
            held.append(Held(copy: copy, reuseAddr: reuse))
            // Out of repair mode as soon as its state is read (or failed to be).
            defer { takeOut(copy, reuseAddr: reuse) }
            TestKill.point(.repair)
            func queue(_ q: Int32, _ sizeIoctl: UInt) throws -> (seq: UInt32, bytes: [UInt8]) {
                try set(InetSocketPlan.tcpRepairQueue, q)
                var seq: Int32 = 0
                var len = socklen_t(4)
                try checkLibc(getsockopt(copy, InetSocketPlan.solTCP, InetSocketPlan.tcpQueueSeq, &seq, &len), "getsockopt(TCP_QUEUE_SEQ)", ctx)
                var size: Int32 = 0
                try checkLibc(ioctl(copy, sizeIoctl, &size), "ioctl(SIOCINQ/SIOCOUTQ)", ctx)
                guard size >= 0, Int(size) <= InetSocketPlan.maxQueueBytes else {
                    throw FerryError("cannot checkpoint \(pid): fd \(fd) holds \(size) bytes in a TCP queue, over the \(InetSocketPlan.maxQueueBytes) ferry carries")
                }
                var bytes = [UInt8](repeating: 0, count: Int(size))
                if size > 0 {
                    let n = bytes.withUnsafeMutableBytes { recv(copy, $0.baseAddress, Int(size), Int32(MSG_PEEK | MSG_DONTWAIT)) }
                    guard n == Int(size) else { throw SystemError("recv(MSG_PEEK) of a TCP queue (\(n) of \(size) bytes)", errno: errno, ctx) }
                }
                return (UInt32(bitPattern: seq) &- UInt32(size), bytes)
            }
            // Bytes written but never sent: the end of the send queue, written again after the restore.
            var notSent: Int32 = 0
            try checkLibc(ioctl(copy, 0x894B /* SIOCOUTQNSD */, &notSent), "ioctl(SIOCOUTQNSD)", ctx)
            let rq = try queue(InetSocketPlan.recvQueue, siocinq)
            TestKill.point(.repair)
            let sq = try queue(InetSocketPlan.sendQueue, siocoutq)
            TestKill.point(.repair)
            var info = [UInt8](repeating: 0, count: 104)
            var len = socklen_t(info.count)
            try checkLibc(info.withUnsafeMutableBytes { getsockopt(copy, InetSocketPlan.solTCP, tcpInfo, $0.baseAddress, &len) }, "getsockopt(TCP_INFO)", ctx)
            // tcpi_options (byte 5): 1 timestamps, 2 SACK, 4 window scale; byte 6: snd_wscale (low 4 bits), rcv_wscale (high 4).
            let opts = info[5], scales = info[6]
            let mss = UInt32(bitPattern: intOption(copy, InetSocketPlan.solTCP, 2 /* TCP_MAXSEG */) ?? 0)
            var ts: UInt32?
            if opts & 1 != 0 { ts = intOption(copy, InetSocketPlan.solTCP, InetSocketPlan.tcpTimestamp).map { UInt32(bitPattern: $0) } }
            var w = [UInt32](repeating: 0, count: 5)
            len = socklen_t(20)
            try checkLibc(w.withUnsafeMutableBytes { getsockopt(copy, InetSocketPlan.solTCP, 29 /* TCP_REPAIR_WINDOW */, $0.baseAddress, &len) },
                          "getsockopt(TCP_REPAIR_WINDOW)", ctx)
            TestKill.pause(.repair)
            guard notSent >= 0, Int(notSent) <= sq.bytes.count else {
                throw FerryError("cannot checkpoint \(pid): fd \(fd) is a TCP connection whose \(notSent) unsent bytes exceed its send queue of \(sq.bytes.count)")
            }
            var state = TCPConnectionState(sendSeq: sq.seq, recvSeq: rq.seq, sendQueue: sq.bytes, recvQueue: rq.bytes, mss: mss,
                                           sendWindowScale: opts & 4 != 0 ? scales & 0xf : nil, recvWindowScale: opts & 4 != 0 ? scales >> 4 : nil,
                                           sack: opts & 2 != 0, timestamp: ts, window: w)
            if notSent > 0 { state.unsent = UInt32(notSent) }
            return state
        }

        /// Repair mode off without a window probe (plain off on a kernel
        /// without TCP_REPAIR_OFF_NO_WP), SO_REUSEADDR as it was. Also right
        /// for a socket never put in repair mode.
        static func takeOut(_ socket: Int32, reuseAddr: Int32) {
            var off = RepairGuardPlan.repairOffNoWindowProbe, reuse = reuseAddr
            if setsockopt(socket, InetSocketPlan.solTCP, InetSocketPlan.tcpRepair, &off, 4) != 0 && errno == EINVAL {
                off = RepairGuardPlan.repairOff
                _ = setsockopt(socket, InetSocketPlan.solTCP, InetSocketPlan.tcpRepair, &off, 4)
            }
            _ = setsockopt(socket, InetSocketPlan.solSocket, 2, &reuse, 4)
        }

        /// The source goes on: every connection out of repair mode and unlocked, then the guard let go.
        static func leave() {
            for h in held {
                TestKill.point(.repair)
                takeOut(h.copy, reuseAddr: h.reuseAddr)
                NetworkLock.unlock(h.copy)
                close(h.copy)
            }
            held = []
            // A process whose SIGSTOP could not be taken back is left to the guard, which continues it as after a death.
            let stopsTakenBack = (try? RepairStop.release()) != nil
            RepairStop.tree = []
            TestKill.point(.repair)
            guardian?.finish(settled: stopsTakenBack)
            guardian = nil
        }

        /// Right before the source is sent SIGKILL: every connection in
        /// repair mode (its close then sends nothing), and the guard told,
        /// so that from then on it leaves the sockets of a process that
        /// exits in repair mode.
        static func killing() {
            // Held stopped until the SIGKILL, or by the guard should ferry die before it.
            try? RepairStop.hold()
            for h in held {
                var on: Int32 = 1
                TestKill.point(.repair)
                _ = setsockopt(h.copy, InetSocketPlan.solTCP, InetSocketPlan.tcpRepair, &on, 4)
            }
            TestKill.point(.repair)
            try? guardian?.send(.killing, "announcing the kill to the TCP repair guard")
            TestKill.point(.repair)
        }

        /// The source is killed: its connections close silently in repair
        /// mode, or stay held by the guard for a restore here (`holdSeconds`).
        static func release() {
            if holdSeconds > 0 && !held.isEmpty && !TestKill.holdDisabled {
                try? guardian?.send(.keep(seconds: holdSeconds), "asking the TCP repair guard to hold the connections")
            }
            for h in held { close(h.copy) }
            held = []
            RepairStop.tree = []
            RepairStop.queued = []
            TestKill.point(.repair)
            guardian?.finish()
            guardian = nil
        }
    }

    static func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    static func intOption(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32? {
        var v: Int32 = 0
        var len = socklen_t(4)
        return getsockopt(fd, level, name, &v, &len) == 0 ? v : nil
    }

    /// "socket:[123]" → 123.
    static func socketInode(_ link: String) -> UInt64? {
        guard link.hasPrefix("socket:["), link.hasSuffix("]") else { return nil }
        return UInt64(link.dropFirst(8).dropLast())
    }

    static func endpoint(_ fd: Int32, peer: Bool) -> InetEndpoint? {
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = withUnsafeMutablePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd, $0, &len) : getsockname(fd, $0, &len) }
        }
        guard r == 0 else { return nil }
        let bytes = withUnsafeBytes(of: &ss) { Array($0.prefix(Int(len))) }
        guard bytes.count >= 8 else { return nil }
        let port = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        let family = Int32(bytes[0]) | Int32(bytes[1]) << 8
        if family == InetSocketPlan.afInet {
            return InetEndpoint(address: Array(bytes[4..<8]), port: port)
        }
        guard family == InetSocketPlan.afInet6, bytes.count >= 28 else { return nil }
        let scope = le32(bytes, 24)
        return InetEndpoint(address: Array(bytes[8..<24]), port: port, scopeID: scope == 0 ? nil : scope)
    }

    /// The integer options of `fd` whose values differ from those of a fresh socket of the same kind.
    static func differingOptions(_ fd: Int32, family: Int32, type: Int32, proto: Int32) -> [SocketOptionValue] {
        let fresh = socket(family, type | Int32(SOCK_CLOEXEC.rawValue), proto)
        defer { if fresh >= 0 { close(fresh) } }
        var out: [SocketOptionValue] = []
        for o in InetSocketPlan.options(family: family, type: type) {
            guard let v = intOption(fd, o.level, o.name) else { continue }
            if fresh >= 0, let d = intOption(fresh, o.level, o.name), d == v { continue }
            out.append(SocketOptionValue(level: o.level, name: o.name, value: v))
        }
        // A buffer size set again locks it; SO_BUF_LOCK as read (0: autotuned) goes with it.
        let lock = InetSocketPlan.bufLock
        if out.contains(where: { $0.level == InetSocketPlan.solSocket && ($0.name == 7 || $0.name == 8) }),
           !out.contains(where: { $0.level == lock.level && $0.name == lock.name }), let v = intOption(fd, lock.level, lock.name) {
            out.append(SocketOptionValue(level: lock.level, name: lock.name, value: v))
        }
        return out
    }

    /// The interface `fd` is bound to with SO_BINDTODEVICE; nil when none.
    static func boundDevice(_ fd: Int32) -> String? {
        var dev = [UInt8](repeating: 0, count: 32)
        var len = socklen_t(dev.count)
        guard dev.withUnsafeMutableBytes({ getsockopt(fd, InetSocketPlan.solSocket, soBindToDevice, $0.baseAddress, &len) }) == 0,
              len > 0, dev[0] != 0 else { return nil }
        return String(decoding: dev.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// SO_LINGER's l_linger (seconds) when it is on on `fd`; nil when off.
    static func linger(_ fd: Int32) -> Int32? {
        var linger = (Int32(0), Int32(0))
        var len = socklen_t(8)
        guard getsockopt(fd, InetSocketPlan.solSocket, soLinger, &linger, &len) == 0, linger.0 != 0 else { return nil }
        return linger.1
    }

    /// The classic socket filter attached to `fd` (struct sock_filter bytes,
    /// SO_GET_FILTER); nil when none, or when it cannot be read whole.
    static func filter(_ fd: Int32) -> [UInt8]? {
        // SO_GET_FILTER counts in instructions: with 0 it gives the count.
        var count = socklen_t(0)
        guard getsockopt(fd, InetSocketPlan.solSocket, soGetFilter, nil, &count) == 0, count > 0,
              Int(count) <= InetSocketPlan.maxFilterInstructions else { return nil }
        var code = [UInt8](repeating: 0, count: Int(count) * 8)
        var len = count
        guard code.withUnsafeMutableBytes({ getsockopt(fd, InetSocketPlan.solSocket, soGetFilter, $0.baseAddress, &len) }) == 0, len == count else { return nil }
        return code
    }

    /// Options set on `fd` that ferry does not carry, by name.
    static func uncarried(_ fd: Int32, family: Int32, type: Int32, proto: Int32) -> [String] {
        var out: [String] = []
        var len = socklen_t(8)
        for (name, label) in [(soRcvtimeo, "SO_RCVTIMEO"), (soSndtimeo, "SO_SNDTIMEO")] {
            var tv = (Int64(0), Int64(0))
            len = socklen_t(16)
            if getsockopt(fd, InetSocketPlan.solSocket, name, &tv, &len) == 0, tv.0 != 0 || tv.1 != 0 { out.append(label) }
        }
        // A classic filter is read (`filter`); one SO_GET_FILTER cannot read (over 4096 instructions, or gone between the calls) is refused.
        len = 0
        if !NetworkLock.isLocked(fd), getsockopt(fd, InetSocketPlan.solSocket, soGetFilter, nil, &len) != 0 || (len > 0 && filter(fd) == nil) {
            out.append("a socket filter (SO_ATTACH_FILTER/SO_ATTACH_BPF) that ferry cannot read")
        }
        let fresh = socket(family, type | Int32(SOCK_CLOEXEC.rawValue), proto)
        defer { if fresh >= 0 { close(fresh) } }
        for o in InetSocketPlan.refusedWhenChanged {
            if let v = intOption(fd, o.level, o.name), fresh >= 0, let d = intOption(fresh, o.level, o.name), v != d { out.append(o.label) }
        }
        if type == InetSocketPlan.sockStream {
            // An upper-layer protocol (kernel TLS, "tls"; MPTCP's …) has state ferry cannot read.
            var ulp = [UInt8](repeating: 0, count: 16)
            len = socklen_t(ulp.count)
            if ulp.withUnsafeMutableBytes({ getsockopt(fd, InetSocketPlan.solTCP, 31 /* TCP_ULP */, $0.baseAddress, &len) }) == 0, len > 0, ulp[0] != 0 {
                out.append("TCP_ULP \"\(String(decoding: ulp.prefix { $0 != 0 }, as: UTF8.self))\"")
            }
            func cc(_ s: Int32) -> [UInt8]? {
                var b = [UInt8](repeating: 0, count: 16)
                var l = socklen_t(16)
                return b.withUnsafeMutableBytes({ getsockopt(s, InetSocketPlan.solTCP, tcpCongestion, $0.baseAddress, &l) }) == 0 ? b : nil
            }
            if fresh >= 0, let a = cc(fd), let d = cc(fresh), a != d { out.append("TCP_CONGESTION") }
        }
        return out
    }
}
#endif
