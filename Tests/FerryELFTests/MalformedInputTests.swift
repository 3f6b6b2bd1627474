import Foundation
import Testing
@testable import FerryELF

/// A small seeded generator, so a failing corruption case can be replayed.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

private let samplePath = "/usr/bin/env"
private let sample: [UInt8] = Array((try? Data(contentsOf: URL(fileURLWithPath: samplePath))) ?? Data())

/// Writes a little-endian integer into `bytes` at `offset`.
private func poke<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ offset: Int, _ value: T) {
    for index in 0..<(T.bitWidth / 8) { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
}

/// Reads a little-endian integer from `bytes` at `offset`.
private func peek<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, as _: T.Type) -> T {
    (0..<(T.bitWidth / 8)).reversed().reduce(T(0)) { $0 << 8 | T(bytes[offset + $1]) }
}

/// Parses `bytes`, requiring either an `ELFError` with a one-line message
/// about `<memory>`, or a result whose every part lies inside the bytes.
/// Returns whether the bytes were accepted.
@discardableResult
private func parseSanely(_ bytes: [UInt8], _ label: String) -> Bool {
    do {
        let file = try ELFFile(bytes: bytes)
        let size = UInt64(bytes.count)
        for segment in file.segments where segment.type != .null {
            #expect(segment.offset <= size && segment.fileSize <= size - segment.offset, "\(label)")
        }
        for section in file.sections where section.type != .nobits && section.type != .null {
            #expect(section.offset <= size && section.size <= size - section.offset, "\(label)")
        }
        #expect(UInt64(file.symbols.count) <= size / 24, "\(label)")
        #expect(UInt64(file.notes.reduce(0) { $0 + $1.descriptor.count }) <= size, "\(label)")
        #expect((file.interpreter?.utf8.count ?? 0) < bytes.count, "\(label)")
        return true
    } catch {
        let message = error.description
        #expect(message.hasPrefix("<memory>: "), "\(label): \(message)")
        #expect(!message.contains("\n"), "\(label): \(message)")
        return false
    }
}

@Suite(.enabled(if: !sample.isEmpty))
struct MalformedInputTests {
    @Test func everyTruncationOfTheFirst4KiB() {
        for length in 0...min(4096, sample.count) {
            let accepted = parseSanely(Array(sample.prefix(length)), "truncated to \(length)")
            #expect(!accepted, "a \(length)-byte prefix of \(samplePath) was accepted")
        }
    }

    @Test func truncationsOfTheTail() {
        // Cutting into the section header table at the end must be caught too.
        for cut in stride(from: 1, through: 2048, by: 7) where cut < sample.count {
            let accepted = parseSanely(Array(sample.dropLast(cut)), "dropped last \(cut)")
            #expect(!accepted, "\(samplePath) without its last \(cut) bytes was accepted")
        }
    }

