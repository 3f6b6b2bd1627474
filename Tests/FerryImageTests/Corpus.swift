import Testing
import FerryImage
import FerryImageFixtures

/// Which encoded file a corpus case damages.
enum Role: String, Sendable {
    case meta, pages, stream
    var encoding: String { self == .stream ? "stream" : "directory" }
}

/// A byte-level damage to one encoded file.
enum Mutation: Sendable {
    case truncate(at: Int)
    case flipBit(at: Int, bit: UInt8)
    /// Writes `value` at `at` (little-endian, `width` bytes); reseals the header or the record at `reseal`.
    case poke(at: Int, value: UInt64, width: Int, reseal: Reseal)
    case append([UInt8])
    /// Replaces record `index` with `record` (a complete framed record).
    case replaceRecord(index: Int, record: [UInt8])
    /// Inserts `record` before record `index`.
    case insertRecord(index: Int, record: [UInt8])
}

enum Reseal: Sendable, Equatable { case none, header, record(RecordSpan) }

/// Changes to a valid image that the writer encodes faithfully and the
/// reader must refuse on meaning (Validation, page placement).
enum Semantic: String, Sendable, CaseIterable {
    case aarch64, pageSize16K, unknownOS, noProcesses, duplicatePid, invalidPid, noThreads, duplicateTid
    case overlappingMappings, unalignedMapping, emptyMapping, mappingAboveUserSpace, fileMappingWithoutFile
    case xsaveTooSmall, xsaveTooLarge, syscallArgs, pendingSignalNumber, siginfoSize, duplicateFd, pipeWithoutID, fifoWithPipesID, leaseOnAPipe, procFileElsewhere
    case signalActionNumber, orphanProcess, duplicatePipe, pagesOutsideMappings, zeroPagesOutsideMappings
    case pagesForUnknownPid, pagesAcrossTwoMappings

    /// What the error message must contain, and whether the pages (not the metadata) are at fault.
    var expectation: (text: String, inPages: Bool) {
        switch self {
        case .aarch64: return ("arch aarch64", false)
        case .pageSize16K: return ("page size 16384", false)
        case .unknownOS: return ("unknown source OS", false)
        case .noProcesses: return ("holds no process", false)
        case .duplicatePid: return ("appears twice", false)
        case .invalidPid: return ("invalid pid", false)
        case .noThreads: return ("has no threads", false)
        case .duplicateTid: return ("invalid or repeated", false)
        case .overlappingMappings: return ("overlaps", false)
        case .unalignedMapping: return ("not page-aligned", false)
        case .emptyMapping: return ("empty or reversed", false)
        case .mappingAboveUserSpace: return ("outside the user address space", false)
        case .fileMappingWithoutFile: return ("names no file", false)
        case .xsaveTooSmall, .xsaveTooLarge: return ("XSAVE area", false)
        case .syscallArgs: return ("6 arguments", false)
        case .pendingSignalNumber, .siginfoSize: return ("bad pending signal", false)
        case .duplicateFd: return ("invalid or repeated", false)
        case .pipeWithoutID: return ("without a pipe id", false)
        case .fifoWithPipesID: return ("has a pipe's id", false)
        case .leaseOnAPipe: return ("holds a lease but is a pipe fd", false)
        case .procFileElsewhere: return ("is a /proc file of process 7", false)
        case .signalActionNumber: return ("invalid signal", false)
        case .orphanProcess: return ("is not in the image", false)
        case .duplicatePipe: return ("appears twice", false)
        case .pagesOutsideMappings, .zeroPagesOutsideMappings, .pagesAcrossTwoMappings: return ("outside every mapping", true)
        case .pagesForUnknownPid: return ("which is not in the image", true)
        }
    }

