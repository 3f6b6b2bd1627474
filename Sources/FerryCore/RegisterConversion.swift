import FerryImage

// Register-set conversion: neutral `Registers` ⇄ Linux `user_regs_struct`
// ⇄ FreeBSD `struct reg` (reference/freebsd-facts.md §1.1–1.4).
//
// What never crosses from the image to a target: segment selectors (the
// target OS supplies its own, §1.4), orig_rax (derived from the neutral
// `SyscallState`), FreeBSD's trapno/err (kernel bookkeeping of the last
// trap), and privileged rflags bits (sanitised, see `sanitizedRFlags`).

/// The OS a restored Linux-ABI process runs on.
public enum TargetOS: String, Codable, Sendable, CaseIterable {
    /// Native Linux.
    case linux
    /// FreeBSD, with the process under the Linuxulator (linux64 ABI).
    case freebsd
}

/// The user-mode segment selectors an OS loads for a 64-bit process.
public struct SegmentSelectors: Equatable, Sendable {
    public var cs: UInt16, ss: UInt16, ds: UInt16, es: UInt16, fs: UInt16, gs: UInt16

    public init(cs: UInt16, ss: UInt16, ds: UInt16, es: UInt16, fs: UInt16, gs: UInt16) {
        self.cs = cs; self.ss = ss; self.ds = ds; self.es = es; self.fs = fs; self.gs = gs
    }

    /// The selectors of `os` (freebsd-facts §1.4): Linux __USER_CS 0x33,
    /// __USER_DS 0x2b, data/fs/gs selectors 0 in 64-bit processes; FreeBSD
    /// GUCODE_SEL 0x43, GUDATA_SEL 0x3b, GUFS32_SEL 0x13, GUGS32_SEL 0x1b.
    /// (0x33 is FreeBSD's *32-bit* code segment: never carry cs across.)
    public static func of(_ os: TargetOS) -> SegmentSelectors {
        switch os {
        case .linux: return SegmentSelectors(cs: 0x33, ss: 0x2b, ds: 0, es: 0, fs: 0, gs: 0)
        case .freebsd: return SegmentSelectors(cs: 0x43, ss: 0x3b, ds: 0x3b, es: 0x3b, fs: 0x13, gs: 0x1b)
        }
    }
}

/// A register buffer had the wrong size for its C structure.
public struct RegisterLayoutError: Error, Equatable, Sendable, CustomStringConvertible {
    public var structure: String
    public var expected: Int
    public var actual: Int
    public var description: String {
        "cannot decode \(structure): got \(actual) bytes, expected \(expected); the tracer read the wrong register set"
    }
}

/// Linux x86-64 `struct user_regs_struct` (PTRACE_GETREGS, NT_PRSTATUS): 27
/// unsigned 64-bit words, 216 bytes, in the kernel's order (freebsd-facts §1.2).
public struct LinuxUserRegs: Equatable, Sendable {
    public static let byteCount = 216

    public var r15: UInt64 = 0, r14: UInt64 = 0, r13: UInt64 = 0, r12: UInt64 = 0
    public var rbp: UInt64 = 0, rbx: UInt64 = 0, r11: UInt64 = 0, r10: UInt64 = 0
    public var r9: UInt64 = 0, r8: UInt64 = 0, rax: UInt64 = 0, rcx: UInt64 = 0
    public var rdx: UInt64 = 0, rsi: UInt64 = 0, rdi: UInt64 = 0
    /// The syscall number while the thread is inside a syscall, else -1 (`UInt64.max`).
    public var origRax: UInt64 = .max
    public var rip: UInt64 = 0, cs: UInt64 = 0, eflags: UInt64 = 0, rsp: UInt64 = 0, ss: UInt64 = 0
    public var fsBase: UInt64 = 0, gsBase: UInt64 = 0
    public var ds: UInt64 = 0, es: UInt64 = 0, fs: UInt64 = 0, gs: UInt64 = 0

    public init() {}