    @Test(arguments: 0..<200)
    func randomByteFlips(seed: Int) throws {
        var random = SplitMix64(state: UInt64(seed))
        var bytes = sample
        // Half the cases aim at the headers and tables, where flips change
        // counts and offsets; the others anywhere in the file.
        let shoff = Int(peek(bytes, 0x28, as: UInt64.self))
        let hot = [0..<64, 64..<(64 + 56 * 13), shoff..<bytes.count]
        for _ in 0..<Int.random(in: 1...6, using: &random) {
            let region = seed % 2 == 0 ? hot.randomElement(using: &random)! : 0..<bytes.count
            bytes[Int.random(in: region, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
        }
        parseSanely(bytes, "seed \(seed)")
    }

    @Test func flipsOfTheVDSOCopy() throws {
        // The same, on a file without sections' padding: the vDSO of this process.
        let maps = String(decoding: try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/maps")).readToEnd() ?? Data(), as: UTF8.self)
        guard let line = maps.split(separator: "\n").first(where: { $0.hasSuffix("[vdso]") }) else { return }
        let bounds = line.split(separator: " ")[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
        let start = try #require(UnsafeRawPointer(bitPattern: UInt(bounds[0])))
        let vdso = [UInt8](UnsafeRawBufferPointer(start: start, count: Int(bounds[1] - bounds[0])))
        let whole = parseSanely(vdso, "vdso")
        #expect(whole)
        var random = SplitMix64(state: 42)
        var accepted = 0
        for round in 0..<200 {
            var bytes = vdso
            bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            accepted += parseSanely(bytes, "vdso flip \(round)") ? 1 : 0
        }
        // Most single flips land in code or padding and leave a readable file.
        #expect(accepted > 0 && accepted < 200)
        // The mapping is whole pages; the ELF image ends with its section headers.
        let imageEnd = Int(peek(vdso, 0x28, as: UInt64.self)) + 64 * Int(peek(vdso, 0x3c, as: UInt16.self))
        #expect(imageEnd <= vdso.count)
        for length in stride(from: 0, to: imageEnd, by: 13) {
            let accepted = parseSanely(Array(vdso.prefix(length)), "vdso truncated to \(length)")
            #expect(!accepted, "a \(length)-byte prefix of the vDSO was accepted")
        }
    }

    /// Targeted damage, each with the error it must give.
    @Test func targetedDamageGivesTheRightError() throws {
        func damaged(_ change: (inout [UInt8]) -> Void) -> ELFError.Kind? {
            var bytes = sample
            change(&bytes)
            do { _ = try ELFFile(bytes: bytes); return nil } catch { return error.kind }
        }
        let phoff = Int(peek(sample, 0x20, as: UInt64.self))
        let shoff = Int(peek(sample, 0x28, as: UInt64.self))
        let shnum = Int(peek(sample, 0x3c, as: UInt16.self))

        #expect(damaged { $0[4] = 1 } == .wrongClass(1))
        #expect(damaged { $0[5] = 2 } == .wrongByteOrder(2))
        #expect(damaged { poke(&$0, 0x12, UInt16(183)) } == .wrongMachine(183))
        #expect(damaged { $0[0] = 0x7e } == .notELF)
        #expect(damaged { poke(&$0, 0x36, UInt16(32)) } == .malformed("the program header table entries are 32 bytes, ELF64 needs 56"))
        if case .truncated = damaged({ poke(&$0, 0x38, UInt16(0xfffe)) }) {} else { Issue.record("huge e_phnum accepted") }
        #expect(damaged { poke(&$0, 0x28, UInt64.max - 8) } != nil)
        #expect(damaged { poke(&$0, 0x3e, UInt16(shnum + 5)) } != nil)
        // The first PT_LOAD's file size beyond the end of the file.
        #expect(damaged { poke(&$0, phoff + 56 * 2 + 0x20, UInt64(1) << 40) } != nil)
        // Every section in turn: size beyond the file, then a link to nowhere.
        for index in 1..<shnum {
            let header = shoff + 64 * index
            let type = peek(sample, header + 4, as: UInt32.self)
            if type != 8 {  // SHT_NOBITS has no file bytes to overrun
                #expect(damaged { poke(&$0, header + 0x20, UInt64(sample.count)) } != nil, "section \(index) size")
            }
            if [2, 6, 11, 0x6fff_fffd, 0x6fff_fffe].contains(type) {  // types whose sh_link names a string table
                #expect(damaged { poke(&$0, header + 0x28, UInt32(shnum + 100)) } != nil, "section \(index) link")
            }
        }
    }

    @Test func withoutSectionHeadersTheProgramHeadersStillServe() throws {
        // Like a memory dump that lost its section headers: e_shoff, e_shnum
        // and e_shstrndx zeroed. The dynamic table then comes from PT_DYNAMIC
        // and its strings from DT_STRTAB through the PT_LOAD that maps it.
        var bytes = sample
        poke(&bytes, 0x28, UInt64(0))
        poke(&bytes, 0x3c, UInt16(0))
        poke(&bytes, 0x3e, UInt16(0))
        let stripped = try ELFFile(bytes: bytes)
        let original = try ELFFile(bytes: sample)
        #expect(stripped.sections.isEmpty)
        #expect(stripped.symbols.isEmpty)
        #expect(stripped.segments == original.segments)
        #expect(stripped.dynamicEntries == original.dynamicEntries)
        #expect(stripped.neededLibraries == original.neededLibraries)
        #expect(stripped.buildID == original.buildID)
        #expect(stripped.interpreter == original.interpreter)
    }

    @Test func errorMessagesAreOneLineAndSayWhat() {
        let cases: [(ELFError.Kind, String)] = [
            (.truncated("the file is empty"), "<memory>: truncated: the file is empty"),
            (.notELF, "<memory>: not an ELF file (no \\x7fELF magic)"),
            (.wrongClass(1), "<memory>: wrong ELF class: ELF32, only ELF64 is supported"),
            (.wrongMachine(183), "<memory>: wrong machine: e_machine 183, only x86-64 (62) is supported"),
            (.libelf(call: "gelf_getehdr", message: "invalid ELF header"), "<memory>: libelf gelf_getehdr failed: invalid ELF header"),
        ]
        for (kind, text) in cases {
            #expect(ELFError(source: "<memory>", kind: kind).description == text)
        }
        #expect(throws: ELFError(source: "<memory>", kind: .truncated("the file is empty"))) { try ELFFile(bytes: []) }
    }
}
