import CLibElf

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Owns one libelf handle, and the file descriptor or the memory copy behind
/// it, while an `ELFFile` is read. Lives only inside `ELFFile.init`, so it
/// need not be `Sendable`.
///
/// Only the libelf/gelf calls that both elfutils (Linux) and the ELF Tool
/// Chain libelf (FreeBSD base) provide are used; notes, symbol versions and
/// the interpreter string are decoded here from bounds-checked raw bytes.
final class LibElfReader {
    /// Where the bytes come from; released once, in `deinit` or on a failed init.
    private enum Backing {
        case file(Int32)
        case memory(UnsafeMutableRawBufferPointer)

        func release() {
            switch self {
            case let .file(fd): close(fd)
            case let .memory(buffer): buffer.deallocate()
            }
        }
    }

    /// The path, or `<memory>`.
    let source: String
    /// The number of bytes in the file; every offset is checked against it.
    let size: UInt64
    /// The libelf handle (`Elf *`).
    let elf: OpaquePointer
    private let backing: Backing

    /// Opens the file at `path` for reading with `ELF_C_READ` (no mmap, so a
    /// file truncated under us gives an error, not SIGBUS).
    convenience init(path: String) throws(ELFError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ELFError(source: path, kind: .io(call: "open", errno: errno)) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let saved = errno
            close(fd)
            throw ELFError(source: path, kind: .io(call: "fstat", errno: saved))
        }
        try self.init(source: path, size: UInt64(max(status.st_size, 0)), backing: .file(fd))
    }

    /// Reads `bytes` from a private copy that lives as long as the handle.
    convenience init(bytes: [UInt8]) throws(ELFError) {
        let copy = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
        try self.init(source: "<memory>", size: UInt64(bytes.count), backing: .memory(copy))
    }

    private init(source: String, size: UInt64, backing: Backing) throws(ELFError) {
        let identification = Self.read(backing, at: 0, count: Int(min(size, 64)))
        if let problem = ELFHeader.problem(withIdentification: identification ?? []) {
            backing.release()
            throw ELFError(source: source, kind: problem)
        }
        _ = elf_version(UInt32(EV_CURRENT))
        let handle: OpaquePointer?
        switch backing {
        case let .file(fd):
            handle = elf_begin(fd, ELF_C_READ, nil)
        case let .memory(buffer):
            handle = elf_memory(buffer.baseAddress!.assumingMemoryBound(to: CChar.self), Int(size))
        }
        guard let handle else {
            backing.release()
            throw ELFError(source: source, kind: .libelf(call: "elf_begin", message: Self.lastMessage()))
        }
        guard elf_kind(handle) == ELF_K_ELF else {
            elf_end(handle)
            backing.release()
            throw ELFError(source: source, kind: .notELF)
        }
        self.source = source
        self.size = size
        self.backing = backing
        self.elf = handle
    }

    deinit {
        elf_end(elf)
        backing.release()
    }

    // MARK: errors

    /// An error about this file.
    func error(_ kind: ELFError.Kind) -> ELFError {
        ELFError(source: source, kind: kind)
    }

    /// An error for a failed libelf call, with libelf's own message.
    func libelfFailure(_ call: String) -> ELFError {
        error(.libelf(call: call, message: Self.lastMessage()))
    }

    private static func lastMessage() -> String {
        guard let message = elf_errmsg(-1) else { return "unknown libelf error" }
        return String(cString: message)
    }

    // MARK: bounds and raw bytes

    /// Throws `.truncated` unless `size` bytes at `offset` lie inside the file.
    func checkInFile(offset: UInt64, size: UInt64, _ what: @autoclosure () -> String) throws(ELFError) {
        let (end, overflow) = offset.addingReportingOverflow(size)
        guard !overflow, end <= self.size else {
            let endText = overflow ? "past 2^64" : "at 0x\(String(end, radix: 16))"
            throw error(.truncated(
                "\(what()) (offset 0x\(String(offset, radix: 16)), size 0x\(String(size, radix: 16))) "
                + "ends \(endText) but the file has 0x\(String(self.size, radix: 16)) bytes"))
        }
    }

    /// The `size` bytes at `offset`, after checking they lie inside the file.
    func bytes(at offset: UInt64, size: UInt64, _ what: @autoclosure () -> String) throws(ELFError) -> [UInt8] {
        try checkInFile(offset: offset, size: size, what())
        guard let bytes = Self.read(backing, at: offset, count: Int(size)) else {
            throw error(.io(call: "pread", errno: errno))
        }
        guard bytes.count == Int(size) else {
            throw error(.truncated("the file shrank to 0x\(String(offset + UInt64(bytes.count), radix: 16)) bytes while \(what()) was read"))
        }
        return bytes
    }

    private static func read(_ backing: Backing, at offset: UInt64, count: Int) -> [UInt8]? {
        switch backing {
        case let .memory(buffer):
            let start = Int(offset)
            return Array(buffer[start..<(start + count)])
        case let .file(fd):
            var result = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let got = result.withUnsafeMutableBytes {
                    pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                }
                if got < 0 && errno == EINTR { continue }
                if got <= 0 { return got == 0 ? Array(result[..<done]) : nil }
                done += got
            }
            return result
        }
    }
}
