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

/// Whether a target can hold an image's XSAVE state.
public enum XSaveVerdict: Equatable, Sendable {
    case compatible
    case incompatible(reason: String)

    public var isCompatible: Bool { self == .compatible }
    public var reason: String? { if case .incompatible(let r) = self { return r } else { return nil } }
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

    /// The area for Linux PTRACE_SETREGSET NT_X86_XSTATE: `targetSize` bytes,
    /// XCR0 word = target XCR0, XSTATE_BV masked to it, XCOMP_BV and the
    /// reserved header bytes zeroed (Linux rejects the area otherwise).
    public static func forLinux(_ state: ExtendedState, targetXCR0: UInt64, targetSize: Int) throws -> [UInt8] {
        try prepare(state, targetXCR0: targetXCR0, targetSize: targetSize, xcr0Word: targetXCR0)
    }

    /// The area for FreeBSD PT_SETXSTATE: as `forLinux`, with the XCR0 word
    /// cleared (see the file comment).
    public static func forFreeBSD(_ state: ExtendedState, targetXCR0: UInt64, targetSize: Int) throws -> [UInt8] {
        try prepare(state, targetXCR0: targetXCR0, targetSize: targetSize, xcr0Word: 0)
    }

    static func prepare(_ state: ExtendedState, targetXCR0: UInt64, targetSize: Int, xcr0Word: UInt64) throws -> [UInt8] {
        let verdict = canRestore(imageXCR0: state.xcr0, imageSize: state.area.count, targetXCR0: targetXCR0, targetSize: targetSize)
        if let reason = verdict.reason { throw XSaveError(description: reason) }
        var a = state.area.value
        if a.count < targetSize { a += [UInt8](repeating: 0, count: targetSize - a.count) }
        if a.count > targetSize { a.removeLast(a.count - targetSize) }
        a.storeLE(xcr0Word, at: xcr0Offset)
        a.storeLE(a.loadLE(UInt64.self, at: xstateBVOffset) & targetXCR0, at: xstateBVOffset)
        for i in xcompBVOffset..<minimumSize { a[i] = 0 }
        return a
    }

    /// Whether a target whose kernel enables `targetXCR0` with a
    /// `targetSize`-byte area can hold state saved under `imageXCR0`.
    /// Every component the image's XCR0 enables must be enabled on the
    /// target (the standard format puts each at a fixed offset, so a superset
    /// has room); the image area must also fit.
    public static func canRestore(imageXCR0: UInt64, imageSize: Int, targetXCR0: UInt64, targetSize: Int) -> XSaveVerdict {
        let missing = imageXCR0 & ~targetXCR0
        if missing != 0 {
            return .incompatible(reason: "cannot restore: the image uses \(XSaveComponent.describe(missing)) state (XCR0 \(hex(imageXCR0))) but this CPU enables \(hex(targetXCR0))")
        }
        if imageSize < minimumSize {
            return .incompatible(reason: "cannot restore: the image's XSAVE area is \(imageSize) bytes, shorter than the \(minimumSize)-byte FXSAVE image and header; the image is damaged")
        }
        if imageSize > targetSize {
            // Only possible when the bytes past targetSize belong to no enabled component.
            let needed = XSaveComponent.components(in: imageXCR0).compactMap { $0.standardExtent.map { $0.offset + $0.size } }.max() ?? minimumSize
            if needed > targetSize {
                return .incompatible(reason: "cannot restore: the image's XSAVE area needs \(needed) bytes (XCR0 \(hex(imageXCR0))) but this CPU's area is \(targetSize) bytes")
            }
        }
        return .compatible
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
            : "cannot restore: the image ran on a CPU with \(missing.joined(separator: ", ")), which this CPU lacks; code (e.g. glibc's ifunc-selected memcpy) may already use them"
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
