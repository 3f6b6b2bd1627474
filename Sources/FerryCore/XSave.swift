import FerryImage

// XSAVE areas (standard, non-compacted format) and CPU compatibility.
//
// Layout of the area, as both kernels hand it out:
//   0..511    FXSAVE image (x87, SSE); bytes 464..511 are "software
//             available": Linux's NT_X86_XSTATE puts XCR0 at 464..471
//             (USER_XSTATE_XCR0_WORD), FreeBSD's PT_GETXSTATE leaves it 0.
//   512..575  XSAVE header: XSTATE_BV (512), XCOMP_BV (520, 0 in the
//             standard format), 48 reserved bytes that must be 0.
//   576..     the extended components at CPUID-0xD offsets (fixed in the
//             standard format; the usual values are in `XSaveComponent`).
//
// Decision for FreeBSD (`forFreeBSD`): the XCR0 word is CLEARED. XRSTOR
// ignores bytes 464..511, FreeBSD's own PT_GETXSTATE/fill_fpregs produce
// zeroes there, and clearing makes a FreeBSD → image → FreeBSD round trip
// byte-identical. The image keeps XCR0 both in `ExtendedState.xcr0` and at
// 464 (Linux convention), so nothing is lost.

/// One XSAVE state component (bit number in XCR0 / XSTATE_BV).
public enum XSaveComponent: Int, CaseIterable, Sendable, Comparable {
    case x87 = 0, sse = 1, avx = 2, mpxBndregs = 3, mpxBndcsr = 4
    case avx512Opmask = 5, avx512ZmmHi256 = 6, avx512Hi16Zmm = 7
    case processorTrace = 8, pkru = 9, pasid = 10, cetUser = 11, cetSupervisor = 12
    case hdc = 13, uintr = 14, lbr = 15, hwp = 16, amxTilecfg = 17, amxTiledata = 18, apx = 19

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var bit: UInt64 { 1 << UInt64(rawValue) }

    /// The name used in messages.
    public var name: String {
        switch self {
        case .x87: return "x87"
        case .sse: return "SSE"
        case .avx: return "AVX"
        case .mpxBndregs: return "MPX bndregs"
        case .mpxBndcsr: return "MPX bndcsr"
        case .avx512Opmask: return "AVX-512 opmask"
        case .avx512ZmmHi256: return "AVX-512 ZMM_Hi256"
        case .avx512Hi16Zmm: return "AVX-512 Hi16_ZMM"
        case .processorTrace: return "Processor Trace"
        case .pkru: return "PKRU"
        case .pasid: return "PASID"
        case .cetUser: return "CET user"
        case .cetSupervisor: return "CET supervisor"
        case .hdc: return "HDC"
        case .uintr: return "UINTR"
        case .lbr: return "LBR"
        case .hwp: return "HWP"
        case .amxTilecfg: return "AMX tilecfg"
        case .amxTiledata: return "AMX tiledata"
        case .apx: return "APX"
        }
    }

    /// (offset, size) in the standard format as Intel and AMD CPUs report
    /// them in CPUID 0xD; nil for supervisor components (never in a user
    /// XSAVE area) and for x87/SSE, which live in the legacy 512 bytes.
    public var standardExtent: (offset: Int, size: Int)? {
        switch self {
        case .avx: return (576, 256)
        case .mpxBndregs: return (960, 64)
        case .mpxBndcsr: return (1024, 64)
        case .avx512Opmask: return (1088, 64)
        case .avx512ZmmHi256: return (1152, 512)
        case .avx512Hi16Zmm: return (1664, 1024)
        case .pkru: return (2688, 8)
        case .amxTilecfg: return (2752, 64)
        case .amxTiledata: return (2816, 8192)
        default: return nil
        }
    }

    /// The components set in `mask`, lowest first.
    public static func components(in mask: UInt64) -> [XSaveComponent] {
        allCases.filter { mask & $0.bit != 0 }
    }

    /// Human names for `mask`: whole families are named once ("AVX-512",
    /// "MPX", "AMX"); bits no component describes appear as "bit N".
    public static func describe(_ mask: UInt64) -> String {
        var parts: [String] = []
        var rest = mask
        let families: [(String, [XSaveComponent])] = [
            ("MPX", [.mpxBndregs, .mpxBndcsr]),
            ("AVX-512", [.avx512Opmask, .avx512ZmmHi256, .avx512Hi16Zmm]),
            ("AMX", [.amxTilecfg, .amxTiledata]),
        ]
        for c in allCases where rest & c.bit != 0 {
            if let family = families.first(where: { $0.1.contains(c) }) {
                let familyMask = family.1.reduce(0) { $0 | $1.bit }
                if rest & familyMask == familyMask {
                    parts.append(family.0); rest &= ~familyMask; continue
                }
            }
            parts.append(c.name); rest &= ~c.bit
        }
        for bit in 0..<64 where rest & (1 << UInt64(bit)) != 0 { parts.append("bit \(bit)") }
        return parts.joined(separator: ", ")
    }
}

