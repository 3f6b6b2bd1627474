/// A process's root directory (chroot). Every path in an image (fds, cwd,
/// mappings, the executable) is read by ferry through /proc and so is in
/// ferry's view (its root), whatever the process's root is: a restore opens
/// them all by those paths and enters the process's root last, with
/// chroot(2) in the process itself, before its credentials drop the right
/// to (CAP_SYS_CHROOT). The working directory stays what it was, inside the
/// root or not, as after a chroot without chdir.
public enum ChrootPlan {
    /// The directory a restored process chroots into: nil for "/" and in a
    /// container, whose processes' root is the container's own (set up with it).
    public static func target(root: String, container: Bool) -> String? {
        root == "/" || container ? nil : root
    }

    /// A root directory ferry cannot enter again by its path: refused at checkpoint.
    public static func refusal(pid: Int32, comm: String, root: String) -> String? {
        guard root.hasSuffix(" (deleted)") else { return nil }
        return "cannot checkpoint process \(pid) (\(comm)): its root directory \(root.dropLast(10)) (chroot) was deleted; ferry enters a root again by its path: chroot it into a directory that exists"
    }
}
