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

    public static func parseStatus(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            out[String(line[..<colon])] = line[line.index(after: colon)...].trimmingWhitespace()
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
        for line in text.split(separator: "\n") {
            // start-end perms offset dev inode path
            let parts = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard parts.count >= 5 else { throw FerryError("malformed maps line: \(line)") }
            let range = parts[0].split(separator: "-")
            let perms = Array(parts[1])
            guard range.count == 2, perms.count == 4,
                  let s = UInt64(range[0], radix: 16), let e = UInt64(range[1], radix: 16),
                  let off = UInt64(parts[2], radix: 16), let ino = UInt64(parts[4]) else {
                throw FerryError("malformed maps line: \(line)")
            }
            let dev = parts[3].split(separator: ":")
            let major = UInt64(dev.first ?? "0", radix: 16) ?? 0
            let minor = UInt64(dev.last ?? "0", radix: 16) ?? 0
            let path = parts.count > 5 ? parts[5].trimmingWhitespace() : ""
            out.append(MapEntry(start: s, end: e, read: perms[0] == "r", write: perms[1] == "w", exec: perms[2] == "x",
                                shared: perms[3] == "s", offset: off, device: makedev(major, minor), inode: ino, path: path))
        }
        return out
    }

    /// Maps with VmFlags from /proc/PID/smaps.
    public static func maps(_ pid: Int32, withFlags: Bool = true) throws -> [MapEntry] {
        guard withFlags else { return try parseMaps(try text("/proc/\(pid)/maps")) }
        let smaps = try text("/proc/\(pid)/smaps")
        var headerLines: [Substring] = []
        var flags: [Set<String>] = []
        for line in smaps.split(separator: "\n") {
            if line.hasPrefix("VmFlags:") {
                flags.append(Set(line.dropFirst(8).split(separator: " ").map(String.init)))
            } else if let token = line.split(separator: " ").first, token.contains("-"),
                      token.allSatisfy({ $0 == "-" || $0.isHexDigit }) {
                headerLines.append(line)
            }
        }
        var entries = try parseMaps(headerLines.joined(separator: "\n"))
        if flags.count == entries.count {
            for i in entries.indices { entries[i].vmFlags = flags[i] }
        }
        return entries
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
