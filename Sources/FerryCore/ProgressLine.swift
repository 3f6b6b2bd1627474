/// What a progress display shows at one moment, and its one-line text.
public struct ProgressSample: Codable, Equatable, Sendable {
    /// "checkpoint", "restore", "pre-copy", …
    public var phase: String
    public var bytes: UInt64
    /// The bytes expected in all, when known (an estimate at checkpoint).
    public var totalBytes: UInt64?
    public var seconds: Double
    /// Bytes per second over the last interval.
    public var rate: Double
    public var etaSeconds: Double?
    /// Pre-copy round and the dirty set it found, for a migration.
    public var round: Int?
    public var dirtyBytes: UInt64?

    public init(phase: String, bytes: UInt64, totalBytes: UInt64? = nil, seconds: Double, rate: Double,
                etaSeconds: Double? = nil, round: Int? = nil, dirtyBytes: UInt64? = nil) {
        self.phase = phase; self.bytes = bytes; self.totalBytes = totalBytes; self.seconds = seconds; self.rate = rate
        self.etaSeconds = etaSeconds; self.round = round; self.dirtyBytes = dirtyBytes
    }
}

public enum ProgressLine {
    /// The sample at `seconds` with `bytes` moved, given the previous one
    /// (rate over the interval; the ETA from that rate and the total).
    public static func sample(phase: String, bytes: UInt64, totalBytes: UInt64?, seconds: Double,
                              previous: ProgressSample?) -> ProgressSample {
        let dt = seconds - (previous?.seconds ?? 0)
        let db = Double(bytes) - Double(previous?.bytes ?? 0)
        let rate = dt > 0 ? max(0, db / dt) : (previous?.rate ?? 0)
        var eta: Double?
        if let total = totalBytes, rate > 0 {
            eta = total > bytes ? Double(total - bytes) / rate : 0
        }
        return ProgressSample(phase: phase, bytes: bytes, totalBytes: totalBytes, seconds: seconds, rate: rate, etaSeconds: eta)
    }

    /// "checkpoint 312.0 of ~1024.0 MiB, 812.5 MiB/s, 0.9 s left" (one line, no newline).
    public static func text(_ s: ProgressSample) -> String {
        var out = "\(s.phase) \(mib(s.bytes))"
        if let total = s.totalBytes { out += " of ~\(mib(total))" }
        out += " MiB, \(mib(UInt64(max(0, s.rate)))) MiB/s"
        if let r = s.round { out += ", round \(r)" }
        if let d = s.dirtyBytes { out += ", dirty \(mib(d)) MiB" }
        if let eta = s.etaSeconds { out += ", \(tenths(eta)) s left" }
        return out
    }

    static func mib(_ bytes: UInt64) -> String { tenths(Double(bytes) / 1_048_576) }

    static func tenths(_ v: Double) -> String {
        let t = (v * 10).rounded()
        guard t.isFinite, t < 1e15 else { return "?" }
        let i = Int64(t)
        return "\(i / 10).\(abs(i % 10))"
    }
}
