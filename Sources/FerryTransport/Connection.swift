import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

// The bridge between NIO (event loop, async) and the migration, which runs
// on one ordinary thread because checkpoint and restore drive ptrace, whose
// calls must all come from the same OS thread. Received frames go into a
// bounded inbox the migration thread takes from (reading from the socket
// pauses while it is full); sent frames are written with a bound on the
// bytes not yet handed to the kernel (the sender blocks while it is over).

/// PEM files for mutual TLS: our certificate and key, and the CA that must have signed the peer's.
public struct TLSFiles: Sendable {
    public var certificate: String
    public var key: String
    public var ca: String
    public init(certificate: String, key: String, ca: String) { self.certificate = certificate; self.key = key; self.ca = ca }

    func context(server: Bool) throws -> NIOSSLContext {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
            guard !chain.isEmpty else { throw MigrationError("\(certificate) holds no certificate") }
            let privateKey = NIOSSLPrivateKeySource.privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            let roots = try NIOSSLCertificate.fromPEMFile(ca)
            guard !roots.isEmpty else { throw MigrationError("\(ca) holds no certificate") }
            var config = server
                ? TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: privateKey)
                : TLSConfiguration.makeClientConfiguration()
            if !server {
                config.certificateChain = chain
                config.privateKey = privateKey
            }
            config.trustRoots = .certificates(roots)
            // Peers are identified by their CA-signed certificate, not by a host name
            // (migration targets are often addressed by IP). On the server this also
            // makes a client certificate mandatory.
            config.certificateVerification = .noHostnameVerification
            config.minimumTLSVersion = .tlsv12
            // Closing waits this long at most for the peer's close_notify: a
            // peer dropped unauthenticated (it stalled in its handshake) is
            // gone within it, not after NIOSSL's default of 5 s.
            config.shutdownTimeout = .seconds(2)
            return try NIOSSLContext(configuration: config)
        } catch let e as MigrationError {
            throw e
        } catch {
            throw MigrationError("cannot set up TLS from --cert \(certificate) --key \(key) --ca \(ca): \(error)")
        }
    }
}

/// Limits of one connection.
public struct ConnectionLimits: Sendable {
    /// Waiting longer than this for the peer (a message, or room to send) ends the migration.
    public var timeout: Double
    /// Bytes received but not yet consumed before reading pauses.
    public var inboxHighWater: Int
    /// Bytes written but not yet sent before the sender blocks.
    public var sendHighWater: Int
    /// A listener closes a connection that has not authenticated and sent its
    /// first complete message (HELLO) this many seconds after it was opened.
    public var handshakeTimeout: Double
    /// A listener holds at most this many connections not yet accepted (in
    /// their handshake, or waiting for the migration before them); more are closed at once.
    public var maxPending: Int
    public init(timeout: Double = 30, inboxHighWater: Int = 8 << 20, sendHighWater: Int = 8 << 20,
                handshakeTimeout: Double = 10, maxPending: Int = 16) {
        self.timeout = timeout; self.inboxHighWater = inboxHighWater; self.sendHighWater = sendHighWater
        self.handshakeTimeout = handshakeTimeout; self.maxPending = maxPending
    }
}

/// Frames received, waiting for the migration thread.
final class Inbox: @unchecked Sendable {
    private let condition = NSCondition()
    private var frames = CircularBuffer<Frame>()
    private var bytes = 0
    private var failure: MigrationError?
    /// A NACK or ABORT received: the peer gave up (a sender stops at once).
    private var refusal: MigrationError?
    private var paused = false
    /// Until a listener's connection is accepted, reading pauses after each message.
    private var holding: Bool
    var peer = "peer"
    let highWater: Int
    weak var channel: Channel?

    init(highWater: Int, holding: Bool = false) { self.highWater = highWater; self.holding = holding }

    /// On the event loop: returns true when reading should pause.
    func put(_ frame: Frame) -> Bool {
        condition.lock(); defer { condition.unlock() }
        frames.append(frame)
        if refusal == nil && (frame.type == .nack || frame.type == .abort) {
            refusal = Connection.unexpected(frame, wanted: "", peer: peer)
        }
        bytes += frame.byteCount
        condition.broadcast()
        if (bytes >= highWater || holding) && !paused { paused = true; return true }
        return false
    }

