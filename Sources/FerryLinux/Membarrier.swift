#if os(Linux)
import Glibc
import FerryCore

/// membarrier(2) registrations of a process's address space (Membarrier
/// decides): asked with GET_REGISTRATIONS (Linux 6.3+) from inside the
/// process, or on older kernels found by issuing each private expedited
/// barrier (EPERM when not registered; the process is frozen, so no thread
/// runs to receive it) — there a GLOBAL_EXPEDITED registration is not
/// visible. Registered again on restore.
enum MembarrierState {
    static let sysMembarrier = 324

    /// The REGISTER bits of the process `injector` runs in.
    static func dump(injector: Injector) throws -> UInt32 {
        let pid = injector.memory.pid
        let all = try injector.raw(sysMembarrier, [UInt64(Membarrier.getRegistrations), 0, 0])
        if all >= 0 {
            let registered = UInt32(truncatingIfNeeded: all)
            if let why = Membarrier.refusal(pid: pid, registered: registered) { throw FerryError(why) }
            return registered
        }
        var registered: UInt32 = 0
        for c in Membarrier.privateCommands {
            let r = try injector.raw(sysMembarrier, [UInt64(c.issue), 0, 0])
            if r == 0 {
                registered |= c.register
            } else if r != -Int64(EPERM) && r != -Int64(EINVAL) {
                throw SystemError("membarrier(\(c.issue))", errno: Int32(truncatingIfNeeded: -r), "reading the membarrier registrations of \(pid)")
            }
        }
        return registered
    }

    static func restore(_ registered: UInt32?, injector: Injector) throws {
        guard let registered, registered != 0 else { return }
        guard let commands = Membarrier.registerCommands(registered) else {
            throw FerryError("cannot restore process \(injector.memory.pid): the image names membarrier registrations ferry does not know (0x\(String(registered, radix: 16)))")
        }
        for command in commands {
            try injector.call(sysMembarrier, [UInt64(command), 0, 0], "membarrier(REGISTER \(command))")
        }
    }
}
#endif
