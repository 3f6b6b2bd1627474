import Testing
import FerryImage
@testable import FerryCore

let handlerNoRestart = SignalAction(signo: 10, handler: 0x40_2000, flags: 0x0400_0000, restorer: 0x40_3000, mask: 0)
let handlerRestart = SignalAction(signo: 10, handler: 0x40_2000, flags: 0x1400_0000, restorer: 0x40_3000, mask: 0)
let ignored = SignalAction(signo: 10, handler: 1, flags: 0, restorer: 0, mask: 0)

struct LinuxCase: Sendable, CustomTestStringConvertible {
    var label: String
    var nr: Int64
    var code: Int64            // the value in rax, e.g. -512
    var signal: SignalAction?
    var expected: SyscallRestart?
    var expectedArgs: [UInt64]? = nil
    var testDescription: String { label }
}

let argsIn: [UInt64] = [0x7ffd_0000_1000, 0x7ffd_0000_2000, 3, 4, 5, 6]

let linuxCases: [LinuxCase] = [
    .init(label: "read, ERESTARTSYS, no handler", nr: 0, code: -512, signal: nil, expected: .restart),
    .init(label: "read, ERESTARTSYS, SIG_IGN", nr: 0, code: -512, signal: ignored, expected: .restart),
    .init(label: "read, ERESTARTSYS, handler without SA_RESTART", nr: 0, code: -512, signal: handlerNoRestart, expected: .interrupted),
    .init(label: "read, ERESTARTSYS, handler with SA_RESTART", nr: 0, code: -512, signal: handlerRestart, expected: .restart),
    .init(label: "wait4, ERESTARTNOINTR, handler", nr: 61, code: -513, signal: handlerNoRestart, expected: .restart),
    .init(label: "pause, ERESTARTNOHAND, handler", nr: 34, code: -514, signal: handlerRestart, expected: .interrupted),
    .init(label: "pause, ERESTARTNOHAND, no handler", nr: 34, code: -514, signal: nil, expected: .restart),
    .init(label: "nanosleep, RESTARTBLOCK, rem given", nr: 35, code: -516, signal: nil, expected: .restartWithRemaining,
          expectedArgs: [0x7ffd_0000_2000, 0x7ffd_0000_2000, 3, 4, 5, 6]),
    .init(label: "nanosleep, RESTARTBLOCK, handler", nr: 35, code: -516, signal: handlerRestart, expected: .interrupted),
    .init(label: "poll, RESTARTBLOCK: original arguments", nr: 7, code: -516, signal: nil, expected: .restartWithRemaining, expectedArgs: argsIn),
    .init(label: "read completed with 42", nr: 0, code: 42, signal: nil, expected: nil),
    .init(label: "read completed with EINTR", nr: 0, code: -4, signal: nil, expected: nil),
]

func linuxRegs(nr: Int64, rax: Int64, args: [UInt64] = argsIn) -> LinuxUserRegs {
    var l = LinuxUserRegs()
    l.origRax = UInt64(bitPattern: nr); l.rax = UInt64(bitPattern: rax)
    l.rdi = args[0]; l.rsi = args[1]; l.rdx = args[2]; l.r10 = args[3]; l.r8 = args[4]; l.r9 = args[5]
    l.rip = 0x40_1002; l.rcx = 0x40_1002; l.r11 = 0x246; l.eflags = 0x246; l.rsp = 0x7ffd_0000_0f00
    l.cs = 0x33; l.ss = 0x2b
    return l
}

@Test(arguments: linuxCases)
func linuxNormalisation(_ c: LinuxCase) throws {
    let n = try SyscallRestartRules.normalize(linux: linuxRegs(nr: c.nr, rax: c.code), deliveringSignal: c.signal,
                                              bytesBeforeRIP: [0x0f, 0x05])
    #expect(n.syscall?.restart == c.expected)
    switch c.expected {
    case .restart?, .restartWithRemaining?:
        #expect(n.registers.rip == 0x40_1000)
        #expect(n.registers.rax == UInt64(c.nr))
        #expect(n.syscall?.number == c.nr)
        #expect(n.syscall?.args == (c.expectedArgs ?? argsIn))
        let a = n.syscall!.args
        #expect([n.registers.rdi, n.registers.rsi, n.registers.rdx, n.registers.r10, n.registers.r8, n.registers.r9] == a)
    case .interrupted?:
        #expect(n.registers.rip == 0x40_1002)
        #expect(n.registers.rax == UInt64(bitPattern: -4))
    case .none?, nil:
        #expect(n.registers.rip == 0x40_1002)
        #expect(n.registers.rax == UInt64(bitPattern: c.code))
    }
}

let clockCases: [(UInt64, Bool)] = [(0, true), (1, false)]  // TIMER_ABSTIME off / on

@Test(arguments: clockCases)
func clockNanosleepRemaining(_ flags: UInt64, _ relative: Bool) throws {
    let l = linuxRegs(nr: 230, rax: -516, args: [1, flags, 0x7ffd_0000_1000, 0x7ffd_0000_2000, 0, 0])
    let n = try SyscallRestartRules.normalize(linux: l)
    #expect(n.syscall?.restart == .restartWithRemaining)
    #expect(n.registers.rdx == (relative ? 0x7ffd_0000_2000 : 0x7ffd_0000_1000))
}