    func apply(_ image: inout GeneratedImage) {
        var meta = image.metadata
        let pid = meta.processes[0].pid
        switch self {
        case .aarch64: meta.source.arch = "aarch64"
        case .pageSize16K: meta.source.pageSize = 16384
        case .unknownOS: meta.source.os = "windows"
        case .noProcesses: meta.processes = []; image.runs = []
        case .duplicatePid: meta.processes.append(meta.processes[0])
        case .invalidPid: meta.processes[0].pid = 0
        case .noThreads: meta.processes[0].threads = []
        case .duplicateTid: meta.processes[0].threads.append(meta.processes[0].threads[0])
        case .overlappingMappings: meta.processes[0].mappings[1].start = meta.processes[0].mappings[0].start + 4096
        case .unalignedMapping: meta.processes[0].mappings[0].end += 1
        case .emptyMapping: meta.processes[0].mappings[1].end = meta.processes[0].mappings[1].start
        case .mappingAboveUserSpace:
            let maps = meta.processes[0].mappings
            meta.processes[0].mappings.insert(Mapping(start: Validation.userAddressLimit, end: Validation.userAddressLimit + 4096,
                                                      protection: [.read], kind: .anonymous), at: maps.count - 1)
        case .fileMappingWithoutFile: meta.processes[0].mappings[0].file = nil
        case .xsaveTooSmall: meta.processes[0].threads[0].extendedState?.area = Bytes([UInt8](repeating: 0, count: 511))
        case .xsaveTooLarge:
            meta.processes[0].threads[0].extendedState?.area = Bytes([UInt8](repeating: 0, count: Validation.maxXSaveSize + 1))
        case .syscallArgs: meta.processes[0].threads[0].syscall = SyscallState(number: 0, args: [1, 2, 3], restart: .restart)
        case .pendingSignalNumber:
            meta.processes[0].threads[0].pendingSignals = [PendingSignal(signo: 65, info: [UInt8](repeating: 0, count: 128))]
        case .siginfoSize: meta.processes[0].threads[0].pendingSignals = [PendingSignal(signo: 10, info: [1, 2, 3])]
        case .duplicateFd: meta.processes[0].files.append(meta.processes[0].files[0])
        case .pipeWithoutID:
            let i = meta.processes[0].files.firstIndex { $0.kind == .pipe }!
            meta.processes[0].files[i].pipeID = 0
        case .fifoWithPipesID:
            let i = meta.processes[0].files.firstIndex { $0.kind == .fifo }!
            meta.processes[0].files[i].pipeID = 7
        case .leaseOnAPipe:
            let i = meta.processes[0].files.firstIndex { $0.kind == .pipe }!
            meta.processes[0].files[i].locks = [FileLock(kind: .lease, write: false)]
        case .procFileElsewhere:
            let i = meta.processes[0].files.firstIndex { $0.kind == .regular && $0.contentsID == nil }!
            meta.processes[0].files[i].procPid = 7
        case .signalActionNumber: meta.processes[0].signalActions[0].signo = 0
        case .orphanProcess: meta.processes[1].ppid = 999_999
        case .duplicatePipe: meta.pipes.append(meta.pipes[0])
        case .pagesOutsideMappings:
            image.runs.insert(PageRun(pid: pid, address: 0x1000, pageCount: 1, data: [UInt8](repeating: 7, count: 4096)),
                              at: min(1, image.runs.count))
        case .zeroPagesOutsideMappings:
            let gapStart = meta.processes[0].mappings.first { $0.kind == .heap }!.end
            image.runs.append(PageRun(pid: pid, address: gapStart, pageCount: 3, data: nil))
        case .pagesForUnknownPid:
            image.runs.append(PageRun(pid: 999_999, address: meta.processes[0].mappings[0].start, pageCount: 1, data: nil))
        case .pagesAcrossTwoMappings:
            // The executable's text and rodata mappings are adjacent: a run over their border lies in neither.
            let m = meta.processes[0].mappings[0]
            image.runs.append(PageRun(pid: pid, address: m.end - 4096, pageCount: 2, data: [UInt8](repeating: 1, count: 8192)))
        }
        image.metadata = meta
    }
}

enum OffsetExpectation: Sendable, Equatable { case exact(Int64), some, none }

struct CorpusCase: Sendable, CustomTestStringConvertible {
    enum Damage: Sendable {
        case bytes(Role, Mutation)
        case semantic(Semantic, stream: Bool)
        case removeFile(Role)
    }
    var label: String
    var seed: UInt64
    var damage: Damage
    var offset: OffsetExpectation
    /// A fragment the message must contain.
    var text: String?
    /// The file the error must name.
    var names: Role
    var testDescription: String { "seed \(seed) \(label)" }
    /// The damaged image is a directory (meta.img and pages.img).
    var isDirectory: Bool {
        switch damage {
        case .bytes(let role, _): return role != .stream
        case .semantic(_, let stream): return !stream
        case .removeFile: return true
        }
    }
}

