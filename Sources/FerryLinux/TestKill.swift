#if os(Linux)
import Glibc

/// A test-only way to kill ferry at a chosen moment: with
/// FERRY_TEST_KILL_AT=KIND:N (`injection`, `batch`, `step` or `repair`), a debug build
/// sends itself SIGKILL at the Nth point of that kind. Release builds compile
/// it to nothing and never read the variable.
public enum TestKill {
    public enum Kind: String, Sendable { case injection, batch, step, repair }

    #if DEBUG
    private static let target: (Kind, Int)? = {
        guard let v = getenv("FERRY_TEST_KILL_AT").map({ String(cString: $0) }) else { return nil }
        let parts = v.split(separator: ":")
        guard parts.count == 2, let k = Kind(rawValue: String(parts[0])), let n = Int(parts[1]), n > 0 else { return nil }
        return (k, n)
    }()
    nonisolated(unsafe) private static var counts: [Kind: Int] = [:]
    private static let lock = PointLock()
    #endif

    /// FERRY_TEST_NO_REPAIR_GUARD=1 (debug builds): connections go into
    /// repair mode without the repair guard, to show what the kill sweep
    /// finds without it. Always false in release builds.
    public static var repairGuardDisabled: Bool {
        debugFlag("FERRY_TEST_NO_REPAIR_GUARD")
    }

    /// FERRY_TEST_NO_REPAIR_STOP=1 (debug builds): the repair guard without
    /// the SIGSTOP that holds the tree (RepairStop), to show the race the
    /// sweeps find without it. Always false in release builds.
    public static var repairStopDisabled: Bool {
        debugFlag("FERRY_TEST_NO_REPAIR_STOP")
    }

    /// FERRY_TEST_NO_TCP_HOLD=1 (debug builds): the image names the hold but
    /// the repair guard is not asked to keep the connections after the
    /// kill, to show what the peer sees without the hold. Always false in
    /// release builds.
    public static var holdDisabled: Bool {
        debugFlag("FERRY_TEST_NO_TCP_HOLD")
    }

    /// FERRY_TEST_LATE_REPAIR_GUARD=1 (debug builds): the repair guard is
    /// started on first use, inside the freeze, not before it, to measure
    /// what starting it early saves. Always false in release builds.
    public static var lateRepairGuard: Bool {
        debugFlag("FERRY_TEST_LATE_REPAIR_GUARD")
    }

    /// FERRY_TEST_GUARD_DELAY_MS=N (debug builds): the repair guard, woken
    /// by ferry's death, waits N ms (at most 1000) before it settles the
    /// sockets, as a guard the scheduler runs late would: the process must
    /// not reach its socket meanwhile. Release builds never wait.
    public static func guardDelay() {
        #if DEBUG
        guard let v = getenv("FERRY_TEST_GUARD_DELAY_MS").flatMap({ Int(String(cString: $0)) }), v > 0 else { return }
        Glibc.usleep(UInt32(min(v, 1000)) * 1000)
        #endif
    }

    /// Whether environment variable `name` is set, in debug builds only.
    private static func debugFlag(_ name: String) -> Bool {
        #if DEBUG
        return getenv(name) != nil
        #else
        return false
        #endif
    }

    /// One point of `kind`; at the chosen one the process dies here.
    @inline(__always)
    public static func point(_ kind: Kind) {
        #if DEBUG
        guard let (k, n) = target, k == kind else { return }
        lock.sync {
            counts[kind, default: 0] += 1
            if counts[kind] == n { Glibc.kill(getpid(), SIGKILL); while true { Glibc.pause() } }
        }
        #endif
    }

    /// FERRY_TEST_PAUSE_AT=KIND (debug builds): at the pause points of that
    /// kind ferry creates FERRY_TEST_PAUSE_FILE (if set) and sleeps
    /// FERRY_TEST_PAUSE_MS (default 1000), so that a test can act while the
    /// tree is frozen at a known step. Release builds compile it to nothing.
    @inline(__always)
    public static func pause(_ kind: Kind) {
        #if DEBUG
        guard let at = getenv("FERRY_TEST_PAUSE_AT"), String(cString: at) == kind.rawValue else { return }
        if let file = getenv("FERRY_TEST_PAUSE_FILE") {
            let fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            if fd >= 0 { close(fd) }
        }
        let ms = getenv("FERRY_TEST_PAUSE_MS").flatMap { Int(String(cString: $0)) } ?? 1000
        Glibc.usleep(UInt32(max(0, min(ms, 60_000))) * 1000)
        #endif
    }
}

#if DEBUG
/// A pthread mutex (FerryLinux does not import Foundation).
private final class PointLock: @unchecked Sendable {
    private let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(m, nil) }
    func sync(_ body: () -> Void) { pthread_mutex_lock(m); body(); pthread_mutex_unlock(m) }
}
#endif
#endif
