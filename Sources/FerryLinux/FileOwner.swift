#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

/// The owner (F_SETOWN/F_SETOWN_EX) and signal (F_SETSIG) of an open file,
/// read from a pidfd_getfd copy of the descriptor. A process owner of the
/// tree and the signal are carried and set again on restore; a thread or
/// process group owner, or an owner outside the tree, is refused by name.
enum FileOwnerState {
    static let fGetSig: Int32 = 11, fGetOwnEx: Int32 = 16, fSetSig: UInt64 = 10, fSetOwnEx: UInt64 = 15

    /// `local`: a copy of the process's descriptor in ferry. Returns the
    /// owner (pid as ferry sees it) and signal, nil when neither is set.
    static func dump(_ d: DescriptorFacts, local: Int32) throws -> FileOwner? {
        // struct f_owner_ex { int type; pid_t pid; }
        var owner: (Int32, Int32) = (0, 0)
        guard fcntlPointer(local, fGetOwnEx, &owner) == 0 else {
            throw SystemError("fcntl(F_GETOWN_EX)", errno: errno, "reading the owner of fd \(d.fd) of \(d.pid)")
        }
        let sig = fcntl(local, fGetSig)
        guard sig >= 0 else { throw SystemError("fcntl(F_GETSIG)", errno: errno, "reading the signal of fd \(d.fd) of \(d.pid)") }
        if let why = Uncarried.fileOwner(d, ownerType: owner.0, ownerPid: owner.1, signal: sig) { throw FerryError(why) }
        return owner.1 == 0 && sig == 0 ? nil : FileOwner(pid: owner.1, signal: sig)
    }

    /// Over the tree: every owner must be one of its processes; the pid
    /// recorded becomes the owner's pid in its own namespace (what the
    /// restored process's fcntl names it by).
    static func checkTree(_ processes: inout [ProcessImage]) throws {
        let inner = Dictionary(processes.map { ($0.pid, $0.nsPids.last ?? $0.pid) }, uniquingKeysWith: { a, _ in a })
        for pi in processes.indices {
            for fi in processes[pi].files.indices {
                guard let o = processes[pi].files[fi].owner, o.pid != 0 else { continue }
                guard let pid = inner[o.pid] else {
                    let f = processes[pi].files[fi]
                    throw FerryError(Uncarried.fileOwnerOutside(DescriptorFacts(pid: processes[pi].pid, fd: f.fd, path: f.path), owner: o.pid))
                }
                processes[pi].files[fi].owner?.pid = pid
            }
        }
    }

    /// Sets the owner and signal of the restored open file at `fd` (placed already).
    static func restore(_ o: FileOwner, fd: Int32, injector: Injector, scratch: ScratchArea) throws {
        if o.pid != 0 {
            // struct f_owner_ex { int type = F_OWNER_PID; pid_t pid; }
            try injector.memory.write(scratch.data, withUnsafeBytes(of: (Int32(1), o.pid)) { Array($0) })
            let r = try injector.raw(SYS.fcntl, [UInt64(fd), fSetOwnEx, scratch.data])
            if r == -Int64(ESRCH) {
                throw FerryError("cannot restore fd \(fd) of process \(injector.memory.pid): its owner (F_SETOWN), process \(o.pid), is not restored yet (an owner created after the file's holder)")
            }
            if r < 0 { throw SystemError("fcntl(F_SETOWN_EX, \(o.pid)) on fd \(fd)", errno: Int32(-r), "in process \(injector.memory.pid)") }
        }
        if o.signal != 0 {
            try injector.call(SYS.fcntl, [UInt64(fd), fSetSig, UInt64(o.signal)], "fcntl(F_SETSIG, \(o.signal)) on fd \(fd)")
        }
    }

    private static func fcntlPointer(_ fd: Int32, _ cmd: Int32, _ arg: inout (Int32, Int32)) -> Int32 {
        withUnsafeMutablePointer(to: &arg) { fcntl(fd, cmd, UnsafeMutableRawPointer($0)) }
    }
}

#endif
