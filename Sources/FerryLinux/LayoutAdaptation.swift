#if os(Linux)
import FerryCore
import FerryELF
import FerryImage

/// Restoring into another address-space layout (`--target-layout
/// freebsd-linuxulator`): FerryCore's placement plan says which areas move
/// (the stack, to the target's stack top) and that the vDSO is proxied; this
/// applies it to a process image and to every page run as it streams in,
/// fixing pointers into the moved area (see docs/relocation.md).
struct LayoutAdaptation {
    let plan: PlacementPlan
    let relocators: [PointerRelocator]
    /// The image with moved mappings, relocated registers, syscall arguments and layout fields.
    let image: ProcessImage
    /// Old ranges of private writable mappings, whose words may hold pointers.
    private let writable: [AddressRange]
    var stats = RelocationStats()

    init(process: ProcessImage, target: TargetLayout) throws {
        plan = try Placement.planPlacement(process: process, target: target, stackPolicy: .moveToTargetTop)
        let code = executableFileRanges(of: process)
        relocators = try plan.moves.map { try PointerRelocator(move: $0, codeRanges: code) }
        writable = PointerRelocator.writableAreas(of: process).map(\.range)
        var p = process
        for r in relocators {
            for i in p.threads.indices {
                let fixed = r.relocate(thread: &p.threads[i])
                stats.registersFixed += fixed.registers
                stats.threadFieldsFixed += fixed.fields
            }
            stats.layoutFieldsFixed += r.relocate(layout: &p.layout)
        }
        p.mappings = plan.mappings.compactMap { pm in
            var m = pm.mapping
            switch pm.action {
            case .keep: return m
            case .move(let to):
                m.start = to
                m.end = to + pm.mapping.size
                return m
            case .vdso(.proxyImageCode): return m
            case .vdso, .drop: return pm.mapping.kind == .vdso || pm.mapping.kind == .vvar ? m : nil
            }
        }
        image = p
    }

    /// True when the image's vDSO code is kept and patched instead of using the kernel's block.
    var proxiesVDSO: Bool { if case .proxy = plan.vdso { return true } else { return false } }

    /// Fixes pointers in a run (at its old address) and moves it with its area.
    mutating func adapt(_ run: PageRun) -> PageRun {
        var out = run
        if var data = run.data, writable.contains(where: { $0.contains(run.address) }) {
            for r in relocators {
                let n = r.relocateWords(in: &data, at: run.address)
                stats.wordsScanned += n.scanned
                stats.fixedByArea[r.move.name, default: 0] += n.fixed
                stats.codePointersSeen += n.code
            }
            out.data = data
        }
        for r in relocators where r.move.old.contains(run.address) {
            out.address = run.address &+ r.move.delta
        }
        return out
    }

    var summary: String {
        let moves = plan.moves.map { "\($0.name) \($0.old) → \($0.new)" }.joined(separator: ", ")
        return "layout adapted: moved \(moves); \(stats.memoryWordsFixed) pointers fixed in memory (\(stats.wordsScanned) words scanned), " +
            "\(stats.registersFixed) in registers, \(stats.threadFieldsFixed) in thread state, \(stats.layoutFieldsFixed) in layout fields"
    }
}

/// vDSO proxying: the image's own vDSO code stays at its address and each
/// exported entry jumps to the same symbol in this kernel's vDSO.
enum VDSOProxy {
    static func symbols(_ bytes: [UInt8]) throws -> VDSOSymbolTable {
        let elf = try ELFFile(bytes: bytes)
        var table: VDSOSymbolTable = [:]
        for s in elf.dynamicSymbols where s.isDefined && s.type == .function {
            table[s.name] = (offset: s.value, size: s.size)
        }
        return table
    }

    /// Patches for the old vDSO at `oldBase` (its bytes `old`) to call the kernel's at `newBase`.
    static func patches(old: [UInt8], oldBase: UInt64, new: [UInt8], newBase: UInt64) throws -> [CodePatch] {
        try VDSOPlan.proxyPatches(oldBase: oldBase, oldSymbols: try symbols(old), newBase: newBase, newSymbols: try symbols(new))
    }
}
#endif
