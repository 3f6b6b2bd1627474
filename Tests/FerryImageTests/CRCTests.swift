import Testing
import CFerryCRC
import FerryImage
import FerryImageFixtures

/// CRC-32C: published check values, and the hardware path (three interleaved
/// streams) against the table path on random data, lengths, alignments and
/// starting values, including lengths around the block sizes.
@Suite("CRC-32C", .timeLimit(.minutes(10)))
struct CRCTests {
    /// RFC 3720 B.4 and the usual "123456789" check value.
    @Test func knownVectors() {
        let vectors: [([UInt8], UInt32)] = [
            (Array("123456789".utf8), 0xE306_9283),
            ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
            ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
            ((0..<32).map { UInt8($0) }, 0x46DD_794E),
            ((0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
            ([], 0),
        ]
        for (bytes, want) in vectors {
            #expect(crc32c(bytes) == want)
            #expect(bytes.withUnsafeBytes { ferry_crc32c_sw(0, $0.baseAddress, $0.count) } == want)
        }
    }

    @Test func hardwareMatchesSoftware() {
        var rng = SplitMix64(seed: 0xC0FFEE)
        let size = 3 * 4096 * 3 + 1024
        let data = (0..<size + 64).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        // Lengths around the block sizes (3 × 4096, 3 × 256) and the 8-byte steps, then random ones.
        var lengths = [0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 1536, 4096, 12287, 12288, 12289, 24576 + 768 + 5, size]
        for _ in 0..<400 { lengths.append(Int(rng.next() % UInt64(size))) }
        data.withUnsafeBytes { all in
            for (k, length) in lengths.enumerated() {
                let offset = k % 64
                let seed = k % 3 == 0 ? 0 : UInt32(truncatingIfNeeded: rng.next())
                let p = all.baseAddress! + offset
                #expect(ferry_crc32c(seed, p, length) == ferry_crc32c_sw(seed, p, length), "length \(length) offset \(offset)")
            }
        }
    }

    /// Continuing from a previous value equals one pass over the whole buffer.
    @Test func continuation() {
        var rng = SplitMix64(seed: 42)
        let data = (0..<40_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let whole = crc32c(data)
        for _ in 0..<100 {
            let cut = Int(rng.next() % UInt64(data.count))
            let parts = data.withUnsafeBytes { b in
                crc32c(UnsafeRawBufferPointer(rebasing: b[cut...]), crc32c(UnsafeRawBufferPointer(rebasing: b[..<cut])))
            }
            #expect(parts == whole)
        }
    }
}
