// Byte sinks and sources the encodings write to and read from: files (by
// POSIX descriptor, the same calls on Linux and FreeBSD), memory (tests), and
// whatever a transport provides (a socket).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFerryCRC

/// Where encoded bytes go.
public protocol ByteSink: AnyObject {
    /// Writes all of `buffer` or throws.
    func write(_ buffer: UnsafeRawBufferPointer) throws
    /// Pushes buffered bytes out.
    func flush() throws
}

/// Where encoded bytes come from.
public protocol ByteSource: AnyObject {
    /// Reads up to `buffer.count` bytes; 0 means end of input.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Like `read(into:)`, and once `buffer` is full possibly some bytes into
    /// `extra` that are available without waiting: (bytes in buffer, bytes in extra).
    func read(into buffer: UnsafeMutableRawBufferPointer, extra: UnsafeMutableRawBufferPointer) throws -> (Int, Int)
    /// A name for error messages (a path, "stream from 10.0.0.2:7001").
    var name: String { get }
}

extension ByteSource {
    public func read(into buffer: UnsafeMutableRawBufferPointer, extra: UnsafeMutableRawBufferPointer) throws -> (Int, Int) {
        (try read(into: buffer), 0)
    }
}

public func crc32c(_ buffer: UnsafeRawBufferPointer, _ crc: UInt32 = 0) -> UInt32 {
    ferry_crc32c(crc, buffer.baseAddress, buffer.count)
}

public func crc32c(_ bytes: [UInt8], _ crc: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { crc32c($0, crc) }
}

/// Collects everything in memory (tests, small images).
public final class MemorySink: ByteSink {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public func write(_ buffer: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: buffer) }
    public func flush() throws {}
}

public final class MemorySource: ByteSource {
    private let bytes: [UInt8]
    private var position = 0
    public let name: String
    public init(_ bytes: [UInt8], name: String = "<memory>") { self.bytes = bytes; self.name = name }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - position)
        if n > 0 {
            bytes.withUnsafeBytes { src in
                buffer.baseAddress!.copyMemory(from: src.baseAddress! + position, byteCount: n)
            }
        }
        position += n
        return n
    }
}

/// A file descriptor, written with a buffer so small records do not each cost a syscall.
public final class FileSink: ByteSink {
    public let fd: Int32
    public let name: String
    let ownsDescriptor: Bool
    private var buffer: UnsafeMutableRawBufferPointer
    private var used = 0
    public private(set) var bytesWritten: UInt64 = 0

    /// Creates (or truncates) `path`.
    public convenience init(path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ImageError(file: path, "cannot create: \(String(cString: strerror(errno)))") }
        self.init(fd: fd, name: path, ownsDescriptor: true)
    }

    public init(fd: Int32, name: String, ownsDescriptor: Bool = false, bufferSize: Int = 256 << 10) {
        self.fd = fd; self.name = name; self.ownsDescriptor = ownsDescriptor
        buffer = .allocate(byteCount: bufferSize, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        if ownsDescriptor { close(fd) }
    }

    public func write(_ data: UnsafeRawBufferPointer) throws {
        if used + data.count <= buffer.count {
            (buffer.baseAddress! + used).copyMemory(from: data.baseAddress!, byteCount: data.count)
            used += data.count
            return
        }
        try flush()
        if data.count >= buffer.count / 2 {
            try writeAll(data)
        } else {
            buffer.baseAddress!.copyMemory(from: data.baseAddress!, byteCount: data.count)
            used = data.count
        }
    }

    /// Moves the bytes not yet written to `destination` (writes them first
    /// if there are more than `capacity`); the caller writes them, at the
    /// current file offset.
    func movePending(to destination: UnsafeMutableRawPointer, capacity: Int) throws -> Int {
        if used > capacity { try flush() }
        let n = used
        destination.copyMemory(from: buffer.baseAddress!, byteCount: n)
        used = 0
        return n
    }

    /// Counts bytes someone else wrote to the descriptor (`PageRecordStream`).
    func noteWritten(_ n: UInt64) { bytesWritten += n }

    public func flush() throws {
        guard used > 0 else { return }
        try writeAll(UnsafeRawBufferPointer(start: buffer.baseAddress, count: used))
        used = 0
    }

    private func writeAll(_ data: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < data.count {
            let n = Glibc.write(fd, data.baseAddress! + done, data.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw ImageError(file: name, offset: Int64(bytesWritten), "write failed: \(String(cString: strerror(errno)))")
            }
            done += n
            bytesWritten += UInt64(n)
        }
    }
}

/// A file descriptor read directly (callers read in large pieces).
public final class FileSource: ByteSource {
    public let fd: Int32
    public let name: String
    private let ownsDescriptor: Bool

    public convenience init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = errno == ENOENT ? "missing (the image directory is incomplete)" : String(cString: strerror(errno))
            throw ImageError(file: path, "cannot open: \(reason)")
        }
        self.init(fd: fd, name: path, ownsDescriptor: true)
    }

    public init(fd: Int32, name: String, ownsDescriptor: Bool = false) {
        self.fd = fd; self.name = name; self.ownsDescriptor = ownsDescriptor
    }

    deinit { if ownsDescriptor { close(fd) } }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw ImageError(file: name, "read failed: \(String(cString: strerror(errno)))")
        }
    }

    /// One readv: a record's pages, and the bytes after them (its checksum, the next header) for free.
    public func read(into buffer: UnsafeMutableRawBufferPointer, extra: UnsafeMutableRawBufferPointer) throws -> (Int, Int) {
        try withUnsafeTemporaryAllocation(of: iovec.self, capacity: 2) { iov in
            iov[0] = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
            iov[1] = iovec(iov_base: extra.baseAddress, iov_len: extra.count)
            while true {
                let n = readv(fd, iov.baseAddress, 2)
                if n >= 0 { return n <= buffer.count ? (n, 0) : (buffer.count, n - buffer.count) }
                if errno == EINTR { continue }
                throw ImageError(file: name, "read failed: \(String(cString: strerror(errno)))")
            }
        }
    }
}
