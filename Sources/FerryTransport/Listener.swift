import Foundation
import NIOCore
import NIOPosix
import NIOSSL

// The listening side of the transport: accepts connections (TCP with mutual
// TLS, or a Unix socket whose peer is checked with SO_PEERCRED), holds them
// until they are authenticated and their first message has arrived, within
// bounds on their number and time, and hands them to the serve loop.

/// A listening socket whose authenticated connections are taken one at a
/// time. A connection is offered to `accept` only once it is authenticated
/// (mutual TLS, or SO_PEERCRED on a Unix socket) and its first message has
/// arrived whole, so a peer that connects and stalls, or sends half a
/// message or garbage, never reaches the migration loop: it is closed after
/// `handshakeTimeout`, or at the first bad byte. At most `maxPending`
/// connections wait to be accepted; reading from one pauses after its first
/// message until it is.
public final class Listener: @unchecked Sendable {
    private let serverChannel: Channel
    private let condition = NSCondition()
    private var pending: [Connection] = []
    /// Connections opened and not yet accepted or closed.
    private var unaccepted: Set<ObjectIdentifier> = []
    private let socketPath: String?
    /// Connections dropped before they were accepted (failed authentication, stalled, garbage, too many), one line each.
    public let onRejected: @Sendable (String) -> Void
    public var localPort: Int { serverChannel.localAddress?.port ?? 0 }

    /// Listens on TCP `host:port`, with mutual TLS or (nil) none.
    public convenience init(host: String, port: Int, tls: TLSFiles?, limits: ConnectionLimits = .init(),
                            onRejected: @escaping @Sendable (String) -> Void = { _ in }) throws {
        try self.init(endpoint: .tcp(host: host, port: port), authentication: tls.map { .tls($0) } ?? .none, limits: limits,
                      onRejected: onRejected)
    }

    public init(endpoint: Endpoint, authentication: PeerAuthentication, limits: ConnectionLimits = .init(),
                onRejected: @escaping @Sendable (String) -> Void = { _ in }) throws {
        let ssl: NIOSSLContext?, allowedUIDs: Set<UInt32>?
        switch authentication {
        case .tls(let files): (ssl, allowedUIDs) = (try files.context(server: true), nil)
        case .peerUIDs(let uids): (ssl, allowedUIDs) = (nil, uids)
        case .none: (ssl, allowedUIDs) = (nil, nil)
        }
        if case .unix = endpoint, ssl != nil { throw MigrationError("a Unix socket checks its peers with SO_PEERCRED, not TLS") }
        if case .tcp = endpoint, allowedUIDs != nil { throw MigrationError("peer uids can be checked on a Unix socket only") }
        self.onRejected = onRejected
        let box = ListenerBox()
        var bootstrap = ServerBootstrap(group: TransportLoop.group)
            .serverChannelOption(ChannelOptions.backlog, value: 16)
            .childChannelOption(ChannelOptions.recvAllocator, value: Pipeline.reads)
            .childChannelInitializer { channel in
                let peer: String
                if case .unix(let path) = endpoint { peer = "unix:\(path)" } else {
                    peer = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "peer"
                }
                guard let listener = box.listener, listener.admit(channel, limit: limits.maxPending) else {
                    onRejected("dropped \(peer): \(limits.maxPending) connections are already waiting")
                    return channel.close()
                }
                let inbox = Inbox(highWater: limits.inboxHighWater, holding: true)
                channel.closeFuture.whenComplete { _ in
                    if box.listener?.forget(channel) == true { onRejected("dropped \(peer): \(inbox.failed ?? MigrationError("closed before its first message"))") }
                }
                // Not authenticated and sending within the time: closed.
                let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(limits.handshakeTimeout * 1000))) {
                    inbox.fail(MigrationError("no complete first message within \(limits.handshakeTimeout) s"))
                    channel.close(promise: nil)
                }
                channel.closeFuture.whenComplete { _ in deadline.cancel() }
                let configure: @Sendable (UInt32?) throws -> Void = { uid in
                    try Pipeline.configure(channel, ssl: ssl, server: true, serverName: nil, inbox: inbox, peer: peer, onReady: { _ in },
                                           onFirstFrame: { ch in
                        deadline.cancel()
                        box.listener?.enqueue(Connection(channel: ch, inbox: inbox, peer: peer, limits: limits, peerUID: uid))
                    })
                }
                guard let allowed = allowedUIDs else { return channel.eventLoop.makeCompletedFuture(withResultOf: { try configure(nil) }) }
                return PeerCredentials.of(channel).flatMapThrowing { cred in
                    guard UnixSocketPolicy.admits(uid: cred.uid, allowed: allowed) else {
                        inbox.fail(MigrationError("peer uid \(cred.uid) (pid \(cred.pid)) is not allowed; serve --allow-uid admits others than root"))
                        throw MigrationError("peer uid \(cred.uid) refused")
                    }
                    try configure(cred.uid)
                }
            }
        switch endpoint {
        case let .tcp(host, port):
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            do {
                serverChannel = try bootstrap.bind(host: host, port: port).wait()
            } catch {
                throw MigrationError("cannot listen on \(host):\(port): \(error)")
            }
            socketPath = nil
        case let .unix(path):
            try UnixSocketPolicy.prepare(path: path)
            // The file is created without permissions for anyone but root,
            // then given its mode: no window in which others may connect.
            let old = umask(0o177)
            defer { umask(old) }
            do {
                serverChannel = try bootstrap.bind(unixDomainSocketPath: path).wait()
            } catch {
                throw MigrationError("cannot listen on unix:\(path): \(error)")
            }
            do { try UnixSocketPolicy.secure(path: path, allowed: allowedUIDs ?? []) } catch {
                try? serverChannel.close().wait()
                throw error
            }
            socketPath = path
        }
        box.listener = self
    }

    /// Counts a new connection; false when `limit` are already waiting.
    fileprivate func admit(_ channel: Channel, limit: Int) -> Bool {
        condition.lock(); defer { condition.unlock() }
        guard unaccepted.count < limit else { return false }
        unaccepted.insert(ObjectIdentifier(channel))
        return true
    }

    /// A connection closed: true when it was never accepted.
    fileprivate func forget(_ channel: Channel) -> Bool {
        condition.lock(); defer { condition.unlock() }
        pending.removeAll { $0.channel === channel }
        return unaccepted.remove(ObjectIdentifier(channel)) != nil
    }

    fileprivate func enqueue(_ c: Connection) {
        condition.lock()
        pending.append(c)
        condition.broadcast()
        condition.unlock()
    }

    /// The next authenticated connection whose first message is in (nil after `timeout` seconds, if given).
    public func accept(timeout: Double? = nil) -> Connection? {
        condition.lock()
        let deadline = timeout.map { Date(timeIntervalSinceNow: $0) } ?? .distantFuture
        while pending.isEmpty {
            if !condition.wait(until: deadline) && pending.isEmpty { condition.unlock(); return nil }
        }
        let c = pending.removeFirst()
        unaccepted.remove(ObjectIdentifier(c.channel))
        condition.unlock()
        c.inbox.release()
        return c
    }

    /// Connections opened and not yet accepted (in their handshake, or waiting).
    public var waiting: Int {
        condition.lock(); defer { condition.unlock() }
        return unaccepted.count
    }

    public func close() {
        try? serverChannel.close().wait()
        if let socketPath { unlink(socketPath) }
    }
}

private final class ListenerBox: @unchecked Sendable {
    weak var listener: Listener?
}