    /// Decodes the 216-byte structure as PTRACE_GETREGS returns it.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.byteCount else {
            throw RegisterLayoutError(structure: "Linux user_regs_struct", expected: Self.byteCount, actual: bytes.count)
        }
        var w = (0..<27).map { bytes.loadLE(UInt64.self, at: $0 * 8) }.makeIterator()
        func next() -> UInt64 { w.next()! }
        r15 = next(); r14 = next(); r13 = next(); r12 = next()
        rbp = next(); rbx = next(); r11 = next(); r10 = next()
        r9 = next(); r8 = next(); rax = next(); rcx = next()
        rdx = next(); rsi = next(); rdi = next(); origRax = next()
        rip = next(); cs = next(); eflags = next(); rsp = next(); ss = next()
        fsBase = next(); gsBase = next(); ds = next(); es = next(); fs = next(); gs = next()
    }

    /// The 216-byte structure for PTRACE_SETREGS.
    public var bytes: [UInt8] {
        let words = [r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, origRax,
                     rip, cs, eflags, rsp, ss, fsBase, gsBase, ds, es, fs, gs]
        var out = [UInt8](repeating: 0, count: Self.byteCount)
        for (i, v) in words.enumerated() { out.storeLE(v, at: i * 8) }
        return out
    }
}

/// FreeBSD amd64 `struct reg` (PT_GETREGS/PT_SETREGS): 176 bytes, with the
/// 32-bit trapno/err and 16-bit selectors of freebsd-facts §1.1. fs_base and
/// gs_base are not in it (PT_GETFSBASE/PT_GETGSBASE, §1.6).
public struct FreeBSDReg: Equatable, Sendable {
    public static let byteCount = 176

    public var r15: UInt64 = 0, r14: UInt64 = 0, r13: UInt64 = 0, r12: UInt64 = 0
    public var r11: UInt64 = 0, r10: UInt64 = 0, r9: UInt64 = 0, r8: UInt64 = 0
    public var rdi: UInt64 = 0, rsi: UInt64 = 0, rbp: UInt64 = 0, rbx: UInt64 = 0
    public var rdx: UInt64 = 0, rcx: UInt64 = 0, rax: UInt64 = 0
    public var trapno: UInt32 = 0
    public var fs: UInt16 = 0, gs: UInt16 = 0
    /// Error code of the last trap; for a syscall, the length of the syscall instruction (2).
    public var err: UInt32 = 0
    public var es: UInt16 = 0, ds: UInt16 = 0
    public var rip: UInt64 = 0, cs: UInt64 = 0, rflags: UInt64 = 0, rsp: UInt64 = 0, ss: UInt64 = 0

    public init() {}

    /// Byte offsets of `struct reg` (freebsd-facts §1.1, verified).
    enum Offset {
        static let r15 = 0, r14 = 8, r13 = 16, r12 = 24, r11 = 32, r10 = 40, r9 = 48, r8 = 56
        static let rdi = 64, rsi = 72, rbp = 80, rbx = 88, rdx = 96, rcx = 104, rax = 112
        static let trapno = 120, fs = 124, gs = 126, err = 128, es = 132, ds = 134
        static let rip = 136, cs = 144, rflags = 152, rsp = 160, ss = 168
    }

