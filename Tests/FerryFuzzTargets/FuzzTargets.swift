#if canImport(Glibc)
import Glibc
#endif
import Foundation
import FerryImage
import FerryCore
import FerryContainer
@testable import FerryTransport
import NIOCore
import NIOEmbedded

/// The inputs ferry takes from images and peers, as fuzz targets: each
/// `run` feeds one input to the real decoder and returns whatever happens,
/// so only a trap, a hang or a huge allocation is a finding (errors are the
/// expected outcome for damaged input).
///
/// Every input starts with one control byte; the rest is the payload.
/// Bit 0 of the control byte: recompute the checksums (image header and
/// records, or wire frames) before decoding, so that mutations reach the
/// decoders behind them instead of stopping at a checksum mismatch. The
/// wire target takes its read sizes from the other bits.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A directory image: meta.img, then pages.img from the second "FERRYIMG" of the payload.
    case imageDirectory = "image-dir"
    /// A stream image read by `StreamImageReader` (metadata and pages in any order).
    case imageStream = "image-stream"
    /// A stream image read by `MetadataFirstStreamReader`, as restore and migration read it.
    case metadataFirst = "metadata-first"
    /// Wire frames through `FrameAssembler`, each frame decoded as its type says.
    case wire
    /// HELLO and CAPABILITIES JSON (separated by a NUL byte), and the source's verdict on them.
    case handshake

    public func run(_ input: UnsafeRawBufferPointer) {
        guard let control = input.first else { return }
        var payload = Array(input.dropFirst())
        let reseal = control & 1 != 0
        switch self {
        case .imageDirectory:
            let split = Self.secondMagic(payload) ?? payload.count
            var meta = Array(payload[..<split]), pages = Array(payload[split...])
            if reseal { Reseal.image(&meta); Reseal.image(&pages) }
            Self.readDirectory(meta: meta, pages: pages)
        case .imageStream:
            if reseal { Reseal.image(&payload) }
            _ = try? StreamImageReader.read(from: MemorySource(payload, name: "fuzz")) { _ in }
        case .metadataFirst:
            if reseal { Reseal.image(&payload) }
            if let r = try? MetadataFirstStreamReader(source: MemorySource(payload, name: "fuzz")) {
                try? r.forEachPageRun { _ in }
                Self.plan(r.metadata)
            }
        case .wire:
            if reseal { Reseal.frames(&payload) }
            Self.decodeFrames(payload, readSize: 64 + Int(control >> 1) * 512)
        case .handshake:
            let parts = payload.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
            Self.handshake(hello: Array(parts[0]), capabilities: parts.count > 1 ? Array(parts[1]) : [])
        }
    }

    public func run(_ bytes: [UInt8]) { bytes.withUnsafeBytes { run($0) } }

    /// What a restore decides from validated metadata before it touches the
    /// target: its container record, placement on a Linux and a FreeBSD layout, System V segments
    /// and attaches, and the registers each thread resumes with.
    static func plan(_ meta: ImageMetadata) {
        // The CONTAINER record (spec, network) as a restore decodes it.
        if let bytes = meta.container?.value { _ = try? ContainerRecord.decode(bytes) }
        let targets = [TargetLayout.linux(stackTop: 0x7ffd_0000_0000, vdsoAreas: TargetLayout.linuxVDSOBlock(at: 0x7fff_f7fc_0000)),
                       TargetLayout.freebsdLinuxulator()]
        // System V segments and attaches, as `SysVShm.plan` checks them before a restore creates anything.
        _ = try? SysVShmPlan.segments(meta.processes)
        _ = SharedMemoryPlan.dumped(meta.processes)
        for p in meta.processes {
            _ = try? SysVShmPlan.attaches(p)
            for target in targets {
                _ = try? Placement.planPlacement(process: p, target: target, stackPolicy: .moveToTargetTop)
            }
            for t in p.threads {
                _ = SyscallRestartRules.linuxRegisters(resuming: t.registers, syscall: t.syscall)
                _ = SyscallRestartRules.freeBSDRegisters(resuming: t.registers, syscall: t.syscall)
            }
            // Socket records: the restore's calls and the bytes written after it.
            for f in p.files {
                guard let s = f.inet else { continue }
                _ = try? InetSocketPlan.steps(s)
                _ = try? InetSocketPlan.unsentPart(s)
            }
        }
        let ends = UnixSocketPlan.ends(meta.processes)
        _ = try? UnixSocketPlan.pairs(ends)
        _ = try? UnixSocketPlan.queuedConnections(ends)
    }

    static func secondMagic(_ b: [UInt8]) -> Int? {
        let magic = ImageFormat.magic
        guard b.count >= 2 * magic.count else { return nil }
        var i = magic.count
        while i + magic.count <= b.count {
            if b[i] == magic[0] && Array(b[i..<i + magic.count]) == magic { return i }
            i += 1
        }
        return nil
    }

    /// A directory per process, reused by every input.
    static let directory: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let d = "\(base)/ferry-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    static func readDirectory(meta: [UInt8], pages: [UInt8]) {
        let d = directory
        guard FileManager.default.createFile(atPath: d + "/" + ImageFormat.metaFileName, contents: Data(meta)),
              FileManager.default.createFile(atPath: d + "/" + ImageFormat.pagesFileName, contents: Data(pages)) else { return }
        guard let reader = try? DirectoryImageReader(directory: d) else { return }
        try? reader.forEachPageRun { _ in }
        if let mapped = try? reader.mappedPages() {
            try? mapped.forEachRecord(index: MappingIndex(reader.metadata)) { try $0.verify() }
        }
    }

    static func decodeFrames(_ bytes: [UInt8], readSize: Int) {
        let channel = EmbeddedChannel(handler: FrameAssembler())
        defer { _ = try? channel.finish() }
        var at = 0
        while at < bytes.count {
            let n = min(readSize, bytes.count - at)
            var b = channel.allocator.buffer(capacity: n)
            b.writeBytes(bytes[at..<at + n])
            at += n
            do { try channel.writeInbound(b) } catch { return }
            while let frame = try? channel.readInbound(as: Frame.self) { decode(frame) }
        }
    }

    /// What the receiving side does with each kind of frame before acting on it.
    static func decode(_ frame: Frame) {
        switch frame.type {
        case .precopyPages:
            try? PageBatch.forEachRun(frame, peer: "fuzz") { span in _ = span.data?.count }
        case .precopyMeta:
            if let meta = try? WireJSON.decode(ImageMetadata.self, frame), (try? Validation.validate(meta, name: "fuzz")) != nil {
                _ = MappingIndex(meta)
            }
        case .hello: _ = try? WireJSON.decode(Hello.self, frame)
        case .capabilities: _ = try? WireJSON.decode(Capabilities.self, frame)
        case .verdict: _ = try? WireJSON.decode(Verdict.self, frame)
        case .ack: _ = try? WireJSON.decode(Ack.self, frame)
        case .nack, .abort: _ = try? WireJSON.decode(Reason.self, frame)
        case .imageChunk, .commit, .precopySync, .precopySynced: _ = frame.payload.readableBytes
        }
    }

    /// The host the handshake target compares a peer's capabilities with.
    static let localHost = SourceHost(os: "linux", kernelRelease: "6.8.0", cpu: CPUFeatures(xcr0: 0x7, xsaveSize: 832, flags: ["fpu", "sse2", "avx", "xsave"]))

    static let localVDSO = [VDSOArea(name: "[vvar]", size: 0x4000), VDSOArea(name: "[vdso]", size: 0x2000)]

    static func handshake(hello: [UInt8], capabilities: [UInt8]) {
        let h = try? WireJSON.decode(Hello.self, Frame(type: .hello, payload: ByteBuffer(bytes: hello)))
        let c = try? WireJSON.decode(Capabilities.self, Frame(type: .capabilities, payload: ByteBuffer(bytes: capabilities)))
        guard let h, h.problem == nil, let c else { return }
        // The refusal goes back in a VERDICT frame, whose sealing traps on an oversized payload.
        let reasons = MigrationSource.verdict(hello: h, capabilities: c, local: localHost, localVDSO: localVDSO)
        let verdict = WireJSON.encode(Verdict.refused(reasons))
        _ = verdict.withUnsafeBytes { FrameEncoding.encode(.verdict, $0, allocator: ByteBufferAllocator()) }
    }
}


/// Recomputes the checksums of damaged inputs, so mutations get past them.
public enum Reseal {
    static func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    static func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) {
        for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    /// The image header's checksum and every complete record's.
    public static func image(_ b: inout [UInt8]) {
        guard b.count >= ImageFormat.headerSize else { return }
        put32(&b, 28, crc32c(Array(b[0..<28])))
        var at = ImageFormat.headerSize
        while at + 8 <= b.count {
            let end = at + 8 + Int(le32(b, at + 4))
            guard end + 4 <= b.count else { return }
            put32(&b, end, crc32c(Array(b[at..<end])))
            at = end + 4
        }
    }

    /// Every complete wire frame's checksum (over type, length and payload).
    public static func frames(_ b: inout [UInt8]) {
        var at = 0
        while at + WireProtocol.headerSize <= b.count {
            let end = at + WireProtocol.headerSize + Int(le32(b, at + 4))
            guard end <= b.count else { return }
            put32(&b, at + 8, crc32c(Array(b[at + WireProtocol.headerSize..<end]), crc32c(Array(b[at..<at + 8]))))
            at = end
        }
    }
}
