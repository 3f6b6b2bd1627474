import FerryImage
@testable import FerryTransport
import NIOCore
import Testing

/// Sizes from the process or a peer that used to trap the sender.
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
        let reason = Reason(String(repeating: "é", count: 200_000))
        #expect(reason.reason.count == Reason.maxCharacters + 1)
        let payload = WireJSON.encode(reason)
        #expect(payload.count <= MessageType.nack.maxLength)
        let frame = payload.withUnsafeBytes { FrameEncoding.encode(.nack, $0, allocator: ByteBufferAllocator()) }
        #expect(frame.readableBytes == payload.count + WireProtocol.headerSize)
    }
}
