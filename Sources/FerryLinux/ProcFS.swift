#if os(Linux)
import Glibc
import FerryImage

/// Reading /proc. Parsing functions take the text so they can be tested
/// without a process.
public enum ProcFS {
    /// Reads a whole (proc) file.
    public static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(\(path))", errno: errno, "reading \(path)") }
        defer { close(fd) }
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read(\(path))", errno: errno, "reading \(path)")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    public static func text(_ path: String) throws -> String { String(decoding: try read(path), as: UTF8.self) }

    public static func readlink(_ path: String) throws -> String {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = Glibc.readlink(path, &buf, 4096)
        guard n >= 0 else { throw SystemError("readlink(\(path))", errno: errno, "reading \(path)") }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The fields of /proc/PID/stat after the comm, indexed as in proc(5) (field 3 = state).
    public struct Stat: Sendable {
        public var comm: String
        private var values: [Substring]
        public func field(_ n: Int) -> UInt64 { n >= 3 && n - 3 < values.count ? UInt64(values[n - 3]) ?? 0 : 0 }
        public func signedField(_ n: Int) -> Int64 { n >= 3 && n - 3 < values.count ? Int64(values[n - 3]) ?? 0 : 0 }
        public var state: Character { values.first?.first ?? "?" }

        public init(parsing text: String) throws {
            guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else {
                throw FerryError("malformed /proc stat line")
            }
            comm = String(text[text.index(after: open)..<close])
            values = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        }
    }

    public static func stat(_ pid: Int32) throws -> Stat { try Stat(parsing: try text("/proc/\(pid)/stat")) }

    /// "Key:\tvalue" lines of /proc/PID/status.
    public static func status(_ pid: Int32) throws -> [String: String] { parseStatus(try text("/proc/\(pid)/status")) }

    /// `Key:\tvalue` lines → [key: value] with the value's surrounding
    /// blanks removed (scanned as bytes: read once per thread).
    public static func parseStatus(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        var text = text
        text.withUTF8 { b in
            var i = 0
            while i < b.count {
                var end = i
                var colon = -1
                while end < b.count && b[end] != 0x0a {
                    if colon < 0 && b[end] == 0x3a { colon = end }
                    end += 1
                }
                if colon >= 0 {
                    var vs = colon + 1, ve = end
                    while vs < ve && (b[vs] == 0x20 || b[vs] == 0x09) { vs += 1 }
                    while ve > vs && (b[ve - 1] == 0x20 || b[ve - 1] == 0x09 || b[ve - 1] == 0x0d) { ve -= 1 }
                    out[String(decoding: UnsafeBufferPointer(rebasing: b[i..<colon]), as: UTF8.self)] =
                        String(decoding: UnsafeBufferPointer(rebasing: b[vs..<ve]), as: UTF8.self)
                }
                i = end + 1
            }
        }
        return out
    }

    /// One line of /proc/PID/maps.
    public struct MapEntry: Equatable, Sendable {
        public var start: UInt64, end: UInt64
        public var read: Bool, write: Bool, exec: Bool, shared: Bool
        public var offset: UInt64
        public var device: UInt64
        public var inode: UInt64
        public var path: String
        public var vmFlags: Set<String> = []
        public var protection: Protection {
            var p: Protection = []
            if read { p.insert(.read) }
            if write { p.insert(.write) }
            if exec { p.insert(.exec) }
            return p
        }
    }

    public static func parseMaps(_ text: String) throws -> [MapEntry] {
        var out: [MapEntry] = []
        var text = text
        try text.withUTF8 { b in
            var i = 0
            while i < b.count {
                var end = i
                while end < b.count && b[end] != 0x0a { end += 1 }
                if end > i { out.append(try parseMapsLine(UnsafeBufferPointer(rebasing: b[i..<end]))) }
                i = end + 1
            }
        }
        return out
    }

    /// One line: `start-end perms offset major:minor inode [path]`, read as
    /// bytes (a process can have tens of thousands of mappings).
    static func parseMapsLine(_ b: UnsafeBufferPointer<UInt8>) throws -> MapEntry {
        var i = 0
        func malformed() -> FerryError { FerryError("malformed maps line: \(String(decoding: b, as: UTF8.self))") }
        func skipSpaces() { while i < b.count && b[i] == 0x20 { i += 1 } }
        /// A number in `radix` up to `stop` (or a space / the end).
        func number(_ radix: UInt64, stop: UInt8 = 0x20) throws -> UInt64 {
            var v: UInt64 = 0, digits = 0
            while i < b.count && b[i] != stop && b[i] != 0x20 {
                let c = b[i]
                let d: UInt64
                switch c {
                case 0x30...0x39: d = UInt64(c - 0x30)
                case 0x61...0x66 where radix == 16: d = UInt64(c - 0x61 + 10)
                case 0x41...0x46 where radix == 16: d = UInt64(c - 0x41 + 10)
                default: throw malformed()
                }
                let (m, o1) = v.multipliedReportingOverflow(by: radix)
                let (a, o2) = m.addingReportingOverflow(d)
                guard !o1 && !o2 else { throw malformed() }
                v = a
                digits += 1
                i += 1
            }
            guard digits > 0 else { throw malformed() }
            return v
        }
        func expect(_ c: UInt8) throws {
            guard i < b.count, b[i] == c else { throw malformed() }
            i += 1
        }
        let start = try number(16, stop: 0x2d)
        try expect(0x2d)
        let end = try number(16)
        skipSpaces()
        guard i + 4 <= b.count else { throw malformed() }
        let perms = (b[i], b[i + 1], b[i + 2], b[i + 3])
        i += 4
        guard i < b.count, b[i] == 0x20 else { throw malformed() }
        skipSpaces()
        let offset = try number(16)
        skipSpaces()
        let major = try number(16, stop: 0x3a)
        try expect(0x3a)
        let minor = try number(16)
        skipSpaces()
        let inode = try number(10)
        skipSpaces()
        var last = b.count
        while last > i && (b[last - 1] == 0x20 || b[last - 1] == 0x09) { last -= 1 }
        let path = i < last ? String(decoding: UnsafeBufferPointer(rebasing: b[i..<last]), as: UTF8.self) : ""
        return MapEntry(start: start, end: end, read: perms.0 == 0x72, write: perms.1 == 0x77, exec: perms.2 == 0x78,
                        shared: perms.3 == 0x73, offset: offset, device: makedev(major, minor), inode: inode, path: path)
    }

    /// Maps with VmFlags from /proc/PID/smaps.
    public static func maps(_ pid: Int32, withFlags: Bool = true) throws -> [MapEntry] {
        guard withFlags else { return try parseMaps(try text("/proc/\(pid)/maps")) }
        let path = "/proc/\(pid)/smaps"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open(\(path))", errno: errno, "reading \(path)") }
        defer { close(fd) }
        // smaps is ~650 bytes a mapping (33 MB at 50,000): split as it is read, never held whole.
        var splitter = SmapsSplitter()
        let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 256 << 10)
        defer { chunk.deallocate() }
        while true {
            let n = Glibc.read(fd, chunk.baseAddress, chunk.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read(\(path))", errno: errno, "reading \(path)")
            }
            if n == 0 { break }
            splitter.feed(UnsafeBufferPointer(rebasing: chunk[0..<n]))
        }
        let (headers, flags) = splitter.finish()
        var entries = try parseMaps(headers)
        if flags.count == entries.count {
            for i in entries.indices { entries[i].vmFlags = flags[i] }
        }
        return entries
    }

