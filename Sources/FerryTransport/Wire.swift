import FerryImage
import NIOCore

// The migration wire protocol. One connection (mutual TLS, a Unix socket
// whose peer's uid is checked, or plain TCP when asked for explicitly with
// --insecure) carries framed messages:
//
//  frame header (12 bytes, little-endian)
//  +0  u32 type      MessageType
//  +4  u32 length    payload bytes; capped per type (checked before reading)
//  +8  u32 crc32c    over type, length and payload
//  +12 payload
//
//  source                                  target
//  HELLO (version, the pids it needs,
//   memory, CPU-check allowances)  ──▶
//                                  ◀──     CAPABILITIES (host, CPU/XSAVE, vDSO,
//                                           whether the pids are all free, free
//                                           memory, the allowances it grants) or NACK
//  VERDICT (go / refused + reasons) ──▶    decided BEFORE anything is frozen
//  [PRECOPY_META (preliminary metadata)  the target builds the processes and
//   PRECOPY_PAGES × n, in rounds   ──▶     their address spaces, fills pages
//   (each a batch of runs, PageBatch)
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
    /// 3: PRECOPY_PAGES carries a batch of runs (`PageBatch`), not one run.
    /// 4: CAPABILITIES says only whether HELLO's pids are all free (not which
    ///    are in use) and which CPU-check allowances the target grants; the
    ///    target refuses any other version with a NACK.
    public static let version = 4
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
    /// The payload as it arrived: pieces of the connection's read buffers, in
    /// order, not copied (a 1 MiB page batch spans several reads).
    public var pieces: [ByteBuffer]
    public var byteCount: Int

    public init(type: MessageType, payload: ByteBuffer) { self.init(type: type, pieces: [payload]) }

    init(type: MessageType, pieces: [ByteBuffer]) {
        self.type = type; self.pieces = pieces
        byteCount = pieces.reduce(0) { $0 + $1.readableBytes }
    }

    /// The payload in one buffer (a copy when it arrived in several pieces; control messages are small).
    public var payload: ByteBuffer {
        if pieces.count == 1 { return pieces[0] }
        var b = ByteBufferAllocator().buffer(capacity: byteCount)
        for var p in pieces { b.writeBuffer(&p) }
        return b
    }
}

/// Any failure of the migration protocol; its description is the one-line reason shown to the user.
public struct MigrationError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Turns bytes from the connection into frames, strictly: the header is
/// checked before any of the payload is kept, the checksum once it is all
/// there. Payloads are not copied: a frame is the slices of the read buffers
/// it arrived in, except where a read filled less than half its buffer
/// (those bytes are copied out, so a slice never keeps a mostly empty
/// buffer alive) and for small frames, which are copied into one buffer.
final class FrameAssembler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Frame
    /// Payloads up to this size are gathered into one buffer.
    static let gatherBelow = 64 << 10

    /// Offset in the connection, for error messages.
    private var offset: UInt64 = 0
    private var header: [UInt8] = []
    private var current: (type: MessageType, length: Int, crc: UInt32)?
    private var pieces: [ByteBuffer] = []
    private var gathered: ByteBuffer?
    private var received = 0
    private var sum: UInt32 = 0
    private var failed = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var input = unwrapInboundIn(data)
        // A read that filled less than half its buffer is copied, not sliced.
        if input.readableBytes < input.capacity / 2 && input.readableBytes > 0 {
            var compact = context.channel.allocator.buffer(capacity: input.readableBytes)
            compact.writeBuffer(&input)
            input = compact
        }
        do {
            while input.readableBytes > 0 { try consume(&input, context: context) }
        } catch {
            failed = true
            context.fireErrorCaught(error)
        }
    }

    private func consume(_ input: inout ByteBuffer, context: ChannelHandlerContext) throws {
        guard let frame = current else {
            let n = min(WireProtocol.headerSize - header.count, input.readableBytes)
            header += input.readBytes(length: n)!
            guard header.count == WireProtocol.headerSize else { return }
            let word = { (at: Int) in UInt32(self.header[at]) | UInt32(self.header[at + 1]) << 8 | UInt32(self.header[at + 2]) << 16 | UInt32(self.header[at + 3]) << 24 }
            guard let type = MessageType(rawValue: word(0)) else {
                throw MigrationError("protocol error at byte \(offset): unknown message type \(word(0)) (garbage, or a newer ferry)")
            }
            let length = Int(word(4))
            guard length <= type.maxLength else {
                throw MigrationError("protocol error at byte \(offset): \(type) claims \(length) bytes, more than its cap of \(type.maxLength)")
            }
            current = (type, length, word(8))
            sum = header.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[0..<8])) }
            received = 0
            if length <= Self.gatherBelow { gathered = context.channel.allocator.buffer(capacity: length) }
            if length == 0 { try complete(context) }
            return
        }
        let n = min(frame.length - received, input.readableBytes)
        let piece = input.readSlice(length: n)!
        sum = piece.withUnsafeReadableBytes { crc32c($0, sum) }
        if gathered != nil { gathered!.writeImmutableBuffer(piece) } else { pieces.append(piece) }
        received += n
        if received == frame.length { try complete(context) }
    }

    private func complete(_ context: ChannelHandlerContext) throws {
        let frame = current!
        guard sum == frame.crc else {
            throw MigrationError("protocol error at byte \(offset): \(frame.type) checksum mismatch (corrupted)")
        }
        let out = gathered.map { Frame(type: frame.type, pieces: [$0]) } ?? Frame(type: frame.type, pieces: pieces)
        offset += UInt64(WireProtocol.headerSize + frame.length)
        header.removeAll(keepingCapacity: true)
        current = nil
        pieces = []
        gathered = nil
        context.fireChannelRead(wrapInboundOut(out))
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !failed && (current != nil || !header.isEmpty) {
            failed = true
            context.fireErrorCaught(MigrationError("protocol error: the connection ended inside a message (\(header.count + received) bytes of it)"))
        }
        context.fireChannelInactive()
    }
}

