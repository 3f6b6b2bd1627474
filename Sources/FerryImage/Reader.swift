/// A run of pages read from an image.
public struct PageRun: Sendable, Equatable {
    public var pid: Int32
    public var address: UInt64
    public var pageCount: Int
    /// `nil` for a ZERO record.
    public var data: [UInt8]?
    public var byteCount: Int { pageCount * ImageFormat.pageSize }

    public init(pid: Int32, address: UInt64, pageCount: Int, data: [UInt8]?) {
        self.pid = pid; self.address = address; self.pageCount = pageCount; self.data = data
    }

    /// A run holding its own copy of `span`'s pages.
    public init(copying span: PageSpan) {
        self.init(pid: span.pid, address: span.address, pageCount: span.pageCount, data: span.data.map { Array($0) })
    }

    /// The run as a span over its own bytes, for the duration of `body`.
    public func withSpan<R>(_ body: (PageSpan) throws -> R) rethrows -> R {
        guard let data else { return try body(PageSpan(pid: pid, address: address, pageCount: pageCount, data: nil)) }
        return try data.withUnsafeBytes { try body(PageSpan(pid: pid, address: address, pageCount: pageCount, data: $0)) }
    }
}

/// A run of pages whose contents stay where they arrived (a received frame)
/// instead of being copied into a `PageRun`: valid only during the call it is passed to.
public struct PageSpan {
    public var pid: Int32
    public var address: UInt64
    public var pageCount: Int
    /// `nil` for zero pages; otherwise `pageCount` pages.
    public var data: UnsafeRawBufferPointer?
    public var byteCount: Int { pageCount * ImageFormat.pageSize }

    public init(pid: Int32, address: UInt64, pageCount: Int, data: UnsafeRawBufferPointer?) {
        precondition(data == nil || data!.count == pageCount * ImageFormat.pageSize)
        self.pid = pid; self.address = address; self.pageCount = pageCount; self.data = data
    }
}

public enum ImageRecord: Sendable {
    case source(SourceHost)
    case process(ProcessImage)
    case pipe(PipeData)
    case contents(FileContentsChunk, [UInt8])
    case container([UInt8])
    case pages(PageRun)
    case end(recordCount: UInt64, pageBytes: UInt64)
}

/// Reads the header and records of one file or stream, strictly: every
/// length is checked against its cap before allocation, every checksum is
/// verified, and input that ends before END is reported as truncated.
public final class RecordReader {
    public let source: ByteSource
    public let kind: EncodingKind
    public private(set) var offset: Int64 = 0
    /// Where the record last returned by `next()` starts (for error messages).
    public private(set) var recordOffset: Int64 = 0
    private var records: UInt64 = 0
    private var pageBytes: UInt64 = 0
    /// Payload bytes of the metadata records so far (`ImageFormat.maxMetadataBytes`).
    private var metadataBytes: UInt64 = 0
    /// Payload bytes of the CONTENTS records so far (`FileContentsRecord.maxTotalBytes`).
    private var contentsBytes: UInt64 = 0
    private var ended = false
    /// Bytes the source already delivered past the last read (`ByteSource.read(into:extra:)`):
    /// a record's checksum and the next record's header come with its pages, no syscall of their own.
    /// Allocated once the header is accepted: `deinit`, which frees it, does not run for an init that throws.
    private let ahead: UnsafeMutableRawBufferPointer
    private var aheadAt = 0, aheadEnd = 0