/// An XSAVE area could not be prepared for a target.
public struct XSaveError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
}

public enum XSave {
    /// Where Linux's NT_X86_XSTATE stores XCR0 (software-available FXSAVE bytes).
    public static let xcr0Offset = 464
    /// XSTATE_BV: which components hold non-initial state.
    public static let xstateBVOffset = 512
    /// XCOMP_BV: 0 in the standard format.
    public static let xcompBVOffset = 520
    /// FXSAVE image + XSAVE header.
    public static let minimumSize = 576

    /// The XCR0 word at 464..471, or nil when the area is too short.
    public static func xcr0Word(_ area: [UInt8]) -> UInt64? {
        area.count >= xcr0Offset + 8 ? area.loadLE(UInt64.self, at: xcr0Offset) : nil
    }

    /// XSTATE_BV, or nil when the area has no header.
    public static func xstateBV(_ area: [UInt8]) -> UInt64? {
        area.count >= minimumSize ? area.loadLE(UInt64.self, at: xstateBVOffset) : nil
    }

    /// FreeBSD PT_GETXSTATE output (+ PT_GETXSTATE_INFO's xsave_mask) → the
    /// image form: XCR0 patched in at 464, as Linux writes it.
    public static func normalizeFromFreeBSD(_ area: [UInt8], xcr0: UInt64) throws -> ExtendedState {
        guard area.count >= minimumSize else {
            throw XSaveError(description: "cannot read the XSAVE area: \(area.count) bytes, need at least \(minimumSize); check PT_GETXSTATE_INFO's xsave_len")
        }
        var a = area
        a.storeLE(xcr0, at: xcr0Offset)
        return ExtendedState(xcr0: xcr0, area: a)
    }

    /// Linux NT_X86_XSTATE output → the image form (the kernel already wrote
    /// XCR0 at 464; it is taken from there).
    public static func normalizeFromLinux(_ area: [UInt8]) throws -> ExtendedState {
        guard let xcr0 = xcr0Word(area), area.count >= minimumSize else {
            throw XSaveError(description: "cannot read the XSAVE area: \(area.count) bytes, need at least \(minimumSize); read it with PTRACE_GETREGSET NT_X86_XSTATE")
        }
        return ExtendedState(xcr0: xcr0, area: area)
    }

    /// x87 and SSE: in the FXSAVE image, on every x86-64 CPU.
    public static let legacyComponents: UInt64 = 0x3
    /// PKRU as Linux gives it to every new process: key 0 open, keys 1-15
    /// access-disabled.
    public static let linuxDefaultPKRU: UInt32 = 0x5555_5554
    /// AMX tile data: a dynamic component, usable only after the process
    /// asked for it with arch_prctl(ARCH_REQ_XCOMP_PERM).
    public static let amxComponents: UInt64 = XSaveComponent.amxTilecfg.bit | XSaveComponent.amxTiledata.bit

    /// Where each extended component lies for `cpu`: its recorded layout, or
    /// the Intel offsets (`standardExtent`) for a CPU that recorded none.
    public static func layout(of cpu: CPUFeatures) -> [Int: XSaveExtent] {
        var out: [Int: XSaveExtent] = [:]
        if let recorded = cpu.xsaveLayout {
            for e in recorded where e.component >= 2 && e.component < 64 { out[e.component] = e }
            return out
        }
        for c in XSaveComponent.components(in: cpu.xcr0) {
            if let e = c.standardExtent { out[c.rawValue] = XSaveExtent(component: c.rawValue, offset: e.offset, size: e.size) }
        }
        return out
    }

    /// The layout a thread's area was saved in: the source CPU's, or, when
    /// the image recorded none and the target CPU enables the same
    /// components in an area of the same size, the target's (the same kind
    /// of CPU); otherwise the Intel offsets.
    public static func sourceLayout(source: CPUFeatures?, target: CPUFeatures) -> [Int: XSaveExtent] {
        guard let source else { return layout(of: target) }
        if source.xsaveLayout == nil, source.xcr0 == target.xcr0, source.xsaveSize == target.xsaveSize {
            return layout(of: target)
        }
        return layout(of: source)
    }

