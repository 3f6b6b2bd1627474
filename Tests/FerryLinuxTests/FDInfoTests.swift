import Glibc
import Foundation
import FerryImage
@testable import FerryLinux
import Testing

/// The fdinfo parsers, on text as Linux 6.x prints it (no root needed).
struct FDInfoTests {
    @Test func eventfd() throws {
        let text = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t20\neventfd-count:               1f\neventfd-id: 2\neventfd-semaphore: 1\n"
        #expect(try FDInfo.eventfd(text) == EventFDState(count: 31, semaphore: true))
        // Before ~6.5 there is no semaphore line.
        #expect(try FDInfo.eventfd("eventfd-count:                0\n") == EventFDState(count: 0, semaphore: false))
        #expect(throws: FDInfo.Malformed(field: "eventfd-count")) { try FDInfo.eventfd("pos:\t0\n") }
    }

    @Test func timerfdRelativeAndAbsolute() throws {
        let rel = "clockid: 1\nticks: 3\nsettime flags: 00\nit_value: (0, 19999000)\nit_interval: (0, 20000000)\n"
        #expect(try FDInfo.timerfd(rel, realtimeNow: 5) ==
                TimerFDState(clock: 1, settimeFlags: 0, valueNs: 19_999_000, intervalNs: 20_000_000, ticks: 3))
        // REALTIME + ABSTIME|CANCEL_ON_SET (octal 03): the deadline is kept, not the time left.
        let abs = "clockid: 0\nticks: 0\nsettime flags: 03\nit_value: (3599, 500000000)\nit_interval: (0, 0)\n"
        let t = try FDInfo.timerfd(abs, realtimeNow: 1_000_000_000)
        #expect(t.realtimeDeadlineNs == 3_600_500_000_000)
        #expect(FileState.timerSpec(t) == (3, 3_600_500_000_000, 0))
        // A MONOTONIC absolute timer is set relative (time namespaces, other hosts' clocks).
        let mono = try FDInfo.timerfd("clockid: 1\nticks: 0\nsettime flags: 01\nit_value: (2, 0)\nit_interval: (0, 0)\n", realtimeNow: 0)
        #expect(mono.realtimeDeadlineNs == nil && FileState.timerSpec(mono) == (0, 2_000_000_000, 0))
        // An expired periodic timer shows 0 left: armed again one period away.
        let expired = TimerFDState(clock: 1, settimeFlags: 0, valueNs: 0, intervalNs: 20_000_000, ticks: 2)
        #expect(FileState.timerSpec(expired) == (0, 20_000_000, 20_000_000))
        #expect(throws: FDInfo.Malformed(field: "it_value")) {
            try FDInfo.timerfd("clockid: 1\nticks: 0\nsettime flags: 00\nit_value: (x, 0)\nit_interval: (0, 0)\n", realtimeNow: 0)
        }
    }

    @Test func signalfdAndEpoll() throws {
        #expect(try FDInfo.signalMask("pos:\t0\nsigmask:\t0000000000000800\n") == 0x800)
        let ep = """
        pos:\t0
        flags:\t02000002
        tfd:        3 events:       19 data:                3  pos:0 ino:14 sdev:10
        tfd:       10 events: 80000019 data:     7fffdeadbeef  pos:0 ino:5a sdev:10
        """
        #expect(try FDInfo.epollWatches(ep) == [EpollWatch(fd: 3, events: 0x19, data: 3),
                                                EpollWatch(fd: 10, events: 0x8000_0019, data: 0x7fff_dead_beef)])
        #expect(try FDInfo.epollWatches("pos:\t0\n") == [])
        #expect(throws: FDInfo.Malformed.self) { try FDInfo.epollWatches("tfd: x events: 1 data: 2\n") }
    }

    @Test func epollsThatWatchEpollsComeAfterThem() throws {
        let inner = FileDescriptorImage(fd: 5, kind: .epoll, flags: 2, epollWatches: [EpollWatch(fd: 3, events: 1, data: 0)])
        let dupOfInner = FileDescriptorImage(fd: 6, kind: .epoll, flags: 2, sharedWith: 5)
        let outer = FileDescriptorImage(fd: 4, kind: .epoll, flags: 2, epollWatches: [EpollWatch(fd: 6, events: 1, data: 0)])
        let order = try FileState.epollOrder([outer, inner], files: [outer, inner, dupOfInner])
        #expect(order.map(\.fd) == [5, 4])
    }
}

/// /proc/PID/limits as Linux prints it, and this process's own.
struct LimitsParsingTests {
    @Test func ownLimitsMatchGetrlimit() throws {
        let text = try String(contentsOfFile: "/proc/self/limits", encoding: .utf8)
        let limits = try ProcessMisc.parseLimits(text, pid: getpid())
        #expect(limits.count == 16)
        var nofile = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &nofile)
        #expect(limits[7].soft == UInt64(nofile.rlim_cur) && limits[7].hard == UInt64(nofile.rlim_max))
    }

    @Test func unlimitedAndDamagedLines() throws {
        let header = "Limit                     Soft Limit           Hard Limit           Units     \n"
        let line = "Max cpu time              unlimited            4096                 seconds   \n"
        let limits = try ProcessMisc.parseLimits(header + String(repeating: line, count: 16), pid: 1)
        #expect(limits[0] == ResourceLimit(resource: 0, soft: .max, hard: 4096))
        #expect(limits[15].resource == 15)
        #expect(throws: FerryError.self) { try ProcessMisc.parseLimits(header + line, pid: 1) }
        #expect(throws: FerryError.self) {
            try ProcessMisc.parseLimits(header + String(repeating: "Max cpu time              lots                 4096\n", count: 16), pid: 1)
        }
    }
}

/// Capability sets from an image are five hex words or the restore is refused.
struct CapabilitySetTests {
    @Test func damagedSetsAreRefusedNotSkipped() throws {
        var a = ThreadAttributes()
        #expect(try AttributeState.wantedCapabilities(a, tid: 1) == nil)
        a.capabilities = ["0", "1ff", "1ff", "1ffffffffff", "0"]
        #expect(try AttributeState.wantedCapabilities(a, tid: 1) == [0, 0x1ff, 0x1ff, 0x1ff_ffff_ffff, 0])
        for bad in [["0", "1ff"], ["0", "zz", "1", "1", "0"], ["0", "0", "0", "0", "10000000000000000"]] {
            a.capabilities = bad
            #expect(throws: FerryError.self) { try AttributeState.wantedCapabilities(a, tid: 1) }
        }
    }
}
