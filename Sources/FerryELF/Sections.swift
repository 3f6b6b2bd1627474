import CLibElf

/// `sh_type`: what a section holds.
public struct SectionType: ELFConstant {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let null = Self(rawValue: 0)
    public static let progbits = Self(rawValue: 1)
    /// SHT_SYMTAB: the full symbol table (often stripped).
    public static let symbolTable = Self(rawValue: 2)
    public static let stringTable = Self(rawValue: 3)
    public static let rela = Self(rawValue: 4)
    public static let hash = Self(rawValue: 5)
    public static let dynamic = Self(rawValue: 6)
    public static let note = Self(rawValue: 7)
    /// SHT_NOBITS: takes memory but no file bytes (`.bss`).
    public static let nobits = Self(rawValue: 8)
    public static let rel = Self(rawValue: 9)
    /// SHT_DYNSYM: the symbols the dynamic linker sees.
    public static let dynamicSymbolTable = Self(rawValue: 11)
    public static let gnuHash = Self(rawValue: 0x6fff_fff6)
    /// SHT_GNU_verdef: versions this object defines.
    public static let gnuVersionDefinitions = Self(rawValue: 0x6fff_fffd)
    /// SHT_GNU_verneed: versions this object needs from others.
    public static let gnuVersionNeeds = Self(rawValue: 0x6fff_fffe)
    /// SHT_GNU_versym: one version index per dynamic symbol.
    public static let gnuVersionSymbols = Self(rawValue: 0x6fff_ffff)

    public static let names: [UInt32: String] = [
        0: "SHT_NULL", 1: "SHT_PROGBITS", 2: "SHT_SYMTAB", 3: "SHT_STRTAB", 4: "SHT_RELA",
        5: "SHT_HASH", 6: "SHT_DYNAMIC", 7: "SHT_NOTE", 8: "SHT_NOBITS", 9: "SHT_REL",
        11: "SHT_DYNSYM", 14: "SHT_INIT_ARRAY", 15: "SHT_FINI_ARRAY", 16: "SHT_PREINIT_ARRAY",
        17: "SHT_GROUP", 18: "SHT_SYMTAB_SHNDX", 0x6fff_fff6: "SHT_GNU_HASH",
        0x6fff_fffd: "SHT_GNU_verdef", 0x6fff_fffe: "SHT_GNU_verneed", 0x6fff_ffff: "SHT_GNU_versym",
    ]
}

/// `sh_flags`.
public struct SectionFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// SHF_WRITE.
    public static let write = Self(rawValue: 0x1)
    /// SHF_ALLOC: occupies memory when loaded.
    public static let alloc = Self(rawValue: 0x2)
    /// SHF_EXECINSTR.
    public static let executable = Self(rawValue: 0x4)
    public static let merge = Self(rawValue: 0x10)
    public static let strings = Self(rawValue: 0x20)
    public static let infoLink = Self(rawValue: 0x40)
    /// SHF_TLS.
    public static let tls = Self(rawValue: 0x400)
}

/// One section header.
public struct Section: Sendable, Equatable {
    /// The index in the section header table (what `Symbol.sectionIndex` refers to).
    public let index: Int
    /// The name from the section-name string table, e.g. `.text`.
    public let name: String
    /// `sh_type`.
    public let type: SectionType
    /// `sh_flags`.
    public let flags: SectionFlags
    /// `sh_addr`: its address in memory (before the load bias), 0 if not allocated.
    public let address: UInt64
    /// `sh_offset`: where its bytes start in the file.
    public let offset: UInt64
    /// `sh_size`.
    public let size: UInt64
    /// `sh_link`: for symbol, dynamic and version sections, the index of their string table.
    public let link: UInt32
    /// `sh_info`.
    public let info: UInt32
    /// `sh_addralign`.
    public let alignment: UInt64
    /// `sh_entsize`.
    public let entrySize: UInt64

    /// `address ..< address + size`, cut at 2^64 if a malformed size would wrap.
    public var addressRange: Range<UInt64> {
        let (end, wraps) = address.addingReportingOverflow(size)
        return address..<(wraps ? .max : end)
    }
}

extension ELFFile {
    /// The first section called `name` (e.g. `.text`), or nil.
    public func section(named name: String) -> Section? {
        sections.first { $0.name == name }
    }
}

extension LibElfReader {
    /// Reads every section header and its name, checking each against the file size.
    func readSections() throws(ELFError) -> [Section] {
        var libelfCount = 0
        guard elf_getshdrnum(elf, &libelfCount) == 0 else { throw libelfFailure("elf_getshdrnum") }
        let ehdr = try rawHeader()
        let count = try checkedTableCount(
            "the section header table", offset: ehdr.e_shoff, declared: ehdr.e_shoff == 0 ? 0 : ehdr.e_shnum,
            libelfCount: libelfCount, entrySize: ehdr.e_shentsize, expected: 64)
        guard count > 0 else { return [] }
        var namesIndex = 0
        guard elf_getshdrstrndx(elf, &namesIndex) == 0 else { throw libelfFailure("elf_getshdrstrndx") }
        guard namesIndex < count else {
            throw error(.malformed("the section-name table index \(namesIndex) is not below the section count \(count)"))
        }
        var sections: [Section] = []
        sections.reserveCapacity(count)
        for index in 0..<count {
            var shdr = GElf_Shdr()
            guard let scn = elf_getscn(elf, index), gelf_getshdr(scn, &shdr) != nil else {
                throw libelfFailure("gelf_getshdr")
            }
            let type = SectionType(rawValue: shdr.sh_type)
            if type != .nobits && type != .null {
                try checkInFile(offset: shdr.sh_offset, size: shdr.sh_size, "section \(index)")
            }
            sections.append(Section(
                index: index, name: try sectionName(index: index, at: shdr.sh_name, namesIndex: namesIndex),
                type: type, flags: SectionFlags(rawValue: shdr.sh_flags), address: shdr.sh_addr,
                offset: shdr.sh_offset, size: shdr.sh_size, link: shdr.sh_link, info: shdr.sh_info,
                alignment: shdr.sh_addralign, entrySize: shdr.sh_entsize))
        }
        return sections
    }

    private func sectionName(index: Int, at offset: UInt32, namesIndex: Int) throws(ELFError) -> String {
        guard index != 0, namesIndex != 0 else { return "" }
        guard let name = string(inSection: namesIndex, at: UInt64(offset)) else {
            throw error(.malformed("section \(index) has name offset \(offset) outside the section-name table"))
        }
        return name
    }

    /// The NUL-terminated string at `offset` in string-table section
    /// `section` (libelf checks both), or nil.
    func string(inSection section: Int, at offset: UInt64) -> String? {
        guard let pointer = elf_strptr(elf, section, Int(offset)) else { return nil }
        return String(cString: pointer)
    }

    /// The section that `section.link` names, if it exists and has type `type`.
    func linkedSection(of section: Section, in sections: [Section], type: SectionType) throws(ELFError) -> Section {
        let link = Int(section.link)
        guard link > 0, link < sections.count, sections[link].type == type else {
            throw error(.malformed("section \(section.index) (\(section.name)) links to section \(link), "
                                   + "which is not a \(type)"))
        }
        return sections[link]
    }
}
