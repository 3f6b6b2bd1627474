import Testing
import FerryImage
import FerryImageFixtures

let roundTripSeeds: [UInt64] = Array(1...12) + [0xDEAD_BEEF, 0xFFFF_FFFF_FFFF_FFFF]

/// Metadata equal, JSON byte-identical, page runs identical (data and zero runs).
func expectSameImage(_ got: GeneratedImage, _ want: GeneratedImage, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(got.metadata == want.metadata, sourceLocation: sourceLocation)
    #expect(try ImageJSON.encode(got.metadata) == ImageJSON.encode(want.metadata), sourceLocation: sourceLocation)
    #expect(got.runs.count == want.runs.count, sourceLocation: sourceLocation)
    #expect(got.runs == want.runs, sourceLocation: sourceLocation)
}

@Suite("Round trips", .timeLimit(.minutes(10)))
struct RoundTripTests {
    @Test func versionIsSet() { #expect(!FerryVersion.string.isEmpty) }

    @Test func generatorIsDeterministicAndCoversEveryKind() throws {
        let a = ImageGenerator.make(seed: 7), b = ImageGenerator.make(seed: 7)
        #expect(try ImageJSON.encode(a.metadata) == ImageJSON.encode(b.metadata))
        #expect(a.runs == b.runs)
        #expect(ImageGenerator.make(seed: 8).metadata != a.metadata)
        try Validation.validate(a.metadata, name: "generated")
        for p in a.metadata.processes {
            #expect(Set(p.mappings.map(\.kind)) == Set(MappingKind.allCases))
            #expect(Set(p.files.map(\.kind)).count == 7)
            #expect(p.threads.allSatisfy { $0.extendedState != nil && $0.rseq != nil })
        }
        #expect(a.dataPages > 0 && a.zeroPages > 0)
    }

    @Test(arguments: roundTripSeeds)
    func directory(seed: UInt64) throws {
        let image = ImageGenerator.make(seed: seed)
        let dir = try ImageIO.temporaryDirectory("rt")
        defer { ImageIO.remove(dir) }
        try ImageIO.writeDirectory(image, to: dir)
        try expectSameImage(try ImageIO.readDirectory(dir), image)
    }

    @Test(arguments: roundTripSeeds)
    func stream(seed: UInt64) throws {
        let image = ImageGenerator.make(seed: seed)
        let bytes = try ImageIO.streamBytes(image)
        try expectSameImage(try ImageIO.readStream(bytes), image)
        // The same image encodes to the same bytes.
        #expect(try ImageIO.streamBytes(image) == bytes)
    }

    @Test(arguments: roundTripSeeds.prefix(6))
    func directoryThenStream(seed: UInt64) throws {
        let image = ImageGenerator.make(seed: seed)
        let dir = try ImageIO.temporaryDirectory("rt2")
        defer { ImageIO.remove(dir) }
        try ImageIO.writeDirectory(image, to: dir)
        let reader = try DirectoryImageReader(directory: dir)
        let sink = MemorySink()
        let writer = try StreamImageWriter(sink: sink, source: reader.metadata.source)
        try reader.forEachPageRun { run in try ImageIO.write([run], to: writer) }
        try writer.finish(metadata: reader.metadata)
        try expectSameImage(try ImageIO.readStream(sink.bytes), image)
    }

    /// memfd and deleted-file contents travel in CONTENTS records, byte for
    /// byte, in both encodings; an fd naming contents the image lacks, or a
    /// relative path, is refused.
    @Test func fileContentsRoundTrip() throws {
        var image = ImageGenerator.make(seed: 41, size: .small)
        var rng = SplitMix64(seed: 9)
        let memfd = FileContents(id: 77, kind: .memfd, name: "buf", mode: 0o640, uid: 1, gid: 2, seals: 0x0f, bytes: rng.bytes(10_001))
        let ghost = FileContents(id: 78, kind: .deleted, name: "/tmp/x.log", mode: 0o600, bytes: [])
        image.metadata.fileContents = [memfd, ghost]
        image.metadata.processes[0].files.append(FileDescriptorImage(fd: 900, kind: .regular, flags: 2, path: "/memfd:buf (deleted)"))
        image.metadata.processes[0].files[image.metadata.processes[0].files.count - 1].contentsID = 77
        try Validation.validate(image.metadata, name: "contents")
        try expectSameImage(try ImageIO.readStream(try ImageIO.streamBytes(image)), image)
        let dir = try ImageIO.temporaryDirectory("rt-contents")
        defer { ImageIO.remove(dir) }
        try ImageIO.writeDirectory(image, to: dir)
        try expectSameImage(try ImageIO.readDirectory(dir), image)
        // An fd naming contents the image does not hold is refused.
        var bad = image.metadata
        bad.processes[0].files[bad.processes[0].files.count - 1].contentsID = 79
        #expect(throws: ImageError.self) { try Validation.validate(bad, name: "contents") }
        bad = image.metadata
        bad.fileContents![1].name = "relative/path"
        #expect(throws: ImageError.self) { try Validation.validate(bad, name: "contents") }
    }

    /// Runs longer than one record are split (1024 data pages, 2^20 zero
    /// pages a record) and come back as consecutive runs of the same bytes.
    @Test func longRunsAreSplitIntoRecords() throws {
        var image = ImageGenerator.make(seed: 99, size: .small)
        let pid = image.metadata.processes[0].pid
        let base: UInt64 = 0x1000_0000_0000
        let zeroPages = PageRecord.maxZeroPages + 5
        image.metadata.processes[0].mappings.insert(
            Mapping(start: base, end: base + UInt64(zeroPages + 2048) * 4096, protection: [.read, .write], kind: .anonymous),
            at: image.metadata.processes[0].mappings.firstIndex { $0.start > base }!)
        var rng = SplitMix64(seed: 5)
        let data = rng.bytes(1500 * 4096)
        image.runs = [PageRun(pid: pid, address: base, pageCount: 1500, data: data),
                      PageRun(pid: pid, address: base + 2048 * 4096, pageCount: zeroPages, data: nil)]
        let back = try ImageIO.readStream(try ImageIO.streamBytes(image))
        #expect(back.runs.map(\.pageCount) == [1024, 476, PageRecord.maxZeroPages, 5])
        #expect(back.runs[0].data! + back.runs[1].data! == data)
        #expect(back.runs[1].address == base + 1024 * 4096)
        #expect(back.runs[3].address == base + UInt64(2048 + PageRecord.maxZeroPages) * 4096)
        #expect(back.runs[2].data == nil && back.runs[3].data == nil)
    }

    /// Pre-copy: a page sent again later arrives again, in order; the last one wins.
    @Test func resentPagesArriveInOrder() throws {
        var image = ImageGenerator.make(seed: 3, size: .small)
        let first = try #require(image.runs.first { $0.data != nil })
        var newer = first
        newer.data = [UInt8](repeating: 0xAB, count: first.byteCount)
        image.runs.append(newer)
        let back = try ImageIO.readStream(try ImageIO.streamBytes(image))
        let copies = back.runs.filter { $0.pid == first.pid && $0.address == first.address }
        #expect(copies == [first, newer])
    }

    /// Writing through a file descriptor (FileSink) gives the same bytes as memory.
    @Test func fileSinkMatchesMemorySink() throws {
        let image = ImageGenerator.make(seed: 11)
        let dir = try ImageIO.temporaryDirectory("fs")
        defer { ImageIO.remove(dir) }
        let path = dir + "/image.stream"
        do {
            let sink = try FileSink(path: path)
            let w = try StreamImageWriter(sink: sink, source: image.metadata.source)
            try ImageIO.write(image.runs, to: w)
            try w.finish(metadata: image.metadata)
        }
        #expect(try ImageIO.readFile(path) == ImageIO.streamBytes(image))
        var runs: [PageRun] = []
        let meta = try StreamImageReader.read(from: try FileSource(path: path)) { runs.append($0) }
        try expectSameImage(GeneratedImage(metadata: meta, runs: runs), image)
    }
}

/// A file larger than one CONTENTS record travels in several, in order, and comes back whole.
@Test func fileContentsLargerThanARecordRoundTrip() throws {
    var image = ImageGenerator.make(seed: 43, size: .small)
    var rng = SplitMix64(seed: 11)
    let big = FileContents(id: 80, kind: .deleted, name: "/tmp/big", mode: 0o600, bytes: rng.bytes(FileContentsRecord.chunkBytes + 4099))
    image.metadata.fileContents = [big, FileContents(id: 81, kind: .memfd, name: "m", mode: 0o600, bytes: [1, 2, 3])]
    let back = try ImageIO.readStream(try ImageIO.streamBytes(image))
    #expect(back.metadata.contents.map(\.id) == [80, 81])
    #expect(back.metadata.contents.first?.bytes == big.bytes)
    #expect(back.metadata.contents.last?.bytes.value == [1, 2, 3])
}
