#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore

/// The owner (F_SETOWN/F_SETOWN_EX) and signal (F_SETSIG) of an open file,
/// read from a pidfd_getfd copy of the descriptor: not carried, so a file
/// that has either is refused at checkpoint (Uncarried.fileOwner).
enum FileOwnerState {
    static let fGetSig: Int32 = 11, fGetOwnEx: Int32 = 16

    /// `local`: a copy of the process's descriptor in ferry.
    static func refuse(_ d: DescriptorFacts, local: Int32) throws {
        // struct f_owner_ex { int type; pid_t pid; }
        var owner: (Int32, Int32) = (0, 0)
        guard fcntlPointer(local, fGetOwnEx, &owner) == 0 else {
            throw SystemError("fcntl(F_GETOWN_EX)", errno: errno, "reading the owner of fd \(d.fd) of \(d.pid)")
        }
        let sig = fcntl(local, fGetSig)
        guard sig >= 0 else { throw SystemError("fcntl(F_GETSIG)", errno: errno, "reading the signal of fd \(d.fd) of \(d.pid)") }
        if let why = Uncarried.fileOwner(d, ownerType: owner.0, ownerPid: owner.1, signal: sig) { throw FerryError(why) }
    }

    private static func fcntlPointer(_ fd: Int32, _ cmd: Int32, _ arg: inout (Int32, Int32)) -> Int32 {
        withUnsafeMutablePointer(to: &arg) { fcntl(fd, cmd, UnsafeMutableRawPointer($0)) }
    }
}

#endif
