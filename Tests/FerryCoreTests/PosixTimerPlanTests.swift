import FerryCore
import FerryImage
import Testing

/// POSIX timers: reading /proc/PID/timers, which timers are carried, how
/// they are armed again and how an id is reached without
/// PR_TIMER_CREATE_RESTORE_IDS.
struct PosixTimerPlanTests {
    /// As Linux 6.18 prints it (newest timer first).
    static let proc = """
        ID: 4
        signal: 0/0000000000000000
        notify: none/pid.23488
        ClockID: -6
        ID: 3
        signal: 36/0000000000003333
        notify: signal/tid.23490
        ClockID: 7
        ID: 2
        signal: 35/000055fde8d841f0
        notify: signal/pid.23488
        ClockID: 0

        """

    @Test func procTimersAreParsed() throws {
        let e = try #require(PosixTimerPlan.parse(Self.proc))
        #expect(e == [
            .init(id: 4, signal: 0, value: 0, notify: 1, target: 23488, clock: -6),
            .init(id: 3, signal: 36, value: 0x3333, notify: 4, target: 23490, clock: 7),
            .init(id: 2, signal: 35, value: 0x55fd_e8d8_41f0, notify: 0, target: 23488, clock: 0),
        ])
        #expect(PosixTimerPlan.parse("")?.isEmpty == true)
        #expect(PosixTimerPlan.parse("ID: 1\nnotify: thread/pid.5\n")?.first?.notify == 2)
    }

    @Test(arguments: ["ID: x\n", "signal: 10/00\n", "ID: 1\nnotify: bogus/pid.1\n", "ID: 1\nnotify: signal/pgrp.1\n",
                      "ID: 1\nClockID: one\n", "ID: 1\nsomething else\n", "no colon\n", "ID: 1\nsignal: 10/zz\n"])
    func damagedProcTimersAreNotGuessed(_ text: String) {
        #expect(PosixTimerPlan.parse(text) == nil)
    }

    static func entry(clock: Int32, notify: Int32 = 0, target: Int32 = 100) -> PosixTimerPlan.ProcEntry {
        .init(id: 7, signal: 10, value: 0, notify: notify, target: target, clock: clock)
    }

    @Test func clocksAreCarriedOrRefusedByName() throws {
        for c: Int32 in [0, 1, 7, 8, 9, 11, -6] {
            #expect(try PosixTimerPlan.clock(Self.entry(clock: c), ownPid: 100, who: "p").get() == c)
        }
        // The process's own CPU clock by pid (clock_getcpuclockid) is its CPU clock.
        #expect(try PosixTimerPlan.clock(Self.entry(clock: (~100 << 3) | 2), ownPid: 100, who: "p").get() == -6)
        let other = PosixTimerPlan.clock(Self.entry(clock: (~200 << 3) | 2), ownPid: 100, who: "process 100 (x)")
        #expect(throws: PosixTimerPlan.Refusal.self) { try other.get() }
        if case .failure(let r) = other {
            #expect(r.description.contains("cannot checkpoint process 100 (x): POSIX timer 7 runs on the CPU-time clock of process 200"))
        }
        if case .failure(let r) = PosixTimerPlan.clock(Self.entry(clock: -2), ownPid: 100, who: "p") {
            #expect(r.description.contains("CPU-time clock of one thread"))
        } else { Issue.record("a thread CPU clock was carried") }
        #expect(throws: PosixTimerPlan.Refusal.self) { try PosixTimerPlan.clock(Self.entry(clock: 4), ownPid: 100, who: "p").get() }
    }

    @Test func threadTargetMustBeOneOfTheProcess() throws {
        let threads: [Int32: Int32] = [100: 100, 101: 101]
        #expect(try PosixTimerPlan.thread(Self.entry(clock: 1, notify: 0, target: 100), threads: threads, who: "p").get() == nil)
        #expect(try PosixTimerPlan.thread(Self.entry(clock: 1, notify: 4, target: 101), threads: threads, who: "p").get() == 101)
        let gone = PosixTimerPlan.thread(Self.entry(clock: 1, notify: 4, target: 555), threads: threads, who: "p")
        #expect(throws: PosixTimerPlan.Refusal.self) { try gone.get() }
    }

    @Test func armingKeepsTimeLeftAndNeverDisarms() {
        #expect(PosixTimerPlan.arming(valueNs: 0, intervalNs: 0) == nil)
        #expect(PosixTimerPlan.arming(valueNs: 0, intervalNs: 5) == nil)
        let a = PosixTimerPlan.arming(valueNs: 1, intervalNs: 20_000_000)
        #expect(a?.valueNs == 1 && a?.intervalNs == 20_000_000)
        let b = PosixTimerPlan.arming(valueNs: 59_000_000_000, intervalNs: 0)
        #expect(b?.valueNs == 59_000_000_000 && b?.intervalNs == 0)
    }

    @Test func idsAreReachedInOrderWithABound() {
        #expect(PosixTimerPlan.step(got: 3, wanted: 3, spent: 0, budget: 10) == .keep)
        #expect(PosixTimerPlan.step(got: 1, wanted: 3, spent: 0, budget: 10) == .deleteAndRetry)
        if case .refuse(let why) = PosixTimerPlan.step(got: 4, wanted: 3, spent: 0, budget: 10) {
            #expect(why.contains("POSIX timer 3") && why.contains("id 4"))
        } else { Issue.record("an id past the wanted one was kept") }
        if case .refuse(let why) = PosixTimerPlan.step(got: 1, wanted: 300, spent: 10, budget: 10) {
            #expect(why.contains("more than 10"))
        } else { Issue.record("the budget was not enforced") }
        let order = PosixTimerPlan.creationOrder([PosixTimer(id: 5, clock: 1, notify: 0, signal: 10),
                                                   PosixTimer(id: 0, clock: 1, notify: 0, signal: 10)]).map(\.id)
        #expect(order == [0, 5])
    }

    @Test func aFreeBSDTargetRefusesPosixTimers() {
        var p = ProcessImage(pid: 7, threads: [ThreadImage(tid: 7)])
        p.posixTimers = [PosixTimer(id: 2, clock: 1, notify: 0, signal: 10)]
        #expect(FreeBSDTargetCheck.reasons(process: p).contains { $0.contains("POSIX timer (timer_create, id 2)") })
    }
}
