#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

/// Per-process state ferry does not carry, refused at checkpoint by name
/// (the decisions are Uncarried's): a root directory deleted at its path, a thread with its own
/// descriptor table or fs info. (A controlling terminal is Terminals'.)
enum ProcessChecks {
    static func refuse(_ p: ProcessImage, tree: Set<Int32>) throws {
        // In another mount namespace (a container) the root is the container's, handled with it.
        if sameMountNamespace(p.pid), let why = ChrootPlan.refusal(pid: p.pid, comm: p.comm, root: p.root) { throw FerryError(why) }
        for t in p.threads where t.tid != p.pid {
            for (type, what) in [(UInt64(2), "descriptor table"), (3, "cwd, root and umask")]
            where ferry_syscall6(SYS.kcmp, UInt64(p.pid), UInt64(t.tid), type, 0, 0, 0) > 0 {
                throw FerryError(Uncarried.threadUnshared(pid: p.pid, comm: p.comm, tid: t.tid, what: what))
            }
        }
    }

    static func sameMountNamespace(_ pid: Int32) -> Bool {
        (try? ProcFS.readlink("/proc/\(pid)/ns/mnt")) == (try? ProcFS.readlink("/proc/self/ns/mnt"))
    }

    /// securebits (PR_GET_SECUREBITS, asked by the thread itself through `injector`).
    static func refuseSecurebits(tid: Int32, injector: Injector) throws {
        let bits = try injector.call(SYS.prctl, [27 /* PR_GET_SECUREBITS */], "prctl(PR_GET_SECUREBITS)")
        if let why = Uncarried.securebits(pid: injector.memory.pid, comm: (try? ProcFS.stat(injector.memory.pid).comm) ?? "?",
                                          tid: tid, bits: UInt64(bitPattern: bits)) {
            throw FerryError(why)
        }
    }
}
#endif
