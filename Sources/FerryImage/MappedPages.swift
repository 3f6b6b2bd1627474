// pages.img read through a mapping of the file, for a restore on this host.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A directory image's pages.img mapped read-only as a whole, so a restore
/// can hand the page cache's bytes straight to the kernel (UFFDIO_COPY)
/// instead of `read()`ing them into buffers first: one copy of every byte
/// fewer, and no buffers.
///
/// `forEachRecord` checks what `DirectoryImageReader.forEachPageRun` checks
/// and reports it the same way (same messages and offsets), except each
/// PAGES/ZERO record's checksum: that is left to `Record.verify()`, which a
/// consumer must call on every record before it commits anything (a restore
/// before the process runs), so that two threads can share the checksums.
/// Where a record's layout is wrong, its checksum is verified first, so a
/// corrupted record is reported as corrupted, as the stream reader does.
///
/// Touched file pages count in this process's RSS while they stay mapped:
/// a consumer calls `release` for what it has done with.
/// The file must not shrink while it is mapped (reading past its new end
/// would raise SIGBUS); images are written once and not changed.
public final class MappedPageFile: @unchecked Sendable {
    public let name: String
    private let base: UnsafeRawPointer?
    private let size: Int

    /// One PAGES or ZERO record, its layout checked.
    public struct Record: @unchecked Sendable {
        public let pid: Int32
        public let address: UInt64
        public let pageCount: Int
        /// The pages inside the mapping (nil: ZERO); valid while the file is.
        public let data: UnsafeRawBufferPointer?
        /// Where the record starts and ends in the file.
        public let offset: Int64
        public let end: Int64
        /// The bytes the checksum covers (header and payload), followed by the checksum.
        fileprivate let covered: UnsafeRawBufferPointer
        fileprivate let name: String
        fileprivate let type: RecordType

        /// Throws unless the checksum matches.
        public func verify() throws {
            let stored = UInt32(littleEndian: (covered.baseAddress! + covered.count).loadUnaligned(as: UInt32.self))
            guard stored == crc32c(covered) else {
                throw ImageError(file: name, offset: offset, "\(type) record checksum mismatch (corrupted)")
            }
        }

        /// The record's pages where they are, in the mapping.
        public var span: PageSpan { PageSpan(pid: pid, address: address, pageCount: pageCount, data: data) }
    }

    /// nil where the file cannot be mapped (a file system without mmap):
    /// read it with `DirectoryImageReader.forEachPageRun` then.
    public init?(path: String) throws {
        name = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = errno == ENOENT ? "missing (the image directory is incomplete)" : String(cString: strerror(errno))
            throw ImageError(file: path, "cannot open: \(reason)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ImageError(file: path, "fstat failed: \(String(cString: strerror(errno)))") }
        size = Int(st.st_size)
        guard size > 0 else { base = nil; return }
        guard let m = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), m != UnsafeMutableRawPointer(bitPattern: -1) else { return nil }
        // The records are read once, front to back: read ahead on faults, drop behind.
        _ = madvise(m, size, MADV_SEQUENTIAL)
        base = UnsafeRawPointer(m)
    }

    deinit { if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) } }

    /// Calls `body` for every PAGES/ZERO record in file order, each checked
    /// to lie in a mapping of its process (`index`), then checks END and
    /// that nothing follows it.
    public func forEachRecord(index: MappingIndex, _ body: (Record) throws -> Void) throws {
        let bytes = UnsafeRawBufferPointer(start: base, count: size)
        /// Throws the truncation `RecordReader` reports when `count` bytes of `what` are wanted at `at`.
        func need(_ at: Int, _ count: Int, _ what: String) throws {
            guard at + count > size else { return }
            throw ImageError(file: name, offset: Int64(size), "truncated: ended inside \(what) (\(size - at) of \(count) bytes)")
        }
        try need(0, ImageFormat.headerSize, "the image header")
        _ = try RecordReader.checkHeader(UnsafeRawBufferPointer(rebasing: bytes[0..<ImageFormat.headerSize]), name: name,
                                         expecting: .directoryPages)
        var at = ImageFormat.headerSize
        var records: UInt64 = 0, pageBytes: UInt64 = 0
        while true {
            let recordOffset = Int64(at)
            guard at < size else { throw ImageError(file: name, offset: recordOffset, "truncated: no END record (the image is incomplete)") }
            try need(at, 8, "a record header")
            let length = Int(bytes.le32(at + 4))
            let type = try RecordReader.recordType(bytes.le32(at), length: UInt32(length), name: name, at: recordOffset)
            let prefix = type == .pages ? min(length, 16) : length
            try need(at + 8, prefix, "a \(type) record")
            try need(at + 8 + prefix, length - prefix, "a \(type) record")
            try need(at + 8 + length, 4, "a record checksum")
            let covered = UnsafeRawBufferPointer(rebasing: bytes[at..<at + 8 + length])
            let payload = UnsafeRawBufferPointer(rebasing: bytes[at + 8..<at + 8 + prefix])
            let next = at + 8 + length + 4
            var record = Record(pid: 0, address: 0, pageCount: 0, data: nil, offset: recordOffset, end: Int64(next),
                                covered: covered, name: name, type: type)
            switch type {
            case .pages, .zero:
                let dataCount = length - prefix
                do {
                    let f = try RecordReader.pageFields(type, prefix: payload, dataCount: dataCount, name: name, at: recordOffset)
                    let data = type == .pages ? UnsafeRawBufferPointer(rebasing: bytes[at + 24..<at + 24 + dataCount]) : nil
                    record = Record(pid: f.pid, address: f.address, pageCount: f.count, data: data, offset: recordOffset,
                                    end: Int64(next), covered: covered, name: name, type: type)
                    try index.check(pid: f.pid, address: f.address, bytes: f.count * ImageFormat.pageSize, file: name, offset: recordOffset)
                } catch {
                    try record.verify()
                    throw error
                }
                records += 1
                if type == .pages { pageBytes += UInt64(dataCount) }
                try body(record)
            case .end:
                try record.verify()
                try RecordReader.checkEnd(payload, records: records, pageBytes: pageBytes, name: name, at: recordOffset)
                guard next == size else { throw ImageError(file: name, offset: Int64(next), "bytes after the END record") }
                return
            default:
                try record.verify()
                throw ImageError(file: name, offset: recordOffset, "metadata record in the pages file")
            }
            at = next
        }
    }

    /// Drops this process's mapping of the file bytes [from, to) (the page
    /// cache keeps them): they no longer count in its RSS. Reading them again
    /// maps them again.
    public func release(from: Int64, to: Int64) {
        guard let base else { return }
        let page = Int64(ImageFormat.pageSize)
        let start = from / page * page, end = min((to + page - 1) / page * page, Int64(size + ImageFormat.pageSize - 1) / page * page)
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + Int(start)), Int(end - start), MADV_DONTNEED)
    }
}

extension DirectoryImageReader {
    /// pages.img, mapped (see `MappedPageFile`); nil if its file system cannot map it.
    public func mappedPages() throws -> MappedPageFile? {
        try MappedPageFile(path: directory + "/" + ImageFormat.pagesFileName)
    }
}
