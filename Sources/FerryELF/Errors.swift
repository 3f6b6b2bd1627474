#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why an ELF file could not be read.
///
/// Its `description` is one line that names the file (or `<memory>` for
/// bytes given in memory) and what is wrong with it, e.g.
/// `/tmp/a.out: truncated: section 12 (.text) ends at 0x5123 but the file has 0x4000 bytes`.
public struct ELFError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// The file could not be opened or read; `call` failed with `errno`.
        case io(call: String, errno: Int32)
        /// Something ends beyond the end of the file.
        case truncated(String)
        /// The bytes do not start with the ELF magic `\u{7f}ELF`.
        case notELF
        /// `EI_CLASS` is not ELFCLASS64 (1 is 32-bit).
        case wrongClass(UInt8)
        /// `EI_DATA` is not little-endian (2 is big-endian).
        case wrongByteOrder(UInt8)
        /// `e_machine` is not EM_X86_64 (62).
        case wrongMachine(UInt16)
        /// A header, count, index or table is inconsistent.
        case malformed(String)
        /// A libelf call failed; `message` is libelf's `elf_errmsg`.
        case libelf(call: String, message: String)
    }

    /// The path of the file, or `<memory>` for bytes given in memory.
    public let source: String
    /// What went wrong.
    public let kind: Kind

    public init(source: String, kind: Kind) {
        self.source = source
        self.kind = kind
    }

    public var description: String {
        "\(source): \(reason)"
    }

    private var reason: String {
        switch kind {
        case let .io(call, errno):
            return "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))"
        case let .truncated(what):
            return "truncated: \(what)"
        case .notELF:
            return "not an ELF file (no \\x7fELF magic)"
        case let .wrongClass(cls):
            let name = cls == 1 ? "ELF32" : "class \(cls)"
            return "wrong ELF class: \(name), only ELF64 is supported"
        case let .wrongByteOrder(data):
            let name = data == 2 ? "big-endian" : "byte order \(data)"
            return "wrong byte order: \(name), only little-endian is supported"
        case let .wrongMachine(machine):
            return "wrong machine: e_machine \(machine), only x86-64 (62) is supported"
        case let .malformed(what):
            return "malformed: \(what)"
        case let .libelf(call, message):
            return "libelf \(call) failed: \(message)"
        }
    }
}