/// The valid encodings every byte-level mutation starts from.
struct Baseline: Sendable {
    var image: GeneratedImage
    var meta: [UInt8], pages: [UInt8], stream: [UInt8]

    func bytes(_ role: Role) -> [UInt8] {
        switch role { case .meta: return meta; case .pages: return pages; case .stream: return stream }
    }

    static func make(seed: UInt64, size: ImageGenerator.Size = .small) -> Baseline {
        let image = ImageGenerator.make(seed: seed, size: size)
        let dir = try! ImageIO.temporaryDirectory("base")
        defer { ImageIO.remove(dir) }
        try! ImageIO.writeDirectory(image, to: dir)
        return Baseline(image: image, meta: try! ImageIO.readFile(dir + "/meta.img"),
                        pages: try! ImageIO.readFile(dir + "/pages.img"), stream: try! ImageIO.streamBytes(image))
    }
}

enum Corpus {
    static let seeds: [UInt64] = [101, 202, 303]
    static let semanticSeed: UInt64 = 42
    static let baselines: [UInt64: Baseline] = Dictionary(uniqueKeysWithValues:
        seeds.map { ($0, Baseline.make(seed: $0)) } + [(semanticSeed, Baseline.make(seed: semanticSeed, size: .realistic))])

    static let cases: [CorpusCase] = {
        var out: [CorpusCase] = []
        for seed in seeds {
            for role in [Role.meta, .pages, .stream] { out += byteCases(seed: seed, role: role) }
        }
        for s in Semantic.allCases {
            for stream in [false, true] {
                let e = s.expectation
                out.append(CorpusCase(label: "\(stream ? "stream" : "directory"): \(s.rawValue)", seed: semanticSeed,
                                      damage: .semantic(s, stream: stream), offset: e.inPages ? .some : .none, text: e.text,
                                      names: stream ? .stream : (e.inPages ? .pages : .meta)))
            }
        }
        out.append(CorpusCase(label: "directory without meta.img", seed: semanticSeed, damage: .removeFile(.meta),
                              offset: .none, text: "missing", names: .meta))
        out.append(CorpusCase(label: "directory without pages.img", seed: semanticSeed, damage: .removeFile(.pages),
                              offset: .none, text: "missing", names: .pages))
        return out
    }()

