import FerryImage

// Where a target kernel lets a restored process live, and the placement
// plan: for every mapping of the image, keep it at its address, move it
// (only the stack, which StackRelocation can fix pointers into), handle it
// as part of the vDSO block (VDSOPlan), or drop it (vsyscall).

/// A half-open address range [start, end).
public struct AddressRange: Codable, Hashable, Sendable, CustomStringConvertible {
    public var start: UInt64
    public var end: UInt64
    public init(_ start: UInt64, _ end: UInt64) { self.start = start; self.end = end }
    public init(_ mapping: Mapping) { self.init(mapping.start, mapping.end) }
    public var size: UInt64 { end - start }
    public func contains(_ address: UInt64) -> Bool { address >= start && address < end }
    public func overlaps(_ other: AddressRange) -> Bool { start < other.end && other.start < end }
    public var description: String { "\(hex(start))–\(hex(end))" }
}

/// A range the target kernel owns: a restored mapping must not overlap it.
public struct ReservedRange: Codable, Equatable, Sendable {
    public var range: AddressRange
    public var name: String
    public init(_ range: AddressRange, name: String) { self.range = range; self.name = name }
}

/// The address-space facts of a restore target.
public struct TargetLayout: Codable, Equatable, Sendable {
    public var name: String
    public var os: TargetOS
    /// First address above user space (no mapping may reach past it).
    public var userLimit: UInt64
    /// Where the kernel puts the top of a new process's stack.
    public var stackTop: UInt64
    /// The kernel's vDSO block as the target maps it ([vvar], [vvar_vclock], [vdso]).
    public var vdsoAreas: [VDSOArea]
    /// Whether the vDSO block can be moved (Linux: mremap; FreeBSD: no).
    public var vdsoMovable: Bool
    /// Where top-down mmap starts, when known (informational).
    public var mmapBase: UInt64?
    /// Whether the kernel randomises the layout of new processes.
    public var randomized: Bool
    /// Whether the legacy vsyscall page exists at 0xffffffffff600000.
    public var hasVsyscall: Bool
    /// Ranges owned by the kernel.
    public var reservedRanges: [ReservedRange]

    public init(name: String, os: TargetOS, userLimit: UInt64, stackTop: UInt64, vdsoAreas: [VDSOArea],
                vdsoMovable: Bool, mmapBase: UInt64? = nil, randomized: Bool, hasVsyscall: Bool,
                reservedRanges: [ReservedRange]) {
        self.name = name; self.os = os; self.userLimit = userLimit; self.stackTop = stackTop
        self.vdsoAreas = vdsoAreas; self.vdsoMovable = vdsoMovable; self.mmapBase = mmapBase
        self.randomized = randomized; self.hasVsyscall = hasVsyscall; self.reservedRanges = reservedRanges
    }

    public var vdsoBase: UInt64? { vdsoAreas.first(where: \.isCode)?.start }
    public var vdsoSize: UInt64? { vdsoAreas.first(where: \.isCode)?.size }

    /// Linux x86-64 with 4-level paging: TASK_SIZE 2^47 − 4 KiB.
    public static let linuxUserLimit: UInt64 = 0x7fff_ffff_f000
    public static let vsyscallAddress: UInt64 = 0xffff_ffff_ff60_0000

    /// A Linux target, from the running kernel (the restorer stub's own
    /// maps): its vDSO block wherever the kernel put it, its stack top and
    /// mmap base (randomised). Nothing is reserved below the user limit: the
    /// stub's stack is replaced and its vDSO block can be moved.
    public static func linux(stackTop: UInt64, vdsoAreas: [VDSOArea], mmapBase: UInt64? = nil,
                             userLimit: UInt64 = linuxUserLimit, randomized: Bool = true,
                             hasVsyscall: Bool = true) -> TargetLayout {
        TargetLayout(name: "linux", os: .linux, userLimit: userLimit, stackTop: stackTop, vdsoAreas: vdsoAreas,
                     vdsoMovable: true, mmapBase: mmapBase, randomized: randomized, hasVsyscall: hasVsyscall,
                     reservedRanges: [])
    }

    /// Linux 6.x's vDSO block (linux-facts: [vvar] 16 KiB, [vvar_vclock]
    /// 8 KiB, [vdso] 8 KiB, in that order) starting at `base`.
    public static func linuxVDSOBlock(at base: UInt64) -> [VDSOArea] {
        [VDSOArea(name: "[vvar]", start: base, size: 0x4000),
         VDSOArea(name: "[vvar_vclock]", start: base + 0x4000, size: 0x2000),
         VDSOArea(name: "[vdso]", start: base + 0x6000, size: 0x2000)]
    }

