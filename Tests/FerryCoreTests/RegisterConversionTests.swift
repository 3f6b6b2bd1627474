import Testing
import FerryImage
@testable import FerryCore

/// Writes `value` little-endian, `width` bytes, at `offset`: the hand-built tables below use it.
func put(_ bytes: inout [UInt8], _ offset: Int, _ width: Int, _ value: UInt64) {
    for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
}

// Linux user_regs_struct offsets, from freebsd-facts §1.2.
let linuxTable: [(String, Int, @Sendable (LinuxUserRegs) -> UInt64)] = [
    ("r15", 0, { $0.r15 }), ("r14", 8, { $0.r14 }), ("r13", 16, { $0.r13 }), ("r12", 24, { $0.r12 }),
    ("rbp", 32, { $0.rbp }), ("rbx", 40, { $0.rbx }), ("r11", 48, { $0.r11 }), ("r10", 56, { $0.r10 }),
    ("r9", 64, { $0.r9 }), ("r8", 72, { $0.r8 }), ("rax", 80, { $0.rax }), ("rcx", 88, { $0.rcx }),
    ("rdx", 96, { $0.rdx }), ("rsi", 104, { $0.rsi }), ("rdi", 112, { $0.rdi }), ("orig_rax", 120, { $0.origRax }),
    ("rip", 128, { $0.rip }), ("cs", 136, { $0.cs }), ("eflags", 144, { $0.eflags }), ("rsp", 152, { $0.rsp }),
    ("ss", 160, { $0.ss }), ("fs_base", 168, { $0.fsBase }), ("gs_base", 176, { $0.gsBase }),
    ("ds", 184, { $0.ds }), ("es", 192, { $0.es }), ("fs", 200, { $0.fs }), ("gs", 208, { $0.gs }),
]

@Test(arguments: linuxTable.indices)
func linuxFieldOffset(_ i: Int) throws {
    let (name, offset, field) = linuxTable[i]
    var bytes = [UInt8](repeating: 0, count: 216)
    put(&bytes, offset, 8, 0x1122_3344_5566_7788)
    let regs = try LinuxUserRegs(bytes: bytes)
    #expect(field(regs) == 0x1122_3344_5566_7788, "field \(name) at \(offset)")
    #expect(regs.bytes == bytes)
}

// FreeBSD struct reg offsets and widths, from freebsd-facts §1.1.
let freeBSDTable: [(String, Int, Int, @Sendable (FreeBSDReg) -> UInt64)] = [
    ("r15", 0, 8, { $0.r15 }), ("r14", 8, 8, { $0.r14 }), ("r13", 16, 8, { $0.r13 }), ("r12", 24, 8, { $0.r12 }),
    ("r11", 32, 8, { $0.r11 }), ("r10", 40, 8, { $0.r10 }), ("r9", 48, 8, { $0.r9 }), ("r8", 56, 8, { $0.r8 }),
    ("rdi", 64, 8, { $0.rdi }), ("rsi", 72, 8, { $0.rsi }), ("rbp", 80, 8, { $0.rbp }), ("rbx", 88, 8, { $0.rbx }),
    ("rdx", 96, 8, { $0.rdx }), ("rcx", 104, 8, { $0.rcx }), ("rax", 112, 8, { $0.rax }),
    ("trapno", 120, 4, { UInt64($0.trapno) }), ("fs", 124, 2, { UInt64($0.fs) }), ("gs", 126, 2, { UInt64($0.gs) }),
    ("err", 128, 4, { UInt64($0.err) }), ("es", 132, 2, { UInt64($0.es) }), ("ds", 134, 2, { UInt64($0.ds) }),
    ("rip", 136, 8, { $0.rip }), ("cs", 144, 8, { $0.cs }), ("rflags", 152, 8, { $0.rflags }),
    ("rsp", 160, 8, { $0.rsp }), ("ss", 168, 8, { $0.ss }),
]

@Test(arguments: freeBSDTable.indices)
func freeBSDFieldOffset(_ i: Int) throws {
    let (name, offset, width, field) = freeBSDTable[i]
    var bytes = [UInt8](repeating: 0, count: 176)
    let value: UInt64 = 0x8877_6655_4433_2211 >> UInt64(64 - width * 8)
    put(&bytes, offset, width, value)
    let regs = try FreeBSDReg(bytes: bytes)
    #expect(field(regs) == value, "field \(name) at \(offset)")
    #expect(regs.bytes == bytes)
}

