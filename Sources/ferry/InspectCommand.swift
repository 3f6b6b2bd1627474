import ArgumentParser
import FerryImage
#if canImport(Glibc)
import Glibc
#endif

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show what an image holds: source host, processes, threads, mappings, fds and pages.",
        discussion: """
            IMAGE is an image directory (meta.img + pages.img), a file holding a stream \
            image, or - for a stream image on standard input. The image is checked \
            completely (every checksum, every page record) while it is read.
            """)

    @Argument(help: "Image directory, stream image file, or - for standard input.")
    var image: String

    @Flag(help: "Print all metadata and a page summary as JSON.")
    var json = false

    func run() throws {
        do {
            let report = try Self.report(for: image)
            print(json ? try report.json() : report.text())
        } catch let e as ImageError {
            fail(e.description)
        } catch {
            fail(String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " "))
        }
    }

    private func fail(_ line: String) -> Never {
        var err = StandardError()
        print("ferry: \(line)", to: &err)
        Ferry.exit(withError: ExitCode(1))
    }

    /// Directory, stream file or standard input, told apart by what the path
    /// is and, for files, by the encoding field of the header.
    static func report(for path: String) throws -> InspectReport {
        if path == "-" {
            return try InspectReport.read(stream: FileSource(fd: 0, name: "<stdin>"))
        }
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw ImageError(file: path, "cannot inspect: \(String(cString: strerror(errno)))")
        }
        if st.st_mode & S_IFMT == S_IFDIR { return try InspectReport.read(directory: path) }
        let file = try FileSource(path: path)
        let peeked = try PeekedSource(file, count: ImageFormat.headerSize)
        switch peeked.encoding {
        case EncodingKind.directoryMeta.rawValue, EncodingKind.directoryPages.rawValue:
            // meta.img or pages.img named directly: inspect the directory holding it.
            let slash = path.lastIndex(of: "/")
            return try InspectReport.read(directory: slash.map { String(path[..<$0]) } ?? ".")
        default:
            // A stream, or something the stream reader will refuse with a precise message.
            return try InspectReport.read(stream: peeked)
        }
    }
}

/// Reads the first bytes of a source to look at them, then hands them out
/// again before the rest (standard input cannot be reopened).
final class PeekedSource: ByteSource {
    private let inner: ByteSource
    private var head: [UInt8]
    var name: String { inner.name }

    init(_ inner: ByteSource, count: Int) throws {
        self.inner = inner
        head = []
        var buffer = [UInt8](repeating: 0, count: count)
        while head.count < count {
            let n = try buffer.withUnsafeMutableBytes { try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count - head.count])) }
            if n == 0 { break }
            head += buffer[0..<n]
        }
    }

    /// The header's encoding field, when the header was read whole.
    var encoding: UInt32? {
        guard head.count >= 16 else { return nil }
        return (0..<4).reduce(UInt32(0)) { $0 | UInt32(head[12 + $1]) << (8 * UInt32($1)) }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard head.isEmpty else {
            let n = min(buffer.count, head.count)
            head.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
            head.removeFirst(n)
            return n
        }
        return try inner.read(into: buffer)
    }
}