    public init(source: ByteSource, expecting expected: EncodingKind? = nil) throws {
        self.source = source
        // Read before `self` is fully initialized, so not through `readExactly` (nor its read-ahead).
        var header = [UInt8](repeating: 0, count: ImageFormat.headerSize)
        var done = 0
        try header.withUnsafeMutableBytes { h in
            while done < h.count {
                let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: h[done...]))
                if n == 0 {
                    throw ImageError(file: source.name, offset: Int64(done), "truncated: ended inside the image header (\(done) of \(h.count) bytes)")
                }
                done += n
            }
        }
        offset = Int64(done)
        kind = try header.withUnsafeBytes { try RecordReader.checkHeader($0, name: source.name, expecting: expected) }
        ahead = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
    }

    /// Checks the 32-byte image header; returns its encoding.
    static func checkHeader(_ b: UnsafeRawBufferPointer, name: String, expecting expected: EncodingKind?) throws -> EncodingKind {
        guard Array(b[0..<8]) == ImageFormat.magic else {
            throw ImageError(file: name, offset: 0, "not a ferry image (bad magic)")
        }
        let (version, hsize, rawKind, caps, reserved, crc) = (b.le16(8), b.le16(10), b.le32(12), b.le64(16), b.le32(24), b.le32(28))
        guard crc == crc32c(UnsafeRawBufferPointer(rebasing: b[0..<28])) else {
            throw ImageError(file: name, offset: 28, "header checksum mismatch (corrupted)")
        }
        guard version == ImageFormat.version else {
            throw ImageError(file: name, offset: 8,
                             "image version \(version) is not supported (this ferry reads version \(ImageFormat.version)); use a matching ferry")
        }
        guard Int(hsize) == ImageFormat.headerSize else {
            throw ImageError(file: name, offset: 10, "header size \(hsize) is wrong for version 1")
        }
        guard let k = EncodingKind(rawValue: rawKind) else {
            throw ImageError(file: name, offset: 12, "unknown encoding \(rawKind)")
        }
        if let expected, expected != k {
            throw ImageError(file: name, offset: 12, "holds encoding \(k) where \(expected) was expected")
        }
        let unknown = caps & ~ImageFormat.knownCapabilities
        guard unknown == 0 else {
            throw ImageError(file: name, offset: 16,
                             "requires capabilities 0x\(String(unknown, radix: 16)) this ferry does not understand; use a newer ferry")
        }
        guard reserved == 0 else {
            throw ImageError(file: name, offset: 24, "reserved header field is 0x\(String(reserved, radix: 16)), not 0")
        }
        return k
    }

    /// The type of a record whose header holds `rawType` and `length`, checked against its cap.
    static func recordType(_ rawType: UInt32, length: UInt32, name: String, at recordOffset: Int64) throws -> RecordType {
        guard let type = RecordType(rawValue: rawType) else {
            throw ImageError(file: name, offset: recordOffset, "unknown record type \(rawType)")
        }
        guard length <= type.maxLength else {
            throw ImageError(file: name, offset: recordOffset + 4,
                             "\(type) record claims \(length) bytes, more than its cap of \(type.maxLength)")
        }
        return type
    }

    /// The pid, page count and address of a PAGES or ZERO record whose
    /// payload starts with `p` (at most its 16-byte prefix) and holds
    /// `dataCount` bytes of pages after it.
    static func pageFields(_ type: RecordType, prefix p: UnsafeRawBufferPointer, dataCount: Int,
                           name: String, at recordOffset: Int64) throws -> (pid: Int32, count: Int, address: UInt64) {
        func fail(_ msg: String) -> ImageError { ImageError(file: name, offset: recordOffset, msg) }
        guard p.count >= 16 else { throw fail("\(type) record shorter than its header") }
        let pid = Int32(bitPattern: p.le32(0))
        let n = Int(p.le32(4))
        let addr = p.le64(8)
        let limit = type == .pages ? PageRecord.maxPages : PageRecord.maxZeroPages
        guard n >= 1, n <= limit else { throw fail("\(type) record with \(n) pages (allowed 1…\(limit))") }
        guard addr % UInt64(ImageFormat.pageSize) == 0 else { throw fail("page address 0x\(String(addr, radix: 16)) is not page-aligned") }
        let (end, overflow) = addr.addingReportingOverflow(UInt64(n) * UInt64(ImageFormat.pageSize))
        guard !overflow, end <= Validation.userAddressLimit else {
            throw fail("pages at 0x\(String(addr, radix: 16)) run outside the user address space")
        }
        if type == .zero {
            guard p.count == 16 else { throw fail("ZERO record has \(p.count - 16) stray bytes") }
        } else {
            guard dataCount == n * ImageFormat.pageSize else { throw fail("PAGES record holds \(dataCount) bytes for \(n) pages") }
        }
        return (pid, n, addr)
    }

    /// Checks an END record's totals against what was read.
    static func checkEnd(_ p: UnsafeRawBufferPointer, records: UInt64, pageBytes: UInt64, name: String, at recordOffset: Int64) throws {
        guard p.count == 16 else { throw ImageError(file: name, offset: recordOffset, "END record has the wrong size") }
        let (count, bytes) = (p.le64(0), p.le64(8))
        guard count == records, bytes == pageBytes else {
            throw ImageError(file: name, offset: recordOffset,
                             "END says \(count) records / \(bytes) page bytes but \(records) / \(pageBytes) were read")
        }
    }

    deinit { ahead.deallocate() }

    /// Throws unless the input ends right after END (files hold nothing after it).
    public func expectEndOfInput() throws {
        var byte = [UInt8](repeating: 0, count: 1)
        let n = try byte.withUnsafeMutableBytes { try fill($0) }
        guard n == 0 else { throw ImageError(file: source.name, offset: offset, "bytes after the END record") }
    }

    /// Fills `buffer` with the bytes read ahead, then from the source (which may
    /// deliver a few more, kept for the next read); short only at the end of input.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = min(aheadEnd - aheadAt, buffer.count)
        if done > 0 {
            buffer.baseAddress!.copyMemory(from: ahead.baseAddress! + aheadAt, byteCount: done)
            aheadAt += done
        }
        while done < buffer.count {
            let (n, extra) = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), extra: ahead)
            if n == 0 { break }
            done += n
            aheadAt = 0
            aheadEnd = extra
        }
        return done
    }

    private func readExactly(into buffer: inout [UInt8], what: String) throws {
        let count = buffer.count
        let done = try buffer.withUnsafeMutableBytes { try fill($0) }
        guard done == count else {
            throw ImageError(file: source.name, offset: offset + Int64(done), "truncated: ended inside \(what) (\(done) of \(count) bytes)")
        }
        offset += Int64(count)
    }

    /// The next record, or nil after END. Throws on anything malformed.
    public func next() throws -> ImageRecord? {
        if ended { return nil }
        let recordOffset = offset
        self.recordOffset = recordOffset
        var head = [UInt8](repeating: 0, count: 8)
        do {
            try readExactly(into: &head, what: "a record header")
        } catch let e as ImageError where e.message.hasPrefix("truncated") && e.offset == recordOffset {
            throw ImageError(file: source.name, offset: recordOffset, "truncated: no END record (the image is incomplete)")
        }
        let rawType = head.le32(0)
        let length = head.le32(4)
        let type = try RecordReader.recordType(rawType, length: length, name: source.name, at: recordOffset)
        if type == .contents {
            contentsBytes += UInt64(length)
            guard contentsBytes <= FileContentsRecord.maxTotalBytes else {
                throw ImageError(file: source.name, offset: recordOffset,
                                 "the CONTENTS records exceed \(FileContentsRecord.maxTotalBytes >> 30) GiB together (the image is damaged or hostile)")
            }
        } else if type != .pages && type != .zero && type != .end {
            metadataBytes += UInt64(length)
            guard metadataBytes <= ImageFormat.maxMetadataBytes else {
                throw ImageError(file: source.name, offset: recordOffset,
                                 "the metadata records exceed \(ImageFormat.maxMetadataBytes >> 20) MiB together (the image is damaged or hostile)")
            }
        }
        // Page contents are read straight into their own array (no copy out of the payload).
        let prefixLength = type == .pages ? min(Int(length), 16) : Int(length)
        let payload = try readGrowing(prefixLength, what: "a \(type) record")
        let pageData = type == .pages ? try readArray(Int(length) - prefixLength, what: "a \(type) record") : nil
        var tail = [UInt8](repeating: 0, count: 4)
        try readExactly(into: &tail, what: "a record checksum")
        var sum = crc32c(payload, crc32c(head))
        if let pageData { sum = crc32c(pageData, sum) }
        guard tail.le32(0) == sum else {
            throw ImageError(file: source.name, offset: recordOffset, "\(type) record checksum mismatch (corrupted)")
        }
        let record = try decode(type, payload, pageData: pageData ?? [], at: recordOffset)
        if case .end = record {
            try payload.withUnsafeBytes { try RecordReader.checkEnd($0, records: records, pageBytes: pageBytes, name: source.name, at: recordOffset) }
            ended = true
        } else {
            records += 1
        }
        return record
    }

    /// Bytes of a metadata payload allocated ahead of their arrival.
    static let growthStep = 1 << 20

    /// Reads `count` bytes (at most the record type's cap, checked before) into
    /// a new array that grows by `growthStep` as the bytes arrive: a record
    /// claiming 64 MiB in a stream that ends early costs what arrived, not 64 MiB.
    private func readGrowing(_ count: Int, what: String) throws -> [UInt8] {
        guard count > Self.growthStep else { return try readArray(count, what: what) }
        var bytes = try readArray(Self.growthStep, what: what, of: (0, count))
        while bytes.count < count {
            bytes += try readArray(min(Self.growthStep, count - bytes.count), what: what, of: (bytes.count, count))
        }
        return bytes
    }

    /// Reads `count` bytes into a new array without zero-filling it first;
    /// `of`: the bytes of `what` read before these and its size, for the message on truncation.
    private func readArray(_ count: Int, what: String, of part: (before: Int, total: Int)? = nil) throws -> [UInt8] {
        var failure: Error?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            do {
                let done = try fill(UnsafeMutableRawBufferPointer(buf))
                if done < count {
                    let (before, total) = part ?? (0, count)
                    failure = ImageError(file: source.name, offset: offset + Int64(done),
                                         "truncated: ended inside \(what) (\(before + done) of \(total) bytes)")
                }
            } catch {
                failure = error
            }
            if failure != nil { buf.initialize(repeating: 0) }
            initialized = count
        }
        if let failure { throw failure }
        offset += Int64(count)
        return bytes
    }

    /// `p` is the payload, except for PAGES: its 16-byte prefix, with the contents in `pageData`.
    private func decode(_ type: RecordType, _ p: [UInt8], pageData: [UInt8], at off: Int64) throws -> ImageRecord {
        func fail(_ msg: String) -> ImageError { ImageError(file: source.name, offset: off, msg) }
        func json<T: Decodable>(_ t: T.Type) throws -> T {
            do { return try ImageJSON.decode(t, from: p) } catch { throw fail("\(type) record is not valid: \(oneLine(error))") }
        }
        switch type {
        case .source: return .source(try json(SourceHost.self))
        case .process: return .process(try json(ProcessImage.self))
        case .container: return .container(p)
        case .pipe:
            guard p.count >= 8 else { throw fail("PIPE record shorter than its id") }
            return .pipe(PipeData(pipeID: p.le64(0), bytes: Array(p[8...])))
        case .contents:
            guard p.count >= 4, UInt64(p.le32(0)) <= UInt64(p.count - 4) else { throw fail("CONTENTS record shorter than its header") }
            let end = 4 + Int(p.le32(0))
            let chunk: FileContentsChunk
            do { chunk = try ImageJSON.decode(FileContentsChunk.self, from: Array(p[4..<end])) } catch {
                throw fail("CONTENTS record is not valid: \(oneLine(error))")
            }
            guard chunk.file.bytes.count == 0 else { throw fail("CONTENTS record carries bytes in its header") }
            return .contents(chunk, Array(p[end...]))
        case .pages, .zero:
            let f = try p.withUnsafeBytes { try RecordReader.pageFields(type, prefix: $0, dataCount: pageData.count, name: source.name, at: off) }
            if type == .zero { return .pages(PageRun(pid: f.pid, address: f.address, pageCount: f.count, data: nil)) }
            pageBytes += UInt64(pageData.count)
            return .pages(PageRun(pid: f.pid, address: f.address, pageCount: f.count, data: pageData))
        case .end:
            guard p.count == 16 else { throw fail("END record has the wrong size") }
            return .end(recordCount: p.le64(0), pageBytes: p.le64(8))
        }
    }
}

