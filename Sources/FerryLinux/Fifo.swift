#if os(Linux)
import Glibc
import FerryCore

/// FIFOs (named pipes) are reopened by path on restore (Files.swift); the
/// bytes buffered in one and a size set with F_SETPIPE_SZ are not carried:
/// read from a pidfd_getfd copy (FIONREAD, F_GETPIPE_SZ, which consume
/// nothing and open no new end) and refused when present.
enum FifoState {
    static let fionread: UInt = 0x541B, fGetPipeSize: Int32 = 1032

    static func refuse(_ d: DescriptorFacts, local: Int32) throws {
        var buffered: Int32 = 0
        guard ioctl(local, fionread, &buffered) == 0 else {
            throw SystemError("ioctl(FIONREAD)", errno: errno, "reading the FIFO at fd \(d.fd) of \(d.pid)")
        }
        let size = fcntl(local, fGetPipeSize)
        guard size > 0 else { throw SystemError("fcntl(F_GETPIPE_SZ)", errno: errno, "reading the FIFO at fd \(d.fd) of \(d.pid)") }
        if let why = Uncarried.fifo(d, buffered: Int(buffered), size: Int(size)) { throw FerryError(why) }
    }
}
#endif
