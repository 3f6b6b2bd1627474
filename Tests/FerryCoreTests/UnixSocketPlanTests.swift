import FerryCore
import FerryImage
import Testing

/// Which Unix sockets of a tree form pairs, what is refused, and how the
/// records are bounded.
struct UnixSocketPlanTests {
    static func sock(_ inode: UInt64, peer: UInt64, type: Int32 = UnixSocketImage.stream, queue: [[UInt8]] = []) -> UnixSocketImage {
        UnixSocketImage(inode: inode, peer: peer, type: type, sendBuffer: 4096, receiveBuffer: 4096,
                        passCredentials: false, peekOffset: -1, shutdown: 0, queue: queue)
    }

    static func process(_ pid: Int32, _ sockets: [(Int32, UnixSocketImage)], dupOf: (Int32, Int32)? = nil) -> ProcessImage {
        var files = sockets.map { fd, s in
            var f = FileDescriptorImage(fd: fd, kind: .socket, flags: 2)
            f.unixSocket = s
            return f
        }
        if let (fd, twin) = dupOf {
            var f = FileDescriptorImage(fd: fd, kind: .socket, flags: 2, sharedWith: twin)
            f.unixSocket = sockets.first { $0.0 == twin }?.1
            files.append(f)
        }
        return ProcessImage(pid: pid, files: files)
    }

    @Test func aPairSplitAcrossForkIsCreatedOnce() throws {
        let a = Self.sock(10, peer: 11), b = Self.sock(11, peer: 10)
        let tree = [Self.process(1, [(3, a), (4, b)]), Self.process(2, [(3, a), (4, b)]), Self.process(3, [(5, b)], dupOf: (6, 5))]
        let ends = UnixSocketPlan.ends(tree)
        #expect(ends.count == 5, "dups are left out")
        let pairs = try UnixSocketPlan.pairs(ends)
        #expect(pairs.count == 1)
        #expect(pairs.first?.0.inode == 10 && pairs.first?.1.inode == 11)
        #expect(UnixSocketPlan.socketCount(tree) == 2)
    }

    @Test func anExternalPeerIsNamedOrReconnected() throws {
        let client = Self.sock(40, peer: 99)
        // Without --ext-unix-sk: refused, the message naming the option when the peer has a name.
        do {
            _ = try UnixSocketPlan.pairs(UnixSocketPlan.ends([Self.process(1, [(3, client)])]), peerName: { _ in "/run/srv.sock" })
            Issue.record("a peer outside the tree was accepted")
        } catch let r as UnixSocketRefusal {
            #expect(r.description.contains("--ext-unix-sk") && r.description.contains("/run/srv.sock"), "\(r)")
        }
        var marked = client
        marked.externalPeer = Bytes(Array("/run/srv.sock".utf8))
        let tree = [Self.process(1, [(3, marked), (4, Self.sock(10, peer: 11)), (5, Self.sock(11, peer: 10))])]
        #expect(try UnixSocketPlan.pairs(UnixSocketPlan.ends(tree)).count == 1)
        #expect(UnixSocketPlan.externals(UnixSocketPlan.ends(tree)).map(\.inode) == [40])
        #expect(marked.problem() == nil)
        #expect(UnixSocketPlan.externalRefusal(client, peerName: Array("/run/srv.sock".utf8)) == nil)
        #expect(UnixSocketPlan.externalRefusal(client, peerName: nil)?.contains("has no name") == true)
        let queued = Self.sock(41, peer: 99, queue: [[1, 2, 3]])
        #expect(UnixSocketPlan.externalRefusal(queued, peerName: [0, 0x61])?.contains("3 byte(s)") == true)
        #expect(UnixSocketPlan.externalRefusal(Self.sock(42, peer: 99, type: UnixSocketImage.seqpacket), peerName: [0x2f])?.contains("seqpacket") == true)
        // A record with an external peer and a queue, or a name with a NUL inside a path, is damaged.
        var bad = queued
        bad.externalPeer = Bytes([0x2f])
        #expect(bad.problem() != nil)
        marked.externalPeer = Bytes([0x2f, 0, 0x61])
        #expect(marked.problem() != nil)
    }