func oneLine(_ error: Error) -> String {
    String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
}

/// Accumulates metadata records into `ImageMetadata`.
struct MetadataCollector {
    var source: SourceHost?
    var processes: [ProcessImage] = []
    var pipes: [PipeData] = []
    var contents: [FileContents] = []
    var container: [UInt8]?

    mutating func take(_ record: ImageRecord, from name: String, at offset: Int64) throws {
        switch record {
        case .source(let s):
            guard source == nil else { throw ImageError(file: name, offset: offset, "two SOURCE records") }
            source = s
        case .process(let p): processes.append(p)
        case .pipe(let p): pipes.append(p)
        case .contents(let chunk, let bytes):
            // A file's records in order: the first at offset 0, each going on where the one before ended.
            if let last = contents.last, last.id == chunk.file.id {
                var header = last
                header.bytes = Bytes([])
                guard header == chunk.file, chunk.offset == UInt64(last.bytes.count) else {
                    throw ImageError(file: name, offset: offset, "CONTENTS record of file \(chunk.file.id) at offset \(chunk.offset) does not follow its part before (\(last.bytes.count) bytes)")
                }
                guard last.bytes.count + bytes.count <= FileContentsRecord.maxBytes else {
                    throw ImageError(file: name, offset: offset, "file contents \(chunk.file.id) grow past \(FileContentsRecord.maxBytes) bytes")
                }
                contents[contents.count - 1].bytes.value += bytes
            } else {
                guard chunk.offset == 0 else {
                    throw ImageError(file: name, offset: offset, "CONTENTS record of file \(chunk.file.id) starts at offset \(chunk.offset), not 0")
                }
                var c = chunk.file
                c.bytes = Bytes(bytes)
                contents.append(c)
            }
        case .container(let c):
            guard container == nil else { throw ImageError(file: name, offset: offset, "two CONTAINER records") }
            container = c
        case .pages, .end: break
        }
    }

