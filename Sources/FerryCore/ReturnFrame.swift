// A signal frame that returns a thread to itself.
//
// Before ferry redirects a live thread to run injected syscalls, it writes
// an x86-64 Linux `rt_sigframe` below the thread's stack holding the
// thread's own registers, signal mask and XSAVE state, and points the
// thread at an `rt_sigreturn` gadget (`mov $15, %rax; syscall`) with
// rsp = frame + 8. Whatever moment the tracer dies at, the thread runs at
// most the injected syscall it is in and then `rt_sigreturn`, which loads
// everything back from the frame (arch/x86/kernel/signal_64.c).
//
// Layout, as the kernel's rt_sigreturn reads it (frame = rsp - 8):
//   F+0     pretcode (unused by rt_sigreturn; holds the gadget address)
//   F+8     struct ucontext (304 bytes)
//     +0    uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
//     +8    uc_link = 0
//     +16   uc_stack { ss_sp, ss_flags = 3, ss_size }: ss_flags 3 is neither
//           0, SS_ONSTACK nor SS_DISABLE, so do_sigaltstack fails with EINVAL,
//           which restore_altstack ignores: the thread's sigaltstack stays as it is
//     +40   struct sigcontext (256 bytes): r8..r15, rdi, rsi, rbp, rbx, rdx,
//           rax, rcx, rsp, rip, eflags, cs/gs/fs/ss (u16 each), err, trapno,
//           oldmask, cr2, fpstate (+184), reserved[8]
//     +296  uc_sigmask
//   F+312   struct siginfo (128 bytes, zero; rt_sigreturn checks it is addressable)
//   F+512   the XSAVE area (64-byte aligned, as XRSTOR needs), its software
//           bytes 464..511 in the signal-frame form (struct _fpx_sw_bytes),
//           FP_XSTATE_MAGIC2 right after `xstate_size` bytes.
// F = (rsp - 128 - size) & ~63: below the red zone, 64-byte aligned.

/// Builds the frame; pure (tested without ptrace).
public enum ReturnFrame {
    public static let redZone: UInt64 = 128
    static let ucOffset = 8, sigcontextOffset = 48, sigmaskOffset = 304, xsaveOffset = 512
    static let ucFlags: UInt64 = 0x1 | 0x2 | 0x4
    /// ss_flags no kernel accepts (restore_altstack ignores the EINVAL).
    static let invalidStackFlags: UInt32 = 3
    public static let magic1: UInt32 = 0x4650_5853
    public static let magic2: UInt32 = 0x4650_5845
    static let swBytesOffset = 464
    static let minimumXStateSize = 576

    /// The encoded frame: write `bytes` at `address`; start the thread at
    /// the gadget with rsp = `entryStackPointer`.
    public struct Encoded: Equatable, Sendable {
        public var address: UInt64
        public var bytes: [UInt8]
        public var entryStackPointer: UInt64 { address + 8 }
    }

    /// The registers a thread continues with when no signal handler runs: a
    /// syscall interrupted with a restart code is set up to be issued again,
    /// as the kernel's restart logic would do (FerryCore's `normalize`; for
    /// -ERESTART_RESTARTBLOCK the original syscall with the remaining time,
    /// not restart_syscall, because rt_sigreturn resets the restart block).
    /// rt_sigreturn sets orig_rax to -1, so no further restart happens.
    public static func resumingRegisters(_ l: LinuxUserRegs) -> LinuxUserRegs {
        guard let state = try? SyscallRestartRules.normalize(linux: l), state.syscall != nil else { return l }
        var out = l
        let r = state.registers
        out.rip = r.rip; out.rax = r.rax
        out.rdi = r.rdi; out.rsi = r.rsi; out.rdx = r.rdx; out.r10 = r.r10; out.r8 = r.r8; out.r9 = r.r9
        return out
    }

    /// The part of the XSAVE area the frame carries: up to the end of the
    /// highest component in the XCR0 word (bytes 464..471 of NT_X86_XSTATE),
    /// leaving out AMX tile data unless XSTATE_BV holds it (a thread not
    /// granted AMX has a smaller fpstate->user_size, and a larger
    /// `xstate_size` makes the kernel fall back to FXSAVE-only, dropping AVX).
    public static func xstateSize(area: [UInt8]) -> Int {
        guard area.count >= minimumXStateSize else { return 512 }
        let xcr0 = area.loadLE(UInt64.self, at: XSave.xcr0Offset)
        let bv = area.loadLE(UInt64.self, at: XSave.xstateBVOffset)
        var end = minimumXStateSize
        for c in XSaveComponent.components(in: xcr0) {
            if c == .amxTiledata && bv & c.bit == 0 { continue }
            if let e = c.standardExtent { end = max(end, e.offset + e.size) }
        }
        return min(end, area.count)
    }

