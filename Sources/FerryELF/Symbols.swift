import CLibElf

/// `ELF64_ST_TYPE(st_info)`.
public struct SymbolType: ELFConstant {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let none = Self(rawValue: 0)
    /// STT_OBJECT: data.
    public static let object = Self(rawValue: 1)
    /// STT_FUNC: code.
    public static let function = Self(rawValue: 2)
    public static let section = Self(rawValue: 3)
    public static let file = Self(rawValue: 4)
    public static let common = Self(rawValue: 5)
    /// STT_TLS: an offset in the thread-local block, not an address.
    public static let tls = Self(rawValue: 6)
    /// STT_GNU_IFUNC: code that returns the address of the real function.
    public static let indirectFunction = Self(rawValue: 10)

    public static let names: [UInt8: String] = [
        0: "STT_NOTYPE", 1: "STT_OBJECT", 2: "STT_FUNC", 3: "STT_SECTION", 4: "STT_FILE",
        5: "STT_COMMON", 6: "STT_TLS", 10: "STT_GNU_IFUNC",
    ]
}

/// `ELF64_ST_BIND(st_info)`.
public struct SymbolBinding: ELFConstant {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let local = Self(rawValue: 0)
    public static let global = Self(rawValue: 1)
    public static let weak = Self(rawValue: 2)
    public static let gnuUnique = Self(rawValue: 10)

    public static let names: [UInt8: String] = [0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK", 10: "STB_GNU_UNIQUE"]
}

/// Which symbol table a symbol came from.
public enum SymbolTableKind: Sendable, Equatable {
    /// `.symtab` (SHT_SYMTAB), absent from stripped files.
    case symtab
    /// `.dynsym` (SHT_DYNSYM).
    case dynsym
}

/// One symbol table entry.
public struct Symbol: Sendable, Equatable {
    /// The plain name, without any `@VERSION` / `@@VERSION` suffix
    /// (`__vdso_clock_gettime`, not `__vdso_clock_gettime@@LINUX_2.6`).
    public let name: String
    /// The symbol version (`LINUX_2.6`, `GLIBC_2.2.5`), from `.gnu.version`
    /// for dynamic symbols or from an `@` suffix in the name; nil if none.
    public let version: String?
    /// Whether the version is hidden (`name@VERSION`, not the default
    /// `name@@VERSION`); also true for a version needed from another object.
    public let isVersionHidden: Bool
    /// The table it came from.
    public let table: SymbolTableKind
    /// `st_value`: for defined code and data, the address before the load bias.
    public let value: UInt64
    /// `st_size`.
    public let size: UInt64
    /// `ELF64_ST_TYPE(st_info)`.
    public let type: SymbolType
    /// `ELF64_ST_BIND(st_info)`.
    public let binding: SymbolBinding
    /// `st_shndx`: the section it is defined in; 0 (SHN_UNDEF) if undefined,
    /// 0xfff1 (SHN_ABS) for an absolute value.
    public let sectionIndex: UInt16

    /// Whether this object defines the symbol (`st_shndx != SHN_UNDEF`).
    public var isDefined: Bool { sectionIndex != 0 }

    /// The name as `readelf` prints it: `name@@VERSION`, `name@VERSION`, or `name`.
    public var versionedName: String {
        guard let version else { return name }
        return name + (isVersionHidden ? "@" : "@@") + version
    }
}

extension ELFFile {
    /// The symbols of `.dynsym` only.
    public var dynamicSymbols: [Symbol] { symbols.filter { $0.table == .dynsym } }

    /// The symbol called `name`, preferring a defined one over an undefined
    /// one and the default version over a hidden one. `name` may carry a
    /// version (`clock_gettime@@LINUX_2.6` or `clock_gettime@LINUX_2.6`),
    /// which must then match; without one, any version matches.
    public func symbol(named name: String) -> Symbol? {
        let wanted = SplitName(name)
        let matches = symbols.filter { symbol in
            symbol.name == wanted.name && (wanted.version == nil || symbol.version == wanted.version)
        }
        return matches.min { rank($0) < rank($1) }
    }

    private func rank(_ symbol: Symbol) -> Int {
        (symbol.isDefined ? 0 : 2) + (symbol.isVersionHidden ? 1 : 0)
    }
}

/// A symbol name split at its first `@` into the plain name and the version.
struct SplitName {
    let name: String
    let version: String?
    let isHidden: Bool

    init(_ raw: String) {
        guard let at = raw.firstIndex(of: "@"), at != raw.startIndex else {
            (name, version, isHidden) = (raw, nil, false)
            return
        }
        let rest = raw[raw.index(after: at)...]
        let isDefault = rest.hasPrefix("@")
        name = String(raw[..<at])
        version = String(isDefault ? rest.dropFirst() : rest)
        isHidden = !isDefault
    }
}

extension LibElfReader {
    /// Reads `.symtab` then `.dynsym`, skipping each table's null entry 0.
    func readSymbols(_ sections: [Section]) throws(ELFError) -> [Symbol] {
        var symbols: [Symbol] = []
        for section in sections where section.type == .symbolTable {
            symbols += try readSymbolTable(section, kind: .symtab, in: sections)
        }
        for section in sections where section.type == .dynamicSymbolTable {
            symbols += try readSymbolTable(section, kind: .dynsym, in: sections)
        }
        return symbols
    }

    private func readSymbolTable(_ section: Section, kind: SymbolTableKind,
                                 in sections: [Section]) throws(ELFError) -> [Symbol] {
        let entrySize: UInt64 = 24
        guard section.entrySize == entrySize, section.size % entrySize == 0 else {
            throw error(.malformed("symbol table \(section.name) has entry size \(section.entrySize) "
                                   + "and size \(section.size), ELF64 needs a multiple of \(entrySize)"))
        }
        let count = Int(section.size / entrySize)
        guard count <= Int32.max else { throw error(.malformed("symbol table \(section.name) is too large")) }
        let strings = try linkedSection(of: section, in: sections, type: .stringTable)
        let versions = kind == .dynsym ? try readVersions(of: section, count: count, in: sections) : nil
        guard let scn = elf_getscn(elf, section.index), let data = elf_getdata(scn, nil) else {
            throw libelfFailure("elf_getdata")
        }
        var symbols: [Symbol] = []
        symbols.reserveCapacity(count)
        for index in 1..<max(count, 1) {
            var sym = GElf_Sym()
            guard gelf_getsym(data, Int32(index), &sym) != nil else { throw libelfFailure("gelf_getsym") }
            guard let rawName = string(inSection: strings.index, at: UInt64(sym.st_name)) else {
                throw error(.malformed("symbol \(index) of \(section.name) has name offset \(sym.st_name) "
                                       + "outside \(strings.name)"))
            }
            let split = SplitName(rawName)
            let version = versions?[index]
            symbols.append(Symbol(
                name: split.name, version: version?.name ?? split.version,
                isVersionHidden: version?.isHidden ?? split.isHidden, table: kind,
                value: sym.st_value, size: sym.st_size,
                type: SymbolType(rawValue: sym.st_info & 0xf), binding: SymbolBinding(rawValue: sym.st_info >> 4),
                sectionIndex: sym.st_shndx))
        }
        return symbols
    }
}