    func metadata(from name: String) throws -> ImageMetadata {
        guard let source else { throw ImageError(file: name, "no SOURCE record") }
        let meta = ImageMetadata(source: source, processes: processes, pipes: pipes, container: container, fileContents: contents)
        try Validation.validate(meta, name: name)
        return meta
    }
}

/// Reads a directory image: the metadata at once, the pages on demand.
public final class DirectoryImageReader {
    public let directory: String
    public let metadata: ImageMetadata

    public init(directory: String) throws {
        self.directory = directory
        let metaPath = directory + "/" + ImageFormat.metaFileName
        let reader = try RecordReader(source: try FileSource(path: metaPath), expecting: .directoryMeta)
        var collector = MetadataCollector()
        while let r = try reader.next() {
            if case .pages = r { throw ImageError(file: metaPath, offset: reader.recordOffset, "page record in the metadata file") }
            try collector.take(r, from: metaPath, at: reader.recordOffset)
        }
        try reader.expectEndOfInput()
        metadata = try collector.metadata(from: metaPath)
        // Open pages.img now so a missing file is reported before any work starts.
        _ = try FileSource(path: directory + "/" + ImageFormat.pagesFileName)
    }

    /// Calls `body` for every page run in pages.img, checking each lies in a
    /// mapping of its process.
    public func forEachPageRun(_ body: (PageRun) throws -> Void) throws {
        let path = directory + "/" + ImageFormat.pagesFileName
        let reader = try RecordReader(source: try FileSource(path: path), expecting: .directoryPages)
        let index = MappingIndex(metadata)
        while let r = try reader.next() {
            switch r {
            case .pages(let run):
                try index.check(run, file: path, offset: reader.recordOffset)
                try body(run)
            case .end: break
            default: throw ImageError(file: path, offset: reader.recordOffset, "metadata record in the pages file")
            }
        }
        try reader.expectEndOfInput()
    }
}

