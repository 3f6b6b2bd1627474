import Testing
import Foundation
import FerryImage
import FerryImageFixtures

/// PageRecordStream (pages read straight into their records, a writer
/// thread, O_DIRECT where the file allows it) writes the same bytes as
/// RecordWriter.writePages/writeZeroPages with zero pages split out.
@Suite("Page record stream", .timeLimit(.minutes(10)))
struct PageStreamTests {
    /// One run handed to the stream: which of its pages are zero.
    struct Run { var pid: Int32; var address: UInt64; var zero: [Bool] }

    static func page(_ address: UInt64, into p: UnsafeMutableRawPointer) {
        for w in 0..<512 { p.storeBytes(of: address &* 0x9E37_79B9 &+ UInt64(w), toByteOffset: w * 8, as: UInt64.self) }
    }

    /// Runs with zero pages at the start, the end, alone, in long stretches, none, all;
    /// runs of 1024 pages; enough data for the buffers to rotate several times.
    static func runs(seed: UInt64) -> [Run] {
        var rng = SplitMix64(seed: seed)
        var out: [Run] = []
        var address: UInt64 = 0x10_0000_0000
        let shapes: [[Bool]] = [[false], [true], [true, false], [false, true], [false, true, false], [true, false, true],
                                Array(repeating: true, count: 1024), Array(repeating: false, count: 1024),
                                (0..<1024).map { $0 % 2 == 0 }, (0..<15).map { $0 == 11 }]
        for shape in shapes { out.append(Run(pid: 7, address: address, zero: shape)); address += UInt64(shape.count + 3) * 4096 }
        for _ in 0..<60 {
            let n = rng.int(1...1024)
            let zero = (0..<n).map { _ in rng.int(0...5) == 0 }
            out.append(Run(pid: Int32(rng.int(1...3)), address: address, zero: zero))
            address += UInt64(n + rng.int(0...4)) * 4096
        }
        // As dumpPages does: at most PageRecordStream.maxPages per reservation.
        let most = PageRecordStream.maxPages
        return out.flatMap { r in
            stride(from: 0, to: r.zero.count, by: most).map { k in
                Run(pid: r.pid, address: r.address + UInt64(k * 4096), zero: Array(r.zero[k..<min(k + most, r.zero.count)]))
            }
        }
    }

    /// The reference: RecordWriter over memory, one record per stretch of equal verdicts.
    static func expected(_ runs: [Run], kind: EncodingKind, prefix: (RecordWriter) throws -> Void) throws -> [UInt8] {
        let sink = MemorySink()
        let w = try RecordWriter(sink: sink, kind: kind)
        try prefix(w)
        let data = UnsafeMutableRawPointer.allocate(byteCount: PageRecord.maxPages * 4096, alignment: 4096)
        defer { data.deallocate() }
        for r in runs {
            var i = 0
            while i < r.zero.count {
                var j = i + 1
                while j < r.zero.count && r.zero[j] == r.zero[i] { j += 1 }
                let a = r.address + UInt64(i * 4096)
                if r.zero[i] {
                    try w.writeZeroPages(pid: r.pid, address: a, count: j - i)
                } else {
                    for k in i..<j { page(r.address + UInt64(k * 4096), into: data + (k - i) * 4096) }
                    try w.writePages(pid: r.pid, address: a, data: UnsafeRawBufferPointer(start: data, count: (j - i) * 4096))
                }
                i = j
            }
        }
        try w.finish()
        return sink.bytes
    }

    static func viaStream(_ runs: [Run], path: String, kind: EncodingKind, directIO: Bool,
                          prefix: (RecordWriter) throws -> Void) throws -> (data: Int, zero: Int) {
        let w = try RecordWriter(sink: try FileSink(path: path), kind: kind)
        w.directIO = directIO
        try prefix(w)
        var total = (data: 0, zero: 0)
        let stream = try #require(try w.pageStream())
        for r in runs {
            let p = try stream.reserve(pid: r.pid, address: r.address, count: r.zero.count)
            for (k, z) in r.zero.enumerated() {
                if z { memset(p + k * 4096, 0, 4096) } else { page(r.address + UInt64(k * 4096), into: p + k * 4096) }
            }
            let n = stream.commit()
            total.data += n.data
            total.zero += n.zero
        }
        try w.finish()
        return total
    }

