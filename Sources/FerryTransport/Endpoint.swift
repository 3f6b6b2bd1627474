import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Where `serve` listens and `migrate` connects: ADDRESS:PORT, or unix:/PATH.
public enum Endpoint: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public static func parse(_ text: String) throws -> Endpoint {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/"), path.utf8.count < 108 else {
                throw MigrationError("\"\(text)\" is not unix:/ABSOLUTE/PATH (shorter than 108 bytes)")
            }
            return .unix(path: path)
        }
        var host = text, portText = ""
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[text.index(after: close)...].dropFirst())
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
        }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty else {
            throw MigrationError("\"\(text)\" is not ADDRESS:PORT or unix:/PATH")
        }
        return .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case let .tcp(host, port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case let .unix(path): return "unix:\(path)"
        }
    }
}

/// How the peers of a listener (or the listener a client reaches) are authenticated.
public enum PeerAuthentication: Sendable {
    /// Mutual TLS with certificates signed by the given CA.
    case tls(TLSFiles)
    /// A Unix socket whose peers' uids (SO_PEERCRED) must be in the set.
    case peerUIDs(Set<UInt32>)
    /// None (`--insecure`: tests and demos only).
    case none
}

/// SO_PEERCRED's `struct ucred`.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = UInt32.max
    var gid: UInt32 = UInt32.max

    /// The credentials of the process at the other end of a Unix socket channel.
    static func of(_ channel: Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(MigrationError("cannot read the peer's credentials of this channel"))
        }
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
    }
}

/// Decisions about Unix-socket peers and socket files; pure where they can be.
public enum UnixSocketPolicy {
    /// Whether a peer with `uid` may use a listener that allows `allowed` (root always may).
    public static func admits(uid: UInt32, allowed: Set<UInt32>) -> Bool { uid == 0 || allowed.contains(uid) }

    /// The socket file's mode: only root (0600) unless other uids are allowed,
    /// whose connections SO_PEERCRED then sorts out (0666).
    public static func mode(allowed: Set<UInt32>) -> mode_t { allowed.subtracting([0]).isEmpty ? 0o600 : 0o666 }

    /// Why the directory holding the socket is unsafe (nil: safe): it must be
    /// a directory owned by root that no one else can write to (or sticky, like /tmp).
    public static func unsafeDirectory(path: String, isDirectory: Bool, owner: UInt32, mode: mode_t) -> String? {
        if !isDirectory { return "\(path) is not a directory" }
        if owner != 0 { return "\(path) is owned by uid \(owner), not root" }
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return "\(path) is writable by group or others (mode \(String(mode & 0o7777, radix: 8))) without the sticky bit"
        }
        return nil
    }

    /// Makes room for a listening socket at `path`: the directory is checked,
    /// a stale socket file (no one listening) is removed, anything else there is refused.
    static func prepare(path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        var st = stat()
        guard lstat(dir.isEmpty ? "/" : dir, &st) == 0 else {
            throw MigrationError("cannot listen on unix:\(path): \(dir) does not exist")
        }
        if let why = unsafeDirectory(path: dir, isDirectory: st.st_mode & S_IFMT == S_IFDIR, owner: st.st_uid, mode: st.st_mode) {
            throw MigrationError("cannot listen on unix:\(path): \(why); use a directory only root can write to, e.g. /run/ferry")
        }
        guard lstat(path, &st) == 0 else { return }
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw MigrationError("cannot listen on unix:\(path): a file that is not a socket is in the way (not removed)")
        }
        if isListening(path) {
            throw MigrationError("cannot listen on unix:\(path): another process is listening there")
        }
        unlink(path)
    }

    /// Whether something accepts connections at the socket `path`.
    static func isListening(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
    }

    /// Sets the mode and owner (root) of the socket file just bound.
    static func secure(path: String, allowed: Set<UInt32>) throws {
        guard chown(path, 0, 0) == 0, chmod(path, mode(allowed: allowed)) == 0 else {
            let e = errno
            unlink(path)
            throw MigrationError("cannot set the owner and mode of unix:\(path): \(String(cString: strerror(e)))")
        }
    }
}
