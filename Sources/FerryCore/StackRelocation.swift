import FerryImage

// Fixing pointers after an area (the stack) moves by a delta.
//
// Every aligned 8-byte word of the process's writable private memory, every
// register of every thread, and the layout fields are classified:
//   - a value inside the moved area's OLD range → a pointer into it: + delta;
//   - a value inside an executable segment of a mapped binary (from the ELF
//     program headers) → a return address / code pointer: left alone;
//   - anything else → left alone.
// The memory is read and written at the image's (old) addresses: the moved
// area's own words are fixed in place, and the caller then writes that
// area's pages at the new addresses. Heuristics and limits: docs/relocation.md.

/// An area moving from `old` to [newStart, newStart + old.size).
public struct AreaMove: Codable, Equatable, Sendable {
    public var name: String
    public var old: AddressRange
    public var newStart: UInt64
    public init(name: String, old: AddressRange, newStart: UInt64) { self.name = name; self.old = old; self.newStart = newStart }
    public var new: AddressRange { AddressRange(newStart, newStart + old.size) }
    /// new − old, two's complement.
    public var delta: UInt64 { newStart &- old.start }
}

/// Process memory the relocator can read and patch, word by word. The Linux
/// backend implements it over image pages (or the target's memory); tests
/// use `InMemoryMemory`.
public protocol RelocatableMemory {
    /// The little-endian 8-byte words of `range` (8-aligned, inside one area).
    func words(in range: AddressRange) throws -> [UInt64]
    /// Replaces the word at `address` (8-aligned).
    mutating func write(_ value: UInt64, at address: UInt64) throws
}

/// A memory access outside what the memory holds.
public struct MemoryAccessError: Error, Equatable, Sendable, CustomStringConvertible {
    public var address: UInt64
    public var description: String { "no memory at \(hex(address)) in the relocation's view; the page list does not cover the area" }
}

/// Words held in arrays, one per area, keyed by start address.
public struct InMemoryMemory: RelocatableMemory, Equatable, Sendable {
    public private(set) var areas: [UInt64: [UInt64]] = [:]
    public init() {}
    public mutating func add(at start: UInt64, words: [UInt64]) { areas[start] = words }

    func locate(_ address: UInt64) -> (start: UInt64, index: Int)? {
        for (start, words) in areas where address >= start && address < start + UInt64(words.count * 8) {
            return (start, Int((address - start) / 8))
        }
        return nil
    }
    public func word(at address: UInt64) -> UInt64? { locate(address).map { areas[$0.start]![$0.index] } }

    public func words(in range: AddressRange) throws -> [UInt64] {
        guard let (start, first) = locate(range.start), range.end <= start + UInt64(areas[start]!.count * 8) else {
            throw MemoryAccessError(address: range.start)
        }
        return Array(areas[start]![first..<(first + Int(range.size / 8))])
    }
    public mutating func write(_ value: UInt64, at address: UInt64) throws {
        guard let (start, index) = locate(address) else { throw MemoryAccessError(address: address) }
        areas[start]![index] = value
    }
}

/// A range of memory to scan, with the name statistics are kept under.
public struct ScanArea: Equatable, Sendable {
    public var name: String
    public var range: AddressRange
    public init(name: String, range: AddressRange) { self.name = name; self.range = range }
}

public struct RelocationStats: Equatable, Sendable {
    public var wordsScanned = 0
    /// Words changed, per scanned area.
    public var fixedByArea: [String: Int] = [:]
    /// Register values changed, over all threads (rsp, rbp, any GPR, fs/gs base).
    public var registersFixed = 0
    /// Other per-thread values: syscall arguments, sigaltstack, rseq, clear_child_tid.
    public var threadFieldsFixed = 0
    /// Layout fields and auxv values changed.
    public var layoutFieldsFixed = 0
    /// Words that pointed into executable segments (left alone).
    public var codePointersSeen = 0
    public init() {}
    public var memoryWordsFixed: Int { fixedByArea.values.reduce(0, +) }
}

