import Testing
@testable import FerryCore

@Suite struct ReturnFrameTests {
    static func regs(rsp: UInt64 = 0x7ffd_1234_5678, rip: UInt64 = 0x40_1002, rax: UInt64 = 7, orig: UInt64 = .max) -> LinuxUserRegs {
        var r = LinuxUserRegs()
        r.rsp = rsp; r.rip = rip; r.rax = rax; r.origRax = orig
        r.rdi = 1; r.rsi = 0x7ffd_0000_2000; r.rdx = 3; r.eflags = 0x246; r.cs = 0x33; r.ss = 0x2b
        return r
    }

    /// An XSAVE area as NT_X86_XSTATE gives it: XCR0 at 464, XSTATE_BV at 512.
    static func area(xcr0: UInt64, bv: UInt64, size: Int) -> [UInt8] {
        var a = [UInt8](repeating: 0xab, count: size)
        for i in 464..<576 { a[i] = 0 }
        a.storeLE(xcr0, at: 464)
        a.storeLE(bv, at: 512)
        return a
    }

    @Test func frameSitsBelowTheRedZoneAlignedAndHoldsTheRegisters() {
        let x = Self.area(xcr0: 0x2e7, bv: 0x7, size: 2696)
        let f = ReturnFrame.encode(regs: Self.regs(), sigmask: 0x1234, xstate: x, gadget: 0x7f00_0000_1000)
        #expect(f.address % 64 == 0)
        #expect(f.address + UInt64(f.bytes.count) <= Self.regs().rsp - 128)
        #expect(f.entryStackPointer == f.address + 8)
        let d = ReturnFrame.decode(f.bytes)
        #expect(d.rip == 0x40_1002 && d.rsp == 0x7ffd_1234_5678 && d.rax == 7 && d.sigmask == 0x1234)
        #expect(d.fpstate == f.address + 512 && d.fpstate % 64 == 0)
        #expect(f.bytes.loadLE(UInt64.self, at: 8) == 7)            // UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
        #expect(f.bytes.loadLE(UInt32.self, at: 32) == 3)           // ss_flags the kernel rejects: altstack untouched
        #expect(f.bytes.loadLE(UInt16.self, at: 48 + 144) == 0x33)  // cs
        #expect(f.bytes.loadLE(UInt16.self, at: 48 + 150) == 0x2b)  // ss
    }

    @Test func xsaveSoftwareBytesAreTheSignalFrameForm() {
        let x = Self.area(xcr0: 0x2e7, bv: 0x7, size: 2696)
        let f = ReturnFrame.encode(regs: Self.regs(), sigmask: 0, xstate: x, gadget: 0)
        let sw = 512 + 464
        #expect(f.bytes.loadLE(UInt32.self, at: sw) == ReturnFrame.magic1)
        #expect(f.bytes.loadLE(UInt32.self, at: sw + 4) == 2696 + 4)
        #expect(f.bytes.loadLE(UInt64.self, at: sw + 8) == 0x2e7)
        #expect(f.bytes.loadLE(UInt32.self, at: sw + 16) == 2696)
        #expect(f.bytes.loadLE(UInt32.self, at: 512 + 2696) == ReturnFrame.magic2)
        #expect(Array(f.bytes[(512 + 576)..<(512 + 2696)]) == Array(x[576..<2696]))  // AVX and up carried
    }

    @Test func amxTileDataIsLeftOutUnlessInUse() {
        let amx: UInt64 = 0x602e7
        #expect(ReturnFrame.xstateSize(area: Self.area(xcr0: amx, bv: 0x7, size: 11008)) == 2816)
        #expect(ReturnFrame.xstateSize(area: Self.area(xcr0: amx, bv: 0x40007, size: 11008)) == 11008)
        #expect(ReturnFrame.xstateSize(area: Self.area(xcr0: 0x7, bv: 0x7, size: 832)) == 832)
        let f = ReturnFrame.encode(regs: Self.regs(), sigmask: 0, xstate: Self.area(xcr0: amx, bv: 0x7, size: 11008), gadget: 0)
        #expect(f.bytes.loadLE(UInt64.self, at: 512 + 464 + 8) == 0x202e7)
        #expect(f.bytes.loadLE(UInt32.self, at: 512 + 2816) == ReturnFrame.magic2)
    }

    @Test func noXSaveAreaMeansNoFPState() {
        let f = ReturnFrame.encode(regs: Self.regs(), sigmask: 0, xstate: nil, gadget: 0)
        #expect(ReturnFrame.decode(f.bytes).fpstate == 0)
    }

    @Test("interrupted syscalls are set up as the kernel's restart would leave them", arguments: [
        (Int64(-512), UInt64(0), UInt64(0x40_1000), UInt64(0)),      // ERESTARTSYS: read again
        (Int64(-513), UInt64(61), UInt64(0x40_1000), UInt64(61)),
        (Int64(-514), UInt64(34), UInt64(0x40_1000), UInt64(34)),
        (Int64(-516), UInt64(35), UInt64(0x40_1000), UInt64(35)),    // nanosleep again, not restart_syscall
        (Int64(-4), UInt64(0), UInt64(0x40_1002), UInt64(bitPattern: -4)),  // completed with EINTR: as is
    ])
    func restart(_ code: Int64, _ nr: UInt64, _ rip: UInt64, _ rax: UInt64) {
        let r = ReturnFrame.resumingRegisters(Self.regs(rax: UInt64(bitPattern: code), orig: nr))
        #expect(r.rip == rip && r.rax == rax)
        if code == -516 { #expect(r.rdi == 0x7ffd_0000_2000) }  // nanosleep(rem, rem)
    }

    @Test func notInASyscallIsLeftAsIs() {
        let r = Self.regs()
        #expect(ReturnFrame.resumingRegisters(r) == r)
    }

    @Test func gadgetsOfGlibcAndMuslAreFound() {
        let glibc: [UInt8] = [0x90, 0x90, 0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05, 0x90]
        #expect(ReturnFrame.findGadget(in: glibc)! == (2, 9))
        let musl: [UInt8] = [0xc3, 0xb8, 0x0f, 0, 0, 0, 0x0f, 0x05]
        #expect(ReturnFrame.findGadget(in: musl)! == (1, 7))
        #expect(ReturnFrame.findGadget(in: [0xb8, 0x0f, 0, 0, 0, 0x0f, 0x04]) == nil)
        #expect(ReturnFrame.findGadget(in: [0x48]) == nil)
    }
}
