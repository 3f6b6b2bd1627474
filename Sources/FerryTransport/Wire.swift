import FerryImage
import NIOCore

// The migration wire protocol. One connection (TLS, or plain TCP when asked
// for explicitly) carries framed messages:
//
//  frame header (12 bytes, little-endian)
//  +0  u32 type      MessageType
//  +4  u32 length    payload bytes; capped per type (checked before reading)
//  +8  u32 crc32c    over type, length and payload
//  +12 payload
//
//  source                                  target
//  HELLO (version, pids, memory)   ──▶
//                                  ◀──     CAPABILITIES (host, CPU/XSAVE, vDSO,
//                                           pids free, free memory) or NACK
//  VERDICT (go / refused + reasons) ──▶    decided BEFORE anything is frozen
//  [PRECOPY_META (preliminary metadata)  the target builds the processes and
//   PRECOPY_PAGES × n, in rounds   ──▶     their address spaces, fills pages
//   while the source runs                   as they come
//   PRECOPY_SYNC                   ──▶
//                                  ◀──     PRECOPY_SYNCED (every page so far is
//                                           written: the freeze does not wait
//                                           for pages still in flight)]
//  IMAGE_CHUNK × n (the stream
//  encoding of the image, in order)  ──▶   restored as it arrives
//  [ABORT (reason) at any time]      ──▶   target removes what it created
//                                  ◀──     ACK (the process runs) or NACK (reason)
//  COMMIT (source killed)            ──▶
//
// Control payloads are JSON; IMAGE_CHUNK carries raw bytes of the image
// stream, which has its own record checksums and caps.

public enum WireProtocol {
    /// Bumped on any incompatible change; a peer with a newer version is refused.
    /// 2: PRECOPY_SYNC / PRECOPY_SYNCED end the rounds.
    public static let version = 2
    /// Image bytes per IMAGE_CHUNK.
    public static let chunkSize = 256 << 10
    public static let headerSize = 12
}

public enum MessageType: UInt32, Sendable, CustomStringConvertible {
    case hello = 1, capabilities = 2, verdict = 3, imageChunk = 4, ack = 5, nack = 6, abort = 7, commit = 8
    /// Pre-copy: the preliminary metadata (JSON ImageMetadata), then pages while the source runs.
    case precopyMeta = 9, precopyPages = 10
    /// Pre-copy: the source is about to freeze; the target answers PRECOPY_SYNCED once every page so far is in the new process.
    case precopySync = 11, precopySynced = 12

    /// Largest payload accepted for the type, checked before anything is allocated.
    public var maxLength: Int {
        switch self {
        case .imageChunk, .precopyPages: return 4 << 20 + 16
        case .precopyMeta: return 16 << 20
        case .capabilities, .hello: return 1 << 20
        default: return 64 << 10
        }
    }

    public var description: String {
        switch self {
        case .hello: return "HELLO"
        case .capabilities: return "CAPABILITIES"
        case .verdict: return "VERDICT"
        case .imageChunk: return "IMAGE_CHUNK"
        case .ack: return "ACK"
        case .nack: return "NACK"
        case .abort: return "ABORT"
        case .commit: return "COMMIT"
        case .precopyMeta: return "PRECOPY_META"
        case .precopyPages: return "PRECOPY_PAGES"
        case .precopySync: return "PRECOPY_SYNC"
        case .precopySynced: return "PRECOPY_SYNCED"
        }
    }
}

public struct Frame: Sendable {
    public var type: MessageType
    public var payload: ByteBuffer
    public init(type: MessageType, payload: ByteBuffer) { self.type = type; self.payload = payload }
}

/// Any failure of the migration protocol; its description is the one-line reason shown to the user.
public struct MigrationError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Turns bytes from the connection into frames, strictly.
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = Frame
    /// Offset in the connection, for error messages.
    private var offset: UInt64 = 0

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard buffer.readableBytes >= WireProtocol.headerSize,
              let rawType = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 4, endianness: .little, as: UInt32.self),
              let crc = buffer.getInteger(at: buffer.readerIndex + 8, endianness: .little, as: UInt32.self)
        else { return .needMoreData }
        guard let type = MessageType(rawValue: rawType) else {
            throw MigrationError("protocol error at byte \(offset): unknown message type \(rawType) (garbage, or a newer ferry)")
        }
        guard Int(length) <= type.maxLength else {
            throw MigrationError("protocol error at byte \(offset): \(type) claims \(length) bytes, more than its cap of \(type.maxLength)")
        }
        guard buffer.readableBytes >= WireProtocol.headerSize + Int(length) else { return .needMoreData }
        let head = buffer.readSlice(length: WireProtocol.headerSize)!
        // A copy of its own: a slice would keep the whole cumulation buffer alive while queued.
        let slice = buffer.readSlice(length: Int(length))!
        var payload = context.channel.allocator.buffer(capacity: slice.readableBytes)
        payload.writeImmutableBuffer(slice)
        var sum = head.withUnsafeReadableBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[0..<8])) }
        sum = payload.withUnsafeReadableBytes { crc32c($0, sum) }
        guard sum == crc else {
            throw MigrationError("protocol error at byte \(offset): \(type) checksum mismatch (corrupted)")
        }
        offset += UInt64(WireProtocol.headerSize) + UInt64(length)
        context.fireChannelRead(wrapInboundOut(Frame(type: type, payload: payload)))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            throw MigrationError("protocol error: the connection ended inside a message (\(buffer.readableBytes) bytes of it)")
        }
        return .needMoreData
    }
}

