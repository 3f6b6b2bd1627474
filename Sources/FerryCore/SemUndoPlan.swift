/// System V semaphore undo entries (semop with SEM_UNDO): adjustments the
/// kernel applies when the process exits. No interface shows them, so ferry
/// cannot carry them; it refuses a process that may hold some, from what it
/// can see:
/// - whether the process has an undo list at all: kcmp(KCMP_SYSVSEM)
///   against a task known to have none. The kernel creates the list at the
///   first semop with SEM_UNDO, or at a clone with CLONE_SYSVSEM — which
///   glibc's pthread_create passes, so every multi-threaded process has one;
/// - for a process with threads, which semaphores it operated on last
///   (semctl GETPID names the last process to change each semaphore).
/// Undo entries belong to semaphore sets and go with them: where the
/// process's ipc namespace has no set at all, it holds none, whatever its
/// list (a process that once had threads keeps the list CLONE_SYSVSEM made,
/// e.g. Python's http.server after serving a request on a thread).
/// Otherwise a single-threaded process without a list is carried; one with a list is
/// refused; a multi-threaded one is refused when it was the last to operate
/// on some semaphore (it may have used SEM_UNDO), and carried otherwise —
/// an undo entry it made before another process operated on the same
/// semaphore is not seen (docs/process-state.md).
public enum SemUndoPlan {
    public struct Process: Equatable, Sendable {
        public var pid: Int32
        public var comm: String
        public var threads: Int
        /// nil when no task without a list was found to compare with.
        public var hasUndoList: Bool?
        /// Semaphore sets (semid) with a semaphore this process changed last.
        public var lastOperated: [Int32]
        /// Whether the process's ipc namespace has any semaphore set (nil: not known).
        public var setsExist: Bool?
        public init(pid: Int32, comm: String, threads: Int, hasUndoList: Bool?, lastOperated: [Int32], setsExist: Bool? = nil) {
            self.pid = pid; self.comm = comm; self.threads = threads; self.hasUndoList = hasUndoList; self.lastOperated = lastOperated
            self.setsExist = setsExist
        }
    }

    /// Whether the undo list must be read: not for a process known to have none.
    public static func needsSemaphores(threads: Int, hasUndoList: Bool?) -> Bool { hasUndoList != false }

    /// The refusal for `p`, or nil when it holds no undo entry ferry could lose.
    public static func refusal(_ p: Process) -> String? {
        let who = "process \(p.pid) (\(p.comm))"
        let todo = "ferry does not carry semaphore undo entries (a restored process would not undo its semop changes when it exits) — checkpoint it once it no longer uses SEM_UNDO"
        if p.setsExist == false { return nil }
        switch (p.threads <= 1, p.hasUndoList) {
        case (_, false?): return nil
        case (true, true?):
            return "cannot checkpoint \(who): it has a System V semaphore undo list (semop with SEM_UNDO)\(p.lastOperated.isEmpty ? "" : ", last operated on semaphore set \(p.lastOperated[0])"); \(todo)"
        default:
            guard let set = p.lastOperated.first else { return nil }
            return "cannot checkpoint \(who): it was the last to change System V semaphore set \(set) and, having threads (or no task to compare with), may hold undo entries for it (semop with SEM_UNDO); \(todo)"
        }
    }
}