    /// FreeBSD's Linuxulator, linux64, LA48 (freebsd-facts §4.1, verified
    /// for 14.x/main): user limit 2^47, vDSO (2 pages) at 0x7fffffffe000,
    /// shared page below it, stack top 0x7ffffffd000; everything one page
    /// lower with `hw.lower_amd64_sharedpage` (default on AMD Zen1/Zen2).
    /// No ASLR for Linux binaries. The vDSO cannot be moved.
    public static func freebsdLinuxulator(lowerSharedPage: Bool = false) -> TargetLayout {
        let shift: UInt64 = lowerSharedPage ? 0x1000 : 0
        let limit: UInt64 = 0x8000_0000_0000 - shift
        let vdso = limit - 0x2000
        let sharedPage = vdso - 0x1000
        return TargetLayout(
            name: lowerSharedPage ? "freebsd-linuxulator (lower shared page)" : "freebsd-linuxulator",
            os: .freebsd, userLimit: limit, stackTop: sharedPage,
            vdsoAreas: [VDSOArea(name: "[vdso]", start: vdso, size: 0x2000)], vdsoMovable: false,
            randomized: false, hasVsyscall: true,
            reservedRanges: [ReservedRange(AddressRange(sharedPage, vdso), name: "shared page"),
                             ReservedRange(AddressRange(vdso, limit), name: "vDSO")])
    }
}

/// How the stack is treated when it does not collide.
public enum StackPolicy: Sendable {
    /// Keep the stack at its address unless it collides or is out of range.
    case keepUnlessColliding
    /// Always move the stack to end at the target's stack top (where the
    /// target kernel expects the main stack, e.g. for growth and ps_strings).
    case moveToTargetTop
}

/// How one kernel-provided vDSO/vvar mapping of the image is handled.
public enum VDSOHandling: Equatable, Sendable {
    /// The target's own block already sits here with the same layout.
    case reuseTarget
    /// Move the target's block so this area lands here (mremap on Linux).
    case moveTargetHere
    /// Recreate the image's code pages here, patched to jump to the target's vDSO.
    case proxyImageCode
}

public enum PlacementAction: Equatable, Sendable {
    case keep
    /// Recreate at `to` (same size); pointers must be fixed (`moves`).
    case move(to: UInt64)
    case vdso(VDSOHandling)
    case drop(reason: String)
}

public struct PlannedMapping: Equatable, Sendable {
    public var mapping: Mapping
    public var action: PlacementAction
    /// Where the mapping ends up; nil when dropped or supplied by the target kernel.
    public var destination: AddressRange? {
        switch action {
        case .keep, .vdso(.proxyImageCode): return AddressRange(mapping)
        case .move(let to): return AddressRange(to, to + mapping.size)
        case .vdso, .drop: return nil
        }
    }
}

public struct PlacementPlan: Equatable, Sendable {
    /// One entry per image mapping, in the image's order.
    public var mappings: [PlannedMapping]
    public var vdso: VDSODecision
    /// Areas that move, for `PointerRelocator`.
    public var moves: [AreaMove]
    /// Where the target's own vDSO block must be at the end (unchanged,
    /// moved onto the image's, or moved out of the way of the image).
    public var targetVDSOAreas: [VDSOArea]
}

public struct PlacementError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
}