enum FrameEncoding {
    /// A frame ready to write: header and payload in one buffer.
    static func encode(_ type: MessageType, _ payload: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var b = buffer(capacity: payload.count, allocator: allocator)
        if payload.count > 0 { b.writeBytes(payload) }
        seal(&b, type)
        return b
    }

    /// An empty frame with room for `capacity` payload bytes, its header's
    /// room already skipped: the payload is written in place, then `seal`.
    static func buffer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var b = allocator.buffer(capacity: WireProtocol.headerSize + capacity)
        b.moveWriterIndex(forwardBy: WireProtocol.headerSize)
        return b
    }

    /// Fills in the header of `frame`, whose first headerSize bytes were left
    /// for it and whose payload follows: type, length, and the checksum over both and the payload.
    static func seal(_ frame: inout ByteBuffer, _ type: MessageType) {
        let start = frame.readerIndex, length = frame.readableBytes - WireProtocol.headerSize
        precondition(length >= 0 && length <= type.maxLength, "\(type) of \(length) bytes exceeds its cap")
        frame.setInteger(type.rawValue, at: start, endianness: .little)
        frame.setInteger(UInt32(length), at: start + 4, endianness: .little)
        let sum = frame.withUnsafeReadableBytes { all in
            crc32c(UnsafeRawBufferPointer(rebasing: all[WireProtocol.headerSize...]), crc32c(UnsafeRawBufferPointer(rebasing: all[0..<8])))
        }
        frame.setInteger(sum, at: start + 8, endianness: .little)
    }
}

/// The payload of PRECOPY_PAGES: runs of pages back to back, each
///
///  +0  u32 pid
///  +4  u32 page count; bit 31 set: zero pages, no data follows
///  +8  u64 address (page-aligned)
///  +16 page count × 4096 bytes, unless zero
///
/// Runs are batched so that a round of small runs (a pattern of holes and
/// zero pages makes runs of a few pages) costs one frame, one write and one
/// inbox hand-off per ~1 MiB instead of per run.
public struct PageBatch {
    static let runHeader = 16
    static let zeroFlag: UInt32 = 1 << 31
    /// Payload bytes at most: a batch is sent before a run would overflow it.
    public static let capacity = 1 << 20
    /// Data pages per run at most (longer runs are split), so one always fits an empty batch.
    public static let maxRunPages = (capacity - runHeader) / 4096

    private(set) var frame: ByteBuffer
    /// Bytes of page data in the batch.
    public private(set) var dataBytes = 0

    public init(allocator: ByteBufferAllocator) {
        frame = FrameEncoding.buffer(capacity: PageBatch.capacity, allocator: allocator)
    }

    public var isEmpty: Bool { frame.readableBytes == WireProtocol.headerSize }

    /// Whether a run of `count` pages (data or zero) fits.
    public func fits(pages count: Int, data: Bool) -> Bool {
        frame.readableBytes - WireProtocol.headerSize + PageBatch.runHeader + (data ? count * 4096 : 0) <= PageBatch.capacity
    }

    /// Appends one run; it must fit (`fits`), and a data run holds at most `maxRunPages`.
    public mutating func add(pid: Int32, address: UInt64, data: UnsafeRawBufferPointer?, count: Int) {
        precondition(fits(pages: count, data: data != nil) && count >= 1 && (data == nil || data!.count == count * 4096))
        frame.writeInteger(UInt32(bitPattern: pid), endianness: .little)
        frame.writeInteger(UInt32(count) | (data == nil ? PageBatch.zeroFlag : 0), endianness: .little)
        frame.writeInteger(address, endianness: .little)
        if let data { frame.writeBytes(data); dataBytes += data.count }
    }

