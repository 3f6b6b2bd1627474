import FerryImage
@testable import FerryTransport
import NIOCore
import NIOEmbedded
import Testing

/// Framing and page batches without a network: bytes fed to the frame
/// assembler in arbitrary pieces must come out as the same frames, and a
/// batch of runs must come out as the same pages, however the reads split it.
struct WireTests {
    /// A deterministic generator (the tests must be reproducible).
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// `bytes` fed to a fresh assembler in pieces of random size (some in
    /// buffers much larger than their content, as a short read leaves them);
    /// returns the frames it produced.
    static func assemble(_ bytes: [UInt8], seed: UInt64, maxPiece: Int) throws -> [Frame] {
        let channel = EmbeddedChannel(handler: FrameAssembler())
        var rng = Rng(state: seed)
        var at = 0
        while at < bytes.count {
            let n = min(bytes.count - at, 1 + rng.below(maxPiece))
            var b = ByteBufferAllocator().buffer(capacity: rng.below(3) == 0 ? n * 4 : n)
            b.writeBytes(bytes[at..<at + n])
            try channel.writeInbound(b)
            at += n
        }
        var frames: [Frame] = []
        while let f = try channel.readInbound(as: Frame.self) { frames.append(f) }
        _ = try? channel.finish()
        return frames
    }

    static func bytes(_ b: ByteBuffer) -> [UInt8] { b.getBytes(at: b.readerIndex, length: b.readableBytes)! }

    /// The PRECOPY_PAGES frame a connection sends for `batch`.
    static func sealed(_ batch: PageBatch) -> [UInt8] {
        var frame = batch.frame
        FrameEncoding.seal(&frame, .precopyPages)
        return bytes(frame)
    }

    static func encode(_ type: MessageType, _ payload: [UInt8]) -> [UInt8] {
        bytes(payload.withUnsafeBytes { FrameEncoding.encode(type, $0, allocator: ByteBufferAllocator()) })
    }

    @Test("frames come out whole and unchanged whatever the read sizes", arguments: [1, 7, 4096, 100_000, 2 << 20])
    func frames(maxPiece: Int) throws {
        var rng = Rng(state: 42)
        // Tiny reads only over small frames (a byte-wise MiB takes long in a debug build).
        let big = maxPiece >= 4096 ? 1 : 64
        let payloads: [(MessageType, [UInt8])] = [
            (.hello, Array("{\"role\":\"source\"}".utf8)),
            (.commit, []),
            (.imageChunk, (0..<(256 << 10) / big).map { _ in UInt8(truncatingIfNeeded: rng.next()) }),
            (.precopyPages, (0..<(1 << 20) / big + 16).map { _ in UInt8(truncatingIfNeeded: rng.next()) }),
            (.ack, Array("{}".utf8)),
        ]
        let wire = payloads.flatMap { Self.encode($0.0, $0.1) }
        let frames = try Self.assemble(wire, seed: UInt64(maxPiece), maxPiece: maxPiece)
        #expect(frames.count == payloads.count)
        for (f, p) in zip(frames, payloads) {
            #expect(f.type == p.0)
            #expect(f.byteCount == p.1.count)
            #expect(Self.bytes(f.payload) == p.1)
        }
    }

    @Test("a corrupted byte, an unknown type, an oversized length and a cut-off frame are refused")
    func badFrames() throws {
        var good = Self.encode(.imageChunk, [UInt8](repeating: 9, count: 5000))
        good[3000] ^= 1
        #expect(throws: MigrationError.self) { _ = try Self.assemble(good, seed: 1, maxPiece: 999) }
        var unknown = Self.encode(.hello, [1, 2, 3])
        unknown[0] = 99
        #expect(throws: MigrationError.self) { _ = try Self.assemble(unknown, seed: 1, maxPiece: 5) }
        var huge = Self.encode(.hello, [1, 2, 3])
        huge[4] = 0xff; huge[5] = 0xff; huge[6] = 0xff  // 16 MiB > HELLO's cap; refused before any payload is kept
        #expect(throws: MigrationError.self) { _ = try Self.assemble(Array(huge[0..<12]), seed: 1, maxPiece: 12) }

        let channel = EmbeddedChannel(handler: FrameAssembler())
        var cut = ByteBufferAllocator().buffer(capacity: 100)
        cut.writeBytes(Self.encode(.hello, [UInt8](repeating: 1, count: 50))[0..<30])
        try channel.writeInbound(cut)
        channel.pipeline.fireChannelInactive()
        #expect(throws: MigrationError.self) { try channel.throwIfErrorCaught() }
    }

