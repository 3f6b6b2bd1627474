#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

/// Semaphore undo entries of the tree: detected and refused (`SemUndoPlan`).
enum SemUndoState {
    static let kcmpSysVSem: UInt64 = 6
    static let semStat: Int32 = 18, semInfo: Int32 = 19, getPid: Int32 = 11, semctlNr = 66

    /// A task without an undo list to compare with: the kernel thread
    /// kthreadd (pid 2, in the initial pid namespace), or nil.
    static func reference() -> Int32? {
        let status = (try? ProcFS.status(2)) ?? [:]
        return status["Name"] == "kthreadd" && status["Kthread"] != "0" ? 2 : nil
    }

    /// Whether `pid` has an undo list (nil when unknown).
    static func hasUndoList(_ pid: Int32, reference: Int32?) -> Bool? {
        guard let reference else { return nil }
        let r = ferry_syscall6(SYS.kcmp, UInt64(pid), UInt64(reference), kcmpSysVSem, 0, 0, 0)
        return r < 0 ? nil : r != 0
    }

    /// semid → the pids (thread group ids) that changed each of its semaphores last, in ferry's ipc namespace;
    /// nil when the kernel does not list them.
    static func lastOperators() -> [(semid: Int32, pids: Set<Int32>)]? {
        // struct seminfo (40 bytes) and struct semid64_ds (104 bytes: sem_nsems at 80) on x86-64.
        var buf = [UInt8](repeating: 0, count: 128)
        func semctl(_ id: Int32, _ n: Int32, _ cmd: Int32, _ b: UnsafeMutableRawPointer?) -> Int {
            ferry_syscall6(semctlNr, UInt64(UInt32(bitPattern: id)), UInt64(UInt32(bitPattern: n)), UInt64(UInt32(bitPattern: cmd)),
                           UInt64(UInt(bitPattern: b)), 0, 0)
        }
        let highest = buf.withUnsafeMutableBytes { semctl(0, 0, semInfo, $0.baseAddress) }
        guard highest >= 0 else { return nil }
        var out: [(Int32, Set<Int32>)] = []
        for index in 0...min(highest, 1 << 16) {
            let semid = buf.withUnsafeMutableBytes { semctl(Int32(index), 0, semStat, $0.baseAddress) }
            guard semid >= 0, let id = Int32(exactly: semid) else { continue }
            let count = buf.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 80, as: UInt64.self) }
            var pids: Set<Int32> = []
            for n in 0..<Int32(clamping: min(count, 1 << 16)) {
                let p = semctl(id, n, getPid, nil)
                if p > 0, let pid = Int32(exactly: p) { pids.insert(pid) }
            }
            out.append((id, pids))
        }
        return out
    }

    /// Refuses the first process of `processes` that may hold undo entries.
    static func refuse(_ processes: [ProcessImage]) throws {
        let reference = reference()
        let ours = try? ProcFS.readlink("/proc/self/ns/ipc")
        var semaphores: [(semid: Int32, pids: Set<Int32>)]??
        for p in processes {
            let list = hasUndoList(p.pid, reference: reference)
            let threads = max(p.threads.count, ((try? ProcFS.numericEntries("/proc/\(p.pid)/task", "listing threads")) ?? []).count)
            guard SemUndoPlan.needsSemaphores(threads: threads, hasUndoList: list) else { continue }
            // Another ipc namespace's semaphores are not restored at all (a container's is re-created empty).
            let sameNamespace = (try? ProcFS.readlink("/proc/\(p.pid)/ns/ipc")) == ours
            let listed = sameNamespace ? (semaphores ?? lastOperators()) : nil
            if sameNamespace { semaphores = .some(listed) }
            let sets = listed ?? []
            let mine = sets.filter { $0.pids.contains(p.pid) }.map(\.semid)
            if let why = SemUndoPlan.refusal(.init(pid: p.pid, comm: p.comm, threads: threads, hasUndoList: list, lastOperated: mine,
                                                   setsExist: listed.map { !$0.isEmpty })) {
                throw FerryError(why)
            }
        }
    }
}
#endif