    /// The PKRU value an area holds, or nil when its XSTATE_BV has no PKRU
    /// or the area is too short for it.
    public static func pkru(_ area: [UInt8], layout: [Int: XSaveExtent]) -> UInt32? {
        guard let bv = xstateBV(area), bv & XSaveComponent.pkru.bit != 0,
              let e = layout[XSaveComponent.pkru.rawValue], e.size >= 4, e.offset >= minimumSize,
              e.offset <= area.count - 4 else { return nil }
        return area.loadLE(UInt32.self, at: e.offset)
    }

    /// The components a thread needs wherever it runs: those holding
    /// non-initial state (XSTATE_BV), less PKRU while it holds Linux's
    /// default or 0 (no protection key is opened or closed beyond what a CPU
    /// without PKU does for pages of key 0), plus AMX whenever the process
    /// was granted AMX (it may use it any time, whatever the state holds now).
    public static func componentsInUse(_ area: [UInt8], layout: [Int: XSaveExtent], permitted: UInt64?) -> UInt64 {
        var used = xstateBV(area) ?? (xcr0Word(area) ?? legacyComponents)
        if used & XSaveComponent.pkru.bit != 0, let value = pkru(area, layout: layout), value == 0 || value == linuxDefaultPKRU {
            used &= ~XSaveComponent.pkru.bit
        }
        if let permitted, permitted & XSaveComponent.amxTiledata.bit != 0 { used |= amxComponents }
        return used
    }

    /// Why a thread's XSAVE state cannot be restored on `target`, in one
    /// line, or nil when it can: every component the thread uses must be
    /// enabled there, and each must fit the target's area.
    public static func verdict(thread tid: Int32, state: ExtendedState, source: CPUFeatures?, permitted: UInt64?,
                               target: CPUFeatures) -> String? {
        let area = state.area.value
        if area.count < minimumSize {
            return "cannot restore: thread \(tid)'s XSAVE area is \(area.count) bytes, shorter than the \(minimumSize)-byte FXSAVE image and header; the image is damaged"
        }
        let from = sourceLayout(source: source, target: target)
        let used = componentsInUse(area, layout: from, permitted: permitted)
        let lacking = used & ~target.xcr0
        if lacking != 0 {
            var why = "cannot restore: thread \(tid) has \(XSaveComponent.describe(lacking)) state in use (XSTATE_BV \(hex(xstateBV(area) ?? 0))"
            if lacking & amxComponents != 0, let permitted { why += ", AMX granted: ARCH_GET_XCOMP_PERM \(hex(permitted))" }
            why += ") but this CPU enables XCR0 \(hex(target.xcr0)); restore on a CPU that has \(XSaveComponent.describe(lacking))"
            if lacking & ~(XSaveComponent.pkru.bit | amxComponents) != 0 {
                why += ", or run the process with glibc told not to use it (GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,...)"
            }
            return why
        }
        let to = layout(of: target)
        for c in XSaveComponent.components(in: (xstateBV(area) ?? 0) & target.xcr0 & ~legacyComponents) {
            guard let s = from[c.rawValue], s.offset >= minimumSize, s.size >= 0, s.offset <= area.count - s.size else {
                return "cannot restore: thread \(tid)'s XSAVE area has no room for its \(c.name) state (\(area.count) bytes); the image is damaged"
            }
            guard let d = to[c.rawValue], d.size == s.size, d.offset >= minimumSize, d.offset <= Int(target.xsaveSize) - d.size else {
                return "cannot restore: thread \(tid)'s \(c.name) state (\(s.size) bytes) does not fit this CPU's XSAVE layout; restore on a CPU of the source's kind"
            }
        }
        return nil
    }

    /// Why this target's XSAVE area would overflow buffers the process sized
    /// at start-up, or nil: more user components enabled here than on the
    /// source. glibc's lazy-binding trampoline (_dl_runtime_resolve_xsave /
    /// xsavec) sizes its buffer by CPUID 0xD at start-up and overflows it.
    public static func growth(sourceXCR0: UInt64, targetXCR0: UInt64) -> String? {
        let userComponents: UInt64 = 0x602ff  // x87 … Hi16_ZMM, PKRU, AMX
        let grown = targetXCR0 & ~sourceXCR0 & userComponents
        guard sourceXCR0 != 0, grown != 0 else { return nil }
        return "cannot restore: this CPU enables XSAVE components the source's did not (\(XSaveComponent.describe(grown)): XCR0 \(hex(targetXCR0)) here, \(hex(sourceXCR0)) there); glibc's lazy-binding trampoline sized its XSAVE buffer for the source and would overflow it; restore on a CPU with the same XCR0, or pass --allow-xsave-growth if the process binds eagerly (LD_BIND_NOW=1) and runs no XSAVE of its own"
    }

