/// Descriptor tables shared between processes (clone with CLONE_FILES,
/// without CLONE_THREAD). A restore can re-create one only by forking each
/// process of the group from another one with CLONE_FILES, so every group
/// must hang together by parent links: one member whose parent is not in
/// the group (it restores the table), every other one a child of a member.
/// Those others share their parent's table (`ProcessImage.sharesFilesWithParent`).
public enum FileTablePlan {
    /// The processes that share their parent's table, or the one-line
    /// refusal. `processes`: (pid, ppid) in image order; `group`: the table
    /// group of each process that shares its table with another process of
    /// the tree (kcmp KCMP_FILES), any label per group.
    public static func sharers(_ processes: [(pid: Int32, ppid: Int32)], group: [Int32: Int]) -> Result<Set<Int32>, Refusal> {
        var out: Set<Int32> = []
        var tops: [Int: Int32] = [:]
        for p in processes {
            guard let g = group[p.pid] else { continue }
            if group[p.ppid] == g {
                out.insert(p.pid)
            } else if let other = tops[g] {
                return .failure(Refusal(message: "cannot checkpoint: processes \(other) and \(p.pid) share one descriptor table (CLONE_FILES) but neither descends from the other through processes sharing it; ferry re-creates a shared table only by forking each sharer from its parent with CLONE_FILES — checkpoint a tree whose processes share their tables with their parents"))
            } else {
                tops[g] = p.pid
            }
        }
        return .success(out)
    }

    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }
}
