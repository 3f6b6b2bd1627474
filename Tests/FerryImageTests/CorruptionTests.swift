import Testing
import FerryImage
import FerryImageFixtures

extension Mutation {
    func apply(to input: [UInt8]) -> [UInt8] {
        var b = input
        switch self {
        case .truncate(let at): b.removeSubrange(at...)
        case .flipBit(let at, let bit): b[at] ^= 1 << bit
        case .poke(let at, let value, let width, let reseal):
            for i in 0..<width { b[at + i] = UInt8((value >> (8 * UInt64(i))) & 0xff) }
            switch reseal {
            case .none: break
            case .header: RecordLayout.resealHeader(&b)
            case .record(let span): RecordLayout.reseal(&b, span)
            }
        case .append(let extra): b += extra
        case .replaceRecord(let index, let record):
            let s = RecordLayout.spans(input)[index]
            b.replaceSubrange(s.offset..<s.end, with: record)
        case .insertRecord(let index, let record):
            b.insert(contentsOf: record, at: RecordLayout.spans(input)[index].offset)
        }
        return b
    }
}

/// Reads a damaged image the way a restorer would (metadata, then every
/// page) and returns what the reader threw. Anything but an ImageError fails.
func readDamaged(_ c: CorpusCase, directory readDirectory: (String) throws -> GeneratedImage = ImageIO.readDirectory) throws
    -> (error: ImageError?, file: String) {
    let base = Corpus.baselines[c.seed]!
    let dir = try ImageIO.temporaryDirectory("corpus")
    defer { ImageIO.remove(dir) }
    let streamName = dir + "/image.stream"
    var stream: [UInt8]?
    switch c.damage {
    case .bytes(let role, let m):
        if role == .stream {
            stream = m.apply(to: base.stream)
        } else {
            try ImageIO.writeFile(dir + "/meta.img", role == .meta ? m.apply(to: base.meta) : base.meta)
            try ImageIO.writeFile(dir + "/pages.img", role == .pages ? m.apply(to: base.pages) : base.pages)
        }
    case .semantic(let s, let asStream):
        var image = base.image
        s.apply(&image)
        if asStream { stream = try ImageIO.streamBytes(image) } else { try ImageIO.writeDirectory(image, to: dir) }
    case .removeFile(let role):
        try ImageIO.writeDirectory(base.image, to: dir)
        ImageIO.remove(dir + "/" + (role == .meta ? ImageFormat.metaFileName : ImageFormat.pagesFileName))
    }
    let file: String
    switch c.names {
    case .stream: file = streamName
    case .meta: file = dir + "/" + ImageFormat.metaFileName
    case .pages: file = dir + "/" + ImageFormat.pagesFileName
    }
    do {
        if let stream { _ = try ImageIO.readStream(stream, name: streamName) } else { _ = try readDirectory(dir) }
        return (nil, file)
    } catch let e as ImageError {
        return (e, file)
    }
}

@Suite("Damaged images are refused", .timeLimit(.minutes(10)))
struct CorruptionTests {
    @Test func corpusIsLarge() {
        #expect(Corpus.cases.count >= 300)
    }

