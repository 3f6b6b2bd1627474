#if os(Linux)
import FerryImage

/// The VmFlags of a mapping that madvise, mlock or mmap flags set (shown by
/// /proc/PID/smaps): dumped as `MappingFlags` and given back to the restored
/// mapping once it is filled. `gd` (MAP_GROWSDOWN), `nr` (MAP_NORESERVE)
/// and `dp` (MAP_DROPPABLE) are mmap flags used when the mapping is created.
enum MappingAdvice {
    /// VmFlags token, flag, and the madvise advice that sets it (nil: not set by madvise).
    static let table: [(token: String, flag: MappingFlags, advice: UInt64?, name: String)] = [
        ("sr", .sequential, 2, "MADV_SEQUENTIAL"),
        ("rr", .random, 1, "MADV_RANDOM"),
        ("dc", .dontFork, 10, "MADV_DONTFORK"),
        ("dd", .dontDump, 16, "MADV_DONTDUMP"),
        ("mg", .mergeable, 12, "MADV_MERGEABLE"),
        ("hg", .hugePage, 14, "MADV_HUGEPAGE"),
        ("nh", .noHugePage, 15, "MADV_NOHUGEPAGE"),
        ("wf", .wipeOnFork, 18, "MADV_WIPEONFORK"),
        ("lo", .locked, nil, "mlock"),
        ("nr", .noReserve, nil, "MAP_NORESERVE"),
        ("dp", .droppable, nil, "MAP_DROPPABLE"),
    ]

    /// Every flag of the table.
    static let all = table.reduce(into: MappingFlags()) { $0.insert($1.flag) }

    static func flags(_ vmFlags: Set<String>) -> MappingFlags {
        table.reduce(into: MappingFlags()) { if vmFlags.contains($1.token) { $0.insert($1.flag) } }
    }

    static let MAP_NORESERVE: UInt64 = 0x4000, MAP_DROPPABLE: UInt64 = 0x08

    /// The mmap flags for `m` given the ones chosen for its kind.
    static func mmapFlags(_ m: Mapping, _ flags: UInt64) -> UInt64 {
        var f = flags
        if m.flags.contains(.noReserve) { f |= MAP_NORESERVE }
        // MAP_DROPPABLE is a mapping type of its own, in place of MAP_PRIVATE.
        if m.flags.contains(.droppable) && f & 0x03 == ProcessBuilder.MAP_PRIVATE { f = (f & ~UInt64(0x03)) | MAP_DROPPABLE }
        return f
    }

    /// The calls that give the filled mapping `m` its advice and lock.
    static func calls(_ m: Mapping) -> [InjectedBatch.Call] {
        guard m.kind != .vdso && m.kind != .vvar && m.kind != .vsyscall else { return [] }
        var calls: [InjectedBatch.Call] = []
        for a in table where m.flags.contains(a.flag) {
            if let advice = a.advice {
                calls.append(.init(SYS.madvise, [m.start, m.end - m.start, advice], "madvise(\(hex(m.start)), \(a.name))"))
            } else if a.flag == .locked {
                calls.append(.init(149 /* mlock */, [m.start, m.end - m.start], "mlock(\(hex(m.start)))"))
            }
        }
        return calls
    }
}
#endif