    @Test func connectionsOfATreeListenerAreFoundByNameAndFile() throws {
        var l = Self.sock(50, peer: 0)
        l.peer = 0; l.listenBacklog = 5; l.path = "/run/s.sock"; l.pathInode = 777
        var abs = Self.sock(60, peer: 0)
        abs.peer = 0; abs.listenBacklog = 5; abs.abstractName = Bytes(Array("srv".utf8))
        let server = Self.sock(51, peer: 52), client = Self.sock(52, peer: 51), absServer = Self.sock(61, peer: 62), absClient = Self.sock(62, peer: 61)
        let ends = UnixSocketPlan.ends([Self.process(1, [(3, l), (4, server), (5, client), (6, abs), (7, absServer), (8, absClient)])])
        typealias N = UnixSocketPlan.ConnectedName
        let names = [51: N(name: "/run/s.sock", fileInode: 777), 61: N(name: "\0srv", fileInode: nil), 62: N(name: "\0other", fileInode: nil)] as [UInt64: N]
        #expect(try UnixSocketPlan.acceptedFrom(ends, names: names) == [51: 50, 61: 60])
        // Same path, another socket file (bound by the client itself, or the listener's file replaced): refused by name.
        do {
            _ = try UnixSocketPlan.acceptedFrom(ends, names: [51: N(name: "/run/s.sock", fileInode: 778)])
            Issue.record("a path name that is no listener's was accepted")
        } catch let r as UnixSocketRefusal {
            #expect(r.description.contains("fd 4") && r.description.contains("bound to /run/s.sock") && r.description.contains("not accepted from a listener"))
        }
        var bad = server
        bad.acceptedFrom = 50
        bad.abstractName = Bytes([1])
        #expect(bad.problem() != nil)
        bad.abstractName = nil
        #expect(bad.problem() == nil)
    }

    @Test func pairsComeInInodeOrder() throws {
        let tree = [Self.process(1, [(3, Self.sock(30, peer: 31)), (4, Self.sock(21, peer: 20)), (5, Self.sock(20, peer: 21)), (6, Self.sock(31, peer: 30))])]
        let pairs = try UnixSocketPlan.pairs(UnixSocketPlan.ends(tree))
        #expect(pairs.map(\.0.inode) == [20, 30])
    }

