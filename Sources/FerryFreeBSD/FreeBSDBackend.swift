#if os(FreeBSD)
// UNVERIFIED: never compiled. Swift cannot be cross-compiled to FreeBSD on
// the machine this was written on; this file has been neither type-checked
// nor run. Keep it thin: every call goes straight to CFerryFreeBSD, whose C
// is cross-compiled and linked for FreeBSD by kernel/check.sh.

import CFerryFreeBSD
import FerryCore

/// A failed FreeBSD call: the call's name and the errno it returned.
/// For the ferry_layout module, `description` is the module's sentence.
public struct FreeBSDError: Error, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    /// FERRY_OP_* when the error came from the kernel module.
    public let moduleOp: Int32?

    public var description: String {
        if let op = moduleOp {
            return "\(call): " + String(cString: ferry_layout_strerror(op, errno))
        }
        return "\(call): errno \(errno)"
    }
}

@discardableResult
func check(_ rc: Int32, _ call: String, op: Int32? = nil) throws -> Int32 {
    if rc < 0 { throw FreeBSDError(call: call, errno: -rc, moduleOp: op) }
    return rc
}

/// ptrace(2) on FreeBSD: freeze, memory, registers, threads, remote syscalls.
public enum FreeBSDPtrace {
    /// PT_ATTACH, then wait for the stop.
    public static func freeze(_ pid: Int32) throws {
        try check(ferry_fb_attach(pid), "PT_ATTACH")
        var status: Int32 = 0
        var sig: Int32 = 0
        repeat {
            try check(ferry_fb_waitpid(pid, &status, 0), "waitpid")
        } while ferry_fb_wifstopped(status, &sig) == 0
    }

    public static func detach(_ pid: Int32, signal: Int32 = 0) throws {
        try check(ferry_fb_detach(pid, signal), "PT_DETACH")
    }