    /// The area for Linux PTRACE_SETREGSET NT_X86_XSTATE on `target`: its
    /// size and layout, the XCR0 word set to its XCR0, each component in use
    /// moved to the target's offset, components the target lacks (checked
    /// unused by `verdict`) left out of XSTATE_BV, XCOMP_BV and the reserved
    /// header bytes zero (Linux rejects the area otherwise).
    public static func forLinux(_ state: ExtendedState, tid: Int32 = 0, source: CPUFeatures?, permitted: UInt64?,
                                target: CPUFeatures) throws -> [UInt8] {
        try convert(state, tid: tid, source: source, permitted: permitted, target: target, xcr0Word: target.xcr0)
    }

    /// The area for FreeBSD PT_SETXSTATE: as `forLinux`, with the XCR0 word
    /// cleared (see the file comment).
    public static func forFreeBSD(_ state: ExtendedState, tid: Int32 = 0, source: CPUFeatures?, permitted: UInt64?,
                                  target: CPUFeatures) throws -> [UInt8] {
        try convert(state, tid: tid, source: source, permitted: permitted, target: target, xcr0Word: 0)
    }

    static func convert(_ state: ExtendedState, tid: Int32, source: CPUFeatures?, permitted: UInt64?,
                        target: CPUFeatures, xcr0Word: UInt64) throws -> [UInt8] {
        if let reason = verdict(thread: tid, state: state, source: source, permitted: permitted, target: target) {
            throw XSaveError(description: reason)
        }
        let a = state.area.value
        let size = max(Int(target.xsaveSize), minimumSize)
        var out = [UInt8](repeating: 0, count: size)
        out.replaceSubrange(0..<xcr0Offset, with: a[0..<xcr0Offset])
        out.storeLE(xcr0Word, at: xcr0Offset)
        let kept = (xstateBV(a) ?? legacyComponents) & target.xcr0
        out.storeLE(kept, at: xstateBVOffset)
        let from = sourceLayout(source: source, target: target), to = layout(of: target)
        for c in XSaveComponent.components(in: kept & ~legacyComponents) {
            // `verdict` checked both extents.
            guard let s = from[c.rawValue], let d = to[c.rawValue] else { continue }
            out.replaceSubrange(d.offset..<(d.offset + d.size), with: a[s.offset..<(s.offset + s.size)])
        }
        return out
    }
}

/// Whether the target CPU offers what the image's code may use.
public struct CPUCompatibility: Equatable, Sendable {
    /// Flags the image's CPU had and the target lacks, sorted.
    public var missing: [String]
    public var isCompatible: Bool { missing.isEmpty }
    /// One line, or nil when compatible.
    public var reason: String? {
        missing.isEmpty ? nil
            : "cannot restore: the image ran on a CPU with \(missing.joined(separator: ", ")), which this CPU lacks; code (e.g. glibc's ifunc-selected memcpy) may already use them; restore on such a CPU, or pass --allow-missing-cpu-features \(missing.joined(separator: ",")) if the process does not use them"
    }
}

/// CPU feature checks. Programs and libc pick code paths by CPUID once, at
/// start-up (glibc ifuncs), so every ISA extension the source CPU offered
/// must be present on the target.
public enum CPUFeatureCheck {
    /// ISA-extension flags (cpuinfo names) whose absence makes already-selected code fault.
    /// Not listed: erms and fsrm (they tune `rep movsb`, which every x86-64
    /// runs) and xsaves (ring 0 only).
    public static let isaFlags: Set<String> = [
        "sse", "sse2", "ssse3", "sse4_1", "sse4_2", "sse4a", "pni", "popcnt", "abm", "lzcnt",
        "avx", "avx2", "fma", "fma4", "f16c", "bmi1", "bmi2", "adx", "movbe", "aes", "vaes",
        "pclmulqdq", "vpclmulqdq", "sha_ni", "rdrand", "rdseed", "cx16", "xsave",
        "xsavec", "xsaveopt", "fsgsbase", "clflushopt", "clwb", "gfni", "movdiri", "movdir64b",
        "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512ifma", "avx512vbmi",
        "avx512_vbmi2", "avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq", "avx512_bf16", "avx512_fp16",
        "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "pku", "ospke",
    ]

    /// The flags of `required` the image's CPU had and the target's lacks.
    /// Pass `isaFlags` (or the flags a workload is known to use).
    public static func cpuCompatibility(image: CPUFeatures, target: CPUFeatures, required: Set<String>) -> CPUCompatibility {
        let used = Set(image.flags).intersection(required)
        return CPUCompatibility(missing: used.subtracting(target.flags).sorted())
    }
}
