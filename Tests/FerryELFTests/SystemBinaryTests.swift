import Foundation
import Testing
@testable import FerryELF

@Suite struct SystemBinaryTests {
    @Test(arguments: ["/usr/bin/env", "/bin/ls"])
    func executableBasics(path: String) throws {
        let file = try ELFFile(path: path)
        #expect(file.source == path)
        #expect(file.header.machine == .x86_64)
        #expect(file.header.type == .sharedObject)  // Debian builds PIE
        #expect(file.isPositionIndependent)
        #expect(file.interpreter == "/lib64/ld-linux-x86-64.so.2")
        #expect(file.neededLibraries.contains("libc.so.6"))
        #expect(file.soname == nil)

        let loads = file.loadableSegments
        #expect(loads.count >= 2)
        #expect(loads.contains { $0.flags == [.read, .execute] })
        #expect(loads.allSatisfy { $0.fileSize <= $0.memorySize && $0.alignment == 4096 })
        #expect(file.segments.contains { $0.type == .gnuStack && !$0.flags.contains(.execute) })

        let text = try #require(file.section(named: ".text"))
        #expect(text.type == .progbits)
        #expect(text.flags.isSuperset(of: [.alloc, .executable]))
        #expect(text.addressRange.contains(file.header.entry))
        #expect(file.section(named: ".bss")?.type == .nobits)
        #expect(!file.dynamicSymbols.isEmpty)
    }

    @Test(.enabled(if: readelfPath != nil), arguments: ["/usr/bin/env", "/bin/ls"])
    func agreesWithReadelf(path: String) throws {
        let file = try ELFFile(path: path)
        let notes = try run("/usr/bin/readelf", "-n", path)
        let expectedID = try #require(field(after: "Build ID:", in: notes))
        #expect(file.buildID == expectedID)

        let dynamic = try run("/usr/bin/readelf", "-dW", path)
        let needed = dynamic.split(separator: "\n").filter { $0.contains("(NEEDED)") }.compactMap { line in
            line.split(separator: "[").last?.split(separator: "]").first.map(String.init)
        }
        #expect(file.neededLibraries == needed)

        let header = try run("/usr/bin/readelf", "-hW", path)
        let entry = try #require(field(after: "Entry point address:", in: header))
        #expect("0x" + String(file.header.entry, radix: 16) == entry)
        let count = try #require(field(after: "Number of program headers:", in: header))
        #expect(String(file.segments.count) == count)
        let sectionCount = try #require(field(after: "Number of section headers:", in: header))
        #expect(String(file.sections.count) == sectionCount)
    }

    @Test(.enabled(if: libcPath != nil))
    func libcExportsPrintf() throws {
        let libc = try ELFFile(path: libcPath!)
        #expect(libc.header.type == .sharedObject)
        #expect(libc.soname == "libc.so.6")
        #expect(libc.interpreter != nil)  // libc.so.6 is runnable
        let printf = try #require(libc.symbol(named: "printf"))
        #expect(printf.table == .dynsym)
        #expect(printf.isDefined)
        #expect(printf.type == .function)
        #expect(printf.binding == .global)
        #expect(printf.version == "GLIBC_2.2.5")
        #expect(!printf.isVersionHidden)
        #expect(printf.versionedName == "printf@@GLIBC_2.2.5")
        #expect(printf.size > 0)
        #expect(libc.symbol(named: "printf@@GLIBC_2.2.5") == printf)
        #expect(libc.symbol(named: "printf@GLIBC_9.9") == nil)
        #expect(libc.symbol(named: "no_such_symbol_in_libc") == nil)

        // printf lies in an executable segment of libc, wherever libc is loaded.
        let bias: UInt64 = 0x7f00_0000_0000
        let map = libc.mappedSegments(loadBias: bias)
        #expect(map.isCodePointer(bias + printf.value))
        #expect(!map.isCodePointer(printf.value))
        let errno = try #require(libc.symbol(named: "errno"))
        #expect(errno.type == .tls)
    }

    @Test func undefinedImportsCarryNeededVersions() throws {
        let env = try ELFFile(path: "/usr/bin/env")
        let imported = env.dynamicSymbols.filter { !$0.isDefined && $0.version != nil }
        #expect(!imported.isEmpty)
        #expect(imported.allSatisfy { $0.isVersionHidden && $0.version!.hasPrefix("GLIBC_") })
    }

    @Test func mappedSegmentsTellCodeFromData() throws {
        let env = try ELFFile(path: "/usr/bin/env")
        let bias: UInt64 = 0x5555_5555_4000
        let map = env.mappedSegments(loadBias: bias)
        #expect(map.ranges.count == env.loadableSegments.count)
        #expect(map.isCodePointer(bias + env.header.entry))
        let data = try #require(map.ranges.first { $0.flags.contains(.write) })
        #expect(!map.isCodePointer(data.addresses.lowerBound))
        #expect(map.range(containing: data.addresses.lowerBound) == data)
        #expect(!map.isCodePointer(0x7fff_0000_0000))
        #expect(env.loadBias(forMappedBase: bias) == bias)  // lowest PT_LOAD is at 0
    }

    @Test func objectFileNotesComeFromSections() throws {
        // A relocatable object has no program headers; read one gcc leaves.
        let candidates = ["/usr/lib/x86_64-linux-gnu/crt1.o", "/usr/lib/x86_64-linux-gnu/Scrt1.o"]
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else { return }
        let object = try ELFFile(path: path)
        #expect(object.header.type == .relocatable)
        #expect(object.segments.isEmpty)
        #expect(object.symbols.contains { $0.table == .symtab && $0.name == "_start" })
    }

    @Test func errorsNameTheFile() {
        #expect(throws: ELFError(source: "/nonexistent/x", kind: .io(call: "open", errno: ENOENT))) {
            try ELFFile(path: "/nonexistent/x")
        }
        let error = #expect(throws: ELFError.self) { try ELFFile(path: "/etc/passwd") }
        #expect(error?.description == "/etc/passwd: not an ELF file (no \\x7fELF magic)")
    }
}
