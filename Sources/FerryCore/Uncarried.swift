import FerryImage

// Decisions about kernel state ferry carries or refuses at checkpoint, as
// pure functions of what /proc and fcntl showed. Each refusal is one line
// naming the object, the process and the way out; nil means carried (or
// nothing to carry).

/// What ferry read about one descriptor, for the decisions below.
public struct DescriptorFacts: Equatable, Sendable {
    public var pid: Int32
    public var fd: Int32
    public var path: String
    public init(pid: Int32, fd: Int32, path: String) { self.pid = pid; self.fd = fd; self.path = path }
    public var who: String { "cannot checkpoint \(pid): fd \(fd) (\(path))" }
}

public enum Uncarried {
    /// The size a new pipe starts with (16 pages).
    public static let defaultPipeSize = 65536

    /// An owner set with F_SETOWN/F_SETOWN_EX (`ownerPid` non-zero) or a
    /// signal set with F_SETSIG: refused, ferry does not set them again.
    /// `ownerType` is F_OWNER_TID (0), F_OWNER_PID (1) or F_OWNER_PGRP (2).
    public static func fileOwner(_ d: DescriptorFacts, ownerType: Int32, ownerPid: Int32, signal: Int32) -> String? {
        guard ownerPid != 0 || signal != 0 else { return nil }
        // A process (F_OWNER_PID) and a signal are carried; the owner must be in the tree (`fileOwnerOutside`).
        if ownerType == 1 && (0...64).contains(signal) { return nil }
        let kind = ownerType == 2 ? "process group" : ownerType == 0 ? "thread" : "process"
        let owner = ownerPid != 0 ? "an owner (\(kind) \(ownerPid), F_SETOWN)" : ""
        let sig = signal != 0 ? "\(owner.isEmpty ? "" : " and ")a signal (\(signal), F_SETSIG)" : ""
        return "\(d.who) has \(owner)\(sig); ferry carries only a process of the tree as owner: reset it (F_SETOWN 0) or make it a process (F_SETOWN PID) first"
    }

    /// An open file whose owner (F_SETOWN) is not a process of the tree.
    public static func fileOwnerOutside(_ d: DescriptorFacts, owner: Int32) -> String {
        "\(d.who) has an owner (process \(owner), F_SETOWN) outside the tree, which signal-driven I/O would signal; ferry carries owners within the tree only: checkpoint that process with it, or reset the owner (F_SETOWN 0) first"
    }

    /// The size to give a restored pipe with F_SETPIPE_SZ, nil to leave the
    /// default: the saved size (images without one: 0), raised to hold the
    /// buffered bytes.
    public static func pipeSize(saved: Int?, buffered: Int) -> Int? {
        let want = max(saved ?? 0, buffered)
        return want > defaultPipeSize || (saved != nil && want != defaultPipeSize && want > 0) ? want : nil
    }

    /// An eventfd whose fdinfo has no `eventfd-semaphore:` line (kernels
    /// before ~6.5) may be in semaphore mode without ferry seeing it:
    /// refused unless the user says its eventfds are counters.
    public static func eventfd(_ d: DescriptorFacts, modeShown: Bool, areCounters: Bool) -> String? {
        guard !modeShown, !areCounters else { return nil }
        return "\(d.who) is an eventfd whose mode (EFD_SEMAPHORE or not) this kernel does not show in fdinfo (before Linux 6.5); if the program's eventfds are plain counters, checkpoint with --eventfds-are-counters"
    }

    /// securebits (prctl PR_GET_SECUREBITS) are not carried: refused when set.
    public static func securebits(pid: Int32, comm: String, tid: Int32, bits: UInt64) -> String? {
        guard bits != 0 else { return nil }
        let how = bits == 0x10 ? "SECBIT_KEEP_CAPS, set by PR_SET_KEEPCAPS" : "PR_SET_SECUREBITS"
        return "cannot checkpoint process \(pid) (\(comm)): thread \(tid) has securebits 0x\(String(bits, radix: 16)) (\(how)); ferry does not carry them yet: clear them before the checkpoint"
    }

