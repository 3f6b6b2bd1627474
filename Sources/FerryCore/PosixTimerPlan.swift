import FerryImage

/// Decisions about POSIX timers (timer_create), made once as pure functions:
/// reading /proc/PID/timers, which timers a restore can re-create (the rest
/// are refused in one line), how a timer is armed again, and how a kernel
/// without PR_TIMER_CREATE_RESTORE_IDS is brought to hand out an id.
public enum PosixTimerPlan {
    /// A one-line refusal naming the timer, the process and the way out.
    public struct Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// One entry of /proc/PID/timers.
    public struct ProcEntry: Equatable, Sendable {
        public var id: Int32
        public var signal: Int32
        /// sigev_value.
        public var value: UInt64
        /// sigev_notify: SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD 2, with SIGEV_THREAD_ID (4) added for "tid".
        public var notify: Int32
        /// The pid ("pid.N") or, with SIGEV_THREAD_ID, the tid ("tid.N") it signals, as /proc's namespace sees it.
        public var target: Int32
        public var clock: Int32
        public init(id: Int32, signal: Int32, value: UInt64, notify: Int32, target: Int32, clock: Int32) {
            self.id = id; self.signal = signal; self.value = value; self.notify = notify; self.target = target; self.clock = clock
        }
    }

    /// Parses /proc/PID/timers: per timer the lines
    /// `ID: N`, `signal: SIGNO/HEXVALUE`, `notify: KIND/pid.N` (or `tid.N`),
    /// `ClockID: N`. Returns nil on a line it cannot read.
    public static func parse(_ text: String) -> [ProcEntry]? {
        var out: [ProcEntry] = []
        var cur: ProcEntry?
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let key = line[..<colon], rest = line[line.index(after: colon)...].drop(while: { $0 == " " })
            switch key {
            case "ID":
                if let cur { out.append(cur) }
                guard let id = Int32(rest) else { return nil }
                cur = ProcEntry(id: id, signal: 0, value: 0, notify: 0, target: 0, clock: 0)
            case "signal":
                let f = rest.split(separator: "/")
                guard cur != nil, f.count == 2, let s = Int32(f[0]), let v = UInt64(f[1], radix: 16) else { return nil }
                cur?.signal = s; cur?.value = v
            case "notify":
                let f = rest.split(separator: "/")
                guard cur != nil, f.count == 2 else { return nil }
                let kinds: [Substring: Int32] = ["signal": 0, "none": 1, "thread": 2]
                let t = f[1].split(separator: ".")
                guard let kind = kinds[f[0]], t.count == 2, t[0] == "pid" || t[0] == "tid", let n = Int32(t[1]) else { return nil }
                cur?.notify = kind | (t[0] == "tid" ? 4 : 0); cur?.target = n
            case "ClockID":
                guard cur != nil, let c = Int32(rest) else { return nil }
                cur?.clock = c
            default:
                return nil
            }
        }
        if let cur { out.append(cur) }
        return out
    }

    /// The clock a restore creates the timer on, or a refusal. The kernel
    /// shows CLOCK_PROCESS_CPUTIME_ID as -6 and a CPU clock of a given pid
    /// (clock_getcpuclockid) as ~pid << 3 | 2; a thread's CPU clock has bit 2 set.
    /// `ownPid` is the process's pid as /proc shows it.
    public static func clock(_ e: ProcEntry, ownPid: Int32, who: String) -> Result<Int32, Refusal> {
        if Validation.posixTimerClocks.contains(e.clock) { return .success(e.clock) }
        if e.clock < 0 && e.clock & 7 == 2 && ~(e.clock >> 3) == ownPid { return .success(-6) }
        let what = e.clock < 0 && e.clock & 4 != 0 ? "the CPU-time clock of one thread"
            : e.clock < 0 ? "the CPU-time clock of process \(~(e.clock >> 3))" : "clock \(e.clock)"
        return .failure(Refusal("cannot checkpoint \(who): POSIX timer \(e.id) runs on \(what); ferry carries timers on the process's own CPU-time clock and on REALTIME, MONOTONIC, BOOTTIME, the alarm clocks and TAI: use one of those"))
    }

    /// The SIGEV_THREAD_ID target: the tid of the image's thread, or a refusal
    /// when it is not a thread of the process (`threads` maps the tid /proc
    /// shows to the image's tid).
    public static func thread(_ e: ProcEntry, threads: [Int32: Int32], who: String) -> Result<Int32?, Refusal> {
        guard e.notify & 4 != 0 else { return .success(nil) }
        if let t = threads[e.target] { return .success(t) }
        return .failure(Refusal("cannot checkpoint \(who): POSIX timer \(e.id) signals thread \(e.target), which is not a thread of the process; ferry re-creates a timer only for its own threads: delete the timer (timer_delete) or point it at a live thread"))
    }

    /// The itimerspec a restore arms a timer with, relative to the moment it
    /// is armed: the time left at checkpoint (the frozen time does not count,
    /// as for interval timers and timerfds) and the period; nil for a
    /// disarmed timer (left disarmed). A timer that was about to fire gets
    /// 1 ns, never 0 (which disarms).
    public static func arming(valueNs: UInt64, intervalNs: UInt64) -> (valueNs: UInt64, intervalNs: UInt64)? {
        guard valueNs != 0 else { return nil }
        return (max(valueNs, 1), intervalNs)
    }

    /// What to do with a timer id a kernel without PR_TIMER_CREATE_RESTORE_IDS
    /// handed out: such kernels give ids in increasing order, so ids below the
    /// wanted one are deleted and asked again, at most `budget` times in all.
    public enum Step: Equatable, Sendable {
        case keep
        case deleteAndRetry
        case refuse(String)
    }

    public static func step(got: Int32, wanted: Int32, spent: Int, budget: Int) -> Step {
        if got == wanted { return .keep }
        if got > wanted {
            return .refuse("cannot restore POSIX timer \(wanted): the kernel handed out id \(got) past it and has no PR_TIMER_CREATE_RESTORE_IDS (Linux 6.17+): restore on a newer kernel")
        }
        if spent >= budget {
            return .refuse("cannot restore POSIX timer \(wanted): reaching its id takes more than \(budget) timer_create calls on a kernel without PR_TIMER_CREATE_RESTORE_IDS (Linux 6.17+): restore on a newer kernel")
        }
        return .deleteAndRetry
    }

    /// The order a restore creates timers in: by id, so that a kernel that
    /// hands out increasing ids reaches each one.
    public static func creationOrder(_ timers: [PosixTimer]) -> [PosixTimer] {
        timers.sorted { $0.id < $1.id }
    }
}
