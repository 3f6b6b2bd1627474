/// # The ferry image, version 1
///
/// One model (`ImageMetadata` + page contents), two encodings that share
/// the same header and record framing:
///
/// - **directory** (checkpoint/restore): `DIR/meta.img` holds the header and
///   the metadata records, `DIR/pages.img` the header and the page records;
///   each file ends with its own END record.
/// - **stream** (migration): one byte stream holding the header, then every
///   record of both files in any order (SOURCE first, END last), so pages can
///   go to a socket as they are read and be resent in pre-copy rounds.
///
/// ```
///  header (32 bytes, at offset 0 of every file / stream)
///  +0  "FERRYIMG"            magic, 8 bytes
///  +8  u16 version           1
///  +10 u16 header size       32
///  +12 u32 encoding          1 = directory meta, 2 = directory pages, 3 = stream
///  +16 u64 required caps     bits a reader must understand (v1 knows bit 0: ZERO_RUNS, bit 1: FIFO_DATA, bit 2: PROC_FILES, bit 3: MAPPING_ARRAYS)
///  +24 u32 reserved          0
///  +28 u32 crc32c            of bytes +0..+27
///
///  record (repeated)
///  +0  u32 type              see RecordType
///  +4  u32 length            payload bytes; capped per type (see `RecordType.maxLength`)
///  +8  payload
///  +8+length u32 crc32c      over type, length and payload
///
///  payloads                   (all integers little-endian)
///  SOURCE     1   JSON SourceHost
///  PROCESS    2   JSON ProcessImage (threads, mappings, fds, signals, layout)
///  PIPE       3   u64 pipe id, then the bytes buffered in the pipe
///  CONTAINER  4   JSON container spec (FerryContainer)
///  PAGES      5   u32 pid, u32 page count n (1…1024), u64 address, n × 4096 bytes
///  ZERO       6   u32 pid, u32 page count n (1…2^20), u64 address  (pages that read as zero)
///  END  0xFFFFFFFF u64 records before END, u64 page bytes in this file/stream
/// ```
///
/// Pages that were never touched appear in neither PAGES nor ZERO: the
/// restorer leaves them untouched (they read as zero, or as the file for file
/// mappings). A page may appear more than once in a stream: the last one wins
/// (pre-copy resends dirtied pages).
///
/// Readers are strict: every length is checked against its cap before
/// anything is allocated, every checksum is verified, unknown record types
/// and unknown required capabilities are refused, and a missing END record is
/// a truncation. Errors name the file and the byte offset.
public enum ImageFormat {
    public static let magic: [UInt8] = Array("FERRYIMG".utf8)
    public static let version: UInt16 = 1
    public static let headerSize = 32
    public static let pageSize = 4096
    /// Capability bits this reader understands.
    public static let knownCapabilities: UInt64 = Capabilities.zeroRuns | Capabilities.fifoData | Capabilities.procFiles
        | Capabilities.mappingArrays
    public static let metaFileName = "meta.img"
    public static let pagesFileName = "pages.img"
    /// Payload bytes of all metadata records (SOURCE, PROCESS, PIPE,
    /// CONTAINER) of one file or stream together: each record has its own
    /// cap, and this bounds how many of them a reader keeps.
    public static let maxMetadataBytes: UInt64 = 256 << 20

    public enum Capabilities {
        /// ZERO records are used.
        public static let zeroRuns: UInt64 = 1 << 0
        /// FIFO fds carry a FIFO id (`FileDescriptorImage.pipeID`) and PIPE
        /// records hold FIFOs' bytes: a reader without it would reopen the
        /// FIFOs empty.
        public static let fifoData: UInt64 = 1 << 1
        /// fds on /proc/PID files of the tree carry `procPid`: a reader
        /// without it would reopen the old pid's file (another process's, or none).
        public static let procFiles: UInt64 = 1 << 2
        /// A plain mapping may be written as a JSON array (MappingCoding.swift):
        /// a reader without it would fail on the first one.
        public static let mappingArrays: UInt64 = 1 << 3
    }
}

public enum EncodingKind: UInt32, Sendable {
    case directoryMeta = 1
    case directoryPages = 2
    case stream = 3
}

public enum RecordType: UInt32, Sendable, CaseIterable {
    case source = 1
    case process = 2
    case pipe = 3
    case container = 4
    case pages = 5
    case zero = 6
    /// A memfd's or deleted file's contents, or a part of them: u32 length
    /// of a JSON `FileContentsChunk` header, that JSON, then the bytes.
    case contents = 7
    case end = 0xFFFF_FFFF

    /// Largest payload accepted for this type.
    public var maxLength: UInt32 {
        switch self {
        case .source: return 1 << 20
        case .process: return 64 << 20
        case .pipe: return (16 << 20) + 8
        case .container: return 1 << 20
        case .pages: return 16 + UInt32(PageRecord.maxPages * ImageFormat.pageSize)
        case .zero: return 16
        case .contents: return UInt32(FileContentsRecord.chunkBytes) + (1 << 20)
        case .end: return 16
        }
    }
}

/// CONTENTS-record limits.
public enum FileContentsRecord {
    /// The largest file stored (1 GiB): `--ghost-limit` may not exceed it.
    public static let maxBytes = 1 << 30
    /// A file's bytes are written in records of at most this many, in order.
    public static let chunkBytes = 32 << 20
    /// All CONTENTS records of an image together (counted apart from the other metadata).
    public static let maxTotalBytes: UInt64 = 8 << 30
}

/// Page-record limits.
public enum PageRecord {
    /// Pages per PAGES record: 4 MiB, so a reader never needs more.
    public static let maxPages = 1024
    /// Pages per ZERO record.
    public static let maxZeroPages = 1 << 20
}

/// An error reading or writing an image. `description` is one line naming
/// the file (or stream) and, where it applies, the byte offset.
public struct ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var offset: Int64?
    public var message: String

    public init(file: String, offset: Int64? = nil, _ message: String) {
        self.file = file; self.offset = offset; self.message = message
    }

    public var description: String {
        if let offset { return "\(file): at byte \(offset): \(message)" }
        return "\(file): \(message)"
    }
}

/// Little-endian integer packing used by the encodings.
struct LEWriter {
    var bytes: [UInt8] = []
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
}

extension UnsafeRawBufferPointer {
    func le16(_ at: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    func le32(_ at: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    func le64(_ at: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
}

extension Array where Element == UInt8 {
    func le32(_ at: Int) -> UInt32 { withUnsafeBytes { $0.le32(at) } }
    func le64(_ at: Int) -> UInt64 { withUnsafeBytes { $0.le64(at) } }
}

extension RecordType: CustomStringConvertible {
    /// The record's name as the format spells it ("PROCESS"), for messages.
    public var description: String {
        switch self {
        case .source: return "SOURCE"
        case .process: return "PROCESS"
        case .pipe: return "PIPE"
        case .container: return "CONTAINER"
        case .contents: return "CONTENTS"
        case .pages: return "PAGES"
        case .zero: return "ZERO"
        case .end: return "END"
        }
    }
}

extension EncodingKind: CustomStringConvertible {
    public var description: String {
        switch self {
        case .directoryMeta: return "1 (directory metadata, meta.img)"
        case .directoryPages: return "2 (directory pages, pages.img)"
        case .stream: return "3 (stream)"
        }
    }
}