    /// Each run of a received PRECOPY_PAGES frame, in order, as a span over
    /// the frame's own pieces: nothing is copied, except a page that straddles
    /// two pieces, which goes through a bounce page as a run of its own. Each
    /// header is checked before its run is used: alignment, counts within the
    /// image caps, data within the payload. (A malformed batch fails part way;
    /// the migration then ends and the target discards the whole process.)
    public static func forEachRun(_ frame: Frame, peer: String, _ body: (PageSpan) throws -> Void) throws {
        var cursor = PieceCursor(frame.pieces)
        let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { bounce.deallocate() }
        while cursor.remaining > 0 {
            guard cursor.remaining >= runHeader else {
                throw MigrationError("protocol error: PRECOPY_PAGES from \(peer) ends inside a run header")
            }
            let pid = Int32(bitPattern: cursor.read(UInt32.self)), word = cursor.read(UInt32.self), address = cursor.read(UInt64.self)
            let zero = word & zeroFlag != 0, n = Int(word & ~zeroFlag)
            guard address % 4096 == 0, n >= 1, n <= (zero ? PageRecord.maxZeroPages : PageRecord.maxPages),
                  address <= UInt64.max - UInt64(n) * 4096 else {
                throw MigrationError("protocol error: PRECOPY_PAGES from \(peer): a run of \(n) \(zero ? "zero " : "")pages at 0x\(String(address, radix: 16))")
            }
            if zero {
                try body(PageSpan(pid: pid, address: address, pageCount: n, data: nil))
                continue
            }
            guard cursor.remaining >= n * 4096 else {
                throw MigrationError("protocol error: PRECOPY_PAGES from \(peer) holds \(cursor.remaining) bytes for a run of \(n) pages")
            }
            var page = 0
            while page < n {
                let at = address + UInt64(page * 4096)
                let whole = min(n - page, cursor.contiguous / 4096)
                if whole > 0 {
                    try cursor.consume(whole * 4096) { try body(PageSpan(pid: pid, address: at, pageCount: whole, data: $0)) }
                    page += whole
                } else {
                    cursor.copy(into: bounce)
                    try body(PageSpan(pid: pid, address: at, pageCount: 1, data: UnsafeRawBufferPointer(bounce)))
                    page += 1
                }
            }
        }
    }
}

/// Reads through the pieces of a frame as one sequence of bytes.
struct PieceCursor {
    private var pieces: [ByteBuffer]
    private var index = 0
    private(set) var remaining: Int

    init(_ pieces: [ByteBuffer]) {
        self.pieces = pieces.filter { $0.readableBytes > 0 }
        remaining = self.pieces.reduce(0) { $0 + $1.readableBytes }
    }

    /// Bytes readable without crossing into the next piece.
    var contiguous: Int { index < pieces.count ? pieces[index].readableBytes : 0 }

    private mutating func advance(_ n: Int) {
        pieces[index].moveReaderIndex(forwardBy: n)
        remaining -= n
        if pieces[index].readableBytes == 0 { index += 1 }
    }

    /// `count` bytes of the current piece (at most `contiguous`), then moves past them.
    mutating func consume<R>(_ count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(count <= contiguous)
        let r = try pieces[index].withUnsafeReadableBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        advance(count)
        return r
    }

    /// Fills `out` (at most `remaining` bytes), across pieces.
    mutating func copy(into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count <= remaining)
        var done = 0
        while done < out.count {
            let n = min(out.count - done, contiguous)
            consume(n) { (out.baseAddress! + done).copyMemory(from: $0.baseAddress!, byteCount: n) }
            done += n
        }
    }

    /// A little-endian integer (at most `remaining` bytes), across pieces.
    mutating func read<T: FixedWidthInteger>(_ type: T.Type) -> T {
        var value: T = 0
        withUnsafeMutableBytes(of: &value) { copy(into: $0) }
        return T(littleEndian: value)
    }
}

// MARK: - Control messages

public struct Hello: Codable, Sendable, Equatable {
    public var protocolVersion: Int
    public var role: String
    public var ferryVersion: String
    /// The image format version the sender writes.
    public var imageVersion: Int
    /// Every pid and tid of the tree to migrate (the target says whether all are free).
    public var pids: [Int32]
    /// Resident memory of the tree, to compare with the target's free memory.
    public var memoryBytes: UInt64
    /// CPU features (cpuinfo names) the source CPU has and the target may
    /// lack, because the process is known not to use them (`migrate
    /// --allow-missing-cpu-features`); the target's restore accepts them as
    /// `restore --allow-missing-cpu-features` does, as far as the target's
    /// own operator allows (`Allowances.granted`). Absent: none.
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
    /// Every pid of HELLO is free on the target (which ones are taken is not
    /// said: the answer reveals no more of the target's processes than that).
    public var pidsFree: Bool
    /// The target restores into a fresh pid namespace, so pids need not be free.
    public var newPidNamespace: Bool
    public var freeMemoryBytes: UInt64
    /// The CPU-check allowances the target's operator permits a source to ask
    /// for (`serve --allow-missing-cpu-features/--allow-xsave-growth`).
    public var grantsMissingCPUFeatures: [String]
    public var grantsXSaveGrowth: Bool

