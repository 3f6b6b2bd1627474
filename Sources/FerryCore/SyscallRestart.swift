import FerryImage

// "Stopped inside a system call", normalised.
//
// The neutral form (what the image stores) is the state from which simply
// resuming the thread does the right thing, plus a `SyscallState` saying so:
//
//   .restart / .restartWithRemaining  rip AT the 2-byte `syscall`
//       instruction, rax = syscall number, arguments in rdi, rsi, rdx, r10,
//       r8, r9 (and in `SyscallState.args`). Resuming re-executes it.
//   .interrupted  rip AFTER the instruction, rax = -EINTR: the program sees
//       the syscall fail with EINTR, as the source kernel would have made it.
//   nil  not inside a syscall (or it completed): registers as they are.
//
// Linux source (PTRACE_GETREGS at any stop): an interrupted syscall shows
// rax = -ERESTARTSYS (512) / -ERESTARTNOINTR (513) / -ERESTARTNOHAND (514) /
// -ERESTART_RESTARTBLOCK (516), orig_rax = its number, rip after the
// instruction; the kernel would resolve the code on the way back to user
// mode, depending on whether a signal handler runs then. The same rules
// apply here, with `deliveringSignal` = the action of the signal that will
// be delivered first on resume (nil: none):
//   513 NOINTR           → restart, always
//   512 RESTARTSYS       → EINTR if a handler without SA_RESTART runs, else restart
//   514 RESTARTNOHAND    → EINTR if any handler runs, else restart
//   516 RESTART_BLOCK    → EINTR if any handler runs, else the kernel would
//       call restart_syscall with per-thread state (restart_block) we cannot
//       carry. Instead the ORIGINAL syscall is re-issued (.restartWithRemaining):
//       - nanosleep(req, rem): the kernel wrote the remaining time to *rem
//         when rem ≠ NULL, so the syscall is re-issued as nanosleep(rem, rem).
//         With rem = NULL the full time is slept again (over-sleep).
//       - clock_nanosleep(clk, flags, req, rem), relative: likewise req := rem
//         when rem ≠ NULL. Absolute (TIMER_ABSTIME) sleeps return 514, not 516,
//         and are re-issued unchanged — correct for CLOCK_REALTIME; for
//         CLOCK_MONOTONIC/BOOTTIME the target's clock origin differs
//         (limit: the deadline is not translated).
//       - anything else (poll, futex wait with timeout, …): re-issued with its
//         original arguments, so a relative timeout starts again (over-wait).
//
// FreeBSD source (native ptrace, Linux-ABI tracee): the kernel resolves the
// restart when the syscall returns: ERESTART (-1) rewinds rip by tf_err (the
// instruction length, 2) and leaves rax = the syscall number; whether a
// signal interrupts with EINTR or ERESTART was decided by the kernel from
// SA_RESTART already. So at a signal stop the registers are final; only
// syscall-entry/-exit stops (PT_LWPINFO PL_FLAG_SCE/SCX, pl_syscall_code)
// need work.

/// Linux x86-64 syscall numbers FerryCore knows by name.
public enum LinuxSyscall {
    public static let nanosleep: Int64 = 35
    public static let restartSyscall: Int64 = 219
    public static let clockNanosleep: Int64 = 230
}

/// Linux kernel-internal restart codes (negated in rax).
public enum LinuxRestartCode: Int64, Sendable, CaseIterable {
    case restartSys = 512, restartNoIntr = 513, restartNoHand = 514, restartRestartBlock = 516
}

public struct SyscallRestartError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
}

/// What a native FreeBSD tracer sees of a stopped Linux-ABI thread.
public struct FreeBSDStopView: Sendable {
    public enum Stop: Sendable {
        /// A signal stop (after attach / SIGSTOP): registers are final.
        case signal
        /// PL_FLAG_SCE: the syscall `syscallCode` has not run yet.
        case syscallEntry
        /// PL_FLAG_SCX: it has run; `error` is PT_GET_SC_RET's sr_error.
        case syscallExit
    }
    public var registers: FreeBSDReg
    public var fsBase: UInt64
    public var gsBase: UInt64
    public var stop: Stop
    /// pl_syscall_code (a Linux number for a Linux-ABI tracee).
    public var syscallCode: Int64
    /// sr_error: 0, an errno, ERESTART (-1) or EJUSTRETURN (-2).
    public var error: Int32
    /// Whether rip was already rewound by tf_err at an ERESTART exit stop.
    /// FreeBSD sets the return registers before the SCX stop [inferred from
    /// sys/kern/subr_syscall.c: check on the target release], hence true.
    public var ripAlreadyRewound: Bool

    public init(registers: FreeBSDReg, fsBase: UInt64 = 0, gsBase: UInt64 = 0, stop: Stop,
                syscallCode: Int64 = -1, error: Int32 = 0, ripAlreadyRewound: Bool = true) {
        self.registers = registers; self.fsBase = fsBase; self.gsBase = gsBase; self.stop = stop
        self.syscallCode = syscallCode; self.error = error; self.ripAlreadyRewound = ripAlreadyRewound
    }
}

/// A thread's registers and syscall state in the neutral form.
public struct NormalizedThreadState: Equatable, Sendable {
    public var registers: Registers
    public var syscall: SyscallState?
    public init(registers: Registers, syscall: SyscallState?) { self.registers = registers; self.syscall = syscall }
}

public enum SyscallRestartRules {
    public static let syscallInstruction: [UInt8] = [0x0f, 0x05]
    public static let saRestart: UInt64 = 0x1000_0000
    public static let eintr: Int64 = 4
    static let timerAbstime: UInt64 = 1
    static let freeBSDERestart: Int32 = -1

    static func args(_ r: Registers) -> [UInt64] { [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9] }