    public static func read(_ pid: Int32, at addr: UInt64, count: Int) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        var done = 0
        try buf.withUnsafeMutableBytes { p in
            try check(ferry_fb_read(pid, addr, p.baseAddress, count, &done), "PT_IO read")
        }
        return Array(buf.prefix(done))
    }

    public static func write(_ pid: Int32, at addr: UInt64, _ bytes: [UInt8]) throws {
        var done = 0
        try bytes.withUnsafeBytes { p in
            try check(ferry_fb_write(pid, addr, p.baseAddress, bytes.count, &done), "PT_IO write")
        }
        if done != bytes.count { throw FreeBSDError(call: "PT_IO write (short)", errno: 14, moduleOp: nil) }
    }

    public static func registers(_ tid: Int32) throws -> ferry_fb_regs {
        var r = ferry_fb_regs()
        try check(ferry_fb_getregs(tid, &r), "PT_GETREGS")
        return r
    }

    public static func setRegisters(_ tid: Int32, _ r: ferry_fb_regs) throws {
        var r = r
        try check(ferry_fb_setregs(tid, &r), "PT_SETREGS")
    }

    /// XCR0 mask in use and the raw XSAVE area (PT_GETXSTATE_INFO, PT_GETXSTATE).
    public static func xstate(_ tid: Int32) throws -> (mask: UInt64, area: [UInt8]) {
        var mask: UInt64 = 0
        var len: UInt32 = 0
        try check(ferry_fb_xstate_info(tid, &mask, &len), "PT_GETXSTATE_INFO")
        var area = [UInt8](repeating: 0, count: Int(len))
        try area.withUnsafeMutableBytes { p in
            try check(ferry_fb_getxstate(tid, p.baseAddress, p.count), "PT_GETXSTATE")
        }
        return (mask, area)
    }

    public static func setXState(_ tid: Int32, _ area: [UInt8]) throws {
        try area.withUnsafeBytes { p in
            try check(ferry_fb_setxstate(tid, p.baseAddress, p.count), "PT_SETXSTATE")
        }
    }

    public static func bases(_ tid: Int32) throws -> (fs: UInt64, gs: UInt64) {
        var fs: UInt64 = 0
        var gs: UInt64 = 0
        try check(ferry_fb_getfsbase(tid, &fs), "PT_GETFSBASE")
        try check(ferry_fb_getgsbase(tid, &gs), "PT_GETGSBASE")
        return (fs, gs)
    }

    public static func setBases(_ tid: Int32, fs: UInt64, gs: UInt64) throws {
        try check(ferry_fb_setfsbase(tid, fs), "PT_SETFSBASE")
        try check(ferry_fb_setgsbase(tid, gs), "PT_SETGSBASE")
    }

    public static func threads(_ pid: Int32) throws -> [Int32] {
        var n: Int32 = 0
        try check(ferry_fb_numlwps(pid, &n), "PT_GETNUMLWPS")
        var tids = [Int32](repeating: 0, count: Int(n))
        var got: Int32 = 0
        try tids.withUnsafeMutableBufferPointer { p in
            try check(ferry_fb_lwplist(pid, p.baseAddress, n, &got), "PT_GETLWPLIST")
        }
        return Array(tids.prefix(Int(got)))
    }

    /// PT_SC_REMOTE in thread `tid` of `pid`: the syscall's return values
    /// and errno (0: success). `number` is in the target's table (`abi`);
    /// FerryCore's `RemoteSyscall.check` refuses indirection numbers, numbers
    /// past the table and too many arguments before anything is sent. The
    /// shim waits for the stop the request leaves behind.
    public static func remoteSyscall(_ pid: Int32, thread tid: Int32, _ number: UInt32, _ args: [UInt64],
                                     abi: SyscallABI, tableSize: UInt32? = nil)
        throws -> (ret0: Int64, ret1: Int64, errno: Int32)
    {
        let limit = tableSize ?? (abi == .linux64 ? RemoteSyscall.linux64TableSizeFloor
                                                  : ferry_fb_native_sysno_limit())
        if let refusal = RemoteSyscall.check(number: number, argumentCount: args.count, abi: abi, tableSize: limit) {
            throw refusal
        }
        var r0: Int64 = 0
        var r1: Int64 = 0
        var e: Int32 = 0
        try args.withUnsafeBufferPointer { p in
            try check(ferry_fb_sc_remote(pid, tid, number, limit, p.baseAddress, UInt32(args.count),
                                         &r0, &r1, &e), "PT_SC_REMOTE \(abi.rawValue) syscall \(number) in \(pid)/\(tid)")
        }
        return (r0, r1, e)
    }

    /// An injected Linux syscall into a Linuxulator target.
    public static func remoteLinuxSyscall(_ pid: Int32, thread tid: Int32, _ call: InjectedLinuxSyscall, _ args: [UInt64])
        throws -> (ret0: Int64, ret1: Int64, errno: Int32)
    {
        try remoteSyscall(pid, thread: tid, call.rawValue, args, abi: .linux64)
    }
}

/// The target's memory map, from kinfo_getvmmap(3).
public enum FreeBSDMaps {
    public static func entries(_ pid: Int32) throws -> [ferry_fb_vmentry] {
        var p: UnsafeMutablePointer<ferry_fb_vmentry>? = nil
        var n: Int32 = 0
        try check(ferry_fb_vmmap(pid, &p, &n), "kinfo_getvmmap")
        defer { ferry_fb_vmmap_free(p) }
        guard let base = p else { return [] }
        return Array(UnsafeBufferPointer(start: base, count: Int(n)))
    }

