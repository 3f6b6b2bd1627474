#if os(Linux)
import Glibc
import FerryImage

/// A process in a group stop at the checkpoint (SIGSTOP, or SIGTSTP/SIGTTIN/
/// SIGTTOU with the default action): the freeze reads the stop signal from
/// its interrupt stop (`Freezer.stopSignals`), and the restore queues that
/// signal before letting the threads go, so the process stops before it
/// runs and its parent sees a stop again (waitpid WUNTRACED).
enum StopState {
    /// The signal to queue for `p`: its own stop signal while that still
    /// stops it (SIGSTOP always; the others only with the default action,
    /// which the restored handlers may have changed), else SIGSTOP.
    static func signal(for p: ProcessImage) -> Int32? {
        guard let sig = p.stopSignal else { return nil }
        if sig == SIGSTOP { return SIGSTOP }
        let handler = p.signalActions.first { $0.signo == sig }?.handler ?? 0
        return handler == 0 ? sig : SIGSTOP
    }

    /// Waits (5 s at most) until `pid` is in its group stop, so that its
    /// parent, let go after it, finds the stop report at once.
    static func waitStopped(_ pid: Int32) throws {
        for _ in 0..<5000 {
            if (try? ProcFS.stat(pid))?.state == "T" { return }
            usleep(1000)
        }
        throw FerryError("process \(pid) did not stop within 5 s of its restore, as it was stopped at the checkpoint")
    }

    static func stop(_ pid: Int32, _ sig: Int32) throws {
        guard kill(pid, sig) == 0 else {
            throw SystemError("kill(\(pid), \(sig))", errno: errno, "leaving process \(pid) stopped as it was at the checkpoint")
        }
    }
}
#endif
