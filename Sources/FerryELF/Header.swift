import CLibElf

/// `e_type`: what kind of ELF file this is.
public struct ELFFileType: ELFConstant {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// ET_REL: an object file (`.o`).
    public static let relocatable = Self(rawValue: 1)
    /// ET_EXEC: an executable linked at a fixed address.
    public static let executable = Self(rawValue: 2)
    /// ET_DYN: a shared object or a position-independent executable.
    public static let sharedObject = Self(rawValue: 3)
    /// ET_CORE: a core dump.
    public static let core = Self(rawValue: 4)

    public static let names: [UInt16: String] = [1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"]
}

/// `e_machine`: the instruction set. Only x86-64 files are accepted.
public struct ELFMachine: ELFConstant {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// EM_X86_64.
    public static let x86_64 = Self(rawValue: 62)

    public static let names: [UInt16: String] = [62: "EM_X86_64"]
}

/// The parts of the ELF header a reader needs; the table offsets and counts
/// are consumed while reading and show up as `segments` and `sections`.
public struct ELFHeader: Sendable, Equatable {
    /// `e_type`.
    public let type: ELFFileType
    /// `e_machine`; always `.x86_64` in a file that was read.
    public let machine: ELFMachine
    /// `EI_OSABI`: 0 (System V) or 3 (GNU/Linux) for Linux binaries, 9 for
    /// native FreeBSD ones.
    public let osABI: UInt8
    /// `e_entry`: the entry point, before the load bias is added.
    public let entry: UInt64
    /// `e_flags`.
    public let flags: UInt32

    /// Checks the first (up to 64) bytes of a file: magic, 64-bit class,
    /// little-endian data, and machine x86-64. Returns what is wrong, or nil.
    static func problem(withIdentification bytes: [UInt8]) -> ELFError.Kind? {
        let magic: [UInt8] = [0x7f, 0x45, 0x4c, 0x46]
        let headerSize = 64
        guard bytes.starts(with: magic.prefix(min(bytes.count, 4))) else { return .notELF }
        if bytes.isEmpty { return .truncated("the file is empty") }
        guard bytes.count > 5 else {
            return .truncated("the file has \(bytes.count) bytes, the ELF header needs \(headerSize)")
        }
        guard bytes[4] == 2 else { return .wrongClass(bytes[4]) }
        guard bytes[5] == 1 else { return .wrongByteOrder(bytes[5]) }
        guard bytes.count >= headerSize else {
            return .truncated("the file has \(bytes.count) bytes, the ELF header needs \(headerSize)")
        }
        let machine = UInt16(bytes[18]) | UInt16(bytes[19]) << 8
        guard machine == ELFMachine.x86_64.rawValue else { return .wrongMachine(machine) }
        return nil
    }
}

extension LibElfReader {
    /// Reads the ELF header through gelf; the identification was already
    /// checked when the reader was opened.
    func readHeader() throws(ELFError) -> ELFHeader {
        guard gelf_getclass(elf) == ELFCLASS64 else { throw error(.wrongClass(UInt8(gelf_getclass(elf)))) }
        let ehdr = try rawHeader()
        return ELFHeader(
            type: ELFFileType(rawValue: ehdr.e_type),
            machine: ELFMachine(rawValue: ehdr.e_machine),
            osABI: ehdr.e_ident.7,
            entry: ehdr.e_entry,
            flags: ehdr.e_flags)
    }

    /// The raw ELF header (`gelf_getehdr`).
    func rawHeader() throws(ELFError) -> GElf_Ehdr {
        var ehdr = GElf_Ehdr()
        guard gelf_getehdr(elf, &ehdr) != nil else { throw libelfFailure("gelf_getehdr") }
        return ehdr
    }

    /// The number of entries in the program or section header table, checked
    /// to lie inside the file. `libelfCount` is what libelf reports (it
    /// resolves extended numbering, and quietly shrinks a table that does
    /// not fit); `declared` is the header's own count, 0 when extended.
    func checkedTableCount(_ what: String, offset: UInt64, declared: UInt16, libelfCount: Int,
                           entrySize: UInt16, expected: UInt64) throws(ELFError) -> Int {
        let count = declared > 0 ? Int(declared) : libelfCount
        guard count > 0 else { return 0 }
        guard UInt64(entrySize) == expected else {
            throw error(.malformed("\(what) entries are \(entrySize) bytes, ELF64 needs \(expected)"))
        }
        try checkInFile(offset: offset, size: UInt64(count) * expected, "\(what) (\(count) entries)")
        guard libelfCount == count else {
            throw error(.malformed("\(what) has \(count) entries but libelf sees \(libelfCount)"))
        }
        return count
    }
}