    static func byteCases(seed: UInt64, role: Role) -> [CorpusCase] {
        let base = baselines[seed]!
        let bytes = base.bytes(role)
        let spans = RecordLayout.spans(bytes)
        var rng = SplitMix64(seed: seed &* 31 &+ UInt64(role.rawValue.utf8.first!))
        var out: [CorpusCase] = []
        func add(_ label: String, _ m: Mutation, _ offset: OffsetExpectation, _ text: String? = nil) {
            out.append(CorpusCase(label: "\(role.rawValue): \(label)", seed: seed, damage: .bytes(role, m), offset: offset,
                                  text: text, names: role))
        }
        let boundaries = Set(spans.map(\.offset))
        // Truncation: inside the header, at every record boundary, inside records.
        for cut in [0, 1, 8, 27, 31] { add("truncated at \(cut) (header)", .truncate(at: cut), .exact(Int64(cut)), "truncated") }
        for s in spans { add("truncated at record boundary \(s.offset)", .truncate(at: s.offset), .exact(Int64(s.offset)), "truncated") }
        for s in spans {
            for cut in [s.offset + 3, s.payload + s.length / 2, s.checksum + 2] where !boundaries.contains(cut) {
                add("truncated inside \(RecordType(rawValue: s.type)!) at \(cut)", .truncate(at: cut), .exact(Int64(cut)), "truncated")
            }
        }
        for _ in 0..<8 {
            let cut = rng.int(ImageFormat.headerSize...bytes.count - 1)
            if !boundaries.contains(cut) { add("truncated at random \(cut)", .truncate(at: cut), .exact(Int64(cut)), "truncated") }
        }
        // Bit flips: every header byte once, then random bytes anywhere.
        for at in 0..<ImageFormat.headerSize {
            add("bit flip in header byte \(at)", .flipBit(at: at, bit: UInt8(rng.int(0...7))), .some)
        }
        for _ in 0..<24 {
            let at = rng.int(0...bytes.count - 1)
            add("bit flip at \(at)", .flipBit(at: at, bit: UInt8(rng.int(0...7))), .some)
        }
        // Oversized lengths, checksum recomputed: the cap must catch it.
        for s in spans {
            let cap = RecordType(rawValue: s.type)!.maxLength
            add("length cap+1 in record at \(s.offset)", .poke(at: s.offset + 4, value: UInt64(cap) + 1, width: 4, reseal: .record(s)),
                .exact(Int64(s.offset + 4)), "cap")
        }
        for s in [spans.first!, spans.last!] {
            add("length 0xFFFFFFF0 in record at \(s.offset)", .poke(at: s.offset + 4, value: 0xFFFF_FFF0, width: 4, reseal: .record(s)),
                .exact(Int64(s.offset + 4)), "cap")
        }
        // Unknown record types with valid checksums.
        for (i, t) in [UInt32(0), 8, 0x8000_0000].enumerated() {
            let s = spans[(i * 5) % spans.count]
            add("record type \(t) at \(s.offset)", .poke(at: s.offset, value: UInt64(t), width: 4, reseal: .record(s)),
                .exact(Int64(s.offset)), "unknown record type")
        }
        // Header fields, checksum recomputed so the field check (not the checksum) refuses.
        add("wrong magic", .poke(at: 0, value: 0x474D_4959_5252_4546 ^ 0x20, width: 8, reseal: .none), .exact(0), "bad magic")
        add("wrong magic, resealed", .poke(at: 0, value: 0x4B4E_554A_4B4E_554A, width: 8, reseal: .header), .exact(0), "bad magic")
        add("version 2", .poke(at: 8, value: 2, width: 2, reseal: .header), .exact(8), "version 2")
        add("version 0", .poke(at: 8, value: 0, width: 2, reseal: .header), .exact(8), "version 0")
        add("header size 64", .poke(at: 10, value: 64, width: 2, reseal: .header), .exact(10), "header size")
        add("encoding 9", .poke(at: 12, value: 9, width: 4, reseal: .header), .exact(12), "unknown encoding")
        let other: UInt64 = role == .stream ? 1 : 3
        add("encoding \(other)", .poke(at: 12, value: other, width: 4, reseal: .header), .exact(12), "expected")
        add("capability bit 4", .poke(at: 16, value: 17, width: 8, reseal: .header), .exact(16), "capabilities 0x10")
        add("capability bit 63", .poke(at: 16, value: 1 << 63 | 1, width: 8, reseal: .header), .exact(16), "capabilities 0x8000000000000000")
        add("reserved field set", .poke(at: 24, value: 1, width: 4, reseal: .header), .exact(24), "reserved")
        add("header checksum zeroed", .poke(at: 28, value: 0, width: 4, reseal: .none), .exact(28), "checksum")
        // END that miscounts, resealed.
        let end = spans.last!
        add("END record count off by one", .poke(at: end.payload, value: UInt64(spans.count), width: 8, reseal: .record(end)),
            .exact(Int64(end.offset)), "END says")
        add("END page bytes off", .poke(at: end.payload + 8, value: UInt64.max, width: 8, reseal: .record(end)),
            .exact(Int64(end.offset)), "END says")
        if role != .stream {
            add("garbage after END", .append([0x46, 0x45]), .exact(Int64(bytes.count)), "after the END")
        }
        recordCases(base: base, role: role, spans: spans, add: add)
        return out
    }

