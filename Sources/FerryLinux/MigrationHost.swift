#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage

/// What a migration handshake asks of this host (either end), from /proc.
public enum MigrationHost {
    /// The kernel's vDSO block as this host maps it into every process: ([vvar]…, size) in address order.
    public static func vdsoLayout() -> [(name: String, size: UInt64)] {
        guard let maps = try? ProcFS.maps(getpid(), withFlags: false) else { return [] }
        return maps.filter { $0.path == "[vdso]" || $0.path.hasPrefix("[vvar") }
            .sorted { $0.start < $1.start }
            .map { ($0.path, $0.end - $0.start) }
    }

    /// MemAvailable of /proc/meminfo, in bytes.
    public static func availableMemory() -> UInt64 {
        guard let text = try? ProcFS.text("/proc/meminfo") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? 0
            return kb * 1024
        }
        return 0
    }

    public static func pidsInUse(_ pids: [Int32]) -> [Int32] {
        pids.filter { ProcFS.exists("/proc/\($0)") }
    }

    /// Every pid and tid of the tree under `pid`, and its resident memory.
    /// A tree whose shared memory a restore would split is refused here,
    /// before anything is frozen or sent (and again once it is frozen).
    public static func tree(of pid: Int32) throws -> (ids: [Int32], residentBytes: UInt64) {
        guard ProcFS.exists("/proc/\(pid)") else { throw FerryError("no process \(pid)") }
        var ids: [Int32] = []
        var processes: [Int32] = []
        var rss: UInt64 = 0
        var queue = [pid]
        while !queue.isEmpty {
            let p = queue.removeFirst()
            ids.append(p)
            processes.append(p)
            ids += ((try? ProcFS.threads(p)) ?? []).filter { $0 != p }
            if let s = try? ProcFS.status(p), let v = s["VmRSS"], let kb = UInt64(v.split(separator: " ").first ?? "") {
                rss += kb * 1024
            }
            queue += ProcFS.children(p)
        }
        try SharedMemory.check(tree: processes, outside: SharedMemory.outsideSharers(of: processes))
        return (ids, rss)
    }

    /// Collects `pid` if it has exited (it must be our child); true when it is gone.
    @discardableResult
    public static func reapIfExited(_ pid: Int32) -> Bool {
        var status: Int32 = 0
        let r = ferry_wait(pid, &status, 1)
        return r == pid || r == -Int(ECHILD)
    }

    /// Kills a restored process (and the init of its pid namespace) and collects them.
    public static func discard(pid: Int32, namespaceInit: Int32?) {
        kill(pid, SIGKILL)
        if let i = namespaceInit { kill(i, SIGKILL) }
        var status: Int32 = 0
        _ = ferry_wait(pid, &status, 0)
        if let i = namespaceInit { _ = ferry_wait(i, &status, 0) }
    }

    /// True while `pid` exists and is not a zombie.
    public static func isRunning(_ pid: Int32) -> Bool {
        guard let s = try? ProcFS.stat(pid) else { return false }
        return s.state != "Z" && s.state != "X"
    }
}
#endif
