/// When pre-copy stops sending rounds while the tree runs: the counts are
/// the whole tree's (every process's dirty pages of a round together).
public enum PrecopyRounds {
    /// Whether round `round` (1-based), which sent `pages`, is the last
    /// before the final freeze. `previous`: the pages of the round before
    /// (nil after the first round, which sends everything and says nothing
    /// about the dirty rate). Stops at `maxRounds`, once a round's dirty set
    /// is at most `smallDirtyPages`, or once it shrank by less than a tenth
    /// (the tree dirties memory as fast as it is sent).
    public static func isLast(round: Int, pages: Int, previous: Int?, maxRounds: Int, smallDirtyPages: Int) -> Bool {
        if round >= maxRounds { return true }
        guard round > 1 else { return false }
        if pages <= smallDirtyPages { return true }
        if let previous, pages * 10 >= previous * 9 { return true }
        return false
    }
}
