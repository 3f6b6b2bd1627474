import FerryImage

// The vDSO decision.
//
// A restored process keeps using the vDSO it found at start-up: glibc
// caches the addresses of __vdso_clock_gettime & co., and the kernel's
// signal return may point into it. The target kernel maps its own vDSO
// (code) with its own data pages ([vvar], [vvar_vclock]) that the code
// reaches at fixed relative offsets. So:
//
// - `.moveTogether(to:)`: the target's block has the same areas, sizes and
//   relative offsets as the image's: move the target's whole block to the
//   image's addresses (Linux: mremap of all three keeping their offsets —
//   measured to work; moving [vdso] alone crashes), and the old addresses
//   stay valid.
// - `.proxy`: the layouts differ (another kernel version, or Linux ↔
//   FreeBSD). The image's old vDSO *code* pages are recreated at their old
//   addresses from the image, and each exported entry is overwritten with an
//   absolute jump to the same symbol in the target's vDSO, wherever that is:
//       FF 25 00 00 00 00   jmp *0(%rip)
//       <8-byte target address>
//   14 bytes; an entry whose body is shorter gets a 5-byte `E9 rel32` when
//   the target is within ±2 GiB, else the plan is refused. The old data
//   pages are not needed: no patched entry reaches old code that reads them.
//   An entry the target's vDSO lacks (e.g. __vdso_getrandom, 6.11+, moved
//   to a 6.1 kernel) becomes the system call it stands for when there is one
//   with the same arguments in the same registers:
//       B8 <nr32>  mov $nr, %eax;  0F 05  syscall;  C3  ret
//   which is what the vDSO itself falls back to. Other missing entries are
//   refused.

/// One kernel-provided area ([vvar], [vvar_vclock], [vdso]) as mapped.
public struct VDSOArea: Codable, Equatable, Sendable {
    /// The name /proc/PID/maps shows, e.g. "[vdso]".
    public var name: String
    public var start: UInt64
    public var size: UInt64
    public init(name: String, start: UInt64, size: UInt64) { self.name = name; self.start = start; self.size = size }
    public var end: UInt64 { start + size }
    public var isCode: Bool { name == "[vdso]" }
}

/// A vDSO's dynamic symbols: name → (offset from the vDSO's start, size).
public typealias VDSOSymbolTable = [String: (offset: UInt64, size: UInt64)]

public enum VDSODecision: Equatable, Sendable {
    /// Move the target's block so its areas start at these addresses (the
    /// image's, in the image's order).
    case moveTogether(to: [UInt64])
    /// Keep the image's code pages at their old addresses, patched (`VDSOPlan.proxyPatches`).
    case proxy
}

/// Bytes to write into the restored process.
public struct CodePatch: Equatable, Sendable {
    public var address: UInt64
    public var bytes: [UInt8]
    /// The symbol(s) this patch redirects, for messages and logs.
    public var symbol: String
    public init(address: UInt64, bytes: [UInt8], symbol: String) { self.address = address; self.bytes = bytes; self.symbol = symbol }
}

public struct VDSOPlanError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
}

public enum VDSOPlan {
    /// The entries glibc and musl look up (and their unprefixed aliases).
    public static let knownEntries = [
        "__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__vdso_getcpu", "__vdso_clock_getres",
        "clock_gettime", "gettimeofday", "time", "getcpu", "clock_getres",
    ]
    /// vDSO entries that are a system call with the same arguments (rdi,
    /// rsi, rdx: none needs r10), by syscall number on x86_64 Linux.
    public static let syscallFallbacks: [String: UInt32] = [
        "__vdso_clock_gettime": 228, "clock_gettime": 228, "__vdso_gettimeofday": 96, "gettimeofday": 96,
        "__vdso_time": 201, "time": 201, "__vdso_getcpu": 309, "getcpu": 309,
        "__vdso_clock_getres": 229, "clock_getres": 229, "__vdso_getrandom": 318, "getrandom": 318,
    ]
    /// Entries with no system call behind them that only a program using
    /// the feature calls: a missing one returns -ENOSYS (`errnoStub`).
    /// __vdso_sgx_enter_enclave (5.11+, absent when the target kernel has no
    /// SGX): a process that entered an enclave cannot move anyway.
    public static let enosysFallbacks: Set<String> = ["__vdso_sgx_enter_enclave"]
    /// `mov $-38, %rax; ret`: 8 bytes.
    public static let enosysStub: [UInt8] = [0x48, 0xC7, 0xC0, 0xDA, 0xFF, 0xFF, 0xFF, 0xC3]
    /// `mov $nr, %eax; syscall; ret`: 8 bytes.
    public static func syscallStub(_ nr: UInt32) -> [UInt8] {
        var b: [UInt8] = [0xB8, 0, 0, 0, 0, 0x0F, 0x05, 0xC3]
        b.storeLE(nr, at: 1)
        return b
    }
    /// `jmp *0(%rip); .quad target`.
    public static let absoluteJumpSize = 14