    /// /proc/PID/smaps → the maps-style header lines and each mapping's VmFlags (`SmapsSplitter`).
    static func splitSmaps(_ bytes: [UInt8]) -> (headers: String, flags: [Set<String>]) {
        var splitter = SmapsSplitter()
        bytes.withUnsafeBufferPointer { splitter.feed($0) }
        return splitter.finish()
    }

    /// Splits /proc/PID/smaps, fed in pieces as read, into the maps-style
    /// header lines and each mapping's VmFlags. Scans bytes: a header line
    /// starts with a lowercase hex digit (an address), field lines with a
    /// capital letter; only headers and VmFlags lines are kept (tens of
    /// thousands of mappings make smaps tens of megabytes long). Equal
    /// VmFlags lines share one set (a large address space has a few kinds of
    /// mapping, many times over).
    struct SmapsSplitter {
        private var headers = [UInt8]()
        private var flags: [Set<String>] = []
        /// The start of a line the last piece ended inside.
        private var partial = [UInt8]()
        private var seen: [String: Set<String>] = [:]
        private static let vmFlags = Array("VmFlags:".utf8)

        mutating func feed(_ b: UnsafeBufferPointer<UInt8>) {
            guard let base = b.baseAddress else { return }
            /// The next newline at or after `i`.
            func newline(_ i: Int) -> Int? {
                memchr(base + i, 0x0a, b.count - i).map { UnsafeRawPointer($0) - UnsafeRawPointer(base) }
            }
            var i = 0
            if !partial.isEmpty {
                guard let nl = newline(0) else { partial.append(contentsOf: b); return }
                partial.append(contentsOf: UnsafeBufferPointer(start: base, count: nl))
                let line = partial
                partial = []
                line.withUnsafeBufferPointer { take($0) }
                i = nl + 1
            }
            while i < b.count {
                guard let nl = newline(i) else { partial.append(contentsOf: UnsafeBufferPointer(start: base + i, count: b.count - i)); return }
                take(UnsafeBufferPointer(start: base + i, count: nl - i))
                i = nl + 1
            }
        }