    @Test(arguments: [(false, "/tmp"), (true, "/tmp"), (true, "/dev/shm")])
    func sameBytesAsWritePages(directIO: Bool, base: String) throws {
        guard FileManager.default.fileExists(atPath: base) else { return }
        let dir = base + "/ferry-pagestream-\(getpid())-\(directIO)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { ImageIO.remove(dir) }
        let runs = Self.runs(seed: 3)
        let path = dir + "/pages.img"
        let n = try Self.viaStream(runs, path: path, kind: .directoryPages, directIO: directIO) { _ in }
        #expect(n.data == runs.reduce(0) { $0 + $1.zero.filter { !$0 }.count })
        #expect(n.zero == runs.reduce(0) { $0 + $1.zero.filter { $0 }.count })
        #expect(try ImageIO.readFile(path) == Self.expected(runs, kind: .directoryPages) { _ in })
    }

    /// A stream file: records before the pages (an unaligned offset, so no O_DIRECT), pages, then more records.
    @Test func streamWithRecordsAroundThePages() throws {
        let dir = try ImageIO.temporaryDirectory("pagestream")
        defer { ImageIO.remove(dir) }
        let runs = Array(Self.runs(seed: 5).prefix(20))
        let source = ImageGenerator.make(seed: 1).metadata.source
        let path = dir + "/image.stream"
        let prefix: (RecordWriter) throws -> Void = { w in
            try w.writeJSON(.source, source)
            try w.writeRecord(.pipe, prefix: [1, 0, 0, 0, 0, 0, 0, 0], body: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        _ = try Self.viaStream(runs, path: path, kind: .stream, directIO: true, prefix: prefix)
        #expect(try ImageIO.readFile(path) == Self.expected(runs, kind: .stream, prefix: prefix))
    }

    /// Other records in between close the stream; the next pages open a new one.
    @Test func recordsBetweenPages() throws {
        let dir = try ImageIO.temporaryDirectory("pagestream")
        defer { ImageIO.remove(dir) }
        let runs = Array(Self.runs(seed: 9).prefix(12))
        let path = dir + "/pages.img"
        do {
            let w = try RecordWriter(sink: try FileSink(path: path), kind: .directoryPages)
            w.directIO = true
            for (k, r) in runs.enumerated() {
                if k % 3 == 2 {
                    try w.writeZeroPages(pid: r.pid, address: r.address, count: r.zero.count)
                    continue
                }
                let stream = try #require(try w.pageStream())
                let p = try stream.reserve(pid: r.pid, address: r.address, count: r.zero.count)
                for (i, z) in r.zero.enumerated() {
                    if z { memset(p + i * 4096, 0, 4096) } else { Self.page(r.address + UInt64(i * 4096), into: p + i * 4096) }
                }
                _ = stream.commit()
            }
            try w.finish()
        }
        let want = try Self.expected(runs.enumerated().map { k, r in k % 3 == 2 ? Run(pid: r.pid, address: r.address, zero: r.zero.map { _ in true }) : r },
                                     kind: .directoryPages) { _ in }
        #expect(try ImageIO.readFile(path) == want)
    }

    /// A write error (here: the file descriptor is read-only) is thrown, not lost, and nothing hangs.
    @Test func writeErrorIsReported() throws {
        let dir = try ImageIO.temporaryDirectory("pagestream")
        defer { ImageIO.remove(dir) }
        let path = dir + "/pages.img"
        try ImageIO.writeFile(path, [])
        let fd = open(path, O_RDONLY)
        let w = try RecordWriter(sink: FileSink(fd: fd, name: path, ownsDescriptor: true, bufferSize: 4096 * 64), kind: .directoryPages)
        w.directIO = true
        let stream = try #require(try w.pageStream())
        #expect(throws: ImageError.self) {
            for k in 0..<400 {
                let n = PageRecordStream.maxPages
                let p = try stream.reserve(pid: 1, address: UInt64(k) << 32, count: n)
                Self.page(UInt64(k), into: p)
                memset(p + 4096, 1, (n - 1) * 4096)
                _ = stream.commit()
            }
            try w.finish()
        }
    }
}