    @Test func aPeerOutsideTheTreeIsRefusedByName() {
        let tree = [Self.process(7, [(5, Self.sock(10, peer: 99))])]
        #expect(throws: UnixSocketRefusal.peerOutside(pid: 7, fd: 5, inode: 10, peer: 99, peerName: "\0srv")) {
            try UnixSocketPlan.pairs(UnixSocketPlan.ends(tree), peerName: { $0 == 99 ? "\0srv" : nil })
        }
        let text = UnixSocketRefusal.peerOutside(pid: 7, fd: 5, inode: 10, peer: 99, peerName: "\0srv").description
        #expect(text.contains("fd 5") && text.contains("@srv") && text.contains("outside the tree"))
    }

    @Test func endsThatDoNotNameEachOtherOrDifferInTypeAreRefused() {
        let crossed = [Self.process(1, [(3, Self.sock(10, peer: 11)), (4, Self.sock(11, peer: 12)), (5, Self.sock(12, peer: 11))])]
        #expect(throws: UnixSocketRefusal.self) { try UnixSocketPlan.pairs(UnixSocketPlan.ends(crossed)) }
        let types = [Self.process(1, [(3, Self.sock(10, peer: 11)), (4, Self.sock(11, peer: 10, type: UnixSocketImage.datagram))])]
        #expect(throws: UnixSocketRefusal.notAPair(pid: 1, fd: 3, inode: 10, peer: 11)) { try UnixSocketPlan.pairs(UnixSocketPlan.ends(types)) }
    }

    @Test func oneSocketWithTwoStatesIsRefused() {
        let tree = [Self.process(1, [(3, Self.sock(10, peer: 11)), (4, Self.sock(11, peer: 10))]),
                    Self.process(2, [(3, Self.sock(10, peer: 11, queue: [[1]]))])]
        #expect(throws: UnixSocketRefusal.inconsistent(pid: 2, fd: 3, inode: 10)) { try UnixSocketPlan.pairs(UnixSocketPlan.ends(tree)) }
    }

    static func listener(_ inode: UInt64, path: String? = "/run/app.sock") -> UnixSocketImage {
        var s = UnixSocketImage(inode: inode, peer: 0, type: UnixSocketImage.stream, sendBuffer: 4096, receiveBuffer: 4096,
                                passCredentials: false, peekOffset: -1, shutdown: 0, queue: [])
        s.listenBacklog = 16
        if let path { s.path = path; s.pathMode = 0o600; s.pathOwner = 0; s.pathGroup = 0 } else { s.abstractName = Bytes(Array("srv".utf8)) }
        return s
    }

    @Test func listenersAreCreatedOnceAndAreNoPairs() throws {
        let l = Self.listener(50), a = Self.listener(40, path: nil)
        let tree = [Self.process(1, [(3, l), (4, a), (5, Self.sock(10, peer: 11)), (6, Self.sock(11, peer: 10))]), Self.process(2, [(3, l)])]
        let ends = UnixSocketPlan.ends(tree)
        #expect(try UnixSocketPlan.pairs(ends).count == 1)
        #expect(UnixSocketPlan.listeners(ends).map(\.inode) == [40, 50])
        #expect(UnixSocketPlan.socketCount(tree) == 4)
    }

    @Test func listenerRecordsOutOfRangeAreNamed() {
        #expect(Self.listener(50).problem() == nil)
        #expect(Self.listener(50, path: nil).problem() == nil)
        var s = Self.listener(50); s.path = "relative.sock"
        #expect(s.problem() != nil)
        s = Self.listener(50); s.path = "/a/../b.sock"
        #expect(s.problem() != nil)
        s = Self.listener(50); s.abstractName = Bytes([1])
        #expect(s.problem() != nil, "one name only")
        s = Self.listener(50); s.peer = 3
        #expect(s.problem() != nil)
        s = Self.listener(50); s.type = UnixSocketImage.datagram
        #expect(s.problem() != nil)
        s = Self.listener(50); s.pathMode = nil
        #expect(s.problem() != nil)
        s = Self.sock(10, peer: 11); s.path = "/x.sock"
        #expect(s.problem() != nil, "a path on a pair end")
        // A relative path is bound from its recorded directory.
        s = Self.listener(50); s.path = "rel.sock"; s.directory = "/srv/app"
        #expect(s.problem() == nil && s.filePath == "/srv/app/rel.sock")
        s.directory = "srv"
        #expect(s.problem() != nil, "a relative directory")
        s.directory = "/srv/../etc"
        #expect(s.problem() != nil, "a directory with ..")
        s.directory = "/srv"; s.path = "../x.sock"
        #expect(s.problem() != nil, "a relative path with ..")
        s = Self.listener(50); s.directory = "/srv"
        #expect(s.problem() != nil, "an absolute path with a directory")
        s = Self.listener(50); s.path = "rel.sock"; s.directory = "/srv"; s.pathRemoved = true
        #expect(s.problem() != nil, "a removed relative path")
    }

    /// Connections waiting in a listener's accept queue: each client of the
    /// tree is marked with its listener and connected again in queue order;
    /// a client outside the tree is refused by name; records whose listener
    /// and clients do not name each other are refused at restore.
    @Test func queuedConnectionsAreReconnectedInQueueOrder() throws {
        var l = Self.listener(50)
        l.queuedClients = [12, 10]
        var c10 = Self.sock(10, peer: 90), c12 = Self.sock(12, peer: 91)
        let tree = [Self.process(1, [(3, l), (4, c10), (5, c12)])]
        #expect(try UnixSocketPlan.queuedOn(UnixSocketPlan.ends(tree)) == [10: 50, 12: 50])
        // Unmarked, the clients' peers (the server ends no process holds) are outside the tree.
        #expect(throws: UnixSocketRefusal.self) { try UnixSocketPlan.pairs(UnixSocketPlan.ends(tree)) }
        c10.queuedOn = 50; c12.queuedOn = 50
        let marked = [Self.process(1, [(3, l), (4, c10), (5, c12)])]
        #expect(try UnixSocketPlan.pairs(UnixSocketPlan.ends(marked)).isEmpty)
        #expect(UnixSocketPlan.unpairedInodes(UnixSocketPlan.ends(marked)).isEmpty)
        let q = try UnixSocketPlan.queuedConnections(UnixSocketPlan.ends(marked))
        #expect(q.count == 1 && q.first?.listener.inode == 50 && q.first?.clients.map(\.inode) == [12, 10])
        #expect(l.problem() == nil && c10.problem() == nil)
        // A client no process of the tree holds.
        var far = l
        far.queuedClients = [10, 77]
        do {
            _ = try UnixSocketPlan.queuedOn(UnixSocketPlan.ends([Self.process(1, [(3, far), (4, c10)])]))
            Issue.record("a client outside the tree was accepted")
        } catch let r as UnixSocketRefusal {
            #expect(r.description.contains("socket:[77]") && r.description.contains("/run/app.sock"), "\(r)")
        }
        // At restore: a client marked for another listener, or one its listener does not list.
        var other = c12
        other.queuedOn = 51
        #expect(throws: UnixSocketRefusal.self) { try UnixSocketPlan.queuedConnections(UnixSocketPlan.ends([Self.process(1, [(3, l), (4, c10), (5, other)])])) }
        var unlisted = l
        unlisted.queuedClients = [12]
        #expect(throws: UnixSocketRefusal.self) { try UnixSocketPlan.queuedConnections(UnixSocketPlan.ends([Self.process(1, [(3, unlisted), (4, c10), (5, c12)])])) }
        // Damaged records.
        var bad = l
        bad.queuedClients = [10, 10]
        #expect(bad.problem() != nil, "a client twice")
        bad.queuedClients = Array(1...20).map(UInt64.init)
        #expect(bad.problem() != nil, "more than the backlog allows")
        bad.queuedClients = [50]
        #expect(bad.problem() != nil, "the listener itself")
        var client = c10
        client.queue = [Bytes([1])]
        #expect(client.problem() != nil, "data queued on a client")
        client = c10; client.type = UnixSocketImage.datagram
        #expect(client.problem() != nil, "a datagram client")
        client = c10; client.queuedClients = [3]
        #expect(client.problem() != nil, "queued connections on a pair end")
    }

    @Test func autobindNamesAreFiveHexDigits() {
        #expect(UnixSocketPlan.isAutobindName(Array("4825f".utf8)))
        #expect(!UnixSocketPlan.isAutobindName(Array("4825F".utf8)))
        #expect(!UnixSocketPlan.isAutobindName(Array("server".utf8)))
        #expect(!UnixSocketPlan.isAutobindName(Array("0000".utf8)))
    }

    @Test func shutdownIsReplayedSendSideFirst() {
        #expect(UnixSocketPlan.shutdownCalls(0) == [])
        #expect(UnixSocketPlan.shutdownCalls(1) == [0])
        #expect(UnixSocketPlan.shutdownCalls(2) == [1])
        #expect(UnixSocketPlan.shutdownCalls(3) == [1, 0])
    }

    static func named(_ inode: UInt64, peer: UInt64 = 0, path: String? = nil, abstract: String? = nil,
                      queue: [[UInt8]] = [], senders: [[UInt8]] = []) -> UnixSocketImage {
        var s = sock(inode, peer: peer, type: UnixSocketImage.datagram, queue: queue)
        s.unpaired = true
        s.path = path
        if path != nil { s.pathMode = 0o640; s.pathOwner = 0; s.pathGroup = 0 }
        s.abstractName = abstract.map { Bytes(Array($0.utf8)) }
        if !queue.isEmpty { s.senders = senders.map(Bytes.init) }
        return s
    }

    @Test func unconnectedAndClientDatagramSocketsAreUnpaired() throws {
        let server = Self.named(20, path: "/run/dg.sock")
        var client = Self.sock(21, peer: 20, type: UnixSocketImage.datagram)
        let selfConnected = Self.named(22, peer: 22, abstract: "me")
        let stream = Self.sock(23, peer: 0)
        let pairA = Self.sock(30, peer: 31, type: UnixSocketImage.datagram), pairB = Self.sock(31, peer: 30, type: UnixSocketImage.datagram)
        let outside = Self.sock(32, peer: 99, type: UnixSocketImage.datagram)
        let tree = [Self.process(1, [(3, server), (4, client), (5, selfConnected), (6, stream), (7, pairA), (8, pairB), (9, outside)])]
        #expect(UnixSocketPlan.unpairedInodes(UnixSocketPlan.ends(tree)) == [20, 21, 22, 23])
        // The client connects to the server's path again; an unconnected socket connects nowhere.
        client.unpaired = true
        #expect(try UnixSocketPlan.connectTarget(of: client, among: [server, client]) == Array("/run/dg.sock".utf8))
        #expect(try UnixSocketPlan.connectTarget(of: server, among: [server, client]) == nil)
        #expect(throws: UnixSocketPlan.Uncarried.self) { try UnixSocketPlan.connectTarget(of: client, among: [Self.named(20), client]) }
        // Marked unpaired, they are no pairs.
        var marked = tree
        for i in marked[0].files.indices where [20, 21, 22, 23].contains(marked[0].files[i].unixSocket!.inode) { marked[0].files[i].unixSocket!.unpaired = true }
        marked[0].files.removeLast()
        #expect(try UnixSocketPlan.pairs(UnixSocketPlan.ends(marked)).map { [$0.0.inode, $0.1.inode] } == [[30, 31]])
        #expect(UnixSocketPlan.unpaired(UnixSocketPlan.ends(marked)).map(\.inode) == [20, 21, 22, 23])
        #expect(UnixSocketPlan.sockaddr(Array("/a".utf8)) == [1, 0, 0x2f, 0x61, 0])
        #expect(UnixSocketPlan.sockaddr([0, 0x61]) == [1, 0, 0, 0x61])
    }

    @Test func queuedDatagramsAreSentAgainByTheirSenders() throws {
        let named = Self.named(40, abstract: "sender")
        let server = Self.named(41, path: "/run/dg.sock", queue: [[1], [2]], senders: [[], [0] + Array("sender".utf8)])
        #expect(try UnixSocketPlan.senders(of: server, among: [named, server]) == [.temporary, .socket(40)])
        // A sender name no socket of the tree has.
        let stray = Self.named(42, path: "/run/dg.sock", queue: [[1]], senders: [[0] + Array("gone".utf8)])
        #expect(throws: UnixSocketPlan.Uncarried.self) { try UnixSocketPlan.senders(of: stray, among: [named, stray]) }
        // A connected socket takes datagrams from its peer only; connected to itself, from itself.
        let me = Self.named(43, peer: 43, path: "/run/me.sock", queue: [[1]], senders: [Array("/run/me.sock".utf8)])
        #expect(try UnixSocketPlan.senders(of: me, among: [me]) == [.socket(43)])
        let early = Self.named(44, peer: 40, path: "/run/c.sock", queue: [[1]], senders: [[]])
        #expect(throws: UnixSocketPlan.Uncarried.self) { try UnixSocketPlan.senders(of: early, among: [named, early]) }
        // No name to send to.
        let unnamed = Self.named(45, queue: [[1]], senders: [[]])
        #expect(throws: UnixSocketPlan.Uncarried.self) { try UnixSocketPlan.senders(of: unnamed, among: [unnamed]) }
    }

    @Test func unpairedRecordsOutOfRangeAreNamed() {
        #expect(Self.named(50, path: "/run/a.sock", queue: [[1]], senders: [[]]).problem() == nil)
        #expect(Self.named(50, peer: 50, abstract: "x").problem() == nil)
        var s = Self.named(50, path: "/run/a.sock", queue: [[1]], senders: [[]]); s.senders = nil
        #expect(s.problem() != nil, "datagrams without senders")
        s = Self.named(50, path: "/run/a.sock", queue: [[1]], senders: [[], []])
        #expect(s.problem() != nil, "more senders than datagrams")
        s = Self.named(50, path: "/run/a.sock", queue: [[1]], senders: [[UInt8](repeating: 1, count: 109)])
        #expect(s.problem() != nil, "a sender name over 108 bytes")
        s = Self.named(50, path: "relative.sock")
        #expect(s.problem() != nil)
        s = Self.named(50, path: "/a.sock", abstract: "b")
        #expect(s.problem() != nil, "two names")
        s = Self.sock(50, peer: 51); s.unpaired = true
        #expect(s.problem() != nil, "a connected stream socket is a pair end")
        s = Self.sock(50, peer: 0, queue: [[1]]); s.unpaired = true
        #expect(s.problem() != nil, "an unconnected stream socket with data")
        s = Self.sock(50, peer: 51, type: UnixSocketImage.datagram); s.senders = []
        #expect(s.problem() != nil, "senders on a pair end")
    }

    @Test func recordsOutOfRangeAreNamed() {
        var s = Self.sock(10, peer: 11)
        #expect(s.problem() == nil)
        s.type = 3
        #expect(s.problem() != nil)
        s = Self.sock(10, peer: 10)
        #expect(s.problem() != nil)
        s = Self.sock(10, peer: 11); s.sendBuffer = -1
        #expect(s.problem() != nil)
        s = Self.sock(10, peer: 11); s.peekOffset = -2
        #expect(s.problem() != nil)
        s = Self.sock(10, peer: 11); s.shutdown = 4
        #expect(s.problem() != nil)
        s = Self.sock(10, peer: 11, queue: [[1], [2]])
        #expect(s.problem() != nil, "a stream queue is one chunk")
        s = Self.sock(10, peer: 11, type: UnixSocketImage.datagram, queue: [[1], []])
        #expect(s.problem() != nil, "empty datagrams are not carried")
        s = Self.sock(10, peer: 11, type: UnixSocketImage.datagram, queue: [[1], [2]])
        #expect(s.problem() == nil)
    }
}
