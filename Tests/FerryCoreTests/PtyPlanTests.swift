import FerryCore
import FerryImage
import Testing

/// Which end of a pty a device is, and how queued bytes are put back.
struct PtyPlanTests {
    /// A cooked terminal as a new pty has it: ICANON|ISIG|ECHO|IEXTEN…, ICRNL|IXON, OPOST|ONLCR.
    static let cooked = Termios(iflag: 0o2400, oflag: 0o5, cflag: 0o277, lflag: 0o105073,
                                cc: [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0])

    @Test func devicesAreTheirEnds() {
        #expect(PtyPlan.end(major: 5, minor: 2) == .master)
        #expect(PtyPlan.end(major: 5, minor: 1) == nil)      // /dev/console
        #expect(PtyPlan.end(major: 136, minor: 3) == .slave(3))
        #expect(PtyPlan.end(major: 137, minor: 1) == .slave(257))
        #expect(PtyPlan.end(major: 136, minor: 4000) == .slave(4000))  // large minors of the 32-bit dev_t
        #expect(PtyPlan.end(major: 4, minor: 1) == nil)
        #expect(PtyPlan.end(major: 144, minor: 0) == nil)
    }

    @Test func theInputWindowHasNoEchoSignalsOrTranslation() {
        let w = PtyPlan.inputWindow(Self.cooked)
        #expect(w.lflag & (PtyPlan.ECHO | PtyPlan.ISIG | PtyPlan.ECHOE | PtyPlan.ECHOK) == 0)
        #expect(w.lflag & PtyPlan.ICANON != 0, "lines are rebuilt as they were")
        #expect(w.lflag & PtyPlan.IEXTEN != 0, "EOL2 still ends a line")
        #expect(w.iflag & (PtyPlan.ICRNL | PtyPlan.IXON) == 0)
        #expect(w.oflag == Self.cooked.oflag && w.cc == Self.cooked.cc)
        var raw = Self.cooked
        raw.lflag &= ~PtyPlan.ICANON
        #expect(PtyPlan.inputWindow(raw).lflag & PtyPlan.IEXTEN == 0)
        #expect(PtyPlan.outputWindow(Self.cooked).oflag & PtyPlan.OPOST == 0)
        #expect(PtyPlan.outputWindow(Self.cooked).lflag == Self.cooked.lflag)
    }

    @Test func canonicalInputIsCarriedWithoutCharactersCanonicalModeActsOn() {
        let line = Array("ls -l\npartial".utf8)
        #expect(PtyPlan.queuedInput(who: "fd 3", index: 2, termios: Self.cooked, bytes: []) == nil)
        #expect(PtyPlan.queuedInput(who: "fd 3", index: 2, termios: Self.cooked, bytes: line) == nil)
        // An end-of-file mark (kept as 0), an erase (0x7f), a kill (^U) or with IEXTEN a ^W: refused.
        for b: UInt8 in [0, 127, 21, 23, 4] {
            #expect(PtyPlan.queuedInput(who: "fd 3", index: 2, termios: Self.cooked, bytes: line + [b])?.contains("0x\(String(b, radix: 16))") == true)
        }
        var noExt = Self.cooked
        noExt.lflag &= ~PtyPlan.IEXTEN
        #expect(PtyPlan.queuedInput(who: "fd 3", index: 2, termios: noExt, bytes: line + [23]) == nil, "^W is plain without IEXTEN")
        var raw = Self.cooked
        raw.lflag &= ~PtyPlan.ICANON
        #expect(PtyPlan.queuedInput(who: "fd 3", index: 2, termios: raw, bytes: [0, 127, 21, 4]) == nil, "raw input is written back as is")
    }

    @Test func packetModeOutputAndOversizedQueuesAreRefused() {
        #expect(PtyPlan.queuedOutput(who: "fd 3", index: 2, packet: false, count: 10) == nil)
        #expect(PtyPlan.queuedOutput(who: "fd 3", index: 2, packet: true, count: 0) == nil)
        #expect(PtyPlan.queuedOutput(who: "fd 3", index: 2, packet: true, count: 10)?.contains("packet mode") == true)
        #expect(PtyPlan.oversized(who: "fd 3", index: 2, count: PtyState.maxQueued) == nil)
        #expect(PtyPlan.oversized(who: "fd 3", index: 2, count: PtyState.maxQueued + 1) != nil)
        #expect(PtyPlan.indexTaken(4, got: 6).contains("/dev/pts/4"))
    }

    @Test func recordsAreValidated() {
        #expect(PtyState(termios: Self.cooked).problem() == nil)
        var t = Self.cooked
        t.cc = [1, 2]
        #expect(PtyState(termios: t).problem()?.contains("control characters") == true)
        #expect(PtyState(termios: Self.cooked, toSlave: [UInt8](repeating: 1, count: PtyState.maxQueued + 1)).problem()?.contains("queued") == true)
        #expect(PtyState(termios: Self.cooked, slaveMode: 0o100620).problem() != nil)
    }
}