    /// The connection was accepted: reading goes on as the migration takes messages.
    func release() {
        condition.lock()
        holding = false
        let resume = paused && bytes < highWater / 2
        if resume { paused = false }
        condition.unlock()
        if resume, let channel { channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in } }
    }

    func fail(_ error: MigrationError) {
        condition.lock(); defer { condition.unlock() }
        if failure == nil { failure = error }
        condition.broadcast()
    }

    var failed: MigrationError? {
        condition.lock(); defer { condition.unlock() }
        return failure
    }

    var refused: MigrationError? {
        condition.lock(); defer { condition.unlock() }
        return refusal
    }

    /// Discards what arrives until the peer closes (or `timeout`).
    func waitForClose(timeout: Double) {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        while failure == nil {
            frames.removeAll()
            bytes = 0
            if paused { paused = false; let c = channel; condition.unlock(); c?.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }; condition.lock() }
            if !condition.wait(until: deadline) { break }
        }
        condition.unlock()
    }

    /// The next frame; frames already received are delivered before a failure.
    func take(timeout: Double, waitingFor what: @autoclosure () -> String) throws -> Frame {
        condition.lock()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while frames.isEmpty {
            if let failure { condition.unlock(); throw failure }
            if !condition.wait(until: deadline) && frames.isEmpty {
                condition.unlock()
                throw MigrationError("the peer stalled: nothing received for \(Int(timeout)) s while waiting for \(what())")
            }
        }
        let f = frames.removeFirst()
        bytes -= f.byteCount
        let resume = paused && bytes < highWater / 2
        if resume { paused = false }
        condition.unlock()
        if resume, let channel { channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in } }
        return f
    }
}

