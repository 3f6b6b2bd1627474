#if os(Linux)
import ArgumentParser
import Foundation
import Glibc
import FerryCore
import FerryImage

/// --progress / --quiet, shared by checkpoint, restore and migrate.
struct ProgressOptions: ParsableArguments {
    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case auto, json, none
    }

    @Option(help: "Progress on standard error: auto (one line, redrawn, only on a terminal), json (one JSON object per line, 2 per second, terminal or not) or none.")
    var progress: Mode = .auto
    @Flag(name: .shortAndLong, help: "No progress display (as --progress none).") var quiet = false

    var mode: Mode {
        if quiet { return .none }
        if progress == .auto && isatty(STDERR_FILENO) != 1 { return .none }
        return progress
    }
}

/// Shows `PageProgress` (or what `update` is given) while a command works,
/// from a thread of its own that samples it: the work itself only adds to
/// an atomic counter.
final class ProgressDisplay: @unchecked Sendable {
    private let mode: ProgressOptions.Mode
    private let phase: String
    private let total: UInt64?
    private let lock = NSLock()
    private var stopped = false
    private var drawn = false
    private var previous: ProgressSample?
    private var extra: (round: Int?, dirty: UInt64?, bytes: UInt64?) = (nil, nil, nil)
    private let start = ContinuousClock.now
    private var thread: Thread?

    /// Starts drawing (nothing for mode none). `total`: the bytes expected, when known.
    init(_ mode: ProgressOptions.Mode, phase: String, total: UInt64?) {
        self.mode = mode
        self.phase = phase
        self.total = total
        guard mode != .none else { return }
        let t = Thread { [weak self] in
            while let self, self.tick() {
                usleep(self.mode == .json ? 500_000 : 200_000)
            }
        }
        t.name = "ferry progress"
        thread = t
        t.start()
    }

    /// For a migration: bytes sent, pre-copy round and dirty set.
    func update(bytes: UInt64, round: Int, dirty: UInt64?) {
        lock.lock()
        extra = (round, dirty, bytes)
        lock.unlock()
    }

    /// Draws one sample; false once stopped.
    private func tick() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return false }
        let d = start.duration(to: .now)
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        var s = ProgressLine.sample(phase: phase, bytes: extra.bytes ?? PageProgress.shared.bytes, totalBytes: total,
                                    seconds: seconds, previous: previous)
        s.round = extra.round
        s.dirtyBytes = extra.dirty
        previous = s
        switch mode {
        case .auto:
            write("\r" + ProgressLine.text(s) + "\u{1b}[K")
            drawn = true
        case .json:
            if let data = try? JSONEncoder().encode(s) { write(String(decoding: data, as: UTF8.self) + "\n") }
        case .none:
            break
        }
        return true
    }

    /// Ends the display: the terminal line is cleared, so what the command
    /// prints next starts on a clean line.
    func stop() {
        lock.lock()
        stopped = true
        if drawn { write("\r\u{1b}[K") }
        drawn = false
        lock.unlock()
    }

    /// Clears the drawn line so a log line can be printed; the next sample redraws it.
    func clearLine() {
        lock.lock()
        if drawn { write("\r\u{1b}[K") }
        drawn = false
        lock.unlock()
    }

    deinit { stop() }

    private func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}
#endif