    public init(protocolVersion: Int = WireProtocol.version, host: SourceHost, vdso: [VDSOArea], pidsFree: Bool,
                newPidNamespace: Bool, freeMemoryBytes: UInt64, grants: Allowances = Allowances()) {
        self.protocolVersion = protocolVersion; self.host = host; self.vdso = vdso; self.pidsFree = pidsFree
        self.newPidNamespace = newPidNamespace; self.freeMemoryBytes = freeMemoryBytes
        grantsMissingCPUFeatures = grants.missingCPUFeatures.sorted(); grantsXSaveGrowth = grants.xsaveGrowth
    }

    public var grants: Allowances { Allowances(missingCPUFeatures: Set(grantsMissingCPUFeatures), xsaveGrowth: grantsXSaveGrowth) }
}

/// Relaxations of the target's CPU checks (`restore --allow-missing-cpu-features`,
/// `--allow-xsave-growth`). In a migration the source asks for them (it knows
/// the process) and the target's operator permits them (`serve`'s options):
/// only what both say applies. A peer can never switch off a check the
/// target's operator did not.
public struct Allowances: Sendable, Equatable {
    public var missingCPUFeatures: Set<String>
    public var xsaveGrowth: Bool
    public init(missingCPUFeatures: Set<String> = [], xsaveGrowth: Bool = false) {
        self.missingCPUFeatures = missingCPUFeatures; self.xsaveGrowth = xsaveGrowth
    }

    /// What a source asking for `self` gets from a target that permits `permitted`.
    public func granted(by permitted: Allowances) -> Allowances {
        Allowances(missingCPUFeatures: missingCPUFeatures.intersection(permitted.missingCPUFeatures),
                   xsaveGrowth: xsaveGrowth && permitted.xsaveGrowth)
    }
}

extension Hello {
    /// The allowances this HELLO asks for.
    public var requested: Allowances {
        Allowances(missingCPUFeatures: Set(allowMissingCPUFeatures ?? []), xsaveGrowth: allowXSaveGrowth ?? false)
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
    /// UTF-8 bytes of a reason sent at most: even JSON-escaped (6 bytes a byte at
    /// worst) far below the 64 KiB frame cap, so a long error (one quoting hostile
    /// input) never makes the frame oversized.
    public static let maxBytes = 4096
    public init(_ reason: String) { self.reason = Reason.clipped(reason, to: Reason.maxBytes) }

    /// `text` cut to at most `bytes` UTF-8 bytes (then marked with "…").
    static func clipped(_ text: String, to bytes: Int) -> String {
        text.utf8.count <= bytes ? text : String(decoding: text.utf8.prefix(bytes), as: UTF8.self) + "…"
    }
}

extension Verdict {
    /// Reasons a refusal carries at most, each clipped to `maxReasonBytes`: they
    /// quote the target's CAPABILITIES (up to 1 MiB), and must fit a 64 KiB VERDICT.
    public static let maxReasons = 8, maxReasonBytes = 1024

    /// A refusal whose reasons fit the VERDICT frame however long the originals are.
    public static func refused(_ reasons: [String]) -> Verdict {
        var kept = reasons.prefix(maxReasons).map { Reason.clipped($0, to: maxReasonBytes) }
        if reasons.count > maxReasons { kept.append("and \(reasons.count - maxReasons) more") }
        return Verdict(go: false, reasons: kept)
    }
}

extension Hello {
    /// Pids and tids one HELLO names at most: a tree of the image's process and thread caps.
    public static let maxPids = Validation.maxProcesses + Validation.maxThreads

    /// Why a target refuses this HELLO before answering it, or nil. The answer
    /// (CAPABILITIES) lists the pids in use, so a HELLO naming more than a
    /// tree can hold could make it larger than its frame.
    public var problem: String? {
        if pids.count > Hello.maxPids { return "HELLO names \(pids.count) pids, more than a tree ferry migrates (\(Hello.maxPids))" }
        if (allowMissingCPUFeatures?.count ?? 0) > 1024 { return "HELLO allows \(allowMissingCPUFeatures!.count) missing CPU features, more than exist" }
        if ferryVersion.utf8.count > 256 || role.utf8.count > 256 { return "HELLO carries an overlong version or role" }
        return nil
    }
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
