import Foundation
import FerryContainer
import FerryImage

/// Page statistics gathered while streaming over an image's page records
/// (only counters and run extents are kept, never page contents).
struct PageSummary: Encodable {
    struct Counts: Encodable {
        var dataPages = 0
        var zeroPages = 0
        var runs = 0
        var dataBytes: Int { dataPages * ImageFormat.pageSize }
        var zeroBytes: Int { zeroPages * ImageFormat.pageSize }

        enum CodingKeys: String, CodingKey { case dataPages, zeroPages, runs, dataBytes, zeroBytes }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(dataPages, forKey: .dataPages); try c.encode(zeroPages, forKey: .zeroPages)
            try c.encode(runs, forKey: .runs); try c.encode(dataBytes, forKey: .dataBytes); try c.encode(zeroBytes, forKey: .zeroBytes)
        }

        /// "79 data pages (316 KiB), 57 zero pages (228 KiB), 136 in all (544 KiB), in 18 runs"
        var text: String {
            let all = dataPages + zeroPages
            return "\(dataPages) data pages (\(bytes(dataBytes))), \(zeroPages) zero pages (\(bytes(zeroBytes))), "
                + "\(all) in all (\(bytes(all * ImageFormat.pageSize))), in \(runs) runs"
        }

        mutating func add(_ pageCount: Int, zero: Bool) {
            if zero { zeroPages += pageCount } else { dataPages += pageCount }
            runs += 1
        }
    }
    var total = Counts()
    var byPid: [Int32: Counts] = [:]
    /// Keyed by "pid:start" of the mapping, filled by `attribute(to:)`.
    var byMapping: [String: Counts] = [:]
    private var extents: [(pid: Int32, address: UInt64, count: Int, zero: Bool)] = []

    private struct ProcessCounts: Encodable {
        var pid: Int32
        var pages: Counts
    }
    enum CodingKeys: String, CodingKey { case total, processes }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(total, forKey: .total)
        try c.encode(byPid.keys.sorted().map { ProcessCounts(pid: $0, pages: byPid[$0]!) }, forKey: .processes)
    }

    mutating func add(_ run: PageRun) {
        total.add(run.pageCount, zero: run.data == nil)
        byPid[run.pid, default: Counts()].add(run.pageCount, zero: run.data == nil)
        extents.append((run.pid, run.address, run.pageCount, run.data == nil))
    }

    /// Assigns the runs to mappings once the metadata is known (a stream
    /// carries the mappings after the pages).
    mutating func attribute(to meta: ImageMetadata) {
        let index = MappingIndex(meta)
        for e in extents {
            guard let m = index.mapping(pid: e.pid, containing: e.address) else { continue }
            byMapping[Self.key(e.pid, m), default: Counts()].add(e.count, zero: e.zero)
        }
        extents = []
    }

    static func key(_ pid: Int32, _ m: Mapping) -> String { "\(pid):\(m.start)" }
}

/// What `ferry inspect` prints.
struct InspectReport {
    var path: String
    var encoding: String
    var metadata: ImageMetadata
    var pages: PageSummary

    /// Reads an image (directory or stream source) completely, streaming its pages.
    static func read(directory: String) throws -> InspectReport {
        let reader = try DirectoryImageReader(directory: directory)
        var pages = PageSummary()
        try reader.forEachPageRun { pages.add($0) }
        pages.attribute(to: reader.metadata)
        return InspectReport(path: directory, encoding: "directory", metadata: reader.metadata, pages: pages)
    }

    static func read(stream source: ByteSource) throws -> InspectReport {
        var pages = PageSummary()
        let meta = try StreamImageReader.read(from: source) { pages.add($0) }
        pages.attribute(to: meta)
        return InspectReport(path: source.name, encoding: "stream", metadata: meta, pages: pages)
    }

    struct JSONForm: Encodable {
        var image: String
        var encoding: String
        var version: UInt16
        var metadata: ImageMetadata
        var pages: PageSummary
    }

    func json() throws -> String {
        let form = JSONForm(image: path, encoding: encoding, version: ImageFormat.version, metadata: metadata, pages: pages)
        return String(decoding: try ImageJSON.encode(form, pretty: true), as: UTF8.self)
    }

    func text() -> String {
        var out: [String] = []
        let s = metadata.source
        let date = Date(timeIntervalSince1970: s.createdAt).ISO8601Format()
        out.append("ferry image \(path) (\(encoding), format version \(ImageFormat.version))")
        out.append("source: \(s.os) \(s.kernelRelease) \(s.arch)\(s.hostname.isEmpty ? "" : ", host \(s.hostname)"), ferry \(s.ferryVersion), taken \(date)")
        out.append("cpu: \(s.cpu.vendor) \(s.cpu.model), XCR0 \(hex(s.cpu.xcr0)), XSAVE \(s.cpu.xsaveSize) bytes, page size \(s.pageSize)")
        out.append("cpu flags: \(s.cpu.flags.joined(separator: " "))")
        out += Self.container(metadata.container)
        if !metadata.pipes.isEmpty {
            out.append("pipes: " + metadata.pipes.map { "\($0.pipeID) (\($0.bytes.count) bytes buffered)" }.joined(separator: ", "))
        }
        for p in metadata.processes { out += process(p) }
        let t = pages.total
        out.append("")
        out.append("image pages: \(t.text)")
        return out.joined(separator: "\n")
    }

