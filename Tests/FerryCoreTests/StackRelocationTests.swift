import Testing
import FerryImage
@testable import FerryCore

// A fake process: code at 0x400000, heap at 0x600000, stack at 0x7ffffffde000–0x7ffffffff000,
// moving to end at 0x7ffffffd000 (delta −0x2000).
let code = AddressRange(0x40_0000, 0x40_2000)
let heapRange = AddressRange(0x60_0000, 0x60_1000)
let stackRange = AddressRange(0x7fff_fffd_e000, 0x7fff_ffff_f000)
let move = AreaMove(name: "[stack]", old: stackRange, newStart: 0x7fff_fffb_c000 + 0x20000)  // ends at 0x7ffffffd000
let delta: UInt64 = 0x2000

func fakeProcess() -> (ProcessImage, InMemoryMemory) {
    var mem = InMemoryMemory()
    // Stack: three frames near the top, frame pointers chained, return addresses into code.
    var stack = [UInt64](repeating: 0, count: Int(stackRange.size / 8))
    func slot(_ addr: UInt64) -> Int { Int((addr - stackRange.start) / 8) }
    let f1: UInt64 = 0x7fff_ffff_e000, f2: UInt64 = 0x7fff_ffff_e100, f3: UInt64 = 0x7fff_ffff_e200
    stack[slot(f1)] = f2; stack[slot(f1) + 1] = 0x40_0123      // saved rbp, return address
    stack[slot(f2)] = f3; stack[slot(f2) + 1] = 0x40_0456
    stack[slot(f3)] = 0;  stack[slot(f3) + 1] = 0x40_0789
    stack[slot(f2) + 2] = 0x7fff_ffff_e300                     // a local pointing to a stack buffer
    stack[slot(f2) + 3] = 0x60_0010                            // a local pointing into the heap
    stack[slot(f3) + 2] = 12345                                // an integer
    mem.add(at: stackRange.start, words: stack)
    // Heap: a struct pointing into the stack, one to itself, an integer outside the range.
    var heap = [UInt64](repeating: 0, count: 512)
    heap[2] = 0x7fff_ffff_e308                                 // pointer into the stack
    heap[3] = 0x60_0000                                        // pointer into the heap
    heap[4] = 0x7fff_ffff_f000                                 // just past the stack: not inside it
    heap[5] = 0x7fff_fffd_dff8                                 // just below: not inside it
    mem.add(at: heapRange.start, words: heap)
    // A shared mapping holding a stack pointer: must not be touched.
    mem.add(at: 0x70_0000, words: [0x7fff_ffff_e000])

    var t = ThreadImage(tid: 100)
    t.registers.rsp = 0x7fff_ffff_dff0; t.registers.rbp = f1; t.registers.rdi = 0x7fff_ffff_e300
    t.registers.rip = 0x40_0100; t.registers.rax = 7; t.registers.fsBase = 0x60_0800
    t.syscall = SyscallState(number: 35, args: [0x7fff_ffff_e300, 0x7fff_ffff_e300, 0, 0, 0, 0], restart: .restartWithRemaining)
    var layout = LayoutFields(startStack: 0x7fff_ffff_e800, argStart: 0x7fff_ffff_ef00, argEnd: 0x7fff_ffff_ef20,
                              envStart: 0x7fff_ffff_ef20, envEnd: 0x7fff_ffff_f000)
    layout.auxv = [25, 0x7fff_ffff_ee00, 31, 0x7fff_ffff_efe0, 6, 4096, 9, 0x40_1000, 0, 0]
    let p = ProcessImage(pid: 100, layout: layout, mappings: [
        Mapping(start: code.start, end: code.end, protection: [.read, .exec], kind: .privateFile,
                file: FileIdentity(path: "/app", size: 1, mtimeNs: 0)),
        Mapping(start: heapRange.start, end: heapRange.end, protection: [.read, .write], kind: .heap, name: "[heap]"),
        Mapping(start: 0x70_0000, end: 0x70_0008, protection: [.read, .write], kind: .sharedAnonymous),
        Mapping(start: stackRange.start, end: stackRange.end, protection: [.read, .write], kind: .stack, name: "[stack]"),
    ], threads: [t])
    return (p, mem)
}