/// Reads a whole stream image: metadata collected, page runs handed to `onPages` as they arrive.
///
/// The PROCESS records (and so the mappings) may come after the pages, so
/// each run is checked against the mappings only once END has been read:
/// a caller must not commit what `onPages` received until `read` returns.
/// Only each run's extent is kept for that check (24 bytes a record), never
/// page contents.
public enum StreamImageReader {
    public static func read(from source: ByteSource, onPages: (PageRun) throws -> Void) throws -> ImageMetadata {
        let reader = try RecordReader(source: source, expecting: .stream)
        var collector = MetadataCollector()
        var extents: [(run: PageRun, offset: Int64)] = []
        var first = true
        while let r = try reader.next() {
            if first {
                guard case .source = r else { throw ImageError(file: source.name, offset: ImageFormat.headerSize.int64, "stream does not start with SOURCE") }
                first = false
            }
            if case .pages(let run) = r {
                try onPages(run)
                extents.append((PageRun(pid: run.pid, address: run.address, pageCount: run.pageCount, data: nil), reader.recordOffset))
            } else {
                try collector.take(r, from: source.name, at: reader.recordOffset)
            }
        }
        let meta = try collector.metadata(from: source.name)
        let index = MappingIndex(meta)
        for (run, offset) in extents { try index.check(run, file: source.name, offset: offset) }
        return meta
    }
}