    /// `.moveTogether` when both blocks consist of the same areas (names,
    /// order, sizes, relative offsets), else `.proxy`.
    public static func decide(image: [VDSOArea], target: [VDSOArea]) -> VDSODecision {
        let i = image.sorted { $0.start < $1.start }, t = target.sorted { $0.start < $1.start }
        guard !i.isEmpty, i.count == t.count else { return .proxy }
        let same = zip(i, t).allSatisfy { a, b in
            a.name == b.name && a.size == b.size && a.start &- i[0].start == b.start &- t[0].start
        }
        return same ? .moveTogether(to: i.map(\.start)) : .proxy
    }

    /// The 14-byte absolute jump to `target`.
    public static func absoluteJump(to target: UInt64) -> [UInt8] {
        var b: [UInt8] = [0xFF, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        b.storeLE(target, at: 6)
        return b
    }

    /// A 5-byte `jmp rel32` at `address` to `target`, or nil when out of reach.
    public static func relativeJump(at address: UInt64, to target: UInt64) -> [UInt8]? {
        let displacement = Int64(bitPattern: target &- (address &+ 5))
        guard let rel = Int32(exactly: displacement) else { return nil }
        var b: [UInt8] = [0xE9, 0, 0, 0, 0]
        b.storeLE(UInt32(bitPattern: rel), at: 1)
        return b
    }

    /// Patches redirecting every symbol of the old vDSO (at `oldBase`) to the
    /// same-named symbol of the new one (at `newBase`). Aliases at one
    /// offset get one patch. A symbol the new vDSO lacks becomes its system
    /// call (`syscallFallbacks`); refuses, naming the symbol, when there is
    /// none or an old entry is too small for any jump.
    public static func proxyPatches(oldBase: UInt64, oldSymbols: VDSOSymbolTable,
                                    newBase: UInt64, newSymbols: VDSOSymbolTable) throws -> [CodePatch] {
        // Group aliases by their entry offset.
        var byOffset: [UInt64: [String]] = [:]
        for (name, sym) in oldSymbols { byOffset[sym.offset, default: []].append(name) }
        var patches: [CodePatch] = []
        for (offset, aliases) in byOffset.sorted(by: { $0.key < $1.key }) {
            let names = aliases.sorted()
            let label = names.joined(separator: "/")
            // The offsets come from the image's vDSO (its ELF symbol table): a value past
            // the address space is refused, not added.
            guard case (let address, false) = oldBase.addingReportingOverflow(offset), address < Validation.userAddressLimit else {
                throw VDSOPlanError(description: "cannot proxy the vDSO: the image's vDSO puts \(label) at offset \(hex(offset)) from \(hex(oldBase)), outside the address space; the image is damaged")
            }
            guard let counterpart = names.lazy.compactMap({ newSymbols[$0] }).first else {
                let entrySize = names.map { oldSymbols[$0]!.size }.max()!
                if let nr = names.lazy.compactMap({ syscallFallbacks[$0] }).first, entrySize >= 8 {
                    patches.append(CodePatch(address: address, bytes: syscallStub(nr),
                                             symbol: label + " (missing here: system call \(nr))"))
                    continue
                }
                if names.contains(where: enosysFallbacks.contains), entrySize >= 8 {
                    patches.append(CodePatch(address: address, bytes: enosysStub, symbol: label + " (missing here: returns -ENOSYS)"))
                    continue
                }
                throw VDSOPlanError(description: "cannot proxy the vDSO: the image's vDSO exports \(label), which this kernel's vDSO lacks; restore on a kernel that provides it")
            }
            let size = names.map { oldSymbols[$0]!.size }.max()!
            guard case (let target, false) = newBase.addingReportingOverflow(counterpart.offset) else {
                throw VDSOPlanError(description: "cannot proxy the vDSO: this kernel's vDSO puts \(label) at offset \(hex(counterpart.offset)) from \(hex(newBase)), past the end of the address space")
            }
            let bytes: [UInt8]
            if size >= UInt64(absoluteJumpSize) {
                bytes = absoluteJump(to: target)
            } else if size >= 5, let near = relativeJump(at: address, to: target) {
                bytes = near
            } else {
                throw VDSOPlanError(description: "cannot proxy the vDSO: \(label) in the image's vDSO is \(size) bytes, too small for a \(absoluteJumpSize)-byte jump to \(hex(target))")
            }
            patches.append(CodePatch(address: address, bytes: bytes, symbol: label))
        }
        return patches
    }
}
