import CLibElf

/// `d_tag`: what a dynamic entry says.
public struct DynamicTag: ELFConstant {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// DT_NULL: ends the table.
    public static let null = Self(rawValue: 0)
    /// DT_NEEDED: a library this object needs (a string-table offset).
    public static let needed = Self(rawValue: 1)
    public static let hash = Self(rawValue: 4)
    /// DT_STRTAB: the address of the dynamic string table.
    public static let stringTable = Self(rawValue: 5)
    public static let symbolTable = Self(rawValue: 6)
    /// DT_STRSZ: the size of the dynamic string table.
    public static let stringTableSize = Self(rawValue: 10)
    /// DT_SONAME: this shared object's name (a string-table offset).
    public static let soname = Self(rawValue: 14)
    public static let rpath = Self(rawValue: 15)
    public static let debug = Self(rawValue: 21)
    public static let runpath = Self(rawValue: 29)
    public static let flags = Self(rawValue: 30)
    public static let gnuHash = Self(rawValue: 0x6fff_fef5)
    public static let versionSymbols = Self(rawValue: 0x6fff_fff0)
    /// DT_FLAGS_1 (DF_1_PIE is 0x08000000).
    public static let flags1 = Self(rawValue: 0x6fff_fffb)
    public static let versionDefinitions = Self(rawValue: 0x6fff_fffc)
    public static let versionNeeds = Self(rawValue: 0x6fff_fffe)

    public static let names: [Int64: String] = [
        0: "DT_NULL", 1: "DT_NEEDED", 2: "DT_PLTRELSZ", 3: "DT_PLTGOT", 4: "DT_HASH", 5: "DT_STRTAB",
        6: "DT_SYMTAB", 7: "DT_RELA", 8: "DT_RELASZ", 9: "DT_RELAENT", 10: "DT_STRSZ", 11: "DT_SYMENT",
        12: "DT_INIT", 13: "DT_FINI", 14: "DT_SONAME", 15: "DT_RPATH", 16: "DT_SYMBOLIC", 17: "DT_REL",
        18: "DT_RELSZ", 19: "DT_RELENT", 20: "DT_PLTREL", 21: "DT_DEBUG", 22: "DT_TEXTREL",
        23: "DT_JMPREL", 24: "DT_BIND_NOW", 25: "DT_INIT_ARRAY", 26: "DT_FINI_ARRAY",
        27: "DT_INIT_ARRAYSZ", 28: "DT_FINI_ARRAYSZ", 29: "DT_RUNPATH", 30: "DT_FLAGS",
        0x6fff_fef5: "DT_GNU_HASH", 0x6fff_fff0: "DT_VERSYM", 0x6fff_fffb: "DT_FLAGS_1",
        0x6fff_fffc: "DT_VERDEF", 0x6fff_fffd: "DT_VERDEFNUM", 0x6fff_fffe: "DT_VERNEED",
        0x6fff_ffff: "DT_VERNEEDNUM",
    ]
}

/// One entry of the dynamic table, up to (not including) DT_NULL.
public struct DynamicEntry: Sendable, Equatable {
    /// `d_tag`.
    public let tag: DynamicTag
    /// `d_un`: a value, an address (before the load bias) or a string-table offset.
    public let value: UInt64
}

/// The dynamic table with the strings its entries name.
struct DynamicInfo {
    var entries: [DynamicEntry] = []
    var needed: [String] = []
    var soname: String?
    var runpath: String?
}

extension LibElfReader {
    /// Reads the SHT_DYNAMIC section, or PT_DYNAMIC when the file has no
    /// section headers (as in some memory dumps), and resolves DT_NEEDED,
    /// DT_SONAME and DT_RUNPATH (or DT_RPATH) to strings.
    func readDynamic(_ sections: [Section], _ segments: [Segment]) throws(ELFError) -> DynamicInfo {
        var info = DynamicInfo()
        let strings: (UInt64) -> String?
        if let section = sections.first(where: { $0.type == .dynamic }) {
            let table = try linkedSection(of: section, in: sections, type: .stringTable)
            info.entries = try readDynamicSection(section)
            strings = { self.string(inSection: table.index, at: $0) }
        } else if let segment = segments.first(where: { $0.type == .dynamic }) {
            let raw = LittleEndianBytes(try bytes(at: segment.offset, size: segment.fileSize, "PT_DYNAMIC"))
            info.entries = Self.decodeDynamic(raw)
            let table = try dynamicStringTable(info.entries, segments)
            strings = { offset in offset < UInt64(Int.max) ? table.cString(at: Int(offset)) : nil }
        } else {
            return info
        }
        for entry in info.entries where [.needed, .soname, .runpath, .rpath].contains(entry.tag) {
            guard let string = strings(entry.value) else {
                throw error(.malformed("\(entry.tag) names string offset \(entry.value) outside the dynamic string table"))
            }
            switch entry.tag {
            case .needed: info.needed.append(string)
            case .soname: info.soname = string
            default: info.runpath = info.runpath ?? string
            }
        }
        return info
    }

    private func readDynamicSection(_ section: Section) throws(ELFError) -> [DynamicEntry] {
        let entrySize: UInt64 = 16
        guard section.size % entrySize == 0, section.size / entrySize <= UInt64(Int32.max) else {
            throw error(.malformed("\(section.name) has size \(section.size), not a multiple of \(entrySize)"))
        }
        guard let scn = elf_getscn(elf, section.index), let data = elf_getdata(scn, nil) else {
            throw libelfFailure("elf_getdata")
        }
        var entries: [DynamicEntry] = []
        for index in 0..<Int32(section.size / entrySize) {
            var dyn = GElf_Dyn()
            guard gelf_getdyn(data, index, &dyn) != nil else { throw libelfFailure("gelf_getdyn") }
            guard dyn.d_tag != 0 else { break }
            entries.append(DynamicEntry(tag: DynamicTag(rawValue: dyn.d_tag), value: dyn.d_un.d_val))
        }
        return entries
    }

    private static func decodeDynamic(_ raw: LittleEndianBytes) -> [DynamicEntry] {
        var entries: [DynamicEntry] = []
        var offset = 0
        while let tag = raw.integer(Int64.self, at: offset), tag != 0,
              let value = raw.integer(UInt64.self, at: offset + 8) {
            entries.append(DynamicEntry(tag: DynamicTag(rawValue: tag), value: value))
            offset += 16
        }
        return entries
    }

    /// The bytes of the string table DT_STRTAB/DT_STRSZ point at, found
    /// through the PT_LOAD segment that maps its address.
    private func dynamicStringTable(_ entries: [DynamicEntry], _ segments: [Segment]) throws(ELFError) -> LittleEndianBytes {
        guard let address = entries.first(where: { $0.tag == .stringTable })?.value,
              let size = entries.first(where: { $0.tag == .stringTableSize })?.value else {
            return LittleEndianBytes([])
        }
        guard let load = segments.first(where: {
            $0.type == .load && address >= $0.virtualAddress && address - $0.virtualAddress < $0.fileSize
        }), size <= load.fileSize - (address - load.virtualAddress) else {
            throw error(.malformed("DT_STRTAB 0x\(String(address, radix: 16)) (size \(size)) is not inside a loaded segment"))
        }
        return LittleEndianBytes(try bytes(at: load.offset + (address - load.virtualAddress), size: size, "DT_STRTAB"))
    }
}
