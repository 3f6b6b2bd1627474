#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

/// Descriptor tables shared between processes (CLONE_FILES): dump and
/// restore (`FileTablePlan`). Dump: kcmp(KCMP_FILES) groups the tree's
/// processes by table; a process sharing its parent's is marked
/// `sharesFilesWithParent`. Restore: such a process is forked from its
/// parent with CLONE_FILES (`ProcessBuilder.forkChild`); the table is
/// restored once, by the group's first process, and the others leave it
/// alone (no fds, locks or leases of their own, no userfaultfd in it).
enum FileTableState {
    static let kcmpFiles: UInt64 = 2

    /// Each process sharing its table with another of `pids`, labelled by group.
    static func groups(_ pids: [Int32]) -> [Int32: Int] {
        var group: [Int32: Int] = [:]
        var next = 0
        for (i, a) in pids.enumerated() where group[a] == nil {
            for b in pids[(i + 1)...] where group[b] == nil && ferry_syscall6(SYS.kcmp, UInt64(a), UInt64(b), kcmpFiles, 0, 0, 0) == 0 {
                group[a] = next
                group[b] = next
            }
            if group[a] != nil { next += 1 }
        }
        return group
    }

    /// The processes of the (frozen) tree that share their parent's table, or the refusal.
    static func sharers(_ processes: [ProcessImage]) throws -> Set<Int32> {
        switch FileTablePlan.sharers(processes.map { ($0.pid, $0.ppid) }, group: groups(processes.map(\.pid))) {
        case .success(let s): return s
        case .failure(let r): throw FerryError(r.message)
        }
    }

    /// Marks the processes that share their parent's table.
    static func mark(_ processes: inout [ProcessImage]) throws {
        let shared = try sharers(processes)
        for i in processes.indices where shared.contains(processes[i].pid) { processes[i].sharesFilesWithParent = true }
    }

    /// clone flags of a process forked from its parent.
    static func cloneFlags(_ image: ProcessImage) -> UInt64 { image.sharesFilesWithParent == true ? 0x400 /* CLONE_FILES */ : 0 }
}
#endif