    /// Linux registers → neutral. `deliveringSignal`: the action of the
    /// signal the thread will handle first on resume (nil if none).
    /// `atSyscallEntryStop`: the stop is a PTRACE_SYSCALL entry stop (the
    /// syscall orig_rax has not run). `bytesBeforeRIP`: the two bytes before
    /// rip if the caller read them; anything but `0f 05` is refused, because
    /// the rewind would land inside another instruction (or an `int 0x80`
    /// whose orig_rax is an i386 number).
    public static func normalize(linux l: LinuxUserRegs, deliveringSignal: SignalAction? = nil,
                                 atSyscallEntryStop: Bool = false, bytesBeforeRIP: [UInt8]? = nil) throws -> NormalizedThreadState {
        var r = RegisterConversion.neutral(fromLinux: l)
        let number = Int64(bitPattern: l.origRax)
        guard number >= 0 else { return NormalizedThreadState(registers: r, syscall: nil) }

        let code = LinuxRestartCode(rawValue: -Int64(bitPattern: l.rax))
        if code == nil && !atSyscallEntryStop {
            return NormalizedThreadState(registers: r, syscall: nil)  // completed; rax is its result
        }
        let handlerRuns = (deliveringSignal?.handler ?? 0) > 1
        let handlerRestarts = (deliveringSignal?.flags ?? 0) & saRestart != 0
        let interrupted: Bool
        switch code {
        case nil, .restartNoIntr?: interrupted = false
        case .restartSys?: interrupted = handlerRuns && !handlerRestarts
        case .restartNoHand?, .restartRestartBlock?: interrupted = handlerRuns
        }
        if interrupted {
            r.rax = UInt64(bitPattern: -eintr)
            return NormalizedThreadState(registers: r, syscall: SyscallState(number: number, args: args(r), restart: .interrupted))
        }
        if let bytes = bytesBeforeRIP, bytes != syscallInstruction {
            throw SyscallRestartError(description: "cannot restart syscall \(number): the instruction before rip \(hex(l.rip)) is \(bytes.map { hex($0) }) not `syscall` (0f 05); checkpoint the thread outside the syscall")
        }
        r.rip = l.rip &- 2
        r.rax = UInt64(bitPattern: number)
        var restart = SyscallRestart.restart
        if code == .restartRestartBlock {
            restart = .restartWithRemaining
            if number == LinuxSyscall.nanosleep, r.rsi != 0 {
                r.rdi = r.rsi
            } else if number == LinuxSyscall.clockNanosleep, r.rsi & timerAbstime == 0, r.r10 != 0 {
                r.rdx = r.r10
            }
        }
        return NormalizedThreadState(registers: r, syscall: SyscallState(number: number, args: args(r), restart: restart))
    }

    /// FreeBSD tracer's view → neutral.
    public static func normalize(freeBSD v: FreeBSDStopView) throws -> NormalizedThreadState {
        var r = RegisterConversion.neutral(fromFreeBSD: v.registers, fsBase: v.fsBase, gsBase: v.gsBase)
        let rewind: Bool
        switch v.stop {
        case .signal:
            return NormalizedThreadState(registers: r, syscall: nil)
        case .syscallEntry:
            rewind = true
        case .syscallExit:
            guard v.error == freeBSDERestart else { return NormalizedThreadState(registers: r, syscall: nil) }
            rewind = !v.ripAlreadyRewound
        }
        guard v.syscallCode >= 0 else {
            throw SyscallRestartError(description: "cannot restart a syscall with number \(v.syscallCode): read pl_syscall_code with PT_LWPINFO at the syscall stop")
        }
        if rewind {
            guard v.registers.err == 2 else {
                throw SyscallRestartError(description: "cannot restart syscall \(v.syscallCode): tf_err is \(v.registers.err), not the 2-byte `syscall` instruction")
            }
            r.rip = v.registers.rip &- 2
        }
        r.rax = UInt64(bitPattern: v.syscallCode)
        return NormalizedThreadState(registers: r, syscall: SyscallState(number: v.syscallCode, args: args(r), restart: .restart))
    }

    /// Neutral registers made consistent with `syscall` for resuming: for a
    /// restart, rax = number and the arguments from the state (the state is
    /// authoritative: stack relocation fixes both); for `.interrupted`,
    /// rax = -EINTR. rip is not moved: the neutral form already has it where
    /// the thread continues.
    public static func resumeRegisters(_ registers: Registers, syscall: SyscallState?) -> Registers {
        var r = registers
        switch syscall?.restart {
        case .restart?, .restartWithRemaining?:
            let s = syscall!
            r.rax = UInt64(bitPattern: s.number)
            if s.args.count == 6 {
                r.rdi = s.args[0]; r.rsi = s.args[1]; r.rdx = s.args[2]
                r.r10 = s.args[3]; r.r8 = s.args[4]; r.r9 = s.args[5]
            }
        case .interrupted?:
            r.rax = UInt64(bitPattern: -eintr)
        case .none?, nil:
            break
        }
        return r
    }

    /// The Linux register set to load (PTRACE_SETREGS) to resume the thread.
    public static func linuxRegisters(resuming registers: Registers, syscall: SyscallState?) -> LinuxUserRegs {
        RegisterConversion.linux(from: resumeRegisters(registers, syscall: syscall), syscall: syscall)
    }

    /// The FreeBSD register set to load (PT_SETREGS) to resume the thread;
    /// fs_base/gs_base go separately (PT_SETFSBASE/PT_SETGSBASE).
    public static func freeBSDRegisters(resuming registers: Registers, syscall: SyscallState?) -> FreeBSDReg {
        RegisterConversion.freeBSD(from: resumeRegisters(registers, syscall: syscall))
    }
}
