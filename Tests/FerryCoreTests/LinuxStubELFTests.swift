import Testing
import FerryImage
import FerryELF
#if canImport(Glibc)
import Glibc
#endif
@testable import FerryCore

/// The stub read back with FerryELF: Linux-branded ET_EXEC, the text and
/// data ranges as PT_LOAD segments, the GNU ABI-tag note naming Linux.
@Test func linuxStubELFReadsBackWithTheLayoutsRanges() throws {
    let l = FreeBSDVMLayout(textStart: 0x5555_5555_6000, textEnd: 0x5555_5555_b000,
                            dataStart: 0x5555_6186_4000, brk: 0x5555_6188_6000)
    let stub = try LinuxStubELF.generate(l)
    let elf = try ELFFile(bytes: stub.bytes)
    #expect(elf.header.type == .executable && elf.header.machine == .x86_64)
    #expect(elf.header.osABI == 3 && elf.header.entry == stub.entry)
    #expect(elf.interpreter == nil)
    let loads = elf.segments.filter { $0.type == .load }
    #expect(loads.map { AddressRange($0.virtualAddress, $0.virtualAddress + $0.memorySize) }
            == [AddressRange(l.textStart, l.textEnd), AddressRange(l.dataStart, l.brk)])
    #expect(loads.map(\.flags) == [[.read, .execute], [.read, .write]])
    #expect(loads[1].fileSize == 0, "the data segment is bss only")
    #expect(loads[0].holds(stub.entry))
    let tag = elf.notes.first { $0.name == "GNU" && $0.type == LinuxStubELF.gnuABITagType }
    #expect(tag?.descriptor == [0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
    #expect(stub.hasDataSegment)
}

@Test func linuxStubELFWithAnEmptyHeapHasNoDataSegment() throws {
    let l = FreeBSDVMLayout(textStart: 0x40_0000, textEnd: 0x40_2000, dataStart: 0x60_0000, brk: 0x60_0000)
    let stub = try LinuxStubELF.generate(l)
    let elf = try ELFFile(bytes: stub.bytes)
    #expect(!stub.hasDataSegment && elf.segments.filter { $0.type == .load }.count == 1)
}

@Test func linuxStubELFRefusesBadLayouts() {
    let bad = [FreeBSDVMLayout(textStart: 0x40_0100, textEnd: 0x40_2000, dataStart: 0x60_0000, brk: 0x60_1000),
               FreeBSDVMLayout(textStart: 0x40_2000, textEnd: 0x40_1000, dataStart: 0x60_0000, brk: 0x60_1000),
               FreeBSDVMLayout(textStart: 0x40_0000, textEnd: 0x40_2000, dataStart: 0x40_1000, brk: 0x40_3000)]
    for l in bad { #expect(throws: FreeBSDLayoutError.self) { try LinuxStubELF.generate(l) } }
}

extension Segment {
    func holds(_ a: UInt64) -> Bool { a >= virtualAddress && a < virtualAddress + memorySize }
}

#if canImport(Glibc)
/// Linux runs the stub built from this test process's own layout: exec
/// maps its text and heap ranges where the image had them.
@Test func linuxStubELFBuiltFromALiveProcessRunsOnLinux() throws {
    guard let me = ProcLayout(pid: getpid()) else { Issue.record("cannot read /proc/self"); return }
    var fields = me.fields
    if fields.brk == fields.startBrk { fields.brk += 0x3000 }  // give it a heap to map
    let l = try FreeBSDLayoutPlan.fromLinux(fields)
    let stub = try LinuxStubELF.generate(l)
    var template = Array("/tmp/ferry-stub-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    #expect(fd >= 0)
    let path = String(cString: template)
    defer { unlink(path) }
    #expect(stub.bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == stub.bytes.count)
    fchmod(fd, 0o755)
    close(fd)

    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
    defer { argv.forEach { free($0) } }
    #expect(posix_spawn(&pid, path, nil, nil, argv, environ) == 0)
    defer { kill(pid, SIGKILL); var st: Int32 = 0; waitpid(pid, &st, 0) }
    // Wait until exec is done (the child's maps name the stub).
    var maps: [(start: UInt64, end: UInt64, name: String)] = []
    for _ in 0..<200 {
        if let p = ProcLayout(pid: pid), p.maps.contains(where: { $0.name == path }) { maps = p.maps; break }
        usleep(10_000)
    }
    let coverage = MapsCoverage(maps)
    #expect(coverage.covered(l.textStart, l.textEnd), "text \(AddressRange(l.textStart, l.textEnd)) not mapped in \(maps)")
    #expect(coverage.covered(l.dataStart, l.brk), "data \(AddressRange(l.dataStart, l.brk)) not mapped in \(maps)")
}
#endif