public enum Placement {
    /// Decides where every mapping of `process` goes on `target`.
    public static func planPlacement(process: ProcessImage, target: TargetLayout,
                                     stackPolicy: StackPolicy = .keepUnlessColliding) throws -> PlacementPlan {
        let imageVDSO = process.mappings.filter { $0.kind == .vdso || $0.kind == .vvar }
            .map { VDSOArea(name: $0.name, start: $0.start, size: $0.size) }
        var decision = imageVDSO.isEmpty ? VDSODecision.proxy : VDSOPlan.decide(image: imageVDSO, target: target.vdsoAreas)
        let targetAlreadyThere = imageVDSO.sorted { $0.start < $1.start } == target.vdsoAreas.sorted { $0.start < $1.start }
        if case .moveTogether = decision, !target.vdsoMovable, !targetAlreadyThere { decision = .proxy }

        func problem(_ range: AddressRange) -> String? {
            if range.end > target.userLimit { return "lies above this kernel's user limit \(hex(target.userLimit))" }
            if let r = target.reservedRanges.first(where: { $0.range.overlaps(range) }) {
                return "overlaps the target's \(r.name) at \(r.range)"
            }
            return nil
        }
        func describe(_ m: Mapping) -> String {
            let name = m.name.isEmpty ? (m.file?.path ?? m.kind.rawValue) : m.name
            return "\(name) at \(AddressRange(m))"
        }

        var planned: [PlannedMapping] = []
        var moves: [AreaMove] = []
        for m in process.mappings {
            let range = AddressRange(m)
            switch m.kind {
            case .vsyscall:
                planned.append(PlannedMapping(mapping: m, action: .drop(reason: "the vsyscall page is provided by the target kernel, if at all")))
            case .vdso, .vvar:
                switch decision {
                case .moveTogether:
                    if targetAlreadyThere {
                        planned.append(PlannedMapping(mapping: m, action: .vdso(.reuseTarget)))
                    } else if let p = problem(range) {
                        throw PlacementError(description: "cannot move this kernel's vDSO block onto the image's \(describe(m)): it \(p)")
                    } else {
                        planned.append(PlannedMapping(mapping: m, action: .vdso(.moveTargetHere)))
                    }
                case .proxy:
                    if m.kind == .vvar {
                        planned.append(PlannedMapping(mapping: m, action: .drop(reason: "old vDSO data is unused once every entry jumps to the target's vDSO")))
                    } else if let p = problem(range) {
                        throw PlacementError(description: "cannot keep the image's \(describe(m)) as a vDSO proxy: it \(p); the process holds pointers into it")
                    } else {
                        planned.append(PlannedMapping(mapping: m, action: .vdso(.proxyImageCode)))
                    }
                }
            case .stack:
                let mustMove = problem(range) != nil || (stackPolicy == .moveToTargetTop && m.end != target.stackTop)
                if mustMove {
                    guard m.size <= target.stackTop else {
                        throw PlacementError(description: "cannot move \(describe(m)) below \(target.name)'s stack top \(hex(target.stackTop)): the stack is larger than the address space under it")
                    }
                    let newStart = target.stackTop - m.size
                    planned.append(PlannedMapping(mapping: m, action: .move(to: newStart)))
                    moves.append(AreaMove(name: m.name.isEmpty ? "[stack]" : m.name, old: range, newStart: newStart))
                } else {
                    planned.append(PlannedMapping(mapping: m, action: .keep))
                }
            default:
                if let p = problem(range) {
                    throw PlacementError(description: "cannot restore \(describe(m)) on \(target.name): it \(p), and only the stack can be moved")
                }
                planned.append(PlannedMapping(mapping: m, action: .keep))
            }
        }

        // The moved areas must land where nothing else is.
        let placed = planned.compactMap { p in p.destination.map { (p, $0) } }
        for (p, dest) in placed {
            guard case .move = p.action else { continue }
            if let p2 = problem(dest) {
                throw PlacementError(description: "cannot move \(describe(p.mapping)) to \(dest): it \(p2)")
            }
            if let other = placed.first(where: { $0.0 != p && $0.1.overlaps(dest) }) {
                throw PlacementError(description: "cannot move \(describe(p.mapping)) to \(dest): it would overlap \(describe(other.0.mapping))")
            }
        }

        // The target's own vDSO block: onto the image's, left alone, or out of the way.
        var targetVDSO = target.vdsoAreas
        if case .moveTogether(let starts) = decision {
            let sorted = targetVDSO.sorted { $0.start < $1.start }
            targetVDSO = zip(sorted, starts).map { VDSOArea(name: $0.name, start: $1, size: $0.size) }
        } else if let block = span(targetVDSO), placed.contains(where: { $0.1.overlaps(block) }) {
            guard target.vdsoMovable else {
                throw PlacementError(description: "cannot restore: an image mapping overlaps \(target.name)'s vDSO at \(block), which cannot move")
            }
            guard let gap = freeGap(size: block.size, below: target.stackTop, avoiding: placed.map(\.1) + target.reservedRanges.map(\.range)) else {
                throw PlacementError(description: "cannot find \(block.size) free bytes below \(hex(target.stackTop)) to move this kernel's vDSO out of the image's way")
            }
            targetVDSO = targetVDSO.map { VDSOArea(name: $0.name, start: $0.start - block.start + gap, size: $0.size) }
        }
        return PlacementPlan(mappings: planned, vdso: decision, moves: moves, targetVDSOAreas: targetVDSO)
    }

    static func span(_ areas: [VDSOArea]) -> AddressRange? {
        guard let lo = areas.map(\.start).min(), let hi = areas.map(\.end).max() else { return nil }
        return AddressRange(lo, hi)
    }

    /// The highest page-aligned free range of `size` bytes ending at or below `top`.
    static func freeGap(size: UInt64, below top: UInt64, avoiding used: [AddressRange]) -> UInt64? {
        var candidateEnd = top & ~0xfff
        for r in used.sorted(by: { $0.end > $1.end }) {
            guard candidateEnd >= size else { return nil }
            let candidate = AddressRange(candidateEnd - size, candidateEnd)
            if !r.overlaps(candidate) { if r.end <= candidate.start { return candidate.start } else { continue } }
            candidateEnd = r.start & ~0xfff
        }
        return candidateEnd >= size + 0x10000 ? candidateEnd - size : nil
    }
}
