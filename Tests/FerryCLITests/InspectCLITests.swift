import Foundation
import Testing
import FerryImage
import FerryImageFixtures
import FerryTestSupport

/// The built `ferry` (TestPaths), nil when it is not built.
let ferryBinary: String? = TestPaths.ferryIsBuilt ? TestPaths.ferry : nil

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

func ferry(_ arguments: [String], stdin: [UInt8]? = nil) throws -> Run {
    let binary = try #require(ferryBinary, "the ferry binary is not built: run `swift build` first")
    let r = try Child.run([binary] + arguments, stdin: stdin)
    return Run(status: r.status, stdout: r.stdout, stderr: r.stderr)
}

@Suite("ferry inspect", .serialized, .timeLimit(.minutes(10)))
struct InspectCLITests {
    let image = ImageGenerator.make(seed: 2024)

    func withDirectory(_ body: (String) throws -> Void) throws {
        let dir = try ImageIO.temporaryDirectory("cli")
        defer { ImageIO.remove(dir) }
        try ImageIO.writeDirectory(image, to: dir)
        try body(dir)
    }

    @Test func textSummaryOfADirectory() throws {
        try withDirectory { dir in
            let r = try ferry(["inspect", dir])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.isEmpty)
            let s = image.metadata.source
            #expect(r.stdout.contains("source: \(s.os) \(s.kernelRelease) x86_64"))
            #expect(r.stdout.contains("XCR0 0x\(String(s.cpu.xcr0, radix: 16)), XSAVE \(s.cpu.xsaveSize) bytes"))
            for p in image.metadata.processes {
                #expect(r.stdout.contains("process \(p.pid) (ppid \(p.ppid)"))
                #expect(r.stdout.contains("\"\(p.comm)\""))
                for t in p.threads { #expect(r.stdout.contains("tid \(t.tid) \"\(t.name)\" rip 0x\(String(t.registers.rip, radix: 16))")) }
                for m in p.mappings { #expect(r.stdout.contains("0x\(String(m.start, radix: 16))-0x\(String(m.end, radix: 16))")) }
                let data = image.runs.filter { $0.pid == p.pid && $0.data != nil }.reduce(0) { $0 + $1.pageCount }
                #expect(r.stdout.contains("  pages: \(data) data pages"))
            }
            for kind in MappingKind.allCases { #expect(r.stdout.contains(kind.rawValue)) }
            #expect(r.stdout.contains("image pages: \(image.dataPages) data pages"))
            #expect(r.stdout.contains("\(image.zeroPages) zero pages"))
        }
    }

    struct InspectJSON: Decodable {
        struct Counts: Decodable { var dataPages: Int; var zeroPages: Int; var runs: Int }
        struct ProcessCounts: Decodable { var pid: Int32; var pages: Counts }
        struct Pages: Decodable { var total: Counts; var processes: [ProcessCounts] }
        var encoding: String
        var metadata: ImageMetadata
        var pages: Pages
    }

    @Test func jsonOfADirectory() throws {
        try withDirectory { dir in
            let r = try ferry(["inspect", dir, "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            let decoded = try JSONDecoder().decode(InspectJSON.self, from: Data(r.stdout.utf8))
            #expect(decoded.encoding == "directory")
            #expect(decoded.metadata == image.metadata)
            #expect(decoded.pages.total.dataPages == image.dataPages)
            #expect(decoded.pages.total.zeroPages == image.zeroPages)
            #expect(decoded.pages.total.runs == image.runs.count)
            #expect(decoded.pages.processes.map(\.pid) == image.metadata.processes.map(\.pid).sorted())
        }
    }

    @Test func streamFromAFileAndFromStandardInput() throws {
        let bytes = try ImageIO.streamBytes(image)
        let dir = try ImageIO.temporaryDirectory("cli-stream")
        defer { ImageIO.remove(dir) }
        try ImageIO.writeFile(dir + "/image.stream", bytes)
        for (args, input) in [(["inspect", dir + "/image.stream", "--json"], nil), (["inspect", "-", "--json"], bytes)] {
            let r = try ferry(args, stdin: input)
            #expect(r.status == 0, "\(r.stderr)")
            let decoded = try JSONDecoder().decode(InspectJSON.self, from: Data(r.stdout.utf8))
            #expect(decoded.encoding == "stream")
            #expect(decoded.metadata == image.metadata)
            #expect(decoded.pages.total.dataPages == image.dataPages)
        }
    }

    @Test func metaImgNamedDirectlyInspectsItsDirectory() throws {
        try withDirectory { dir in
            let r = try ferry(["inspect", dir + "/meta.img"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("(directory, format version 1)"))
        }
    }

    /// A flipped byte in the first PROCESS record: exit status 1 and exactly
    /// one line on stderr naming the file, the offset and the record.
    @Test func corruptedRecordGivesOneLineError() throws {
        try withDirectory { dir in
            var meta = try ImageIO.readFile(dir + "/meta.img")
            let span = try #require(RecordLayout.spans(meta).first { $0.type == RecordType.process.rawValue })
            meta[span.payload + 10] ^= 0x40
            try ImageIO.writeFile(dir + "/meta.img", meta)
            let r = try ferry(["inspect", dir])
            #expect(r.status == 1)
            #expect(r.stdout.isEmpty)
            #expect(r.stderr == "ferry: \(dir)/meta.img: at byte \(span.offset): PROCESS record checksum mismatch (corrupted)\n")
        }
    }

    @Test(arguments: ["truncated pages", "missing pages", "not an image", "truncated stdin"])
    func failuresAreOneLine(_ what: String) throws {
        let dir = try ImageIO.temporaryDirectory("cli-bad")
        defer { ImageIO.remove(dir) }
        try ImageIO.writeDirectory(image, to: dir)
        var args = ["inspect", dir]
        var input: [UInt8]?
        var expected = ""
        switch what {
        case "truncated pages":
            let pages = try ImageIO.readFile(dir + "/pages.img")
            try ImageIO.writeFile(dir + "/pages.img", Array(pages[0..<pages.count - 5]))
            expected = "ferry: \(dir)/pages.img: at byte \(pages.count - 5): truncated"
        case "missing pages":
            ImageIO.remove(dir + "/pages.img")
            expected = "ferry: \(dir)/pages.img: cannot open: missing"
        case "not an image":
            try ImageIO.writeFile(dir + "/junk", Array("hello, world, this is not an image at all".utf8))
            args = ["inspect", dir + "/junk"]
            expected = "ferry: \(dir)/junk: at byte 0: not a ferry image (bad magic)"
        default:
            let bytes = try ImageIO.streamBytes(image)
            input = Array(bytes[0..<bytes.count / 2])
            args = ["inspect", "-"]
            expected = "ferry: <stdin>: at byte \(bytes.count / 2): truncated"
        }
        let r = try ferry(args, stdin: input)
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix(expected), "\(r.stderr)")
        #expect(r.stderr.filter { $0 == "\n" }.count == 1, "\(r.stderr)")
        #expect(!r.stderr.contains("Error:"))
    }
}
