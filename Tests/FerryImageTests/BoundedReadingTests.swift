import Testing
import FerryImage
import FerryImageFixtures

/// A source that remembers the largest buffer the reader asked it to fill
/// (the reader's buffers are the arrays it allocated for a payload), then
/// ends after its bytes.
final class MeasuringSource: ByteSource {
    let bytes: [UInt8]
    private(set) var largestRequest = 0
    private var at = 0
    let name = "measured"
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        largestRequest = max(largestRequest, buffer.count)
        let n = min(buffer.count, bytes.count - at)
        for i in 0..<n { buffer[i] = bytes[at + i] }
        at += n
        return n
    }
}

/// What a reader allocates is bounded by fixed caps, never by a length the input claims.
@Suite("Bounded memory while reading", .timeLimit(.minutes(10)))
struct BoundedReadingTests {
    /// The stream of a small image up to and including its SOURCE record.
    static func sourceOnly() throws -> [UInt8] {
        let stream = try ImageIO.streamBytes(ImageGenerator.make(seed: 1, size: .small))
        return Array(stream[0..<RecordLayout.spans(stream)[0].end])
    }

    static func zeroRecord(pid: Int32, pages: UInt32, address: UInt64) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 16)
        RecordLayout.put32(&p, 0, UInt32(bitPattern: pid))
        RecordLayout.put32(&p, 4, pages)
        RecordLayout.put64(&p, 8, address)
        return RecordLayout.record(type: RecordType.zero.rawValue, payload: p)
    }

    /// A PROCESS record claiming its whole 64 MiB cap in a stream that ends
    /// after a few bytes: the reader asks for the payload a MiB at a time, so
    /// the truncation costs what arrived, not the claim.
    @Test func truncatedMetadataClaimAllocatesWhatArrived() throws {
        var head = [UInt8](repeating: 0, count: 8)
        RecordLayout.put32(&head, 0, RecordType.process.rawValue)
        RecordLayout.put32(&head, 4, RecordType.process.maxLength)
        let input = try Self.sourceOnly() + head + Array("{\"pid\":".utf8)
        let source = MeasuringSource(input)
        let error = #expect(throws: ImageError.self) {
            _ = try MetadataFirstStreamReader(source: source)
        }
        #expect(error?.message.hasPrefix("truncated: ended inside a PROCESS record (7 of \(RecordType.process.maxLength) bytes)") == true,
                "\(String(describing: error))")
        #expect(source.largestRequest <= 1 << 20)
    }

    /// A PAGES record's length is checked against its cap (16 + 4 MiB) from the header alone.
    @Test func pagesLengthOverItsCapIsRefusedFromTheHeader() throws {
        let prefix = try Self.sourceOnly()
        var head = [UInt8](repeating: 0, count: 8)
        RecordLayout.put32(&head, 0, RecordType.pages.rawValue)
        RecordLayout.put32(&head, 4, RecordType.pages.maxLength + 1)
        let source = MeasuringSource(prefix + head + [UInt8](repeating: 0, count: 64))
        let error = #expect(throws: ImageError.self) { _ = try StreamImageReader.read(from: source) { _ in } }
        #expect(error?.message.contains("more than its cap") == true)
        #expect(source.largestRequest < 4096)
    }

    /// A ZERO record of 2^40 bytes (2^28 pages) is refused: its count is over the cap of 2^20 pages.
    @Test func zeroRecordOverItsPageCapIsRefused() throws {
        let input = try Self.sourceOnly() + Self.zeroRecord(pid: 1, pages: 1 << 28, address: 0x10000)
        let error = #expect(throws: ImageError.self) {
            let r = try MetadataFirstStreamReader(source: MemorySource(input))
            try r.forEachPageRun { _ in Issue.record("no run expected") }
        }
        #expect(error?.message.contains("ZERO record with 268435456 pages") == true, "\(String(describing: error))")
    }

    /// A ZERO record at its cap (4 GiB of pages) is handed on as a count, with no data.
    @Test func zeroRecordAtItsCapCarriesNoData() throws {
        let input = try Self.sourceOnly() + Self.zeroRecord(pid: 1, pages: UInt32(PageRecord.maxZeroPages), address: 0x1_0000_0000)
        let source = MeasuringSource(input)
        var runs: [PageRun] = []
        // No PROCESS record, so the metadata is refused after the runs were read.
        #expect(throws: ImageError.self) { _ = try StreamImageReader.read(from: source) { runs.append($0) } }
        #expect(runs.count == 1)
        #expect(runs.first?.data == nil)
        #expect(runs.first?.pageCount == PageRecord.maxZeroPages)
        #expect(source.largestRequest < 4096)
    }
}

/// MetadataFirstStreamReader (what restore and migration read with) given
/// every damaged stream of the corpus: each is refused with a one-line error.
@Suite("Metadata-first reader on damaged streams", .timeLimit(.minutes(10)))
struct MetadataFirstCorruptionTests {
    @Test(arguments: Corpus.cases.filter { !$0.isDirectory })
    func refused(_ c: CorpusCase) throws {
        guard let stream = try damagedStream(c) else { return }
        do {
            let r = try MetadataFirstStreamReader(source: MemorySource(stream, name: "stream"))
            try r.forEachPageRun { _ in }
            Issue.record("accepted a damaged stream")
        } catch let e as ImageError {
            #expect(!e.description.contains("\n"))
            #expect(e.file == "stream")
        }
    }
}

/// The stream bytes of a corpus case that damages a stream; nil for a directory case.
func damagedStream(_ c: CorpusCase) throws -> [UInt8]? {
    let base = Corpus.baselines[c.seed]!
    switch c.damage {
    case .bytes(.stream, let m): return m.apply(to: base.stream)
    case .semantic(let s, true):
        var image = base.image
        s.apply(&image)
        return try ImageIO.streamBytes(image)
    default: return nil
    }
}

/// Its prefix, then `unit` over and over, without holding the repeats.
final class RepeatingSource: ByteSource {
    let prefix: [UInt8], unit: [UInt8]
    private var at = 0
    let name = "repeating"
    init(prefix: [UInt8], unit: [UInt8]) { self.prefix = prefix; self.unit = unit }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        let (from, k) = at < prefix.count ? (prefix, at) : (unit, (at - prefix.count) % unit.count)
        let n = min(buffer.count, from.count - k)
        from.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + k, byteCount: n) }
        at += n
        return n
    }
}

extension BoundedReadingTests {
    /// Metadata records each within their cap but without end: the reader
    /// stops once they pass `ImageFormat.maxMetadataBytes` together, from a header.
    @Test func metadataTotalIsCapped() throws {
        let pipe = RecordLayout.record(type: RecordType.pipe.rawValue,
                                       payload: [UInt8](repeating: 0, count: Int(RecordType.pipe.maxLength)))
        let prefix = try Self.sourceOnly()
        let fitting = Int(ImageFormat.maxMetadataBytes / UInt64(RecordType.pipe.maxLength))
        let source = RepeatingSource(prefix: prefix, unit: pipe)
        let error = #expect(throws: ImageError.self) { _ = try MetadataFirstStreamReader(source: source) }
        #expect(error?.message.contains("exceed 256 MiB together") == true, "\(String(describing: error))")
        #expect(error?.offset == Int64(prefix.count + fitting * pipe.count))
    }
}
