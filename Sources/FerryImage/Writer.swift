import Foundation

/// Writes the header and records of one file or stream (see `ImageFormat`).
public final class RecordWriter {
    public let sink: ByteSink
    public internal(set) var recordCount: UInt64 = 0
    public internal(set) var pageBytes: UInt64 = 0
    private var finished = false
    /// Open while pages are written through it; any other record closes it first.
    private var stream: PageRecordStream?
    /// Whether `pageStream` writes with O_DIRECT where the file allows it.
    public var directIO = false

    public init(sink: ByteSink, kind: EncodingKind, capabilities: UInt64 = ImageFormat.knownCapabilities) throws {
        self.sink = sink
        var h = LEWriter()
        h.bytes.append(contentsOf: ImageFormat.magic)
        h.u16(ImageFormat.version)
        h.u16(UInt16(ImageFormat.headerSize))
        h.u32(kind.rawValue)
        h.u64(capabilities)
        h.u32(0)
        h.u32(crc32c(h.bytes))
        try h.bytes.withUnsafeBytes { try sink.write($0) }
    }

    deinit { stream?.abort() }

    /// Page records built in place and written by a second thread
    /// (`PageRecordStream`), for a FileSink; nil for other sinks. The same
    /// stream until another record is written.
    public func pageStream() throws -> PageRecordStream? {
        precondition(!finished, "pages after END")
        if let stream { return stream }
        guard let file = sink as? FileSink else { return nil }
        stream = try PageRecordStream(records: self, file: file, directIO: directIO)
        return stream
    }

    private func closeStream() throws {
        guard let s = stream else { return }
        stream = nil
        try s.close()
    }

    /// Writes one record whose payload is `prefix` followed by `body`.
    public func writeRecord(_ type: RecordType, prefix: [UInt8], body: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws {
        precondition(!finished, "record after END")
        try closeStream()
        let length = prefix.count + body.count
        guard length <= type.maxLength else {
            throw ImageError(file: "<writer>", "record \(type) of \(length) bytes exceeds its cap of \(type.maxLength)")
        }
        var h = LEWriter()
        h.u32(type.rawValue)
        h.u32(UInt32(length))
        h.bytes.append(contentsOf: prefix)
        var crc = crc32c(h.bytes)
        if body.count > 0 { crc = crc32c(body, crc) }
        try h.bytes.withUnsafeBytes { try sink.write($0) }
        if body.count > 0 { try sink.write(body) }
        var t = LEWriter()
        t.u32(crc)
        try t.bytes.withUnsafeBytes { try sink.write($0) }
        recordCount += 1
    }

    public func writeJSON<T: Encodable>(_ type: RecordType, _ value: T) throws {
        try writeRecord(type, prefix: try ImageJSON.encode(value))
    }

    /// Writes `data` (a whole number of pages at `address`) as PAGES records.
    public func writePages(pid: Int32, address: UInt64, data: UnsafeRawBufferPointer) throws {
        let page = ImageFormat.pageSize
        precondition(data.count % page == 0 && address % UInt64(page) == 0)
        var offset = 0
        while offset < data.count {
            let n = min(data.count - offset, PageRecord.maxPages * page)
            var p = LEWriter()
            p.u32(UInt32(bitPattern: pid))
            p.u32(UInt32(n / page))
            p.u64(address + UInt64(offset))
            try writeRecord(.pages, prefix: p.bytes, body: UnsafeRawBufferPointer(rebasing: data[offset..<offset + n]))
            pageBytes += UInt64(n)
            offset += n
        }
    }

    public func writeZeroPages(pid: Int32, address: UInt64, count: Int) throws {
        var left = count
        var addr = address
        while left > 0 {
            let n = min(left, PageRecord.maxZeroPages)
            var p = LEWriter()
            p.u32(UInt32(bitPattern: pid))
            p.u32(UInt32(n))
            p.u64(addr)
            try writeRecord(.zero, prefix: p.bytes)
            left -= n
            addr += UInt64(n * ImageFormat.pageSize)
        }
    }

    public func writePipe(_ pipe: PipeData) throws {
        var p = LEWriter()
        p.u64(pipe.pipeID)
        try pipe.bytes.value.withUnsafeBytes { try writeRecord(.pipe, prefix: p.bytes, body: $0) }
    }

    /// The contents of one file, in records of `FileContentsRecord.chunkBytes` at most (one for an empty file).
    public func writeContents(_ c: FileContents) throws {
        var header = c
        header.bytes = Bytes([])
        var offset = 0
        repeat {
            let n = min(c.bytes.count - offset, FileContentsRecord.chunkBytes)
            let json = try ImageJSON.encode(FileContentsChunk(file: header, offset: UInt64(offset)))
            var p = LEWriter()
            p.u32(UInt32(json.count))
            try c.bytes.value.withUnsafeBytes { all in
                try writeRecord(.contents, prefix: p.bytes + json, body: UnsafeRawBufferPointer(rebasing: all[offset..<offset + n]))
            }
            offset += n
        } while offset < c.bytes.count
    }

    /// Writes END and flushes. Nothing may follow.
    public func finish() throws {
        var p = LEWriter()
        p.u64(recordCount)
        p.u64(pageBytes)
        try writeRecord(.end, prefix: p.bytes)
        finished = true
        try sink.flush()
    }
}

/// JSON as used in metadata records: sorted keys, so the same metadata always
/// encodes to the same bytes.
public enum ImageJSON {
    public static func encode<T: Encodable>(_ value: T, pretty: Bool = false) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        return Array(try e.encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}

/// Writes everything that is not page contents.
extension RecordWriter {
    public func writeMetadata(_ meta: ImageMetadata) throws {
        try writeJSON(.source, meta.source)
        if let c = meta.container { try writeRecord(.container, prefix: c.value) }
        for p in meta.processes { try writeJSON(.process, p) }
        for pipe in meta.pipes { try writePipe(pipe) }
        for c in meta.contents { try writeContents(c) }
    }
}

/// Where a checkpoint writes: a directory image or a stream. Page contents
/// are streamed (never collected in memory).
public protocol ImageSink: AnyObject {
    /// Called once, after capture and before any page: a stream writes the
    /// metadata here so a receiver can act on pages as they arrive.
    func beginPages(metadata: ImageMetadata) throws
    func writePages(pid: Int32, address: UInt64, data: UnsafeRawBufferPointer) throws
    func writeZeroPages(pid: Int32, address: UInt64, count: Int) throws
    /// Writes the metadata and completes the image.
    func finish(metadata: ImageMetadata) throws
    /// True for a page the sink does not want (pre-copy's final image: a page
    /// the target has and that was not written since): it is not even read.
    func skipsPage(pid: Int32, address: UInt64) -> Bool
    /// True for a mapping whose pages the sink does not take from the
    /// checkpoint at all (pre-copy's final image sends the tracked memory itself).
    func skipsMapping(pid: Int32, mapping: Mapping) -> Bool
    /// Whether a child's pages still shared copy-on-write with its parent
    /// are stored once, in the parent (`ProcessImage.inheritedPages`).
    /// Pre-copy's final image says no: its target built the tree before.
    var storesInheritedPagesOnce: Bool { get }
    /// Where pages can be read straight into their records, or nil: then
    /// they come through `writePages`/`writeZeroPages`.
    func pageStream() throws -> PageRecordStream?
}

extension ImageSink {
    public func beginPages(metadata: ImageMetadata) throws {}
    public func skipsPage(pid: Int32, address: UInt64) -> Bool { false }
    public func skipsMapping(pid: Int32, mapping: Mapping) -> Bool { false }
    public var storesInheritedPagesOnce: Bool { true }
    public func pageStream() throws -> PageRecordStream? { nil }
}

/// `DIR/meta.img` + `DIR/pages.img`.
public final class DirectoryImageWriter: ImageSink {
    public let directory: String
    private let pages: RecordWriter