    /// A controlling terminal (tty_nr, field 7 of /proc/PID/stat, non-zero)
    /// of a session led inside the tree: carried when it is a pty whose
    /// master the tree holds (`ptysInTree`, by index), refused otherwise.
    /// (A session led from outside is a shell job: it joins the restorer's
    /// session and terminal.)
    public static func controllingTerminal(pid: Int32, comm: String, ttyNr: Int64, sessionInTree: Bool, ptysInTree: Set<Int32> = []) -> String? {
        guard ttyNr != 0, sessionInTree else { return nil }
        let major = (ttyNr >> 8) & 0xfff, minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00)
        if case .slave(let n)? = PtyPlan.end(major: UInt32(major), minor: UInt32(minor)), ptysInTree.contains(n) { return nil }
        return "cannot checkpoint process \(pid) (\(comm)): its session has a controlling terminal (device \(major):\(minor)) whose master is not in the tree; ferry carries a terminal only with its pty: checkpoint the process holding the pty master with it, or start the program without one (setsid with stdio not on a terminal)"
    }

    /// An fd on a shell job's controlling terminal (`--shell-job`): a
    /// restore attaches it to the terminal the restore runs on; a migration
    /// has none there, so refused.
    public static func shellTerminal(pid: Int32, comm: String, fd: Int32, path: String, migrating: Bool) -> String? {
        guard migrating else { return nil }
        return "cannot migrate process \(pid) (\(comm)): fd \(fd) (\(path)) is the terminal of its shell (--shell-job); the target has no terminal to attach it to: redirect the program's stdio off the terminal, or checkpoint and restore it from a terminal"
    }

    /// Restoring a shell job's terminal without a terminal on standard input.
    public static let noTerminalForShellJob = "cannot restore: the image holds a shell job's terminal (--shell-job), which a restore attaches to its own terminal, but ferry's standard input is not a terminal: run the restore from a terminal"

    /// The foreground process group of a carried controlling terminal must
    /// be a group of the tree (TIOCSPGRP sets it again).
    public static func foregroundGroup(pid: Int32, comm: String, index: Int32, group: Int32, groupsInTree: Set<Int32>) -> String? {
        guard !groupsInTree.contains(group) else { return nil }
        return "cannot checkpoint process \(pid) (\(comm)): the foreground process group (\(group)) of its terminal /dev/pts/\(index) is not a group of the tree; ferry sets it again only within the tree: checkpoint that group with it"
    }

    /// A thread that has its own descriptor table or fs info (it called
    /// unshare(CLONE_FILES or CLONE_FS)): ferry restores the process's one
    /// for every thread, so refused. `what` is "descriptor table" or "cwd, root and umask".
    public static func threadUnshared(pid: Int32, comm: String, tid: Int32, what: String) -> String {
        "cannot checkpoint process \(pid) (\(comm)): thread \(tid) has its own \(what) (unshare); ferry restores one per process: keep it shared"
    }

    /// The largest memfd or deleted file whose contents a checkpoint stores
    /// unless told otherwise (`--ghost-limit`).
    public static let defaultGhostLimit = 64 << 20

    /// A memfd or a regular file unlinked while open (`kind`), whose contents
    /// the image carries: refused when larger than `limit`, when it is a
    /// hugetlb memfd (`blockSize` above a page), and for a deleted file
    /// whose directory is gone too (nowhere to re-create it).
    /// A deleted file still linked under another name (`links` above 0) is
    /// refused too (its copy would no longer be that file), and so is
    /// shared anonymous or System V memory opened through
    /// /proc/PID/map_files, which shows as a deleted "/dev/zero",
    /// "/SYSV…" or "/[aio]".
    public static func fileContents(_ d: DescriptorFacts, kind: FileContents.Kind, size: UInt64, limit: UInt64,
                                    blockSize: Int, directoryExists: Bool, links: UInt64 = 0) -> String? {
        let what = kind == .memfd ? "a memfd" : "a deleted file"
        if kind == .deleted, d.path.hasPrefix("/dev/zero") || d.path.hasPrefix("/SYSV") || d.path.hasPrefix("/[") || !d.path.hasPrefix("/") {
            return "\(d.who) is shared memory opened as a file (through /proc/PID/map_files); ferry does not carry such fds: close it before the checkpoint"
        }
        if kind == .deleted && links > 0 {
            return "\(d.who) is a file deleted at this path but still linked under another name (\(links) link(s)); a restore would give it a copy: reopen it by the name it still has"
        }
        if kind == .memfd && blockSize > 4096 {
            return "\(d.who) is a hugetlb memfd; ferry does not restore hugetlb memory: checkpoint a program that does not use MFD_HUGETLB"
        }
        if size > limit {
            return "\(d.who) is \(what) of \(size) bytes, over the \(limit) bytes ferry stores per file: raise --ghost-limit (up to \(FileContentsRecord.maxBytes)) or close it first"
        }
        if !directoryExists {
            return "\(d.who) is a deleted file whose directory is gone too; ferry re-creates deleted files next to their old path: close it before the checkpoint"
        }
        return nil
    }

    /// A file the image carries the contents of (`contentsID`) that a
    /// process also maps where the restored mapping would not reach the
    /// restored file: a deleted file mapped at all, or a memfd mapped
    /// privately (after a restore its pages would no longer follow the
    /// file). `place` names the mapping.
    public static func mappedContents(pid: Int32, kind: FileContents.Kind, name: String, place: String, shared: Bool) -> String? {
        if kind == .memfd && shared { return nil }
        let what = kind == .memfd ? "memfd \"\(name)\"" : "deleted file \(name)"
        return "cannot checkpoint: process \(pid) maps the \(what) at \(place)\(shared ? "" : " privately") while the tree holds it open; ferry would restore the mapping apart from the file: unmap it or close the file before the checkpoint"
    }
}

/// membarrier(2) registrations ferry carries: GLOBAL_EXPEDITED (4) and the
/// private expedited ones (plain 16, SYNC_CORE 64, RSEQ 256), each a
/// REGISTER command. Kernels from 6.3 tell them (GET_REGISTRATIONS); before,
/// each private barrier is issued to test its registration.
public enum Membarrier {
    public static let getRegistrations: UInt32 = 512
    public static let privateCommands: [(issue: UInt32, register: UInt32)] = [
        (8, 16),     // PRIVATE_EXPEDITED
        (32, 64),    // PRIVATE_EXPEDITED_SYNC_CORE
        (128, 256),  // PRIVATE_EXPEDITED_RSEQ
    ]
    public static let registerBits: [UInt32] = [4] + privateCommands.map(\.register)

    /// The REGISTER commands to issue for `registered`, in order; nil when a
    /// bit names no command ferry knows.
    public static func registerCommands(_ registered: UInt32) -> [UInt32]? {
        let known = registerBits.reduce(0, |)
        guard registered & ~known == 0 else { return nil }
        return registerBits.filter { registered & $0 != 0 }
    }

    /// Registrations GET_REGISTRATIONS reported that ferry does not know: refused.
    public static func refusal(pid: Int32, registered: UInt32) -> String? {
        guard registerCommands(registered) == nil else { return nil }
        return "cannot checkpoint process \(pid): it has membarrier registrations ferry does not know (0x\(String(registered, radix: 16))); checkpoint it with a newer ferry"
    }
}
