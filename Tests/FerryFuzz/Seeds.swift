import Foundation
import FerryImage
import FerryImageFixtures
import FerryFuzzTargets
@testable import FerryTransport
import NIOCore

/// Seed inputs for every fuzz target, built from valid images and messages
/// (the first byte of each is the control byte `FuzzTarget.run` reads).
enum Seeds {
    static func write(to out: String) throws {
        let fm = FileManager.default
        func save(_ target: FuzzTarget, _ name: String, _ payload: [UInt8], reseal: Bool = true) {
            let dir = out + "/" + target.rawValue
            try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            fm.createFile(atPath: dir + "/" + name, contents: Data([reseal ? 1 : 0] + payload))
        }
        for seed in UInt64(1)...4 {
            let image = ImageGenerator.make(seed: seed, size: .small)
            // A few runs keep the seeds small (libFuzzer mutates whole inputs).
            let trimmed = GeneratedImage(metadata: image.metadata, runs: Array(image.runs.prefix(3)))
            let stream = try ImageIO.streamBytes(trimmed)
            save(.imageStream, "seed-\(seed)", stream)
            save(.metadataFirst, "seed-\(seed)", stream)
            save(.metadataFirst, "seed-\(seed)-sealed", stream, reseal: false)
            let dir = try ImageIO.temporaryDirectory("fuzz-seed")
            defer { ImageIO.remove(dir) }
            try ImageIO.writeDirectory(trimmed, to: dir)
            save(.imageDirectory, "seed-\(seed)", try ImageIO.readFile(dir + "/" + ImageFormat.metaFileName)
                 + ImageIO.readFile(dir + "/" + ImageFormat.pagesFileName))

            var batch = PageBatch(allocator: ByteBufferAllocator())
            for run in trimmed.runs where batch.fits(pages: run.pageCount, data: run.data != nil) {
                run.withSpan { s in batch.add(pid: s.pid, address: s.address, data: s.data, count: s.pageCount) }
            }
            var pages = batch.frame
            FrameEncoding.seal(&pages, .precopyPages)
            let hello = WireJSON.encode(Hello(pids: [Int32(seed) * 100, Int32(seed) * 100 + 1], memoryBytes: seed << 24,
                                              allowMissingCPUFeatures: seed % 2 == 0 ? ["avx512f"] : nil))
            let caps = WireJSON.encode(Capabilities(host: image.metadata.source, vdso: [VDSOArea(name: "[vdso]", size: 8192)],
                                                    pidsFree: seed % 2 == 0,
                                                    newPidNamespace: seed % 2 == 0, freeMemoryBytes: seed << 30))
            var wire = frame(.hello, hello) + frame(.capabilities, caps) + frame(.verdict, WireJSON.encode(Verdict(go: true)))
            wire += frame(.precopyMeta, WireJSON.encode(image.metadata)) + bytes(pages) + frame(.precopySync, [])
            wire += frame(.imageChunk, Array(stream.prefix(200)))
            wire += frame(.ack, WireJSON.encode(Ack(pid: 7, namespaceInit: nil, restoreMs: 1, notes: [])))
            wire += frame(.abort, WireJSON.encode(Reason("stop")))
            save(.wire, "seed-\(seed)", wire)
            save(.handshake, "seed-\(seed)", hello + [0] + caps)
        }
    }

    static func bytes(_ b: ByteBuffer) -> [UInt8] { b.getBytes(at: b.readerIndex, length: b.readableBytes) ?? [] }

    static func frame(_ type: MessageType, _ payload: [UInt8]) -> [UInt8] {
        bytes(payload.withUnsafeBytes { FrameEncoding.encode(type, $0, allocator: ByteBufferAllocator()) })
    }
}