    /// `directIO`: pages.img is written with O_DIRECT (see `PageRecordStream`).
    public init(directory: String, directIO: Bool = false) throws {
        self.directory = directory
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw ImageError(file: directory, "cannot create the image directory: \(error.localizedDescription)")
            }
        } else if !isDir.boolValue {
            throw ImageError(file: directory, "exists and is not a directory; choose another -o path")
        }
        // A stale meta.img from an earlier run must not pair with new pages.
        unlink(directory + "/" + ImageFormat.metaFileName)
        pages = try RecordWriter(sink: try FileSink(path: directory + "/" + ImageFormat.pagesFileName), kind: .directoryPages)
        pages.directIO = directIO
    }

    public var pageBytes: UInt64 { pages.pageBytes }

    public func pageStream() throws -> PageRecordStream? { try pages.pageStream() }

    public func writePages(pid: Int32, address: UInt64, data: UnsafeRawBufferPointer) throws {
        try pages.writePages(pid: pid, address: address, data: data)
    }

    public func writeZeroPages(pid: Int32, address: UInt64, count: Int) throws {
        try pages.writeZeroPages(pid: pid, address: address, count: count)
    }

    /// Completes pages.img, then writes meta.img last: a directory without
    /// meta.img is an unfinished checkpoint.
    public func finish(metadata: ImageMetadata) throws {
        try pages.finish()
        let meta = try RecordWriter(sink: try FileSink(path: directory + "/" + ImageFormat.metaFileName), kind: .directoryMeta)
        try meta.writeMetadata(metadata)
        try meta.finish()
    }
}

/// One stream holding everything (migration, or `--stream` to a pipe).
public final class StreamImageWriter: ImageSink {
    public let records: RecordWriter

    /// Writes the header and the SOURCE record at once, so the stream can
    /// carry pages before the rest of the metadata is known.
    public init(sink: ByteSink, source: SourceHost) throws {
        records = try RecordWriter(sink: sink, kind: .stream)
        try records.writeJSON(.source, source)
    }

    public func writePages(pid: Int32, address: UInt64, data: UnsafeRawBufferPointer) throws {
        try records.writePages(pid: pid, address: address, data: data)
    }

    public func writeZeroPages(pid: Int32, address: UInt64, count: Int) throws {
        try records.writeZeroPages(pid: pid, address: address, count: count)
    }

    public func pageStream() throws -> PageRecordStream? { try records.pageStream() }

    private var metadataWritten = false

    /// Writes the container, processes and pipes (once).
    public func beginPages(metadata: ImageMetadata) throws {
        guard !metadataWritten else { return }
        metadataWritten = true
        if let c = metadata.container { try records.writeRecord(.container, prefix: c.value) }
        for p in metadata.processes { try records.writeJSON(.process, p) }
        for pipe in metadata.pipes { try records.writePipe(pipe) }
        for c in metadata.contents { try records.writeContents(c) }
    }

    /// Writes the metadata if `beginPages` did not, then END.
    public func finish(metadata: ImageMetadata) throws {
        try beginPages(metadata: metadata)
        try records.finish()
    }
}