        /// The headers (one line each) and the VmFlags sets, in order.
        mutating func finish() -> (headers: String, flags: [Set<String>]) {
            if !partial.isEmpty {
                let line = partial
                partial = []
                line.withUnsafeBufferPointer { take($0) }
            }
            return (String(decoding: headers, as: UTF8.self), flags)
        }

        private mutating func take(_ line: UnsafeBufferPointer<UInt8>) {
            guard let first = line.first else { return }
            if (first >= 0x30 && first <= 0x39) || (first >= 0x61 && first <= 0x66) {
                headers.append(contentsOf: line)
                headers.append(0x0a)
                return
            }
            let tag = Self.vmFlags
            guard line.count >= tag.count && line[0..<tag.count].elementsEqual(tag) else { return }
            let key = String(decoding: line, as: UTF8.self)
            if let set = seen[key] { flags.append(set); return }
            var set = Set<String>()
            var j = tag.count
            while j < line.count {
                while j < line.count && line[j] == 0x20 { j += 1 }
                var k = j
                while k < line.count && line[k] != 0x20 { k += 1 }
                if k > j { set.insert(String(decoding: UnsafeBufferPointer(rebasing: line[j..<k]), as: UTF8.self)) }
                j = k
            }
            seen[key] = set
            flags.append(set)
        }
    }

    /// /proc/PID/auxv as 64-bit words (pairs, ending with AT_NULL).
    public static func auxv(_ pid: Int32) throws -> [UInt64] {
        let bytes = try read("/proc/\(pid)/auxv")
        return bytes.withUnsafeBytes { b in (0..<(b.count / 8)).map { b.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) } }
    }

    public static func threads(_ pid: Int32) throws -> [Int32] {
        try numericEntries("/proc/\(pid)/task", "listing the threads of \(pid)")
    }

    public static func fds(_ pid: Int32) throws -> [Int32] {
        try numericEntries("/proc/\(pid)/fd", "listing the files of \(pid)")
    }

    /// The numeric names in a /proc directory, sorted.
    static func numericEntries(_ path: String, _ context: String) throws -> [Int32] {
        guard let dir = opendir(path) else { throw SystemError("opendir(\(path))", errno: errno, context) }
        defer { closedir(dir) }
        var out: [Int32] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if let t = Int32(name) { out.append(t) }
        }
        return out.sorted()
    }

    /// `pid` and its descendants as they are now (running), parents first.
    public static func tree(of pid: Int32) -> [Int32] {
        var all = [pid]
        var next = 0
        while next < all.count {
            all += children(all[next])
            next += 1
        }
        return all
    }

    /// Direct children of a process (all its threads' children).
    public static func children(_ pid: Int32) -> [Int32] {
        var out: [Int32] = []
        for t in (try? threads(pid)) ?? [] {
            if let text = try? text("/proc/\(pid)/task/\(t)/children") {
                out += text.split(separator: " ").compactMap { Int32($0.trimmingWhitespace()) }
            }
        }
        return out.sorted()
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}

extension String {
    func trimmingWhitespace() -> String { self[...].trimmingWhitespace() }
}

func makedev(_ major: UInt64, _ minor: UInt64) -> UInt64 {
    ((major & 0xfffff000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffffff00) << 12) | (minor & 0xff)
}
#endif
