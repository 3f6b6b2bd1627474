#if os(Linux)
import Glibc
import FerryImage

/// The kernel's memory-layout fields: read from /proc/PID/stat, auxv and an
/// injected brk(0); restored with prctl(PR_SET_MM, PR_SET_MM_MAP).
public enum LayoutState {
    static func dump(pid: Int32, injector: Injector) throws -> LayoutFields {
        let s = try ProcFS.stat(pid)
        let brk = UInt64(bitPattern: try injector.call(SYS.brk, [0], "brk(0)"))
        return LayoutFields(startCode: s.field(26), endCode: s.field(27), startData: s.field(45), endData: s.field(46),
                            startBrk: s.field(47), brk: brk, startStack: s.field(28),
                            argStart: s.field(48), argEnd: s.field(49), envStart: s.field(50), envEnd: s.field(51),
                            auxv: try ProcFS.auxv(pid))
    }

    /// PR_SET_MM_MAP from inside the new process. `exeFD` is an fd in that process, or -1 to keep /proc/PID/exe.
    static func restore(_ l: LayoutFields, exeFD: Int32, injector: Injector, scratch: ScratchArea) throws {
        let auxvAddr = scratch.data + 512
        var aux = LEBytes()
        for w in l.auxv { aux.u64(w) }
        guard aux.bytes.count <= 4096 else { throw FerryError("auxv of \(l.auxv.count) words is too large") }
        try injector.memory.write(auxvAddr, aux.bytes)
        var m = LEBytes()
        for v in [l.startCode, l.endCode, l.startData, l.endData, l.startBrk, l.brk, l.startStack,
                  l.argStart, l.argEnd, l.envStart, l.envEnd, auxvAddr] { m.u64(v) }
        m.i32(Int32(aux.bytes.count)); m.i32(exeFD)
        try injector.memory.write(scratch.data, m.bytes)
        try injector.call(SYS.prctl, [35 /* PR_SET_MM */, 14 /* PR_SET_MM_MAP */, scratch.data, UInt64(m.bytes.count), 0],
                          "prctl(PR_SET_MM, PR_SET_MM_MAP) with brk \(hex(l.startBrk))-\(hex(l.brk)), stack \(hex(l.startStack))")
    }
}
#endif