public struct RelocationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
}

public struct PointerRelocator: Sendable {
    public enum Classification: Equatable, Sendable { case intoMovedArea, code, other }

    public let move: AreaMove
    public let codeRanges: [AddressRange]

    /// `codeRanges`: executable segments of every mapped binary (ELF PT_LOAD
    /// with PF_X, plus load bias). They must not overlap the moved area.
    public init(move: AreaMove, codeRanges: [AddressRange]) throws {
        if let bad = codeRanges.first(where: { $0.overlaps(move.old) }) {
            throw RelocationError(description: "cannot relocate \(move.name) \(move.old): the executable segment \(bad) overlaps it")
        }
        guard move.old.start % 8 == 0, move.newStart % 8 == 0 else {
            throw RelocationError(description: "cannot relocate \(move.name): \(move.old) → \(hex(move.newStart)) is not 8-byte aligned")
        }
        self.move = move
        self.codeRanges = codeRanges.sorted { $0.start < $1.start }
    }

    public func classify(_ value: UInt64) -> Classification {
        if move.old.contains(value) { return .intoMovedArea }
        if codeRanges.contains(where: { $0.contains(value) }) { return .code }
        return .other
    }

    /// `value` adjusted if it points into the moved area, else nil.
    @inline(__always)
    public func relocated(_ value: UInt64) -> UInt64? {
        move.old.contains(value) ? value &+ move.delta : nil
    }

    @inline(__always)
    func fix(_ value: inout UInt64) -> Int {
        guard let v = relocated(value) else { return 0 }
        value = v
        return 1
    }

    /// Every general-purpose register, rip, and fs/gs base.
    public func relocate(registers r: inout Registers) -> Int {
        var n = 0
        for kp: WritableKeyPath<Registers, UInt64> in [\.rax, \.rbx, \.rcx, \.rdx, \.rsi, \.rdi, \.rbp, \.rsp,
                                                       \.r8, \.r9, \.r10, \.r11, \.r12, \.r13, \.r14, \.r15,
                                                       \.rip, \.fsBase, \.gsBase] {
            n += fix(&r[keyPath: kp])
        }
        return n
    }

    /// A thread's registers and its other addresses. Returns (registers, other fields) fixed.
    public func relocate(thread t: inout ThreadImage) -> (registers: Int, fields: Int) {
        let regs = relocate(registers: &t.registers)
        var n = 0
        if var s = t.syscall {
            for i in s.args.indices { n += fix(&s.args[i]) }
            t.syscall = s
        }
        n += fix(&t.sigaltstack.sp)
        if var rseq = t.rseq { n += fix(&rseq.address); t.rseq = rseq }
        n += fix(&t.clearChildTid)
        return (regs, n)
    }

    /// auxv types whose value is an address (AT_PHDR 3, AT_BASE 7, AT_ENTRY 9,
    /// AT_PLATFORM 15, AT_BASE_PLATFORM 24, AT_RANDOM 25, AT_EXECFN 31,
    /// AT_SYSINFO_EHDR 33).
    public static let auxvPointerTypes: Set<UInt64> = [3, 7, 9, 15, 24, 25, 31, 33]

    /// startStack, arg/env bounds, and the pointer-typed auxv values.
    public func relocate(layout l: inout LayoutFields) -> Int {
        // arg_end/env_end are one past the last byte: the area's end maps too.
        func fixEnd(_ v: inout UInt64) -> Int {
            if v == move.old.end { v = move.new.end; return 1 }
            return fix(&v)
        }
        var n = fix(&l.startStack) + fix(&l.argStart) + fixEnd(&l.argEnd) + fix(&l.envStart) + fixEnd(&l.envEnd)
        var i = 0
        while i + 1 < l.auxv.count {
            if Self.auxvPointerTypes.contains(l.auxv[i]) { n += fix(&l.auxv[i + 1]) }
            i += 2
        }
        return n
    }

