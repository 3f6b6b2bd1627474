import Foundation
import Glibc
import CFerryLinux

/// A child process for the tests, started with posix_spawn and collected
/// with waitpid — no Foundation `Process`. Foundation's Process watches its
/// children through libdispatch, which on Linux crashes now and then inside
/// `_dispatch_event_loop_drain` (swift-subprocess issue #47; seen here under
/// load) and hangs in waitpid when the child is ptraced by someone else.
/// Output pipes are drained with poll(2), so a chatty child never blocks.
public final class Child: @unchecked Sendable {
    public enum Output: Sendable { case capture, null, mergeIntoStdout }

    public let pid: pid_t
    private var outFD: Int32 = -1, errFD: Int32 = -1, inFD: Int32 = -1
    private var input: [UInt8]
    private var status: Int32?
    private let lock = NSLock()

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts `args[0]` (a path) with `args[1...]`; the environment is this
    /// process's merged with `env`. Signals start with their default
    /// dispositions and unblocked; every fd ferry's tests create is close-on-exec.
    public init(_ args: [String], env: [String: String] = [:], stdin: [UInt8]? = nil,
                stdout: Output = .capture, stderr: Output = .capture) throws {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        var toClose: [Int32] = []
        defer { toClose.forEach { close($0) } }
        func pipePair() throws -> (r: Int32, w: Int32) {
            var p: [Int32] = [0, 0]
            // O_CLOEXEC at creation: other tests spawn children concurrently.
            guard ferry_pipe(&p, O_CLOEXEC) == 0 else { throw Failure(description: "pipe2: \(String(cString: strerror(errno)))") }
            return (p[0], p[1])
        }
        if let stdin {
            let p = try pipePair()
            posix_spawn_file_actions_adddup2(&fa, p.r, 0)
            toClose.append(p.r)
            inFD = p.w
            _ = fcntl(inFD, F_SETFL, O_NONBLOCK)
            input = stdin
        } else {
            posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
            input = []
        }
        var outWrite: Int32 = -1
        switch stdout {
        case .capture, .mergeIntoStdout:
            let p = try pipePair()
            posix_spawn_file_actions_adddup2(&fa, p.w, 1)
            toClose.append(p.w)
            outFD = p.r
            outWrite = p.w
        case .null:
            posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0)
        }
        switch stderr {
        case .capture:
            let p = try pipePair()
            posix_spawn_file_actions_adddup2(&fa, p.w, 2)
            toClose.append(p.w)
            errFD = p.r
        case .mergeIntoStdout where outWrite >= 0:
            posix_spawn_file_actions_adddup2(&fa, outWrite, 2)
        case .null, .mergeIntoStdout:
            posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0)
        }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let environment = ProcessInfo.processInfo.environment.merging(env) { $1 }.map { "\($0.key)=\($0.value)" }
        let argv = args.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, args[0], &fa, &attr, argv, envp)
        guard rc == 0 else {
            [outFD, errFD, inFD].filter { $0 >= 0 }.forEach { close($0) }
            throw Failure(description: "posix_spawn(\(args[0])): \(String(cString: strerror(rc)))")
        }
        pid = child
    }

    /// Runs a command to completion: (exit status or 128+signal, stdout, stderr).
    public static func run(_ args: [String], env: [String: String] = [:], stdin: [UInt8]? = nil,
                           stderr: Output = .capture) throws -> (status: Int32, stdout: String, stderr: String) {
        let c = try Child(args, env: env, stdin: stdin, stderr: stderr)
        let (out, err) = c.drain()
        return (c.wait(), String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// Feeds stdin and reads stdout/stderr until both reach end of file.
    public func drain() -> (stdout: [UInt8], stderr: [UInt8]) {
        var out: [UInt8] = [], err: [UInt8] = []
        var written = 0
        if inFD >= 0 && input.isEmpty { close(inFD); inFD = -1 }
        var buf = [UInt8](repeating: 0, count: 65536)
        while outFD >= 0 || errFD >= 0 || inFD >= 0 {
            var fds = [pollfd(fd: outFD, events: Int16(POLLIN), revents: 0), pollfd(fd: errFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: inFD, events: Int16(POLLOUT), revents: 0)]
            if poll(&fds, 3, -1) < 0 { if errno == EINTR { continue }; break }
            for (i, f) in fds.enumerated() where f.fd >= 0 && f.revents != 0 {
                if i == 2 {
                    let n = input.withUnsafeBytes { write(inFD, $0.baseAddress! + written, $0.count - written) }
                    if n > 0 { written += n }
                    if n < 0 && errno == EAGAIN { continue }
                    if n <= 0 || written == input.count { close(inFD); inFD = -1 }
                    continue
                }
                let n = read(f.fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    close(f.fd)
                    if i == 0 { outFD = -1 } else { errFD = -1 }
                } else if i == 0 { out += buf[0..<n] } else { err += buf[0..<n] }
            }
        }
        return (out, err)
    }

    /// One line of stdout (without the newline); nil at end of file.
    public func readLine() -> String? {
        guard outFD >= 0 else { return nil }
        var bytes: [UInt8] = []
        var c: UInt8 = 0
        while true {
            let n = read(outFD, &c, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if c == 10 { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(c)
        }
    }

    /// Reads stdout in a thread of its own, handing each chunk to `onData`
    /// (an empty chunk at end of file). For long-running children.
    public func streamOutput(_ onData: @escaping @Sendable ([UInt8]) -> Void) {
        let fd = outFD
        outFD = -1
        Thread.detachNewThread {
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { close(fd); onData([]); return }
                onData(Array(buf[0..<n]))
            }
        }
    }

    /// Exit status (128+signal when killed by one); waits for the child.
    @discardableResult
    public func wait() -> Int32 {
        if let s = recorded { return s }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 {
            // ECHILD: another thread collected it.
            if errno != EINTR { return recorded ?? -1 }
        }
        return record(Self.decode(st))
    }

    public var isRunning: Bool {
        if recorded != nil { return false }
        var st: Int32 = 0
        let r = waitpid(pid, &st, WNOHANG)
        if r == pid { record(Self.decode(st)); return false }
        return r == 0
    }

    /// Sends `signal` unless the child was already collected (its pid may be reused).
    public func kill(_ signal: Int32 = SIGKILL) {
        if recorded == nil { _ = Glibc.kill(pid, signal) }
    }

    private var recorded: Int32? { lock.lock(); defer { lock.unlock() }; return status }

    @discardableResult
    private func record(_ s: Int32) -> Int32 { lock.lock(); defer { lock.unlock() }; status = s; return s }

    static func decode(_ st: Int32) -> Int32 {
        let sig = st & 0x7f
        return sig == 0 ? (st >> 8) & 0xff : 128 + sig
    }

    deinit {
        [outFD, errFD, inFD].filter { $0 >= 0 }.forEach { close($0) }
    }
}
