#if os(Linux)
import FerryImage

/// Parsers for the kind-specific lines of /proc/PID/fdinfo/FD (pure: tested
/// without root). Formats as printed by Linux 5.x–6.x:
///
///     eventfd-count:                5        (hex, %16llx)
///     eventfd-semaphore: 1                   (added in 2023, ~6.5; absent before)
///     clockid: 1 / ticks: 0 / settime flags: 01 (octal)
///     it_value: (0, 19999000) / it_interval: (0, 20000000)
///     sigmask:\t0000000000000800             (hex)
///     tfd:        3 events: 80000019 data:                3  pos:0 ino:14 sdev:10
public enum FDInfo {
    /// What a fdinfo file says is wrong, for the error naming the fd.
    public struct Malformed: Error, Equatable, CustomStringConvertible {
        public let field: String
        public var description: String { "unreadable \"\(field)\" line in fdinfo" }
    }

    public static func eventfd(_ text: String) throws -> EventFDState {
        let info = ProcFS.parseStatus(text)
        guard let c = info["eventfd-count"], let count = UInt64(c, radix: 16) else { throw Malformed(field: "eventfd-count") }
        // Older kernels (before ~6.5) do not print the flag: such eventfds are refused at checkpoint
        // unless the user says they are counters (DescriptorChecks.refuseEventFD).
        return EventFDState(count: count, semaphore: info["eventfd-semaphore"] == "1")
    }

    /// `realtimeNow`: CLOCK_REALTIME when the fdinfo was read, to turn an
    /// absolute REALTIME timer's time left back into its deadline.
    public static func timerfd(_ text: String, realtimeNow: UInt64) throws -> TimerFDState {
        let info = ProcFS.parseStatus(text)
        guard let clock = info["clockid"].flatMap({ Int32($0) }) else { throw Malformed(field: "clockid") }
        guard let ticks = info["ticks"].flatMap({ UInt64($0) }) else { throw Malformed(field: "ticks") }
        guard let flags = info["settime flags"].flatMap({ Int32($0, radix: 8) }) else { throw Malformed(field: "settime flags") }
        guard let value = info["it_value"].flatMap(timespecPair) else { throw Malformed(field: "it_value") }
        guard let interval = info["it_interval"].flatMap(timespecPair) else { throw Malformed(field: "it_interval") }
        var t = TimerFDState(clock: clock, settimeFlags: flags, valueNs: value, intervalNs: interval, ticks: ticks)
        if flags & 1 /* TFD_TIMER_ABSTIME */ != 0, realtimeClocks.contains(clock), value > 0 {
            t.realtimeDeadlineNs = realtimeNow &+ value
        }
        return t
    }

    public static func signalMask(_ text: String) throws -> UInt64 {
        guard let m = ProcFS.parseStatus(text)["sigmask"], let mask = UInt64(m, radix: 16) else { throw Malformed(field: "sigmask") }
        return mask
    }

    /// One `tfd:` line per watched file.
    public static func epollWatches(_ text: String) throws -> [EpollWatch] {
        var out: [EpollWatch] = []
        for line in text.split(separator: "\n") where line.hasPrefix("tfd:") {
            // "tfd: N events: X data: Y  pos:…": values follow their labels, separated by blanks.
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            func value(after label: String) -> Substring? {
                guard let i = words.firstIndex(where: { $0 == label }), i + 1 < words.count else { return nil }
                return words[i + 1]
            }
            guard let fd = value(after: "tfd:").flatMap({ Int32($0) }),
                  let events = value(after: "events:").flatMap({ UInt32($0, radix: 16) }),
                  let data = value(after: "data:").flatMap({ UInt64($0, radix: 16) })
            else { throw Malformed(field: String(line)) }
            out.append(EpollWatch(fd: fd, events: events, data: data))
        }
        return out
    }

    /// CLOCK_REALTIME and CLOCK_REALTIME_ALARM.
    public static let realtimeClocks: Set<Int32> = [0, 8]

    /// "(sec, nsec)" → nanoseconds.
    static func timespecPair(_ s: String) -> UInt64? {
        let parts = s.trimmingCharacters(in: "() ").split(separator: ",").map { $0.trimmingCharacters(in: " ") }
        guard parts.count == 2, let sec = UInt64(parts[0]), let nsec = UInt64(parts[1]), nsec < 1_000_000_000 else { return nil }
        let (ns, overflow) = sec.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? nil : ns + nsec
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
#endif