    @Test("a page batch gives back every run, split only where a page straddles two reads")
    func pageBatch() throws {
        var rng = Rng(state: 5)
        var expected: [UInt64: [UInt8]] = [:]  // page address → contents ([] for a zero page)
        var batches: [[UInt8]] = []
        var batch = PageBatch(allocator: ByteBufferAllocator())
        var address: UInt64 = 0x7f00_0000_0000
        var runs = 0
        while runs < 250 {
            let zero = rng.below(4) == 0
            let n = zero ? 1 + rng.below(3000) : 1 + rng.below(40)
            var data: [UInt8]? = nil
            if !zero { data = (0..<n * 4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            // What `MigrationSource.add` does: long runs split, a full batch sent.
            var done = 0
            while done < n {
                let k = min(n - done, zero ? PageRecord.maxZeroPages : PageBatch.maxRunPages)
                if !batch.fits(pages: k, data: !zero) {
                    batches.append(Self.sealed(batch))
                    batch = PageBatch(allocator: ByteBufferAllocator())
                }
                let at = address + UInt64(done * 4096)
                if let data {
                    data.withUnsafeBytes { batch.add(pid: 7, address: at, data: UnsafeRawBufferPointer(rebasing: $0[done * 4096..<(done + k) * 4096]), count: k) }
                } else {
                    batch.add(pid: 7, address: at, data: nil, count: k)
                }
                done += k
            }
            for p in 0..<n { expected[address + UInt64(p * 4096)] = data.map { Array($0[p * 4096..<(p + 1) * 4096]) } ?? [] }
            address += UInt64((n + 1 + rng.below(3)) * 4096)
            runs += 1
        }
        if !batch.isEmpty { batches.append(Self.sealed(batch)) }
        #expect(batches.count > 2)
        for maxPiece in [333, 4096, 65_537, 1 << 20] {
            let frames = try Self.assemble(batches.flatMap { $0 }, seed: UInt64(maxPiece), maxPiece: maxPiece)
            #expect(frames.count == batches.count)
            var got: [UInt64: [UInt8]] = [:]
            for f in frames {
                try PageBatch.forEachRun(f, peer: "test") { span in
                    #expect(span.pid == 7)
                    for p in 0..<span.pageCount {
                        let a = span.address + UInt64(p * 4096)
                        #expect(got[a] == nil, "page \(a) twice")
                        got[a] = span.data.map { Array(UnsafeRawBufferPointer(rebasing: $0[p * 4096..<(p + 1) * 4096])) } ?? []
                    }
                }
            }
            #expect(got == expected)
        }
    }

    @Test("a batch with a bad run is refused with one line")
    func badBatches() throws {
        func frame(_ head: [UInt8], data: Int) -> Frame {
            var b = ByteBufferAllocator().buffer(capacity: head.count + data)
            b.writeBytes(head)
            b.writeBytes([UInt8](repeating: 1, count: data))
            return Frame(type: .precopyPages, payload: b)
        }
        func head(pid: UInt32 = 1, count: UInt32, address: UInt64) -> [UInt8] {
            withUnsafeBytes(of: pid.littleEndian, Array.init) + withUnsafeBytes(of: count.littleEndian, Array.init)
                + withUnsafeBytes(of: address.littleEndian, Array.init)
        }
        let cases: [(Frame, String)] = [
            (frame(head(count: 1, address: 0x1001), data: 4096), "misaligned"),
            (frame(head(count: 0, address: 0x1000), data: 0), "no pages"),
            (frame(head(count: 2, address: 0x1000), data: 4096), "short data"),
            (frame(head(count: UInt32(PageRecord.maxPages + 1), address: 0x1000), data: 0), "too many pages"),
            (frame(head(count: 1 << 31 | UInt32(PageRecord.maxZeroPages + 1), address: 0x1000), data: 0), "too many zero pages"),
            (frame(Array(head(count: 1, address: 0x1000)[0..<10]), data: 0), "cut header"),
        ]
        for (f, what) in cases {
            #expect(throws: MigrationError.self, "\(what)") { try PageBatch.forEachRun(f, peer: "test") { _ in } }
        }
    }
}
