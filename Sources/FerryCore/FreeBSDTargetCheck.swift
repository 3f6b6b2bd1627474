import FerryImage

// What a Linux process can hold that a restore on FreeBSD (the Linuxulator)
// cannot carry yet. Each finding is one line naming the object and the way
// out; Compatibility.verdict adds them for a FreeBSD target.
//
// - A thread running a signal handler: the Linuxulator's rt_sigreturn frame
//   differs from Linux's, so the handler's return would load garbage. What
//   the image shows is a thread whose rsp lies in its enabled alternate
//   signal stack (or SS_ONSTACK set); a handler on the ordinary stack leaves
//   no mark in the image and is not detected.
// - Thread ids kept in memory: FreeBSD gives a restored process a new pid
//   and new thread ids. A thread with a clear_child_tid address (glibc's
//   struct pthread `tid`, read by pthread_kill and raise) or a robust futex
//   list (held locks record their owner's tid) keeps its old id there, and
//   ferry does not rewrite those words yet.
// - vDSO entries the Linuxulator's vDSO lacks need no check here: the
//   proxy (VDSOPlan) turns each into its system call, or refuses by name.

public enum FreeBSDTargetCheck {
    static let ssOnStack: Int32 = 1, ssDisable: Int32 = 2

    /// The refusals for restoring `p` on FreeBSD; empty when nothing blocks.
    public static func reasons(process p: ProcessImage) -> [String] {
        var out: [String] = []
        for t in p.threads {
            let s = t.sigaltstack
            let onAltStack = s.flags & ssDisable == 0 && s.size > 0
                && t.registers.rsp >= s.sp && t.registers.rsp - s.sp < s.size
            if s.flags & ssOnStack != 0 || onAltStack {
                out.append("cannot restore process \(p.pid) on FreeBSD: thread \(t.tid) is running a signal handler on its alternate stack (rsp \(hex(t.registers.rsp))), and the Linuxulator's rt_sigreturn frame differs from Linux's; checkpoint again when no handler runs")
            }
        }
        if let r = p.inheritedPages?.first {
            out.append("cannot restore process \(p.pid) on FreeBSD: its pages from \(hex(r.start)) are stored only in its parent's image (still shared copy-on-write at the checkpoint), and the FreeBSD restore does not fork it from its filled parent; checkpoint with --no-cow-sharing, or restore it on Linux")
        }
        var keepers: [String] = []
        for t in p.threads {
            var what: [String] = []
            if t.clearChildTid != 0 { what.append("clear_child_tid \(hex(t.clearChildTid))") }
            if t.attributes?.robustListHead ?? 0 != 0 { what.append("robust futex list \(hex(t.attributes!.robustListHead))") }
            if !what.isEmpty { keepers.append("\(t.tid) (\(what.joined(separator: ", ")))") }
        }
        if !keepers.isEmpty {
            out.append("cannot restore process \(p.pid) on FreeBSD: FreeBSD gives it a new pid and new thread ids, and thread\(keepers.count == 1 ? "" : "s") \(keepers.joined(separator: ", ")) keep the old id in memory, which ferry does not rewrite yet; restore it on Linux, which keeps the ids")
        }
        if let m = p.mappings.first(where: { $0.sysv != nil }), let s = m.sysv {
            out.append("cannot restore process \(p.pid) on FreeBSD: it attaches System V shared memory (shmid \(s.id)) at \(hex(m.start)), which ferry re-creates on Linux only; restore it on Linux")
        }
        if p.sharesFilesWithParent == true {
            out.append("cannot restore process \(p.pid) on FreeBSD: it shares its parent's descriptor table (CLONE_FILES), which ferry re-creates on Linux only; restore it on Linux")
        }
        if let timers = p.posixTimers, let first = timers.first {
            out.append("cannot restore process \(p.pid) on FreeBSD: it has \(timers.count) POSIX timer\(timers.count == 1 ? "" : "s") (timer_create, id \(first.id)), which ferry re-creates on Linux only; restore it on Linux")
        }
        return out
    }
}
