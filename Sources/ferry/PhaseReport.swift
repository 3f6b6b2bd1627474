import Foundation
import FerryImage

/// With FERRY_PHASES=1 in the environment, `ferry checkpoint` and `restore`
/// print where their time went (PhaseTimer's named splits, in ms) and the
/// peak RSS so far on standard error: the profile behind docs/performance.md.
enum PhaseReport {
    static let wanted = ProcessInfo.processInfo.environment["FERRY_PHASES"] == "1"

    /// Starts the splits (the first one ends at the first mark).
    static func start() { if wanted { PhaseTimer.shared.reset() } }

    static func print(_ command: String) {
        guard wanted else { return }
        var err = StandardError()
        let parts = PhaseTimer.shared.summary.map { "\($0.name) \($0.ms)" }
        Swift.print("phases of \(command) (ms): " + parts.joined(separator: "; ") + "; peak RSS \(peakKiB()) KiB", to: &err)
    }

    /// VmHWM of /proc/self/status, in KiB (0 where unreadable).
    private static func peakKiB() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? 0
        }
        return 0
    }
}
