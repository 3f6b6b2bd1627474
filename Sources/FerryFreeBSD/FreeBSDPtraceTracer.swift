#if os(FreeBSD)
// UNVERIFIED: never compiled (see Status.swift). The tracer the restorer
// uses on FreeBSD: each call is one FreeBSDPtrace call or one shim call.

import CFerryFreeBSD
import FerryCore
import FerryImage
import Glibc

public final class FreeBSDPtraceTracer: FreeBSDTracer {
    public init() {}

    public func spawnStub(_ elf: [UInt8]) throws -> (pid: Int32, thread: Int32) {
        var template = Array("/tmp/ferry-stub.XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw FreeBSDError(call: "mkstemp", errno: errno, moduleOp: nil) }
        let path = String(cString: template)
        defer { unlink(path) }
        let written = elf.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let mode = fchmod(fd, 0o700)
        close(fd)
        guard written == elf.count, mode == 0 else { throw FreeBSDError(call: "write \(path)", errno: errno, moduleOp: nil) }
        var pid: Int32 = 0
        try check(ferry_fb_spawn_traced(path, &pid), "spawn of the stub \(path)")
        guard let thread = try FreeBSDPtrace.threads(pid).first else {
            throw FreeBSDError(call: "PT_GETLWPLIST of the stub", errno: ESRCH, moduleOp: nil)
        }
        return (pid, thread)
    }

    public func remoteLinuxSyscall(pid: Int32, thread: Int32, _ call: InjectedLinuxSyscall, _ args: [UInt64]) throws -> (ret: Int64, errno: Int32) {
        let r = try FreeBSDPtrace.remoteLinuxSyscall(pid, thread: thread, call, args)
        return (r.ret0, r.errno)
    }

    public func write(pid: Int32, at address: UInt64, _ bytes: [UInt8]) throws {
        try FreeBSDPtrace.write(pid, at: address, bytes)
    }

    public func setRegisters(thread: Int32, _ regs: FreeBSDReg) throws {
        var r = ferry_fb_regs()
        let bytes = regs.bytes
        guard bytes.count == MemoryLayout<ferry_fb_regs>.size else {
            throw FreeBSDError(call: "PT_SETREGS (struct reg is \(MemoryLayout<ferry_fb_regs>.size) bytes)", errno: EINVAL, moduleOp: nil)
        }
        withUnsafeMutableBytes(of: &r) { $0.copyBytes(from: bytes) }
        try FreeBSDPtrace.setRegisters(thread, r)
    }

    public func setBases(thread: Int32, fs: UInt64, gs: UInt64) throws {
        try FreeBSDPtrace.setBases(thread, fs: fs, gs: gs)
    }

    /// XCR0 (xgetbv), the area size and the component offsets (CPUID leaf
    /// 0xD) of this CPU, which the restored threads run on.
    public func cpu() throws -> CPUFeatures {
        let xcr0 = ferry_fb_xcr0()
        var out: [UInt32] = [0, 0, 0, 0]
        ferry_fb_cpuid(0xd, 0, &out)
        let size = out[1]
        var layout: [XSaveExtent] = []
        for c in 2..<63 where xcr0 & (1 << UInt64(c)) != 0 {
            ferry_fb_cpuid(0xd, UInt32(c), &out)
            layout.append(XSaveExtent(component: c, offset: Int(out[1]), size: Int(out[0])))
        }
        return CPUFeatures(xcr0: xcr0, xsaveSize: size, flags: [], xsaveLayout: layout)
    }

    public func setXState(thread: Int32, _ area: [UInt8]) throws {
        try FreeBSDPtrace.setXState(thread, area)
    }

    public func detach(pid: Int32) throws {
        try FreeBSDPtrace.detach(pid)
    }

    public func kill(pid: Int32) {
        _ = ferry_fb_kill(pid)
        var status: Int32 = 0
        _ = ferry_fb_waitpid(pid, &status, 0)
    }
}
#endif
