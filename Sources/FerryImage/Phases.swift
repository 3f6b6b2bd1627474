/// Named durations of one run (a migration's frozen window, on either end),
/// for `ferry migrate --json` and serve's log. One migration runs at a time
/// per process, on one thread: the shared timer is not locked.
public final class PhaseTimer: @unchecked Sendable {
    public static let shared = PhaseTimer()
    private var last = ContinuousClock.now
    public private(set) var phases: [(name: String, ms: Double)] = []

    public init() {}

    /// Starts a new split at this instant.
    public func reset() {
        phases = []
        last = .now
    }

    /// Ends the current phase under `name` (the time since the last mark or reset).
    public func mark(_ name: String) {
        let t = ContinuousClock.now
        let d = last.duration(to: t)
        phases.append((name, Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15))
        last = t
    }

    /// Phases in order, equal names summed, rounded to 0.1 ms.
    public var summary: [(name: String, ms: Double)] {
        var out: [(name: String, ms: Double)] = []
        for p in phases {
            if let i = out.firstIndex(where: { $0.name == p.name }) { out[i].ms += p.ms } else { out.append(p) }
        }
        return out.map { ($0.name, ($0.ms * 10).rounded() / 10) }
    }
}