/// Last handler of the pipeline: frames into the inbox, errors and close into failures.
final class InboxHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    let inbox: Inbox
    let peer: String
    private let tls: Bool
    private var onReady: ((Channel) -> Void)?
    private var onFirstFrame: ((Channel) -> Void)?

    init(inbox: Inbox, peer: String, tls: Bool, onReady: @escaping (Channel) -> Void, onFirstFrame: ((Channel) -> Void)? = nil) {
        self.inbox = inbox; self.peer = peer; self.tls = tls; self.onReady = onReady; self.onFirstFrame = onFirstFrame
    }

    func channelActive(context: ChannelHandlerContext) {
        if !tls { ready(context.channel) }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? TLSUserEvent, case .handshakeCompleted = e { ready(context.channel) }
        context.fireUserInboundEventTriggered(event)
    }

    private func ready(_ channel: Channel) {
        onReady?(channel)
        onReady = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if inbox.put(unwrapInboundIn(data)) {
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
        if let first = onFirstFrame {
            onFirstFrame = nil
            first(context.channel)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.fail(MigrationError("the connection to \(peer) was closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        inbox.fail(Connection.describe(error, peer: peer, handshakeDone: onReady == nil))
        context.close(promise: nil)
    }
}

/// One migration connection, used from a single ordinary thread.
public final class Connection: @unchecked Sendable {
    public let peer: String
    let channel: Channel
    let inbox: Inbox
    public let limits: ConnectionLimits
    private let condition = NSCondition()
    private var unsent = 0
    private var sendFailure: MigrationError?
    /// Image bytes sent (IMAGE_CHUNK payloads and pre-copy page data).
    public private(set) var bytesSent: UInt64 = 0
    /// The peer's uid, on a Unix socket (SO_PEERCRED).
    public let peerUID: UInt32?

    init(channel: Channel, inbox: Inbox, peer: String, limits: ConnectionLimits, peerUID: UInt32? = nil) {
        self.channel = channel; self.inbox = inbox; self.peer = peer; self.limits = limits; self.peerUID = peerUID
        inbox.channel = channel
        inbox.peer = peer
    }

    /// Sends one control frame; blocks while too many bytes are still waiting to go out.
    public func send(_ type: MessageType, _ payload: UnsafeRawBufferPointer) throws {
        try checkStillWanted(type)
        try send(sealed: FrameEncoding.encode(type, payload, allocator: channel.allocator), type: type, imageBytes: 0)
    }

    /// Sends a batch of pre-copy pages (then empty again); nothing if it is empty.
    public func send(_ batch: inout PageBatch) throws {
        guard !batch.isEmpty else { return }
        var frame = batch.frame
        let bytes = batch.dataBytes
        batch = PageBatch(allocator: channel.allocator)
        try send(built: &frame, type: .precopyPages, imageBytes: bytes)
    }

    /// Sends an IMAGE_CHUNK built in place (`FrameEncoding.buffer`, then the image bytes).
    public func send(imageChunk frame: inout ByteBuffer) throws {
        try send(built: &frame, type: .imageChunk, imageBytes: frame.readableBytes - WireProtocol.headerSize)
    }

    /// Seals and sends a frame whose payload was written after the header's room.
    private func send(built frame: inout ByteBuffer, type: MessageType, imageBytes: Int) throws {
        try checkStillWanted(type)
        FrameEncoding.seal(&frame, type)
        try send(sealed: frame, type: type, imageBytes: imageBytes)
    }

    /// A sender of image or page data stops as soon as the peer gave up or the connection failed.
    private func checkStillWanted(_ type: MessageType) throws {
        if type == .imageChunk || type == .precopyPages, let r = inbox.refused { throw r }
        if let f = inbox.failed { throw inbox.refused ?? f }
    }

    private func send(sealed buffer: ByteBuffer, type: MessageType, imageBytes: Int) throws {
        let size = buffer.readableBytes
        condition.lock()
        let deadline = Date(timeIntervalSinceNow: limits.timeout)
        while unsent + size > limits.sendHighWater && unsent > 0 && sendFailure == nil {
            if !condition.wait(until: deadline) && unsent + size > limits.sendHighWater && unsent > 0 {
                condition.unlock()
                throw MigrationError("the peer stalled: it took nothing for \(Int(limits.timeout)) s (\(unsent) bytes waiting to be sent)")
            }
        }
        if let f = sendFailure { condition.unlock(); throw inbox.refused ?? f }
        unsent += size
        condition.unlock()
        bytesSent += UInt64(imageBytes)
        let peer = self.peer
        channel.writeAndFlush(buffer).whenComplete { [self] result in
            condition.lock()
            unsent -= size
            if case .failure(let e) = result, sendFailure == nil {
                sendFailure = inbox.refused ?? inbox.failed ?? Connection.describe(e, peer: peer, handshakeDone: true)
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    public func send(_ type: MessageType, bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try send(type, $0) }
    }

    public func send<T: Encodable>(_ type: MessageType, json value: T) throws {
        try send(type, bytes: WireJSON.encode(value))
    }

    /// Blocks until everything sent so far has been handed to the kernel.
    public func drain(timeout: Double? = nil) throws {
        condition.lock(); defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout ?? limits.timeout)
        while unsent > 0 && sendFailure == nil {
            if !condition.wait(until: deadline) && unsent > 0 {
                throw MigrationError("the peer stalled: \(unsent) bytes not taken within \(Int(limits.timeout)) s")
            }
        }
        if let f = sendFailure { throw f }
    }

    public func receive(waitingFor what: @autoclosure () -> String, timeout: Double? = nil) throws -> Frame {
        try inbox.take(timeout: timeout ?? limits.timeout, waitingFor: what())
    }

    /// The next frame, which must be `type`; a NACK or ABORT becomes its reason as an error.
    public func expect<T: Decodable>(_ type: MessageType, _ value: T.Type, timeout: Double? = nil) throws -> T {
        let f = try receive(waitingFor: "\(type)", timeout: timeout)
        if f.type == type { return try WireJSON.decode(value, f) }
        throw Connection.unexpected(f, wanted: "\(type)", peer: peer)
    }

    static func unexpected(_ f: Frame, wanted: String, peer: String) -> MigrationError {
        switch f.type {
        case .nack: return MigrationError("\(peer) refused: \((try? WireJSON.decode(Reason.self, f))?.reason ?? "no reason given")")
        case .abort: return MigrationError("\(peer) aborted: \((try? WireJSON.decode(Reason.self, f))?.reason ?? "no reason given")")
        default: return MigrationError("protocol error: \(peer) sent \(f.type) where \(wanted) was expected")
        }
    }

    /// Sends a last message if the connection still works, then closes it.
    public func close(with type: MessageType? = nil, reason: String? = nil) {
        if let type {
            if let reason { try? send(type, json: Reason(reason)) } else { try? send(type, bytes: []) }
        }
        try? drain(timeout: min(limits.timeout, 5))
        if type == .nack || type == .abort {
            // Half-close and let the peer read our reason: closing with its data
            // unread would send a reset that can overtake the reason.
            channel.close(mode: .output, promise: nil)  // not waited for: it waits for pending writes
            inbox.waitForClose(timeout: 2)
        }
        try? channel.close().wait()
    }

    static func describe(_ error: Error, peer: String, handshakeDone: Bool) -> MigrationError {
        if let e = error as? MigrationError { return e }
        if let e = error as? NIOSSLError {
            return MigrationError("TLS with \(peer) failed (\(handshakeDone ? "" : "authentication: ")\(e)); check --cert/--key/--ca on both sides")
        }
        if let e = error as? BoringSSLError {
            return MigrationError("TLS with \(peer) failed: \(e); check --cert/--key/--ca on both sides")
        }
        if let e = error as? IOError {
            return MigrationError("connection to \(peer) failed: \(e.description)")
        }
        if error is ChannelError { return MigrationError("the connection to \(peer) was closed (\(error))") }
        return MigrationError("connection to \(peer): \(error)")
    }
}

/// Pipeline shared by both ends.
enum Pipeline {
    /// Reads of up to 1 MiB (NIO's default stops at 64 KiB): a page batch
    /// arrives in a few reads, each a piece of the frame (`FrameAssembler`).
    static let reads = AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 64 << 10, maximum: 1 << 20)

    static func configure(_ channel: Channel, ssl: NIOSSLContext?, server: Bool, serverName: String?, inbox: Inbox,
                          peer: String, onReady: @escaping (Channel) -> Void, onFirstFrame: ((Channel) -> Void)? = nil) throws {
        let ops = channel.pipeline.syncOperations
        if let ssl {
            if server {
                try ops.addHandler(NIOSSLServerHandler(context: ssl))
            } else {
                try ops.addHandler(try NIOSSLClientHandler(context: ssl, serverHostname: nil))
            }
        }
        try ops.addHandler(FrameAssembler())
        try ops.addHandler(InboxHandler(inbox: inbox, peer: peer, tls: ssl != nil, onReady: onReady, onFirstFrame: onFirstFrame))
    }
}

/// The event loop threads of a process (one is enough: the work is in the migration thread).
public enum TransportLoop {
    public static let group: MultiThreadedEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}

extension Connection {
    /// Connects to `host:port` over TCP; with `tls`, mutual TLS must complete before this returns.
    public static func connect(host: String, port: Int, tls: TLSFiles?, limits: ConnectionLimits = .init()) throws -> Connection {
        try connect(to: .tcp(host: host, port: port), tls: tls, limits: limits)
    }

    /// Connects to `endpoint`. Over TCP, `tls` (nil: plain TCP, `--insecure`);
    /// over a Unix socket the listener must run as root or as this process's
    /// user (SO_PEERCRED), since the migration hands it a process.
    public static func connect(to endpoint: Endpoint, tls: TLSFiles?, limits: ConnectionLimits = .init()) throws -> Connection {
        let ssl = try tls?.context(server: false)
        let peer = endpoint.description
        let inbox = Inbox(highWater: limits.inboxHighWater)
        let readyPromise = TransportLoop.group.next().makePromise(of: Void.self)
        var bootstrap = ClientBootstrap(group: TransportLoop.group)
            .connectTimeout(.seconds(Int64(max(1, limits.timeout))))
            .channelOption(ChannelOptions.recvAllocator, value: Pipeline.reads)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Pipeline.configure(channel, ssl: ssl, server: false, serverName: nil, inbox: inbox, peer: peer) { _ in
                        readyPromise.succeed(())
                    }
                }
            }
        let channel: Channel
        do {
            switch endpoint {
            case let .tcp(host, port):
                bootstrap = bootstrap.channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                channel = try bootstrap.connect(host: host, port: port).wait()
            case let .unix(path):
                channel = try bootstrap.connect(unixDomainSocketPath: path).wait()
                let cred = try PeerCredentials.of(channel).wait()
                guard cred.uid == 0 || cred.uid == geteuid() else {
                    try? channel.close().wait()
                    throw MigrationError("connection to \(peer) refused: the listener runs as uid \(cred.uid), neither root nor this user")
                }
            }
        } catch let e as MigrationError {
            readyPromise.succeed(())
            throw e
        } catch {
            readyPromise.succeed(())
            throw MigrationError("cannot connect to \(peer): \(Connection.describe(error, peer: peer, handshakeDone: true).description.replacingOccurrences(of: "connection to \(peer) failed: ", with: ""))")
        }
        channel.closeFuture.whenComplete { _ in readyPromise.fail(MigrationError("closed")) }
        do {
            try readyPromise.futureResult.wait()
        } catch {
            try? channel.close().wait()
            throw inbox.failed ?? MigrationError("the connection to \(peer) was closed during the TLS handshake")
        }
        return Connection(channel: channel, inbox: inbox, peer: peer, limits: limits)
    }
}