@Test func classification() throws {
    let r = try PointerRelocator(move: move, codeRanges: [code])
    #expect(r.classify(0x7fff_ffff_e000) == .intoMovedArea)
    #expect(r.classify(0x40_0123) == .code)
    #expect(r.classify(0x60_0000) == .other)
    #expect(r.classify(stackRange.end) == .other)
}

@Test func relocatesAFakeProcess() throws {
    var (p, mem) = fakeProcess()
    let before = mem
    let r = try PointerRelocator(move: move, codeRanges: executableFileRanges(of: p))
    let stats = try r.relocate(process: &p, memory: &mem)

    // Exactly these words change.
    let expectedFixes: [UInt64: UInt64] = [
        0x7fff_ffff_e000: 0x7fff_ffff_e100 - delta,   // saved rbp chain
        0x7fff_ffff_e100: 0x7fff_ffff_e200 - delta,
        0x7fff_ffff_e110: 0x7fff_ffff_e300 - delta,   // local pointer to a stack buffer
        0x60_0010: 0x7fff_ffff_e308 - delta,          // heap struct → stack
    ]
    for (start, words) in mem.areas {
        for (i, w) in words.enumerated() {
            let addr = start + UInt64(i * 8)
            #expect(w == expectedFixes[addr] ?? before.word(at: addr)!, "word at \(hex(addr))")
        }
    }
    #expect(stats.fixedByArea == ["[stack]": 3, "[heap]": 1])
    #expect(stats.codePointersSeen == 3)
    #expect(stats.wordsScanned == Int(stackRange.size / 8) + 512)

    let regs = p.threads[0].registers
    #expect(regs.rsp == 0x7fff_ffff_dff0 - delta && regs.rbp == 0x7fff_ffff_e000 - delta && regs.rdi == 0x7fff_ffff_e300 - delta)
    #expect(regs.rip == 0x40_0100 && regs.rax == 7 && regs.fsBase == 0x60_0800)
    #expect(stats.registersFixed == 3)
    #expect(p.threads[0].syscall?.args == [0x7fff_ffff_e300 - delta, 0x7fff_ffff_e300 - delta, 0, 0, 0, 0])
    #expect(stats.threadFieldsFixed == 2)

    let l = p.layout
    #expect(l.startStack == 0x7fff_ffff_e800 - delta)
    #expect((l.argStart, l.argEnd, l.envStart, l.envEnd) ==
            (0x7fff_ffff_ef00 - delta, 0x7fff_ffff_ef20 - delta, 0x7fff_ffff_ef20 - delta, 0x7fff_ffff_f000 - delta))
    #expect(l.auxv == [25, 0x7fff_ffff_ee00 - delta, 31, 0x7fff_ffff_efe0 - delta, 6, 4096, 9, 0x40_1000, 0, 0])
    #expect(stats.layoutFieldsFixed == 7)
    #expect(p.mappings[3].start == stackRange.start - delta && p.mappings[3].end == stackRange.end - delta)
}

@Test func pageBufferVariantMatches() throws {
    let r = try PointerRelocator(move: move, codeRanges: [code])
    var page = [UInt8](repeating: 0, count: 32)
    put(&page, 0, 8, 0x7fff_ffff_e000); put(&page, 8, 8, 0x40_0001); put(&page, 16, 8, 99); put(&page, 24, 8, stackRange.end - 8)
    let result = r.relocateWords(in: &page, at: 0x60_0000)
    #expect(result == (scanned: 4, fixed: 2, code: 1))
    #expect(page.loadLE(UInt64.self, at: 0) == 0x7fff_ffff_e000 - delta)
    #expect(page.loadLE(UInt64.self, at: 24) == stackRange.end - 8 - delta)
}

@Test func codeOverlappingTheMovedAreaIsRefused() {
    #expect(throws: RelocationError.self) {
        try PointerRelocator(move: move, codeRanges: [AddressRange(0x7fff_ffff_0000, 0x7fff_ffff_1000)])
    }
}