    public static func path(of e: ferry_fb_vmentry) -> String {
        var e = e
        return withUnsafeBytes(of: &e.path) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}

/// The layout of a process: the kern.proc.vm_layout sysctl (sizes in pages).
public enum FreeBSDVMLayoutSysctl {
    public static func layout(_ pid: Int32) throws -> ferry_fb_vm_layout {
        var l = ferry_fb_vm_layout()
        try check(ferry_fb_vm_layout(pid, &l), "sysctl kern.proc.vm_layout \(pid)")
        return l
    }
}

/// The ferry_layout kernel module (kernel/): SET_LAYOUT, what neither
/// ptrace nor sysctl can do.
public enum FerryLayoutModule {
    /// Sets the text and data fields of a stopped, traced Linux target to
    /// `v` (FerryCore's `FreeBSDLayoutPlan.fromLinux`), all or none; returns
    /// the layout now in force.
    public static func setLayout(_ pid: Int32, _ v: FreeBSDVMLayout) throws -> ferry_layout {
        var l = ferry_layout()
        l.fl_mask = FERRY_LF_TEXT | FERRY_LF_DATA
        l.fl_text_start = v.textStart
        l.fl_text_end = v.textEnd
        l.fl_data_start = v.dataStart
        l.fl_brk = v.brk
        return try setLayout(pid, l)
    }

    /// Sets the fields named by `l.fl_mask`, all or none; returns the
    /// layout now in force (an empty mask only reads it).
    public static func setLayout(_ pid: Int32, _ l: ferry_layout) throws -> ferry_layout {
        var l = l
        l.fl_version = UInt32(FERRY_LAYOUT_VERSION)
        l.fl_size = UInt32(MemoryLayout<ferry_layout>.size)
        try check(ferry_fb_layout_set(pid, &l), "ferry_layout SET_LAYOUT \(pid)",
                  op: Int32(FERRY_OP_SET_LAYOUT))
        return l
    }
}

/// jail(2) and RCTL for containers.
public enum FreeBSDJail {
    public enum Value {
        case string(String)
        case int(Int32)
        case flag
    }

    /// jail_set(2) with the given flags (JAIL_CREATE = 1, ...) and
    /// parameters; returns the jid.
    public static func set(_ params: [(String, Value)], flags: Int32) throws -> Int32 {
        var buffers: [UnsafeMutableRawPointer] = []
        defer { buffers.forEach { $0.deallocate() } }
        func keep(_ bytes: [UInt8], alignment: Int) -> UnsafeMutableRawPointer {
            let b = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: alignment)
            b.copyMemory(from: bytes, byteCount: bytes.count)
            buffers.append(b)
            return b
        }
        var jp: [ferry_fb_jparam] = []
        for (name, value) in params {
            let n = UnsafePointer(keep(Array(name.utf8) + [0], alignment: 1)
                .assumingMemoryBound(to: CChar.self))
            switch value {
            case .flag:
                jp.append(ferry_fb_jparam(name: n, value: nil, len: 0))
            case .int(let v):
                let bytes = withUnsafeBytes(of: v) { Array($0) }
                jp.append(ferry_fb_jparam(name: n, value: keep(bytes, alignment: 4), len: 4))
            case .string(let str):
                let bytes = Array(str.utf8) + [0]
                jp.append(ferry_fb_jparam(name: n, value: keep(bytes, alignment: 1),
                                          len: bytes.count))
            }
        }
        var msg = [CChar](repeating: 0, count: 256)
        let cap = msg.count
        let jid = jp.withUnsafeMutableBufferPointer { p in
            ferry_fb_jail_set(p.baseAddress, UInt32(p.count), flags, &msg, cap)
        }
        if jid < 0 {
            let text = String(cString: msg)
            throw FreeBSDError(call: text.isEmpty ? "jail_set" : "jail_set: \(text)",
                               errno: -jid, moduleOp: nil)
        }
        return jid
    }

    public static func attach(_ jid: Int32) throws {
        try check(ferry_fb_jail_attach(jid), "jail_attach")
    }

    public static func remove(_ jid: Int32) throws {
        try check(ferry_fb_jail_remove(jid), "jail_remove")
    }

    /// An rctl(8) rule, e.g. "jail:web:pcpu:deny=50". ENOSYS: RACCT is off.
    public static func addRule(_ rule: String) throws {
        try check(ferry_fb_rctl_add(rule), "rctl_add_rule \(rule)")
    }

    public static func removeRule(_ filter: String) throws {
        try check(ferry_fb_rctl_remove(filter), "rctl_remove_rule \(filter)")
    }
}
#endif