@Test func tablesCoverEveryByte() {
    #expect(linuxTable.count * 8 == LinuxUserRegs.byteCount)
    #expect(freeBSDTable.map { $0.2 }.reduce(0, +) == FreeBSDReg.byteCount)
}

@Test func wrongSizesAreRefused() {
    #expect(throws: RegisterLayoutError.self) { try LinuxUserRegs(bytes: [UInt8](repeating: 0, count: 176)) }
    #expect(throws: RegisterLayoutError.self) { try FreeBSDReg(bytes: [UInt8](repeating: 0, count: 216)) }
}

@Test func rawRoundTrips() throws {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt8 { state = state &* 6364136223846793005 &+ 1442695040888963407; return UInt8(state >> 56) }
    let linux = (0..<216).map { _ in next() }, bsd = (0..<176).map { _ in next() }
    #expect(try LinuxUserRegs(bytes: linux).bytes == linux)
    #expect(try FreeBSDReg(bytes: bsd).bytes == bsd)
}

func sampleRegisters() -> Registers {
    var r = Registers()
    r.rax = 1; r.rbx = 2; r.rcx = 3; r.rdx = 4; r.rsi = 5; r.rdi = 6; r.rbp = 7; r.rsp = 8
    r.r8 = 9; r.r9 = 10; r.r10 = 11; r.r11 = 12; r.r12 = 13; r.r13 = 14; r.r14 = 15; r.r15 = 16
    r.rip = 0x40_1000; r.rflags = 0x246; r.fsBase = 0x7f00_0000_1000; r.gsBase = 0x7f00_0000_2000
    return r
}

@Test func neutralRoundTripsThroughBothOSes() {
    let r = sampleRegisters()
    #expect(RegisterConversion.neutral(fromLinux: RegisterConversion.linux(from: r)) == r)
    let f = RegisterConversion.freeBSD(from: r)
    #expect(RegisterConversion.neutral(fromFreeBSD: f, fsBase: r.fsBase, gsBase: r.gsBase) == r)
}

@Test func selectorsComeFromTheTarget() {
    var l = LinuxUserRegs()
    l.cs = 0x43; l.ss = 0x3b; l.ds = 0x3b; l.fs = 0x13  // as if captured on FreeBSD
    let out = RegisterConversion.linux(from: RegisterConversion.neutral(fromLinux: l))
    #expect((out.cs, out.ss, out.ds, out.es, out.fs, out.gs) == (0x33, 0x2b, 0, 0, 0, 0))
    let f = RegisterConversion.freeBSD(from: sampleRegisters())
    #expect((f.cs, f.ss, f.ds, f.es, f.fs, f.gs) == (0x43, 0x3b, 0x3b, 0x3b, 0x13, 0x1b))
    #expect((f.trapno, f.err) == (0, 0))
}

@Test func origRaxFollowsTheSyscallState() {
    let r = sampleRegisters()
    #expect(RegisterConversion.linux(from: r).origRax == UInt64.max)
    #expect(RegisterConversion.linux(from: r, syscall: SyscallState(number: 7, args: [], restart: .restart)).origRax == 7)
    #expect(RegisterConversion.linux(from: r, syscall: SyscallState(number: 7, args: [], restart: .interrupted)).origRax == UInt64.max)
}

let rflagsCases: [(UInt64, UInt64)] = [
    (0x246, 0x246),       // ZF PF IF + bit 1
    (0x0, 0x202),                          // bit 1 and IF forced
    (0x3_3fd7, 0x202 | 0xcd5),             // TF, IOPL, RF, VM dropped; CF PF AF ZF SF DF OF kept
    (0x24_0000, 0x24_0202),                // AC and ID kept
    (0xffff_ffff_0000_0000, 0x202),        // high bits dropped
]

@Test(arguments: rflagsCases)
func rflagsSanitising(_ input: UInt64, _ expected: UInt64) {
    #expect(RegisterConversion.sanitizedRFlags(input) == expected)
}
