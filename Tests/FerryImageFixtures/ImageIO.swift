import Foundation
import FerryImage

/// Writing generated images out and reading images back completely.
public enum ImageIO {
    /// Writes `image` as DIR/meta.img + DIR/pages.img.
    public static func writeDirectory(_ image: GeneratedImage, to directory: String) throws {
        let w = try DirectoryImageWriter(directory: directory)
        try write(image.runs, to: w)
        try w.finish(metadata: image.metadata)
    }

    /// Encodes `image` as a stream (SOURCE, pages, the rest, END).
    public static func streamBytes(_ image: GeneratedImage) throws -> [UInt8] {
        let sink = MemorySink()
        let w = try StreamImageWriter(sink: sink, source: image.metadata.source)
        try write(image.runs, to: w)
        try w.finish(metadata: image.metadata)
        return sink.bytes
    }

    public static func write(_ runs: [PageRun], to sink: ImageSink) throws {
        for run in runs {
            if let data = run.data {
                try data.withUnsafeBytes { try sink.writePages(pid: run.pid, address: run.address, data: $0) }
            } else {
                try sink.writeZeroPages(pid: run.pid, address: run.address, count: run.pageCount)
            }
        }
    }

    /// Reads a directory image completely: metadata and every page run.
    public static func readDirectory(_ directory: String) throws -> GeneratedImage {
        let r = try DirectoryImageReader(directory: directory)
        var runs: [PageRun] = []
        try r.forEachPageRun { runs.append($0) }
        return GeneratedImage(metadata: r.metadata, runs: runs)
    }

    /// Reads a directory image as a restore does: pages.img through `MappedPageFile`, each record's checksum verified as it comes.
    public static func readDirectoryMapped(_ directory: String) throws -> GeneratedImage {
        let r = try DirectoryImageReader(directory: directory)
        var runs: [PageRun] = []
        guard let pages = try r.mappedPages() else { throw ImageError(file: directory, "pages.img cannot be mapped here") }
        try pages.forEachRecord(index: MappingIndex(r.metadata)) { record in
            try record.verify()
            runs.append(PageRun(copying: record.span))
        }
        return GeneratedImage(metadata: r.metadata, runs: runs)
    }

    /// Reads a stream image completely.
    public static func readStream(_ bytes: [UInt8], name: String = "<stream>") throws -> GeneratedImage {
        var runs: [PageRun] = []
        let meta = try StreamImageReader.read(from: MemorySource(bytes, name: name)) { runs.append($0) }
        return GeneratedImage(metadata: meta, runs: runs)
    }

    /// A fresh empty directory under the system temporary directory.
    public static func temporaryDirectory(_ label: String) throws -> String {
        var template = Array((NSTemporaryDirectory() + "/ferry-\(label)-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw ImageError(file: label, "mkdtemp failed") }
        return String(cString: p)
    }

    public static func remove(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

    public static func readFile(_ path: String) throws -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else { throw ImageError(file: path, "cannot read") }
        return Array(d)
    }

    public static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw ImageError(file: path, "cannot write") }
    }
}

/// Where each record of an encoded file or stream lies, found by walking the
/// framing without checking anything (to aim mutations at fields).
public struct RecordSpan: Sendable, Equatable {
    public var offset: Int
    public var type: UInt32
    public var length: Int
    /// Offset of the payload and of the trailing checksum.
    public var payload: Int { offset + 8 }
    public var checksum: Int { offset + 8 + length }
    public var end: Int { offset + 12 + length }
}

public enum RecordLayout {
    public static func spans(_ bytes: [UInt8]) -> [RecordSpan] {
        var out: [RecordSpan] = []
        var at = ImageFormat.headerSize
        while at + 8 <= bytes.count {
            let type = le32(bytes, at), length = Int(le32(bytes, at + 4))
            out.append(RecordSpan(offset: at, type: type, length: length))
            at += 12 + length
        }
        return out
    }

    public static func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) }
    }

    public static func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) {
        for i in 0..<4 { b[at + i] = UInt8((v >> (8 * UInt32(i))) & 0xff) }
    }

    public static func put64(_ b: inout [UInt8], _ at: Int, _ v: UInt64) {
        for i in 0..<8 { b[at + i] = UInt8((v >> (8 * UInt64(i))) & 0xff) }
    }

    /// Recomputes the header checksum after an edit of the header.
    public static func resealHeader(_ b: inout [UInt8]) {
        put32(&b, 28, crc32c(Array(b[0..<28])))
    }

    /// Recomputes the checksum of the record at `span` over its (possibly
    /// edited) type, length and the original payload bytes.
    public static func reseal(_ b: inout [UInt8], _ span: RecordSpan) {
        put32(&b, span.checksum, crc32c(Array(b[span.offset..<span.checksum])))
    }

    /// Builds one framed record (type, length, payload, crc).
    public static func record(type: UInt32, payload: [UInt8]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 8)
        put32(&b, 0, type); put32(&b, 4, UInt32(payload.count))
        b += payload
        let crc = crc32c(b)
        b += [0, 0, 0, 0]
        put32(&b, b.count - 4, crc)
        return b
    }
}