@Test func nanosleepWithoutRemainderReissuesTheRequest() throws {
    let n = try SyscallRestartRules.normalize(linux: linuxRegs(nr: 35, rax: -516, args: [0x7ffd_0000_1000, 0, 0, 0, 0, 0]))
    #expect(n.syscall?.args.first == 0x7ffd_0000_1000)
}

@Test func notInASyscall() throws {
    var l = linuxRegs(nr: -1, rax: -512)  // orig_rax -1: rax is an ordinary value
    l.origRax = .max
    let n = try SyscallRestartRules.normalize(linux: l)
    #expect(n.syscall == nil)
    #expect(n.registers == RegisterConversion.neutral(fromLinux: l))
}

@Test func syscallEntryStopRestarts() throws {
    let n = try SyscallRestartRules.normalize(linux: linuxRegs(nr: 1, rax: -38), atSyscallEntryStop: true)
    #expect(n.syscall?.restart == .restart)
    #expect(n.registers.rip == 0x40_1000 && n.registers.rax == 1)
}

@Test func rewindOntoSomethingElseIsRefused() {
    #expect(throws: SyscallRestartError.self) {
        try SyscallRestartRules.normalize(linux: linuxRegs(nr: 3, rax: -512), bytesBeforeRIP: [0xcd, 0x80])
    }
}

struct FreeBSDCase: Sendable, CustomTestStringConvertible {
    var label: String
    var stop: FreeBSDStopView.Stop
    var error: Int32
    var rewound: Bool
    var rip: UInt64           // rip the tracer sees
    var expectedRIP: UInt64
    var expected: SyscallRestart?
    var testDescription: String { label }
}

let freeBSDCases: [FreeBSDCase] = [
    .init(label: "signal stop: registers are final", stop: .signal, error: 0, rewound: true, rip: 0x40_1000, expectedRIP: 0x40_1000, expected: nil),
    .init(label: "entry stop: not yet run", stop: .syscallEntry, error: 0, rewound: false, rip: 0x40_1002, expectedRIP: 0x40_1000, expected: .restart),
    .init(label: "exit stop, ERESTART, rewound", stop: .syscallExit, error: -1, rewound: true, rip: 0x40_1000, expectedRIP: 0x40_1000, expected: .restart),
    .init(label: "exit stop, ERESTART, not rewound", stop: .syscallExit, error: -1, rewound: false, rip: 0x40_1002, expectedRIP: 0x40_1000, expected: .restart),
    .init(label: "exit stop, success", stop: .syscallExit, error: 0, rewound: true, rip: 0x40_1002, expectedRIP: 0x40_1002, expected: nil),
    .init(label: "exit stop, EINTR", stop: .syscallExit, error: 4, rewound: true, rip: 0x40_1002, expectedRIP: 0x40_1002, expected: nil),
    .init(label: "exit stop, EJUSTRETURN", stop: .syscallExit, error: -2, rewound: true, rip: 0x40_1002, expectedRIP: 0x40_1002, expected: nil),
]

@Test(arguments: freeBSDCases)
func freeBSDNormalisation(_ c: FreeBSDCase) throws {
    var f = FreeBSDReg()
    f.rip = c.rip; f.err = 2; f.rax = 0; f.rdi = 9; f.r10 = 4; f.cs = 0x43; f.ss = 0x3b
    let n = try SyscallRestartRules.normalize(freeBSD: FreeBSDStopView(registers: f, fsBase: 0x1000, gsBase: 0, stop: c.stop,
                                                                       syscallCode: 35, error: c.error, ripAlreadyRewound: c.rewound))
    #expect(n.syscall?.restart == c.expected)
    #expect(n.registers.rip == c.expectedRIP)
    #expect(n.registers.fsBase == 0x1000)
    if c.expected != nil {
        #expect(n.registers.rax == 35)
        #expect(n.syscall?.args == [9, 0, 0, 4, 0, 0])
    }
}

@Test func freeBSDOddInstructionLengthIsRefused() {
    var f = FreeBSDReg(); f.err = 7; f.rip = 0x40_1007
    #expect(throws: SyscallRestartError.self) {
        try SyscallRestartRules.normalize(freeBSD: FreeBSDStopView(registers: f, stop: .syscallEntry, syscallCode: 1))
    }
}

@Test func resumeOnLinuxAndFreeBSD() throws {
    let n = try SyscallRestartRules.normalize(linux: linuxRegs(nr: 0, rax: -512))
    var state = n.syscall!
    state.args[1] = 0x5555_0000  // e.g. fixed by stack relocation: the state is authoritative
    let l = SyscallRestartRules.linuxRegisters(resuming: n.registers, syscall: state)
    #expect((l.rip, l.rax, l.origRax, l.rsi, l.cs) == (0x40_1000, 0, 0, 0x5555_0000, 0x33))
    let f = SyscallRestartRules.freeBSDRegisters(resuming: n.registers, syscall: state)
    #expect((f.rip, f.rax, f.rsi, f.cs) == (0x40_1000, 0, 0x5555_0000, 0x43))

    let i = try SyscallRestartRules.normalize(linux: linuxRegs(nr: 0, rax: -512), deliveringSignal: handlerNoRestart)
    let li = SyscallRestartRules.linuxRegisters(resuming: i.registers, syscall: i.syscall)
    #expect((li.rip, li.rax, li.origRax) == (0x40_1002, UInt64(bitPattern: -4), UInt64.max))
}
