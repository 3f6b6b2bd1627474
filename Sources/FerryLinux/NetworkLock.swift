#if os(Linux)
import Glibc
import CFerryLinux

extension InetSocket {
    /// The network lock of an established connection while its tree is
    /// frozen: a classic BPF socket filter that drops every segment the
    /// socket receives, attached (through ferry's copy of the socket, which
    /// shares the process's socket) before the queues are read. Without it
    /// the source's kernel would acknowledge bytes the peer sends after the
    /// receive queue was read — bytes the image lacks and the peer never
    /// sends again. With it the peer sees its segments unacknowledged and
    /// retransmits them, to the restored socket or, when the source goes on,
    /// to the source once the filter is detached (`unlock`). A checkpoint
    /// refuses sockets that carry a filter of their own
    /// (`InetSocket.uncarried`), so detaching removes only ferry's; the
    /// repair guard detaches it too should ferry die.
    enum NetworkLock {
        /// Inodes of the sockets locked by this ferry: a socket seen again
        /// in the same checkpoint (a dup, or shared with another process of
        /// the tree) carries ferry's filter, not one of its own.
        nonisolated(unsafe) private static var locked = Set<UInt64>()

        static func lock(_ socket: Int32, pid: Int32, fd: Int32) throws {
            let r = ferry_socket_drop_all(socket)
            if r != 0 {
                throw SystemError("setsockopt(SO_ATTACH_FILTER)", errno: -r,
                                  "locking TCP connection fd \(fd) of \(pid) against incoming segments during the freeze")
            }
            if let i = inode(socket) { locked.insert(i) }
        }

        /// Whether `socket`'s filter is this ferry's lock.
        static func isLocked(_ socket: Int32) -> Bool {
            inode(socket).map { locked.contains($0) } ?? false
        }

        private static func inode(_ socket: Int32) -> UInt64? {
            var st = stat()
            return fstat(socket, &st) == 0 ? UInt64(st.st_ino) : nil
        }

        /// Detaches the lock; harmless on a socket without it.
        static func unlock(_ socket: Int32) {
            if let i = inode(socket) { locked.remove(i) }
            var none: Int32 = 0
            _ = setsockopt(socket, SOL_SOCKET, SO_DETACH_FILTER, &none, 4)
        }
    }
}
#endif
