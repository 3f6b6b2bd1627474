#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

/// State of a descriptor that ferry does not carry, refused at checkpoint by
/// name (the decisions are Uncarried's): owners and signals, eventfds whose mode the kernel hides.
public enum DescriptorChecks {
    /// Set by `--eventfds-are-counters`: eventfds on kernels that do not show
    /// EFD_SEMAPHORE in fdinfo are taken as plain counters.
    nonisolated(unsafe) public static var eventfdsAreCounters = false

    /// Test hook: with FERRY_TEST_HIDE_EVENTFD_SEMAPHORE=1 the fdinfo of an
    /// eventfd is read as kernels before 6.5 print it (no `eventfd-semaphore:` line).
    static let hideSemaphoreLine = getenv("FERRY_TEST_HIDE_EVENTFD_SEMAPHORE").map { String(cString: $0) == "1" } ?? false

    /// The fdinfo text as ferry reads it (the test hook applied).
    static func eventfdInfo(_ text: String) -> String {
        guard hideSemaphoreLine else { return text }
        return text.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("eventfd-semaphore:") }.joined(separator: "\n")
    }

    static func refuseEventFD(_ d: DescriptorFacts, fdinfo: String) throws {
        let shown = fdinfo.split(separator: "\n").contains { $0.hasPrefix("eventfd-semaphore:") }
        if let why = Uncarried.eventfd(d, modeShown: shown, areCounters: eventfdsAreCounters) { throw FerryError(why) }
    }

    /// Every distinct open file of a process (dups are checked once), with
    /// its stat: its owner and signal, and by kind what is not carried.
    /// Returns a pipe's or FIFO's size (F_GETPIPE_SZ) and the file's owner and signal, which are carried.
    static func refuse(_ d: DescriptorFacts, st: stat) throws -> (pipeSize: Int?, owner: FileOwner?) {
        let type = st.st_mode & S_IFMT
        return try with(d) { local -> (pipeSize: Int?, owner: FileOwner?) in
            let owner = try FileOwnerState.dump(d, local: local)
            guard type == S_IFIFO else { return (nil, owner) }
            let size = fcntl(local, FifoState.fGetPipeSize)
            guard size > 0 else { throw SystemError("fcntl(F_GETPIPE_SZ)", errno: errno, "reading the size of the pipe or FIFO at fd \(d.fd) of \(d.pid)") }
            return (Int(size), owner)
        }
    }

    /// Calls `body` with a copy of fd `d.fd` of `d.pid` in ferry (pidfd_getfd), closed after.
    static func with<T>(_ d: DescriptorFacts, _ body: (Int32) throws -> T) throws -> T {
        let local = ferry_fd_of_process(d.pid, d.fd)
        guard local >= 0 else { throw SystemError("pidfd_getfd(\(d.pid), \(d.fd))", errno: -local, "reading fd \(d.fd) of \(d.pid)") }
        defer { close(local) }
        return try body(local)
    }
}
#endif