    public init(bytes b: [UInt8]) throws {
        guard b.count == Self.byteCount else {
            throw RegisterLayoutError(structure: "FreeBSD struct reg", expected: Self.byteCount, actual: b.count)
        }
        typealias O = Offset
        r15 = b.loadLE(UInt64.self, at: O.r15); r14 = b.loadLE(UInt64.self, at: O.r14)
        r13 = b.loadLE(UInt64.self, at: O.r13); r12 = b.loadLE(UInt64.self, at: O.r12)
        r11 = b.loadLE(UInt64.self, at: O.r11); r10 = b.loadLE(UInt64.self, at: O.r10)
        r9 = b.loadLE(UInt64.self, at: O.r9); r8 = b.loadLE(UInt64.self, at: O.r8)
        rdi = b.loadLE(UInt64.self, at: O.rdi); rsi = b.loadLE(UInt64.self, at: O.rsi)
        rbp = b.loadLE(UInt64.self, at: O.rbp); rbx = b.loadLE(UInt64.self, at: O.rbx)
        rdx = b.loadLE(UInt64.self, at: O.rdx); rcx = b.loadLE(UInt64.self, at: O.rcx)
        rax = b.loadLE(UInt64.self, at: O.rax)
        trapno = b.loadLE(UInt32.self, at: O.trapno)
        fs = b.loadLE(UInt16.self, at: O.fs); gs = b.loadLE(UInt16.self, at: O.gs)
        err = b.loadLE(UInt32.self, at: O.err)
        es = b.loadLE(UInt16.self, at: O.es); ds = b.loadLE(UInt16.self, at: O.ds)
        rip = b.loadLE(UInt64.self, at: O.rip); cs = b.loadLE(UInt64.self, at: O.cs)
        rflags = b.loadLE(UInt64.self, at: O.rflags); rsp = b.loadLE(UInt64.self, at: O.rsp)
        ss = b.loadLE(UInt64.self, at: O.ss)
    }

    public var bytes: [UInt8] {
        typealias O = Offset
        var b = [UInt8](repeating: 0, count: Self.byteCount)
        for (v, o) in [(r15, O.r15), (r14, O.r14), (r13, O.r13), (r12, O.r12), (r11, O.r11), (r10, O.r10),
                       (r9, O.r9), (r8, O.r8), (rdi, O.rdi), (rsi, O.rsi), (rbp, O.rbp), (rbx, O.rbx),
                       (rdx, O.rdx), (rcx, O.rcx), (rax, O.rax), (rip, O.rip), (cs, O.cs),
                       (rflags, O.rflags), (rsp, O.rsp), (ss, O.ss)] {
            b.storeLE(v, at: o)
        }
        b.storeLE(trapno, at: O.trapno); b.storeLE(err, at: O.err)
        for (v, o) in [(fs, O.fs), (gs, O.gs), (es, O.es), (ds, O.ds)] { b.storeLE(v, at: o) }
        return b
    }
}

/// Conversions between the neutral registers and each OS's register set.
public enum RegisterConversion {
    /// rflags bits user code may set and a restore keeps: CF, PF, AF, ZF, SF,
    /// DF, OF, AC, ID. TF (single-step), NT, RF, IOPL, VM, VIF/VIP are dropped:
    /// they are either privileged (FreeBSD's EFL_SECURE rejects the whole
    /// PT_SETREGS) or would make the restored thread trap.
    public static let userRFlagsMask: UInt64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000
    /// Bits always set in a user thread's rflags: the reserved bit 1 and IF.
    public static let requiredRFlags: UInt64 = 0x2 | 0x200

    /// rflags reduced to user-settable bits, with bit 1 and IF set.
    public static func sanitizedRFlags(_ rflags: UInt64) -> UInt64 {
        (rflags & userRFlagsMask) | requiredRFlags
    }

    /// Linux → neutral. Selectors and orig_rax are dropped; a thread inside a
    /// syscall must go through `SyscallRestartRules.normalize(linux:…)`
    /// instead, which also rewinds rip.
    public static func neutral(fromLinux l: LinuxUserRegs) -> Registers {
        var r = Registers()
        r.r15 = l.r15; r.r14 = l.r14; r.r13 = l.r13; r.r12 = l.r12
        r.rbp = l.rbp; r.rbx = l.rbx; r.r11 = l.r11; r.r10 = l.r10
        r.r9 = l.r9; r.r8 = l.r8; r.rax = l.rax; r.rcx = l.rcx
        r.rdx = l.rdx; r.rsi = l.rsi; r.rdi = l.rdi
        r.rip = l.rip; r.rflags = l.eflags; r.rsp = l.rsp
        r.fsBase = l.fsBase; r.gsBase = l.gsBase
        return r
    }

