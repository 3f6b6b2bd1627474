import Foundation
import Testing
@testable import FerryELF

/// All of a /proc file (whose size stat reports as 0).
private func readWhole(_ path: String) throws -> Data {
    let handle = try #require(FileHandle(forReadingAtPath: path))
    defer { try? handle.close() }
    return try handle.readToEnd() ?? Data()
}

/// The `[vdso]` mapping of this test process, from /proc/self/maps.
private func ownVDSO() throws -> Range<UInt64>? {
    let maps = String(decoding: try readWhole("/proc/self/maps"), as: UTF8.self)
    guard let line = maps.split(separator: "\n").first(where: { $0.hasSuffix("[vdso]") }),
          let addresses = line.split(separator: " ").first else { return nil }
    let bounds = addresses.split(separator: "-").compactMap { UInt64($0, radix: 16) }
    guard bounds.count == 2, bounds[0] < bounds[1] else { return nil }
    return bounds[0]..<bounds[1]
}

/// A copy of this process's own vDSO, which is readable memory.
private func copyOwnVDSO() throws -> (base: UInt64, bytes: [UInt8]) {
    let range = try #require(try ownVDSO())
    let start = try #require(UnsafeRawPointer(bitPattern: UInt(range.lowerBound)))
    let bytes = [UInt8](UnsafeRawBufferPointer(start: start, count: Int(range.upperBound - range.lowerBound)))
    return (range.lowerBound, bytes)
}

/// This process's auxiliary vector, from /proc/self/auxv.
private func auxiliaryVector() throws -> [UInt64: UInt64] {
    let data = try readWhole("/proc/self/auxv")
    let words = data.withUnsafeBytes { raw in
        (0..<(raw.count / 8)).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) }
    }
    var vector: [UInt64: UInt64] = [:]
    for pair in stride(from: 0, to: words.count - 1, by: 2) { vector[words[pair]] = words[pair + 1] }
    return vector
}

@Suite(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/maps")))
struct VDSOTests {
    @Test func parsesOwnVDSO() throws {
        let (base, bytes) = try copyOwnVDSO()
        #expect(try auxiliaryVector()[33] == base)  // AT_SYSINFO_EHDR
        let vdso = try ELFFile(bytes: bytes)
        #expect(vdso.source == "<memory>")
        #expect(vdso.header.type == .sharedObject)
        #expect(vdso.soname == "linux-vdso.so.1")
        #expect(vdso.interpreter == nil)
        #expect(vdso.loadBias(forMappedBase: base) == base)

        for name in ["__vdso_clock_gettime", "__vdso_gettimeofday", "clock_gettime"] {
            let symbol = try #require(vdso.symbol(named: name), "\(name) missing")
            #expect(symbol.name == name)
            #expect(symbol.type == .function)
            #expect(symbol.isDefined)
            #expect(symbol.version == "LINUX_2.6")
            #expect(symbol.versionedName == name + "@@LINUX_2.6")
            #expect(symbol.value < UInt64(bytes.count), "\(name) lies outside the vDSO")
            #expect(vdso.mappedSegments(loadBias: base).isCodePointer(base + symbol.value))
        }
        #expect(vdso.symbol(named: "__vdso_clock_gettime@@LINUX_2.6") != nil)
    }

    @Test func callsOwnVDSOClockGettime() throws {
        let (base, bytes) = try copyOwnVDSO()
        let vdso = try ELFFile(bytes: bytes)
        let symbol = try #require(vdso.symbol(named: "__vdso_clock_gettime"))
        typealias ClockGettime = @convention(c) (clockid_t, UnsafeMutablePointer<timespec>?) -> Int32
        let address = try #require(UnsafeRawPointer(bitPattern: UInt(base + symbol.value)))
        let vdsoClockGettime = unsafeBitCast(address, to: ClockGettime.self)

        var before = timespec(), during = timespec(), after = timespec()
        clock_gettime(CLOCK_MONOTONIC, &before)
        #expect(vdsoClockGettime(CLOCK_MONOTONIC, &during) == 0)
        clock_gettime(CLOCK_MONOTONIC, &after)
        func nanoseconds(_ t: timespec) -> Int { t.tv_sec * 1_000_000_000 + t.tv_nsec }
        #expect(nanoseconds(before) <= nanoseconds(during))
        #expect(nanoseconds(during) <= nanoseconds(after))
    }
}
