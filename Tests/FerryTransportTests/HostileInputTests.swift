import FerryImage
import FerryImageFixtures
@testable import FerryTransport
import NIOCore
import Testing

/// Sizes from the process or a peer that decide how large a frame is: each is checked before sealing.
struct TransportLimitTests {
    /// Pre-copy metadata over the PRECOPY_META cap is caught before it is
    /// sent (the source then rolls tracking back and goes stop-and-copy).
    @Test func oversizedPrecopyMetadataIsCaughtBeforeSending() {
        let cap = MessageType.precopyMeta.maxLength
        #expect(MigrationSource.precopyMetadataProblem(bytes: cap, processes: 1) == nil)
        let why = MigrationSource.precopyMetadataProblem(bytes: cap + 1, processes: 1)
        #expect(why == "the pre-copy metadata takes \(cap + 1) bytes, more than one PRECOPY_META message carries (\(cap))")
        #expect(MigrationSource.precopyMetadataProblem(bytes: 100, processes: 0) != nil)
    }

    /// A NACK/ABORT reason quoting a long error still fits its 64 KiB frame.
    @Test func longReasonFitsItsFrame() throws {
        let reason = Reason(String(repeating: "\u{1}é", count: 200_000))
        #expect(reason.reason.utf8.count <= Reason.maxBytes + 3)
        let payload = WireJSON.encode(reason)
        #expect(payload.count <= MessageType.nack.maxLength)
        let frame = payload.withUnsafeBytes { FrameEncoding.encode(.nack, $0, allocator: ByteBufferAllocator()) }
        #expect(frame.readableBytes == payload.count + WireProtocol.headerSize)
    }

    /// A hostile target's CAPABILITIES (its OS name, 1 MiB) quoted in the
    /// reasons of a refusal: the VERDICT still fits its frame.
    @Test func refusalQuotingAHugeCapabilitiesFitsItsFrame() throws {
        let host = SourceHost(os: String(repeating: "x", count: 900_000), kernelRelease: "1", cpu: CPUFeatures(xcr0: 7, xsaveSize: 832, flags: []))
        let caps = Capabilities(host: host, vdso: [], pidsFree: false, newPidNamespace: false, freeMemoryBytes: 0)
        let hello = Hello(pids: [1], memoryBytes: 1 << 40)
        let local = SourceHost(os: "linux", kernelRelease: "6.8", cpu: CPUFeatures(xcr0: 7, xsaveSize: 832, flags: []))
        let reasons = MigrationSource.verdict(hello: hello, capabilities: caps, local: local, localVDSO: [])
        #expect(WireJSON.encode(Verdict(go: false, reasons: reasons)).count > MessageType.verdict.maxLength)
        let payload = WireJSON.encode(Verdict.refused(reasons + Array(repeating: "r", count: 20)))
        #expect(payload.count <= MessageType.verdict.maxLength)
        _ = payload.withUnsafeBytes { FrameEncoding.encode(.verdict, $0, allocator: ByteBufferAllocator()) }
    }

    /// A HELLO naming more pids than a tree holds is refused before it is answered.
    @Test func helloWithTooManyPidsIsRefused() {
        #expect(Hello(pids: Array(0..<Int32(Hello.maxPids)), memoryBytes: 0).problem == nil)
        let why = Hello(pids: Array(0..<Int32(Hello.maxPids + 1)), memoryBytes: 0).problem
        #expect(why == "HELLO names \(Hello.maxPids + 1) pids, more than a tree ferry migrates (\(Hello.maxPids))")
    }
}

/// A source whose pre-copy metadata is larger than one PRECOPY_META frame
/// (tracking starts, then must be undone); its final image is `inner`'s.
final class OversizedPrecopySubject: PrecopySubject, @unchecked Sendable {
    let inner: FakeSubject
    let metadata: ImageMetadata
    private(set) var started = 0, cancelled = 0, rounds = 0
    init(inner: FakeSubject, metadata: ImageMetadata) { self.inner = inner; self.metadata = metadata }
    var pids: [Int32] { inner.pids }
    var memoryBytes: UInt64 { inner.memoryBytes }
    func freeze() throws { try inner.freeze() }
    func writeImage(to sink: ByteSink) throws { try inner.writeImage(to: sink) }
    func resume() { inner.resume() }
    func kill() { inner.kill() }
    func startPrecopy() throws -> ImageMetadata { started += 1; return metadata }
    func precopyRound(_ emit: (Int32, UInt64, UnsafeRawBufferPointer?, Int) throws -> Void) throws -> Int { rounds += 1; return 0 }
    func cancelPrecopy() { cancelled += 1 }
    var precopyFreezeMs: Double { 0 }
}

@Suite(.serialized)
struct OversizedPrecopyTests {
    /// Tracking is rolled back and the migration goes stop-and-copy: no
    /// PRECOPY_META reaches the target (this one takes no pre-copy, and
    /// would refuse it), and the source never traps on the frame's cap.
    @Test func oversizedPrecopyMetadataFallsBackToStopAndCopy() throws {
        var meta = ImageGenerator.make(seed: 5, size: .small).metadata
        meta.processes[0].comm = String(repeating: "m", count: MessageType.precopyMeta.maxLength)
        let stream = try ImageIO.streamBytes(ImageGenerator.make(seed: 7))
        let subject = OversizedPrecopySubject(inner: FakeSubject(stream: stream), metadata: meta)
        let target = FakeTarget()
        let r = try migrateOverLoopback(subject: subject, target: target, precopy: PrecopyOptions(enabled: true))
        #expect(r.sourceError == nil, "\(r.sourceError ?? "")")
        #expect(r.outcome == .migrated(pid: 777))
        #expect(subject.started == 1 && subject.cancelled == 1 && subject.rounds == 0)
        #expect(subject.inner.state == .killed)
        #expect(r.summary?.rounds == 1)
    }
}
