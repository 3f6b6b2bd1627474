#if os(Linux)
import FerryImage

/// Linux `user_regs_struct` ⇄ neutral registers + syscall state.
enum LinuxRegisters {
    static let ERESTARTSYS: Int64 = -512, ERESTARTNOINTR: Int64 = -513, ERESTARTNOHAND: Int64 = -514
    static let ERESTART_RESTARTBLOCK: Int64 = -516

    static func toNeutral(_ r: LinuxRegs) -> (Registers, SyscallState?) {
        var n = Registers()
        n.r15 = r[0]; n.r14 = r[1]; n.r13 = r[2]; n.r12 = r[3]; n.rbp = r[4]; n.rbx = r[5]; n.r11 = r[6]; n.r10 = r[7]
        n.r9 = r[8]; n.r8 = r[9]; n.rax = r[10]; n.rcx = r[11]; n.rdx = r[12]; n.rsi = r[13]; n.rdi = r[14]
        n.rip = r[16]; n.rflags = r[18]; n.rsp = r[19]; n.fsBase = r[21]; n.gsBase = r[22]
        let orig = Int64(bitPattern: r.origRax)
        guard orig >= 0 else { return (n, nil) }
        let rax = Int64(bitPattern: r.rax)
        let args = [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9]
        switch rax {
        case ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND:
            // Interrupted by our stop, no handler ran: the kernel would re-execute the syscall.
            n.rax = UInt64(bitPattern: orig)
            return (n, SyscallState(number: orig, args: args, restart: .restart))
        case ERESTART_RESTARTBLOCK:
            // The kernel would call restart_syscall with state a new process does not have;
            // re-issuing the original call is the portable equivalent (a relative sleep starts over).
            n.rax = UInt64(bitPattern: orig)
            return (n, SyscallState(number: orig, args: args, restart: .restartWithRemaining))
        default:
            // The syscall completed (or returned -EINTR): rax holds its result.
            return (n, SyscallState(number: orig, args: args, restart: .none))
        }
    }

    /// Registers to load so the thread continues as the kernel would have let it.
    /// Segment selectors are this kernel's (taken from a live thread), never the image's.
    static func fromNeutral(_ n: Registers, syscall: SyscallState?, selectorsFrom live: LinuxRegs) -> LinuxRegs {
        var r = LinuxRegs()
        r[0] = n.r15; r[1] = n.r14; r[2] = n.r13; r[3] = n.r12; r[4] = n.rbp; r[5] = n.rbx; r[6] = n.r11; r[7] = n.r10
        r[8] = n.r9; r[9] = n.r8; r[10] = n.rax; r[11] = n.rcx; r[12] = n.rdx; r[13] = n.rsi; r[14] = n.rdi
        r[16] = n.rip; r[18] = n.rflags; r[19] = n.rsp; r[21] = n.fsBase; r[22] = n.gsBase
        r[15] = UInt64.max // not in a syscall: no kernel restart processing
        for i in [17, 20, 23, 24, 25, 26] { r[i] = live[i] } // cs ss ds es fs gs
        if let sc = syscall {
            switch sc.restart {
            case .restart, .restartWithRemaining:
                // Back up to the `syscall` instruction with the number in rax.
                r.rip = n.rip &- 2
                r.rax = UInt64(bitPattern: sc.number)
                r.rdi = sc.args[0]; r.rsi = sc.args[1]; r.rdx = sc.args[2]; r.r10 = sc.args[3]; r.r8 = sc.args[4]; r.r9 = sc.args[5]
            case .interrupted:
                r.rax = UInt64(bitPattern: -4) // -EINTR
            case .none:
                break
            }
        }
        return r
    }
}
#endif