enum FrameEncoding {
    /// A frame ready to write: header and payload in one buffer.
    static func encode(_ type: MessageType, prefix: [UInt8] = [], _ payload: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> ByteBuffer {
        let length = prefix.count + payload.count
        precondition(length <= type.maxLength, "\(type) of \(length) bytes exceeds its cap")
        var b = allocator.buffer(capacity: WireProtocol.headerSize + length)
        b.writeInteger(type.rawValue, endianness: .little)
        b.writeInteger(UInt32(length), endianness: .little)
        var sum = b.withUnsafeReadableBytes { crc32c($0) }
        sum = crc32c(prefix, sum)
        if payload.count > 0 { sum = crc32c(payload, sum) }
        b.writeInteger(sum, endianness: .little)
        b.writeBytes(prefix)
        if payload.count > 0 { b.writeBytes(payload) }
        return b
    }
}

// MARK: - Control messages

public struct Hello: Codable, Sendable, Equatable {
    public var protocolVersion: Int
    public var role: String
    public var ferryVersion: String
    /// The image format version the sender writes.
    public var imageVersion: Int
    /// Every pid and tid of the tree to migrate (the target says which are free).
    public var pids: [Int32]
    /// Resident memory of the tree, to compare with the target's free memory.
    public var memoryBytes: UInt64
    /// CPU features (cpuinfo names) the source CPU has and the target may
    /// lack, because the process is known not to use them (`migrate
    /// --allow-missing-cpu-features`); the target's restore accepts them as
    /// `restore --allow-missing-cpu-features` does. Absent from older sources.
    public var allowMissingCPUFeatures: [String]?
    /// The target may enable more XSAVE components than the source (the
    /// process binds eagerly): `restore --allow-xsave-growth`. Absent: no.
    public var allowXSaveGrowth: Bool?

    public init(protocolVersion: Int = WireProtocol.version, role: String = "source", ferryVersion: String = FerryVersion.string,
                imageVersion: Int = Int(ImageFormat.version), pids: [Int32], memoryBytes: UInt64,
                allowMissingCPUFeatures: [String]? = nil, allowXSaveGrowth: Bool? = nil) {
        self.protocolVersion = protocolVersion; self.role = role; self.ferryVersion = ferryVersion
        self.imageVersion = imageVersion; self.pids = pids; self.memoryBytes = memoryBytes
        self.allowMissingCPUFeatures = allowMissingCPUFeatures; self.allowXSaveGrowth = allowXSaveGrowth
    }
}

/// One area of the kernel's vDSO block as the target maps it.
public struct VDSOArea: Codable, Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var size: UInt64
    public init(name: String, size: UInt64) { self.name = name; self.size = size }
    public var description: String { "\(name) \(size / 1024) KiB" }
}

public struct Capabilities: Codable, Sendable, Equatable {
    public var protocolVersion: Int
    public var host: SourceHost
    public var vdso: [VDSOArea]
    /// The pids of HELLO that are in use on the target.
    public var pidsInUse: [Int32]
    /// The target restores into a fresh pid namespace, so pids need not be free.
    public var newPidNamespace: Bool
    public var freeMemoryBytes: UInt64

    public init(protocolVersion: Int = WireProtocol.version, host: SourceHost, vdso: [VDSOArea], pidsInUse: [Int32],
                newPidNamespace: Bool, freeMemoryBytes: UInt64) {
        self.protocolVersion = protocolVersion; self.host = host; self.vdso = vdso; self.pidsInUse = pidsInUse
        self.newPidNamespace = newPidNamespace; self.freeMemoryBytes = freeMemoryBytes
    }
}

public struct Verdict: Codable, Sendable, Equatable {
    public var go: Bool
    public var reasons: [String]
    public init(go: Bool, reasons: [String] = []) { self.go = go; self.reasons = reasons }
}

public struct Ack: Codable, Sendable, Equatable {
    /// The restored process, in the target's pid namespace.
    public var pid: Int32
    public var namespaceInit: Int32?
    /// Time the target spent from the first image byte to the process running.
    public var restoreMs: Double
    public var notes: [String]
    /// Where the target's part of the downtime went (first image byte → ACK), in order.
    public var phases: [Phase]?
    public init(pid: Int32, namespaceInit: Int32?, restoreMs: Double, notes: [String], phases: [Phase]? = nil) {
        self.pid = pid; self.namespaceInit = namespaceInit; self.restoreMs = restoreMs; self.notes = notes; self.phases = phases
    }
}

/// One named part of a duration.
public struct Phase: Codable, Sendable, Equatable {
    public var name: String
    public var ms: Double
    public init(name: String, ms: Double) { self.name = name; self.ms = ms }
    public static func from(_ timer: PhaseTimer) -> [Phase] { timer.summary.map { Phase(name: $0.name, ms: $0.ms) } }
}

/// NACK and ABORT.
public struct Reason: Codable, Sendable, Equatable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

enum WireJSON {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        (try? ImageJSON.encode(value)) ?? []
    }

    static func decode<T: Decodable>(_ type: T.Type, _ frame: Frame) throws -> T {
        let bytes = frame.payload.getBytes(at: frame.payload.readerIndex, length: frame.payload.readableBytes) ?? []
        do { return try ImageJSON.decode(type, from: bytes) } catch {
            throw MigrationError("protocol error: \(frame.type) message is not valid: \(String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " "))")
        }
    }
}
