import Testing
import FerryImage
import CFerryFreeBSD
#if canImport(Glibc)
import Glibc
#endif
@testable import FerryCore

@Test func freeBSDLayoutTakesTheHeapNotStartData() throws {
    // A PIE with its break randomised 200 MB past the bss.
    let f = LayoutFields(startCode: 0x5555_5555_6000, endCode: 0x5555_5555_a4d9,
                         startData: 0x5555_5555_cd70, endData: 0x5555_5555_e010,
                         startBrk: 0x5555_6186_4000, brk: 0x5555_6188_5123)
    let l = try FreeBSDLayoutPlan.fromLinux(f)
    #expect(l == FreeBSDVMLayout(textStart: 0x5555_5555_6000, textEnd: 0x5555_5555_b000,
                                 dataStart: 0x5555_6186_4000, brk: 0x5555_6188_6000))
    // A heap that was never grown: an empty data range at start_brk.
    var empty = f; empty.brk = f.startBrk
    #expect(try FreeBSDLayoutPlan.fromLinux(empty).brk == 0x5555_6186_4000)
}

@Test func freeBSDLayoutRefusesImpossibleLinuxFields() {
    var reversed = LayoutFields(startCode: 0x402000, endCode: 0x401000, startBrk: 0x500000, brk: 0x501000)
    #expect(throws: FreeBSDLayoutError.self) { try FreeBSDLayoutPlan.fromLinux(reversed) }
    reversed = LayoutFields(startCode: 0x401000, endCode: 0x402000, startBrk: 0x500000, brk: 0x4ff000)
    #expect(throws: FreeBSDLayoutError.self) { try FreeBSDLayoutPlan.fromLinux(reversed) }
    let overlapping = LayoutFields(startCode: 0x401000, endCode: 0x480000, startBrk: 0x47f000, brk: 0x490000)
    #expect(throws: FreeBSDLayoutError.self) { try FreeBSDLayoutPlan.fromLinux(overlapping) }
    let top = LayoutFields(startCode: 0x401000, endCode: UInt64.max - 2, startBrk: 0, brk: 0)
    #expect(throws: FreeBSDLayoutError.self) { try FreeBSDLayoutPlan.fromLinux(top) }
}

#if canImport(Glibc)
/// One live Linux process as /proc shows it.
struct ProcLayout {
    var pid: Int32
    var fields: LayoutFields
    var maps: [(start: UInt64, end: UInt64, name: String)]

    static func read(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Nil for kernel threads, vanished processes and unreadable ones.
    init?(pid: Int32) {
        guard let stat = Self.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")"),
              let mapsText = Self.read("/proc/\(pid)/maps") else { return nil }
        // Fields from 3 (state) on; startcode is field 26, start_brk 47.
        let w = stat[stat.index(after: close)...].split(separator: " ").map { UInt64($0) ?? 0 }
        guard w.count >= 45 else { return nil }
        func field(_ n: Int) -> UInt64 { w[n - 3] }
        guard field(26) != 0, field(26) < field(27) else { return nil }
        maps = mapsText.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            let range = parts.first?.split(separator: "-") ?? []
            guard range.count == 2, let s = UInt64(range[0], radix: 16), let e = UInt64(range[1], radix: 16) else { return nil }
            return (s, e, parts.count >= 6 ? String(parts[5]) : "")
        }
        let heapEnd = maps.first(where: { $0.name == "[heap]" })?.end ?? field(47)
        self.pid = pid
        fields = LayoutFields(startCode: field(26), endCode: field(27), startData: field(45), endData: field(46),
                              startBrk: field(47), brk: max(heapEnd, field(47)), startStack: field(28))
    }

    var stack: (start: UInt64, end: UInt64)? {
        maps.first(where: { $0.name == "[stack]" }).map { ($0.start, $0.end) }
    }
}

/// The module's validator (kernel/ferry_validate.c, the same file the
/// FreeBSD module builds) run against a live process's map: a range is
/// covered when the process's mappings hold it without a hole.
final class MapsCoverage {
    let maps: [(start: UInt64, end: UInt64, name: String)]
    init(_ maps: [(start: UInt64, end: UInt64, name: String)]) { self.maps = maps.sorted { $0.start < $1.start } }

    func covered(_ start: UInt64, _ end: UInt64) -> Bool {
        var at = start
        for m in maps where m.end > at && m.start <= at {
            at = m.end
            if at >= end { return true }
        }
        return at >= end
    }

    func validate(_ l: inout ferry_layout) -> Int32 {
        var mv = ferry_map_view()
        mv.mv_min = 0x1000
        mv.mv_max = TargetLayout.linuxUserLimit
        mv.mv_page_size = 4096
        mv.mv_psstringssz = 32
        mv.mv_data_limit = 0
        mv.mv_covered = { ctx, s, e in
            Unmanaged<MapsCoverage>.fromOpaque(ctx!).takeUnretainedValue().covered(s, e) ? 1 : 0
        }
        mv.mv_ctx = Unmanaged.passUnretained(self).toOpaque()
        return withExtendedLifetime(self) { ferry_layout_validate(&l, &mv) }
    }
}

func moduleLayout(_ v: FreeBSDVMLayout, stack: (start: UInt64, end: UInt64)) -> ferry_layout {
    var l = ferry_layout()
    l.fl_version = UInt32(FERRY_LAYOUT_VERSION)
    l.fl_size = UInt32(MemoryLayout<ferry_layout>.size)
    l.fl_text_start = v.textStart; l.fl_text_end = v.textEnd
    l.fl_data_start = v.dataStart; l.fl_brk = v.brk
    l.fl_stack_top = stack.end
    l.fl_stack_max = stack.start
    return l
}

/// Every user process running here, laid out by FreeBSDLayoutPlan, passes
/// the module's validator; laid out the old way (data from start_data) the
/// randomised ones fail it, which is what this test guards against.
@Test func freeBSDValidatorAcceptsTheLayoutsOfRealLinuxProcesses() throws {
    guard let dir = opendir("/proc") else { Issue.record("cannot open /proc"); return }
    var pids: [Int32] = []
    while let e = readdir(dir) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        if let p = Int32(name) { pids.append(p) }
    }
    closedir(dir)
    var checked = 0, oldWayRefused = 0
    for pid in pids {
        guard let p = ProcLayout(pid: pid), let stack = p.stack else { continue }
        let v = try FreeBSDLayoutPlan.fromLinux(p.fields)
        let coverage = MapsCoverage(p.maps)
        var l = moduleLayout(v, stack: stack)
        let rc = coverage.validate(&l)
        #expect(rc == 0, "pid \(pid): \(v): \(String(cString: ferry_layout_strerror(Int32(FERRY_OP_SET_LAYOUT), rc)))")
        checked += 1
        var old = l
        old.fl_data_start = p.fields.startData & ~0xfff
        if p.fields.startBrk & ~0xfff > (p.fields.endData + 0xfff) & ~0xfff, coverage.validate(&old) != 0 { oldWayRefused += 1 }
    }
    #expect(checked >= 3, "only \(checked) user processes could be read from /proc")
    if (ProcLayout.read("/proc/sys/kernel/randomize_va_space") ?? "").hasPrefix("2") {
        #expect(oldWayRefused > 0, "with brk randomisation on, some process should have a gap after its bss")
    }
}
#endif