    /// Neutral → Linux, for PTRACE_SETREGS. Selectors are Linux's; rflags is
    /// sanitised; orig_rax is the syscall number when `syscall` says the
    /// thread re-enters a syscall (`.restart`/`.restartWithRemaining`), else
    /// -1. The kernel only acts on orig_rax ≥ 0 together with an -ERESTART*
    /// value in rax, which a neutral image never holds, so either value is
    /// inert; the number is kept for tools that inspect the stopped thread.
    public static func linux(from r: Registers, syscall: SyscallState? = nil) -> LinuxUserRegs {
        var l = LinuxUserRegs()
        l.r15 = r.r15; l.r14 = r.r14; l.r13 = r.r13; l.r12 = r.r12
        l.rbp = r.rbp; l.rbx = r.rbx; l.r11 = r.r11; l.r10 = r.r10
        l.r9 = r.r9; l.r8 = r.r8; l.rax = r.rax; l.rcx = r.rcx
        l.rdx = r.rdx; l.rsi = r.rsi; l.rdi = r.rdi
        switch syscall?.restart {
        case .restart?, .restartWithRemaining?: l.origRax = UInt64(bitPattern: syscall!.number)
        default: l.origRax = .max
        }
        l.rip = r.rip; l.eflags = sanitizedRFlags(r.rflags); l.rsp = r.rsp
        l.fsBase = r.fsBase; l.gsBase = r.gsBase
        let sel = SegmentSelectors.of(.linux)
        l.cs = UInt64(sel.cs); l.ss = UInt64(sel.ss)
        l.ds = UInt64(sel.ds); l.es = UInt64(sel.es); l.fs = UInt64(sel.fs); l.gs = UInt64(sel.gs)
        return l
    }

    /// FreeBSD → neutral. fs_base/gs_base come from PT_GETFSBASE/PT_GETGSBASE
    /// (they are not in `struct reg`); trapno, err and selectors are dropped.
    public static func neutral(fromFreeBSD f: FreeBSDReg, fsBase: UInt64, gsBase: UInt64) -> Registers {
        var r = Registers()
        r.r15 = f.r15; r.r14 = f.r14; r.r13 = f.r13; r.r12 = f.r12
        r.r11 = f.r11; r.r10 = f.r10; r.r9 = f.r9; r.r8 = f.r8
        r.rdi = f.rdi; r.rsi = f.rsi; r.rbp = f.rbp; r.rbx = f.rbx
        r.rdx = f.rdx; r.rcx = f.rcx; r.rax = f.rax
        r.rip = f.rip; r.rflags = f.rflags; r.rsp = f.rsp
        r.fsBase = fsBase; r.gsBase = gsBase
        return r
    }

    /// Neutral → FreeBSD, for PT_SETREGS. Selectors are FreeBSD's (§1.4);
    /// trapno and err are 0; rflags is sanitised so EFL_SECURE accepts it.
    /// fs_base/gs_base are set separately with PT_SETFSBASE/PT_SETGSBASE.
    public static func freeBSD(from r: Registers) -> FreeBSDReg {
        var f = FreeBSDReg()
        f.r15 = r.r15; f.r14 = r.r14; f.r13 = r.r13; f.r12 = r.r12
        f.r11 = r.r11; f.r10 = r.r10; f.r9 = r.r9; f.r8 = r.r8
        f.rdi = r.rdi; f.rsi = r.rsi; f.rbp = r.rbp; f.rbx = r.rbx
        f.rdx = r.rdx; f.rcx = r.rcx; f.rax = r.rax
        f.rip = r.rip; f.rflags = sanitizedRFlags(r.rflags); f.rsp = r.rsp
        let sel = SegmentSelectors.of(.freebsd)
        f.cs = UInt64(sel.cs); f.ss = UInt64(sel.ss)
        f.ds = sel.ds; f.es = sel.es; f.fs = sel.fs; f.gs = sel.gs
        return f
    }
}