    /// The frame for a thread whose registers are `regs` (as frozen: the
    /// restart is applied here), mask `sigmask` and XSAVE area `xstate`
    /// (NT_X86_XSTATE; nil or shorter than 576 bytes: no FPU state in the
    /// frame, fpstate = NULL, which the kernel treats as "reset FPU" — only
    /// for CPUs without XSAVE). `gadget` goes in pretcode.
    public static func encode(regs: LinuxUserRegs, sigmask: UInt64, xstate: [UInt8]?, gadget: UInt64) -> Encoded {
        let area = xstate.flatMap { $0.count >= minimumXStateSize ? $0 : nil }
        let xsize = area.map { xstateSize(area: $0) } ?? 0
        let total = (xsaveOffset + xsize + 4 + 63) & ~63
        let address = (regs.rsp &- redZone &- UInt64(total)) & ~UInt64(63)
        var b = [UInt8](repeating: 0, count: total)
        b.storeLE(gadget, at: 0)
        b.storeLE(ucFlags, at: ucOffset)
        b.storeLE(invalidStackFlags, at: ucOffset + 16 + 8)
        let r = resumingRegisters(regs)
        let words = [r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
                     r.rax, r.rcx, r.rsp, r.rip, r.eflags]
        for (i, w) in words.enumerated() { b.storeLE(w, at: sigcontextOffset + i * 8) }
        // cs, gs, fs, ss as u16 at +144..151; the kernel forces CPL 3 on cs and ss.
        b.storeLE(UInt16(truncatingIfNeeded: r.cs), at: sigcontextOffset + 144)
        b.storeLE(UInt16(truncatingIfNeeded: r.ss), at: sigcontextOffset + 150)
        b.storeLE(sigmask, at: sigmaskOffset)
        if let area {
            b.storeLE(address + UInt64(xsaveOffset), at: sigcontextOffset + 184)
            for i in 0..<xsize { b[xsaveOffset + i] = area[i] }
            let xcr0 = area.loadLE(UInt64.self, at: XSave.xcr0Offset)
            let bv = area.loadLE(UInt64.self, at: XSave.xstateBVOffset)
            var features = xcr0
            if bv & XSaveComponent.amxTiledata.bit == 0 { features &= ~XSaveComponent.amxTiledata.bit }
            let sw = xsaveOffset + swBytesOffset
            for i in sw..<(xsaveOffset + 512) { b[i] = 0 }
            // struct _fpx_sw_bytes { u32 magic1, extended_size; u64 xfeatures; u32 xstate_size; u32 padding[7]; }
            b.storeLE(magic1, at: sw)
            b.storeLE(UInt32(xsize + 4), at: sw + 4)
            b.storeLE(features, at: sw + 8)
            b.storeLE(UInt32(xsize), at: sw + 16)
            b.storeLE(magic2, at: xsaveOffset + xsize)
        }
        return Encoded(address: address, bytes: b)
    }

    /// The registers, mask and stack address a frame holds (for tests and checks).
    public static func decode(_ bytes: [UInt8]) -> (rip: UInt64, rsp: UInt64, rax: UInt64, sigmask: UInt64, fpstate: UInt64) {
        (bytes.loadLE(UInt64.self, at: sigcontextOffset + 128), bytes.loadLE(UInt64.self, at: sigcontextOffset + 120),
         bytes.loadLE(UInt64.self, at: sigcontextOffset + 104), bytes.loadLE(UInt64.self, at: sigmaskOffset),
         bytes.loadLE(UInt64.self, at: sigcontextOffset + 184))
    }

    /// `mov $15, %rax; syscall` and `mov $15, %eax; syscall`: glibc's and
    /// musl's __restore_rt. Returns the offset of the first in `code`.
    public static let gadgets: [[UInt8]] = [[0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05], [0xb8, 0x0f, 0, 0, 0, 0x0f, 0x05]]

    public static func findGadget(in code: [UInt8]) -> (offset: Int, length: Int)? {
        guard code.count >= 7 else { return nil }
        for i in 0..<(code.count - 6) where code[i] == 0x48 || code[i] == 0xb8 {
            for g in gadgets where i + g.count <= code.count {
                var match = true
                for j in 0..<g.count where code[i + j] != g[j] { match = false; break }
                if match { return (i, g.count) }
            }
        }
        return nil
    }
}