    /// Records rewritten with valid framing but bad contents or in the wrong place.
    static func recordCases(base: Baseline, role: Role, spans: [RecordSpan],
                            add: (String, Mutation, OffsetExpectation, String?) -> Void) {
        func pagesPayload(pid: UInt32, count: UInt32, address: UInt64, pages: Int) -> [UInt8] {
            var p = [UInt8](repeating: 0, count: 16)
            RecordLayout.put32(&p, 0, pid); RecordLayout.put32(&p, 4, count); RecordLayout.put64(&p, 8, address)
            return p + [UInt8](repeating: 0x5A, count: pages * 4096)
        }
        let pid = UInt32(base.image.metadata.processes[0].pid)
        let mapStart = base.image.metadata.processes[0].mappings[0].start
        let first = spans[0]
        if role != .meta {
            // Replace the first record after SOURCE (stream) or the first (pages.img) with bad page records.
            let i = role == .stream ? 1 : 0
            let at = Int64(spans[i].offset)
            let bad: [(String, UInt32, [UInt8], String)] = [
                ("0 pages", 5, pagesPayload(pid: pid, count: 0, address: mapStart, pages: 0), "0 pages"),
                ("1025 pages", 5, pagesPayload(pid: pid, count: 1025, address: mapStart, pages: 0), "allowed 1…1024"),
                ("2^20+1 zero pages", 6, pagesPayload(pid: pid, count: (1 << 20) + 1, address: mapStart, pages: 0), "allowed 1…1048576"),
                ("count/bytes disagree", 5, pagesPayload(pid: pid, count: 2, address: mapStart, pages: 1), "PAGES record holds 4096 bytes for 2 pages"),
                ("unaligned address", 5, pagesPayload(pid: pid, count: 1, address: mapStart + 1, pages: 1), "not page-aligned"),
                ("past user space", 6, pagesPayload(pid: pid, count: 16, address: Validation.userAddressLimit - 4096, pages: 0), "outside the user"),
                ("address wraps", 6, pagesPayload(pid: pid, count: 16, address: UInt64.max - 4095, pages: 0), "outside the user"),
                ("zero record with a page of bytes", 6, pagesPayload(pid: pid, count: 1, address: mapStart, pages: 1), "cap"),
                ("zero record too short", 6, Array(pagesPayload(pid: pid, count: 1, address: mapStart, pages: 0)[0..<12]), "shorter"),
            ]
            for (label, type, payload, text) in bad {
                let offset: OffsetExpectation = text == "cap" ? .exact(at + 4) : .exact(at)
                add("record \(i) replaced: \(label)", .replaceRecord(index: i, record: RecordLayout.record(type: type, payload: payload)),
                    offset, text)
            }
        }
        if role == .pages {
            let s = RecordLayout.spans(base.meta)[0]
            let source = Array(base.meta[s.offset..<s.end])
            add("SOURCE record in pages.img", .insertRecord(index: 0, record: source), .exact(Int64(first.offset)), "metadata record")
        }
        if role == .meta {
            let pages = RecordLayout.record(type: 5, payload: pagesPayload(pid: pid, count: 1, address: mapStart, pages: 1))
            add("PAGES record in meta.img", .insertRecord(index: 1, record: pages), .exact(Int64(spans[1].offset)), "page record")
        }
        // Metadata records: invalid JSON, invalid base64, duplicates, wrong order.
        let metaBytes = role == .stream ? base.stream : base.meta
        let metaSpans = role == .pages ? [] : spans
        if let p = metaSpans.firstIndex(where: { $0.type == 2 }) {
            let s = metaSpans[p]
            let json = Array(metaBytes[s.payload..<s.checksum])
            add("PROCESS record with broken JSON", .replaceRecord(index: p, record: RecordLayout.record(type: 2, payload: Array(json.dropLast()))),
                .exact(Int64(s.offset)), "PROCESS record is not valid")
            let text = String(decoding: json, as: UTF8.self)
            if let r = text.firstRange(of: #""area":""#) {
                var broken = text
                broken.insert(contentsOf: "!!", at: r.upperBound)
                add("PROCESS record with invalid base64", .replaceRecord(index: p, record: RecordLayout.record(type: 2, payload: Array(broken.utf8))),
                    .exact(Int64(s.offset)), "base64")
            }
            add("PROCESS record with an empty payload", .replaceRecord(index: p, record: RecordLayout.record(type: 2, payload: [])),
                .exact(Int64(s.offset)), "not valid")
        }
        if role != .pages {
            let s = spans[0]
            let source = Array(metaBytes[s.offset..<s.end])
            add("two SOURCE records", .insertRecord(index: 1, record: source), .exact(Int64(spans[1].offset)), "two SOURCE")
            let json = String(decoding: metaBytes[s.payload..<s.checksum], as: UTF8.self)
                .replacing(#""arch":"x86_64""#, with: #""arch":"aarch64""#)
            add("SOURCE for aarch64 (valid checksums)", .replaceRecord(index: 0, record: RecordLayout.record(type: 1, payload: Array(json.utf8))),
                .none, "aarch64")
            let container = RecordLayout.record(type: 4, payload: Array("{}".utf8))
            add("two CONTAINER records", .insertRecord(index: 1, record: container + container), .exact(Int64(spans[1].offset) + 14),
                "two CONTAINER")
        }
        if role == .stream {
            add("stream not starting with SOURCE", .insertRecord(index: 0, record: RecordLayout.record(type: 4, payload: [])),
                .exact(32), "does not start with SOURCE")
        }
    }
}