    /// Fixes the aligned words of a page-sized (or any) buffer holding the
    /// memory at `address`; for backends that stream pages. Returns
    /// (words scanned, words fixed, code pointers seen).
    public func relocateWords(in buffer: inout [UInt8], at address: UInt64) -> (scanned: Int, fixed: Int, code: Int) {
        let skip = Int((8 - address % 8) % 8)
        var scanned = 0, fixed = 0, code = 0
        var offset = skip
        while offset + 8 <= buffer.count {
            let v = buffer.loadLE(UInt64.self, at: offset)
            scanned += 1
            switch classify(v) {
            case .intoMovedArea: buffer.storeLE(v &+ move.delta, at: offset); fixed += 1
            case .code: code += 1
            case .other: break
            }
            offset += 8
        }
        return (scanned, fixed, code)
    }

    /// Scans `areas` of `memory` in chunks, fixing pointers in place.
    public func relocate<M: RelocatableMemory>(memory: inout M, areas: [ScanArea], into stats: inout RelocationStats) throws {
        let chunk: UInt64 = 1 << 20
        for area in areas {
            var fixed = 0
            var at = (area.range.start + 7) & ~7
            let end = area.range.end & ~7
            while at < end {
                let range = AddressRange(at, min(end, at + chunk))
                let words = try memory.words(in: range)
                stats.wordsScanned += words.count
                for (i, v) in words.enumerated() {
                    switch classify(v) {
                    case .intoMovedArea:
                        try memory.write(v &+ move.delta, at: range.start + UInt64(i * 8)); fixed += 1
                    case .code: stats.codePointersSeen += 1
                    case .other: break
                    }
                }
                at = range.end
            }
            stats.fixedByArea[area.name, default: 0] += fixed
        }
    }

    /// The areas that may hold pointers and may be rewritten: writable
    /// private mappings (anonymous, heap, stack, private file data/bss).
    /// Shared mappings are excluded: writes would reach a file or other
    /// processes. vDSO/vvar/vsyscall are kernel pages.
    public static func writableAreas(of process: ProcessImage) -> [ScanArea] {
        process.mappings.filter { m in
            guard m.protection.contains(.write) else { return false }
            switch m.kind {
            case .anonymous, .heap, .stack, .privateFile: return true
            case .sharedAnonymous, .sharedFile, .vdso, .vvar, .vsyscall: return false
            }
        }.map { m in
            let name = !m.name.isEmpty ? m.name : m.file.map { "\($0.path)@\(hex(m.start))" } ?? "anon@\(hex(m.start))"
            return ScanArea(name: name, range: AddressRange(m))
        }
    }

    /// The whole job for one process: its writable memory, every thread, its
    /// layout fields, and the moved mapping's own addresses.
    public func relocate<M: RelocatableMemory>(process: inout ProcessImage, memory: inout M) throws -> RelocationStats {
        var stats = RelocationStats()
        try relocate(memory: &memory, areas: Self.writableAreas(of: process), into: &stats)
        for i in process.threads.indices {
            let (r, f) = relocate(thread: &process.threads[i])
            stats.registersFixed += r; stats.threadFieldsFixed += f
        }
        stats.layoutFieldsFixed = relocate(layout: &process.layout)
        for i in process.mappings.indices where move.old.contains(process.mappings[i].start) {
            process.mappings[i].start &+= move.delta
            process.mappings[i].end &+= move.delta
        }
        return stats
    }
}

/// Executable ranges from the image's mappings (r-x file mappings), for when
/// the ELF program headers are not at hand; the ELF-derived list is better
/// (it excludes the executable stack FreeBSD's linux64 maps, and JIT areas
/// are not "code of a binary").
public func executableFileRanges(of process: ProcessImage) -> [AddressRange] {
    process.mappings.filter { $0.protection.contains(.exec) && ($0.kind == .privateFile || $0.kind == .sharedFile) }
        .map { AddressRange($0) }
}