/// Reads a *metadata-first* stream (what a checkpoint sends to a socket):
/// SOURCE and every PROCESS/PIPE/CONTAINER record before the first page
/// record, then pages, then END. The metadata is validated before any page
/// is handed out, and every page run is checked against the mappings as it
/// arrives, so a consumer can apply pages at once without buffering.
public final class MetadataFirstStreamReader {
    public let metadata: ImageMetadata
    private let reader: RecordReader
    private let index: MappingIndex
    private var pending: (PageRun, Int64)?
    private var ended = false

    public init(source: ByteSource) throws {
        reader = try RecordReader(source: source, expecting: .stream)
        var collector = MetadataCollector()
        var first = true
        while true {
            guard let r = try reader.next() else { break }
            if first {
                guard case .source = r else {
                    throw ImageError(file: source.name, offset: ImageFormat.headerSize.int64, "stream does not start with SOURCE")
                }
                first = false
            }
            if case .pages(let run) = r { pending = (run, reader.recordOffset); break }
            if case .end = r { ended = true; break }
            try collector.take(r, from: source.name, at: reader.recordOffset)
        }
        metadata = try collector.metadata(from: source.name)
        index = MappingIndex(metadata)
    }

    /// Hands every page run to `body` in stream order, until END.
    public func forEachPageRun(_ body: (PageRun) throws -> Void) throws {
        let name = reader.source.name
        if let (run, offset) = pending {
            pending = nil
            try index.check(run, file: name, offset: offset)
            try body(run)
        }
        while !ended, let r = try reader.next() {
            switch r {
            case .pages(let run):
                try index.check(run, file: name, offset: reader.recordOffset)
                try body(run)
            case .end:
                ended = true
            default:
                throw ImageError(file: name, offset: reader.recordOffset, "metadata record after page records in a metadata-first stream")
            }
        }
    }
}

extension Int { var int64: Int64 { Int64(self) } }

/// Finds the mapping holding an address, to check page runs.
public struct MappingIndex: Sendable {
    private var byPid: [Int32: [Mapping]] = [:]

    public init(_ meta: ImageMetadata) {
        for p in meta.processes { byPid[p.pid] = p.mappings.sorted { $0.start < $1.start } }
    }

    public func mapping(pid: Int32, containing address: UInt64) -> Mapping? {
        guard let maps = byPid[pid] else { return nil }
        var lo = 0, hi = maps.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if maps[mid].end <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo < maps.count && maps[lo].contains(address) ? maps[lo] : nil
    }

    public func check(_ run: PageRun, file: String, offset: Int64) throws {
        try check(pid: run.pid, address: run.address, bytes: run.byteCount, file: file, offset: offset)
    }

    public func check(_ span: PageSpan, file: String, offset: Int64) throws {
        try check(pid: span.pid, address: span.address, bytes: span.byteCount, file: file, offset: offset)
    }

    public func check(pid: Int32, address: UInt64, bytes: Int, file: String, offset: Int64) throws {
        guard byPid[pid] != nil else {
            throw ImageError(file: file, offset: offset, "pages for pid \(pid), which is not in the image")
        }
        // `bytes` comes from a checked page count (1 or more pages); the sum is checked all the same.
        let (end, overflow) = address.addingReportingOverflow(UInt64(max(bytes, 1)))
        guard !overflow, let m = mapping(pid: pid, containing: address), m.contains(end - 1) else {
            throw ImageError(file: file, offset: offset,
                             "pages at 0x\(String(address, radix: 16))+\(bytes) lie outside every mapping of pid \(pid)")
        }
        // A shared file mapping's contents are the file's: writing pages there would write into a file
        // of the restoring host. ferry never puts such pages in an image.
        if m.kind == .sharedFile {
            throw ImageError(file: file, offset: offset,
                             "pages at 0x\(String(address, radix: 16))+\(bytes) of pid \(pid) lie in a shared mapping of the file \(m.file?.path ?? m.name); its contents come from the file, never from an image, and ferry does not write them into it")
        }
    }
}
