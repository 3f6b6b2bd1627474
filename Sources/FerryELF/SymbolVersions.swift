/// GNU symbol versioning: `.gnu.version` gives each dynamic symbol an index,
/// `.gnu.version_d` names the versions this object defines and
/// `.gnu.version_r` the versions it needs from others. Decoded from raw bytes
/// because the gelf version accessors are an elfutils extension.
struct SymbolVersion {
    let name: String
    let isHidden: Bool
}

extension LibElfReader {
    /// One optional version per entry of the dynamic symbol table `dynsym`
    /// (`count` entries), or nil when it has no `.gnu.version` section.
    func readVersions(of dynsym: Section, count: Int, in sections: [Section]) throws(ELFError) -> [SymbolVersion?]? {
        guard let versym = sections.first(where: { $0.type == .gnuVersionSymbols && Int($0.link) == dynsym.index })
        else { return nil }
        guard versym.size == UInt64(count) * 2 else {
            throw error(.malformed("\(versym.name) has \(versym.size / 2) entries for \(count) dynamic symbols"))
        }
        var names: [UInt16: SymbolVersion] = [:]
        for section in sections where section.type == .gnuVersionDefinitions {
            try readDefinitions(section, in: sections, into: &names)
        }
        for section in sections where section.type == .gnuVersionNeeds {
            try readNeeds(section, in: sections, into: &names)
        }
        let raw = LittleEndianBytes(try bytes(at: versym.offset, size: versym.size, versym.name))
        return (0..<count).map { index in
            let value = raw.integer(UInt16.self, at: index * 2) ?? 0
            let versionIndex = value & 0x7fff
            guard versionIndex > 1, let version = names[versionIndex] else { return nil }
            return SymbolVersion(name: version.name, isHidden: version.isHidden || value & 0x8000 != 0)
        }
    }

    /// Verdef records (20 bytes): `vd_ndx` at +4, `vd_aux` at +12, `vd_next`
    /// at +16; the first Verdaux (`vda_name` at +0) names the version.
    private func readDefinitions(_ section: Section, in sections: [Section],
                                 into names: inout [UInt16: SymbolVersion]) throws(ELFError) {
        let (raw, strings) = try versionTable(section, in: sections)
        for offset in try chain(in: raw, from: 0, count: Int(section.info), recordSize: 20, nextAt: 16, section) {
            guard let index = raw.integer(UInt16.self, at: offset + 4),
                  let aux = raw.integer(UInt32.self, at: offset + 12),
                  let name = versionName(in: raw, at: offset + Int(aux), strings)
            else { throw error(.malformed("\(section.name) record at offset \(offset) is cut off or names nothing")) }
            names[index & 0x7fff] = SymbolVersion(name: name, isHidden: false)
        }
    }

    /// Verneed records (16 bytes): `vn_cnt` at +2, `vn_aux` at +8, `vn_next`
    /// at +12; each Vernaux (16 bytes) has `vna_other` (the index) at +6,
    /// `vna_name` at +8 and `vna_next` at +12. Needed versions always print
    /// with a single `@`.
    private func readNeeds(_ section: Section, in sections: [Section],
                           into names: inout [UInt16: SymbolVersion]) throws(ELFError) {
        let (raw, strings) = try versionTable(section, in: sections)
        for offset in try chain(in: raw, from: 0, count: Int(section.info), recordSize: 16, nextAt: 12, section) {
            guard let auxCount = raw.integer(UInt16.self, at: offset + 2),
                  let aux = raw.integer(UInt32.self, at: offset + 8)
            else { throw error(.malformed("\(section.name) record at offset \(offset) is cut off")) }
            let auxOffsets = try chain(in: raw, from: offset + Int(aux), count: Int(auxCount),
                                       recordSize: 16, nextAt: 12, section)
            for auxOffset in auxOffsets {
                guard let index = raw.integer(UInt16.self, at: auxOffset + 6),
                      let name = versionName(in: raw, at: auxOffset + 8, strings)
                else { throw error(.malformed("\(section.name) record at offset \(auxOffset) is cut off or names nothing")) }
                names[index & 0x7fff] = SymbolVersion(name: name, isHidden: true)
            }
        }
    }

    /// The raw bytes of a version section and the string table it links to.
    private func versionTable(_ section: Section, in sections: [Section]) throws(ELFError) -> (LittleEndianBytes, Section) {
        let strings = try linkedSection(of: section, in: sections, type: .stringTable)
        return (LittleEndianBytes(try bytes(at: section.offset, size: section.size, section.name)), strings)
    }

    /// The string whose offset in `strings` is the 32-bit value at `offset`.
    private func versionName(in raw: LittleEndianBytes, at offset: Int, _ strings: Section) -> String? {
        guard let nameOffset = raw.integer(UInt32.self, at: offset) else { return nil }
        return string(inSection: strings.index, at: UInt64(nameOffset))
    }

    /// The offsets of a chain of version records: the first at `start`, each
    /// next one the 32-bit value at `nextAt` further on, ending at a zero
    /// step or after `count` records (and never more than fit in `raw`).
    private func chain(in raw: LittleEndianBytes, from start: Int, count: Int, recordSize: Int, nextAt: Int,
                       _ section: Section) throws(ELFError) -> [Int] {
        var offsets: [Int] = []
        var offset = start
        for _ in 0..<min(max(count, 0), raw.count / recordSize) {
            guard let next = raw.integer(UInt32.self, at: offset + nextAt) else {
                throw error(.malformed("\(section.name) record at offset \(offset) is cut off"))
            }
            offsets.append(offset)
            guard next != 0 else { break }
            offset += Int(next)
        }
        return offsets
    }
}