    @Test(arguments: Corpus.cases)
    func refused(_ c: CorpusCase) throws {
        let (error, file) = try readDamaged(c)
        let e = try #require(error, "accepted a damaged image")
        let d = e.description
        #expect(!d.contains("\n"), "not one line: \(d)")
        #expect(e.file == file, "names \(e.file), not \(file): \(d)")
        #expect(d.hasPrefix(file + ": "))
        switch c.offset {
        case .exact(let o):
            #expect(e.offset == o, "\(d)")
            #expect(d.hasPrefix("\(file): at byte \(o): "))
        case .some: #expect(e.offset != nil, "no offset: \(d)")
        case .none: #expect(e.offset == nil, "\(d)")
        }
        if let text = c.text { #expect(e.message.contains(text), "\(d)") }
    }

    /// The mapped pages.img reader a restore uses refuses every damaged
    /// directory image as the reader of record does: same file, same offset, same message.
    @Test(arguments: Corpus.cases.filter(\.isDirectory))
    func mappedReaderAgrees(_ c: CorpusCase) throws {
        let (expected, expectedFile) = try readDamaged(c)
        let (error, file) = try readDamaged(c, directory: ImageIO.readDirectoryMapped)
        let e = try #require(error, "accepted a damaged image")
        // Each read has its own temporary directory.
        #expect(e.description.dropFirst(file.count) == expected?.description.dropFirst(expectedFile.count))
    }

    /// The baselines themselves read back cleanly (so every refusal above is the mutation's doing).
    @Test(arguments: Corpus.seeds + [Corpus.semanticSeed])
    func baselinesAreValid(seed: UInt64) throws {
        let base = Corpus.baselines[seed]!
        try expectSameImage(try ImageIO.readStream(base.stream), base.image)
        let dir = try ImageIO.temporaryDirectory("base")
        defer { ImageIO.remove(dir) }
        try ImageIO.writeFile(dir + "/meta.img", base.meta)
        try ImageIO.writeFile(dir + "/pages.img", base.pages)
        try expectSameImage(try ImageIO.readDirectory(dir), base.image)
        try expectSameImage(try ImageIO.readDirectoryMapped(dir), base.image)
    }
}

/// A source that counts what was read and, past its bytes, yields zeros forever.
final class EndlessSource: ByteSource {
    let prefix: [UInt8]
    private(set) var consumed = 0
    let name = "endless"
    init(_ prefix: [UInt8]) { self.prefix = prefix }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        for i in 0..<buffer.count { buffer[i] = consumed + i < prefix.count ? prefix[consumed + i] : 0 }
        consumed += buffer.count
        return buffer.count
    }
}

@Suite("Caps", .timeLimit(.minutes(10)))
struct CapTests {
    /// A record claiming 0xFFFFFFF0 bytes is refused from its 8-byte header:
    /// not one payload byte is read (so nothing was allocated for it), even
    /// though the input would go on for ever.
    @Test(arguments: RecordType.allCases)
    func hugeLengthRefusedBeforeAllocation(type: RecordType) throws {
        let image = ImageGenerator.make(seed: 1, size: .small)
        let stream = try ImageIO.streamBytes(image)
        let source = RecordLayout.spans(stream)[0]
        var head = [UInt8](repeating: 0, count: 8)
        RecordLayout.put32(&head, 0, type.rawValue)
        RecordLayout.put32(&head, 4, 0xFFFF_FFF0)
        let input = Array(stream[0..<source.end]) + head
        let endless = EndlessSource(input)
        let error = #expect(throws: ImageError.self) {
            _ = try StreamImageReader.read(from: endless) { _ in Issue.record("no pages expected") }
        }
        #expect(endless.consumed == input.count)
        #expect(error?.offset == Int64(source.end + 4))
        #expect(error?.message.contains("more than its cap of \(type.maxLength)") == true)
    }

    @Test func capsAreBounded() {
        for t in RecordType.allCases { #expect(t.maxLength <= 64 << 20) }
        #expect(RecordType.pages.maxLength == 16 + 1024 * 4096)
    }

    /// The writer refuses to write what the reader would refuse.
    @Test func writerRefusesOversizedRecords() throws {
        let w = try RecordWriter(sink: MemorySink(), kind: .stream)
        #expect(throws: ImageError.self) {
            try w.writeRecord(.container, prefix: [UInt8](repeating: 0, count: Int(RecordType.container.maxLength) + 1))
        }
        #expect(throws: ImageError.self) {
            try w.writePipe(PipeData(pipeID: 1, bytes: [UInt8](repeating: 0, count: 16 << 20 + 1)))
        }
    }
}
