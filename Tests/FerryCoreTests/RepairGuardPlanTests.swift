import FerryCore
import FerryImage
import Testing

struct RepairGuardPlanTests {
    typealias P = RepairGuardPlan

    @Test func messagesRoundTrip() throws {
        for (m, fds) in [(P.Message.socket(reuseAddr: 1), 2), (.socket(reuseAddr: 0), 2), (.killing, 0), (.done, 0), (.hold(pid: 42), 1), (.unhold(pid: 42), 0), (.keep(seconds: 60), 0)] {
            #expect(try P.decode(P.encode(m), descriptors: fds) == m)
        }
    }

    @Test func badMessagesAreRefusedInOneLine() {
        #expect(throws: P.Invalid.self) { try P.decode([1, 0, 0, 0], descriptors: 2) }
        #expect(throws: P.Invalid.self) { try P.decode(P.encode(.socket(reuseAddr: 1)), descriptors: 1) }
        #expect(throws: P.Invalid.self) { try P.decode(P.encode(.done), descriptors: 2) }
        #expect(throws: P.Invalid.self) { try P.decode([9, 0, 0, 0, 0, 0, 0, 0], descriptors: 0) }
        #expect(throws: P.Invalid.self) { try P.decode([1, 0, 0, 0, 7, 0, 0, 0], descriptors: 2) }
        #expect(throws: P.Invalid.self) { try P.decode(P.encode(.hold(pid: 7)), descriptors: 0) }
        #expect(throws: P.Invalid.self) { try P.decode([4, 0, 0, 0, 0, 0, 0, 0], descriptors: 1) }
        #expect(throws: P.Invalid.self) { try P.decode([5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], descriptors: 0) }
        #expect(throws: P.Invalid.self) { try P.decode([6, 0, 0, 0, 0, 0, 0, 0], descriptors: 0) }
        #expect(throws: P.Invalid.self) { try P.decode(P.encode(.keep(seconds: P.maxHoldSeconds + 1)), descriptors: 0) }
        #expect(throws: P.Invalid.self) { try P.decode(P.encode(.keep(seconds: 5)), descriptors: 1) }
    }

    @Test func theGuardHoldsOnlyAfterDoneWithAKeepAndSockets() {
        #expect(P.holds(.done, keepSeconds: 60, sockets: 1))
        #expect(!P.holds(.done, keepSeconds: 0, sockets: 1))
        #expect(!P.holds(.done, keepSeconds: 60, sockets: 0))
        // ferry died before it was done: the sockets are settled as before, never held.
        #expect(!P.holds(.killing, keepSeconds: 60, sockets: 1))
        #expect(!P.holds(.nothing, keepSeconds: 60, sockets: 1))
        #expect(P.heard(after: .killing, .keep(seconds: 60)) == .killing)
    }

    @Test func holdNamesAreChecked() {
        #expect(SourceHost.validTCPHold("ferry-tcp-hold-0123456789abcdef"))
        #expect(!SourceHost.validTCPHold("ferry-tcp-hold-0123456789ABCDEF"))
        #expect(!SourceHost.validTCPHold("ferry-tcp-hold-0123456789abcde"))
        #expect(!SourceHost.validTCPHold("ferry-tcp-hold-0123456789abcdef0"))
        #expect(!SourceHost.validTCPHold("other-0123456789abcdef"))
        #expect(!SourceHost.validTCPHold(""))
    }

    @Test func theActionFollowsWhatWasHeard() {
        #expect(P.action(.nothing) == .takeOut)
        #expect(P.action(.killing) == .takeOutUnlessDying)
        #expect(P.action(.done) == .leave)
    }

    @Test func heardFollowsTheMessages() {
        var h = P.Heard.nothing
        h = P.heard(after: h, .socket(reuseAddr: 0))
        #expect(h == .nothing)
        h = P.heard(after: h, .killing)
        #expect(h == .killing)
        h = P.heard(after: h, .done)
        #expect(h == .done)
        #expect(P.heard(after: .done, .killing) == .done)
    }

    @Test func aKilledOrGoneProcessIsDying() {
        #expect(P.dying(state: nil, flags: 0, sigPnd: nil, shdPnd: nil))
        #expect(P.dying(state: "Z", flags: 0, sigPnd: "0000000000000000", shdPnd: "0000000000000000"))
        #expect(P.dying(state: "t", flags: 0x400040, sigPnd: "0000000000000100", shdPnd: "0000000000000000"))
        #expect(P.dying(state: "R", flags: 0x400044, sigPnd: "0000000000000000", shdPnd: "0000000000000000"))
        #expect(!P.dying(state: "S", flags: 0x400040, sigPnd: "0000000000000000", shdPnd: "0000000000004000"))
        #expect(!P.dying(state: "t", flags: 0x400040, sigPnd: "zz", shdPnd: nil))
    }

    @Test func heldProcessesFollowHoldAndUnhold() {
        var held = Set<Int32>()
        for m in [P.Message.hold(pid: 5), .socket(reuseAddr: 0), .hold(pid: 6), .unhold(pid: 5), .killing] { held = P.held(after: held, m) }
        #expect(held == [6])
        #expect(P.heard(after: .nothing, .hold(pid: 6)) == .nothing)
    }

    @Test func onlyPendingDeliverableSignalsAreBlockedForTheInstant() {
        // SIGALRM (14) pending for the thread, SIGUSR1 (10) shared but blocked, SIGSTOP (19) shared.
        let alrm: UInt64 = 1 << 13, usr1: UInt64 = 1 << 9, stop: UInt64 = 1 << 18
        #expect(P.blockedForTakingBack(sigPnd: alrm, shdPnd: usr1 | stop, mask: usr1) == alrm)
        #expect(P.blockedForTakingBack(sigPnd: 0, shdPnd: stop | 1 << 8, mask: 0) == 0)
    }

    @Test func establishedInodesComeFromTheProcTable() {
        let table = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
           1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 5678 1 0000000000000000 20 4 30 10 -1
           2: garbage
        """
        #expect(P.establishedInodes(procNetTCP: table) == [5678])
    }
}
