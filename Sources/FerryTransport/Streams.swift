import FerryImage
import NIOCore

/// The image stream written by a checkpoint, sent as IMAGE_CHUNK frames of
/// `WireProtocol.chunkSize` bytes; blocks while the connection is behind.
public final class ConnectionSink: ByteSink {
    let connection: Connection
    /// The IMAGE_CHUNK being filled: its header's room first, then the bytes (sent without another copy).
    private var frame: ByteBuffer
    /// Also written to, when the image is kept (`--keep-image`).
    let copy: ByteSink?
    /// Called after each chunk with the image bytes sent so far.
    var progress: ((UInt64) -> Void)?

    public init(connection: Connection, copy: ByteSink? = nil) {
        self.connection = connection
        self.copy = copy
        frame = ConnectionSink.emptyFrame(connection)
    }

    private static func emptyFrame(_ c: Connection) -> ByteBuffer {
        FrameEncoding.buffer(capacity: WireProtocol.chunkSize, allocator: c.channel.allocator)
    }

    private var used: Int { frame.readableBytes - WireProtocol.headerSize }

    public func write(_ data: UnsafeRawBufferPointer) throws {
        try copy?.write(data)
        var offset = 0
        while offset < data.count {
            let n = min(WireProtocol.chunkSize - used, data.count - offset)
            frame.writeBytes(UnsafeRawBufferPointer(rebasing: data[offset..<offset + n]))
            offset += n
            if used == WireProtocol.chunkSize { try sendBuffered() }
        }
    }

    public func flush() throws {
        try copy?.flush()
        if used > 0 { try sendBuffered() }
    }

    private func sendBuffered() throws {
        var full = frame
        frame = ConnectionSink.emptyFrame(connection)
        try connection.send(imageChunk: &full)
        progress?(connection.bytesSent)
    }
}

/// The image stream as received: IMAGE_CHUNK payloads in order. An ABORT,
/// any other message, a closed connection or a stall is an error naming why.
public final class ConnectionSource: ByteSource {
    let connection: Connection
    /// What is left of the current IMAGE_CHUNK, last piece first.
    private var pieces: [ByteBuffer] = []
    public let name: String
    public private(set) var bytesReceived: UInt64 = 0
    /// Also written to, when the image is kept (`--keep-image`).
    let copy: ByteSink?

    private var first: Frame?

    /// `first`: a frame already taken from the connection (it is read first).
    public init(connection: Connection, first: Frame? = nil, copy: ByteSink? = nil) {
        self.connection = connection
        self.copy = copy
        self.first = first
        name = "stream from \(connection.peer)"
    }

    public func read(into out: UnsafeMutableRawBufferPointer) throws -> Int {
        // An empty buffer may have no address to copy to.
        guard out.count > 0 else { return 0 }
        while pieces.isEmpty {
            let f: Frame
            if let pending = first { f = pending; first = nil } else { f = try connection.receive(waitingFor: "image data") }
            guard f.type == .imageChunk else {
                throw Connection.unexpected(f, wanted: "image data", peer: connection.peer)
            }
            pieces = f.pieces.filter { $0.readableBytes > 0 }
            pieces.reverse()
        }
        let n = min(out.count, pieces[pieces.count - 1].readableBytes)
        pieces[pieces.count - 1].withUnsafeReadableBytes { src in
            out.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: n)
        }
        pieces[pieces.count - 1].moveReaderIndex(forwardBy: n)
        if pieces[pieces.count - 1].readableBytes == 0 { pieces.removeLast() }
        if let copy { try copy.write(UnsafeRawBufferPointer(start: out.baseAddress, count: n)) }
        bytesReceived += UInt64(n)
        return n
    }
}