    /// The CONTAINER record: its spec, line by line, or why it cannot be read.
    static func container(_ bytes: Bytes?) -> [String] {
        guard let bytes else { return ["container: none"] }
        guard let record = try? ContainerRecord.decode(bytes.value) else {
            return ["container: spec of \(bytes.count) bytes (not a readable container record)"]
        }
        return ["container:"] + record.summary.map { "  " + $0 }
    }

    private func process(_ p: ProcessImage) -> [String] {
        var out = [""]
        out.append("process \(p.pid) (ppid \(p.ppid), pgid \(p.pgid), sid \(p.sid)) \"\(p.comm)\"")
        out.append("  exe: \(p.exe?.path ?? "(none)")   cwd: \(p.cwd)   root: \(p.root)")
        out.append("  uid \(p.credentials.uid)/\(p.credentials.euid), gid \(p.credentials.gid)/\(p.credentials.egid), umask \(String(p.umask, radix: 8))")
        out.append("  threads (\(p.threads.count)):")
        for t in p.threads {
            let xsave = t.extendedState.map { "xsave \($0.area.count) bytes" } ?? "no xsave"
            let rseq = t.rseq.map { "rseq \(hex($0.address))" } ?? "no rseq"
            out.append("    tid \(t.tid) \"\(t.name)\" rip \(hex(t.registers.rip)) rsp \(hex(t.registers.rsp)) \(syscall(t.syscall)), \(xsave), \(rseq), pending signals: \(t.pendingSignals.map { "\($0.signo)" }.joined(separator: ",").ifEmpty("none"))")
        }
        out.append("  mappings (\(p.mappings.count)):")
        let rows = p.mappings.map { m -> [String] in
            let c = pages.byMapping[PageSummary.key(p.pid, m)] ?? PageSummary.Counts()
            let file = m.file?.path ?? (m.flags.contains(.deletedFile) ? "(deleted file)" : m.name)
            return ["\(hex(m.start))-\(hex(m.end))", m.protection.description + (m.flags.contains(.shared) ? "s" : "p"),
                    m.kind.rawValue, bytes(Int(clamping: m.size)), "\(c.dataPages)", "\(c.zeroPages)", file]
        }
        out += table(["range", "prot", "kind", "size", "data", "zero", "file"], rows, indent: "    ")
        out.append("  files (\(p.files.count)):")
        out += table(["fd", "kind", "flags", "offset", "what"], p.files.map { f in
            let what = f.kind == .pipe ? "pipe \(f.pipeID)" : f.path
            return ["\(f.fd)", f.kind.rawValue, "0o" + String(f.flags, radix: 8) + (f.closeOnExec ? " cloexec" : ""), "\(f.offset)", what]
        }, indent: "    ")
        let c = pages.byPid[p.pid] ?? PageSummary.Counts()
        out.append("  pages: \(c.text)")
        return out
    }

    private func syscall(_ s: SyscallState?) -> String {
        guard let s else { return "not in a syscall" }
        return "in \(SyscallNames.name(s.number)) (\(s.restart.rawValue))"
    }

    private func table(_ header: [String], _ rows: [[String]], indent: String) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { row in
            indent + row.indices.map { i in
                i == row.count - 1 ? row[i] : row[i] + String(repeating: " ", count: widths[i] - row[i].count)
            }.joined(separator: "  ")
        }
    }
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

func bytes(_ n: Int) -> String {
    if n >= 1 << 30 { return "\(n >> 30) GiB" + (n % (1 << 30) == 0 ? "" : "+") }
    if n >= 1 << 20 { return "\(n >> 20) MiB" + (n % (1 << 20) == 0 ? "" : "+") }
    if n >= 1 << 10 { return "\(n >> 10) KiB" + (n % (1 << 10) == 0 ? "" : "+") }
    return "\(n) B"
}

/// Names of the Linux x86-64 syscalls a stopped process is commonly inside.
enum SyscallNames {
    static let table: [Int64: String] = [
        0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 23: "select", 34: "pause", 35: "nanosleep",
        43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 61: "wait4", 72: "fcntl",
        128: "rt_sigtimedwait", 130: "rt_sigsuspend", 202: "futex", 230: "clock_nanosleep", 232: "epoll_wait",
        247: "waitid", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait", 288: "accept4", 441: "epoll_pwait2",
    ]
    static func name(_ n: Int64) -> String { table[n].map { "\($0)(\(n))" } ?? "syscall \(n)" }
}

extension String {
    func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}
