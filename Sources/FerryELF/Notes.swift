/// One ELF note: `namesz`, `descsz`, `type`, then the padded name and
/// description.
public struct ELFNote: Sendable, Equatable {
    /// The owner, without its NUL: `GNU`, `Linux`, `FreeBSD`, `CORE`.
    public let name: String
    /// `n_type`, which means something only together with `name`.
    public let type: UInt32
    /// The description bytes.
    public let descriptor: [UInt8]

    /// NT_GNU_BUILD_ID, with owner `GNU`.
    public static let gnuBuildIDType: UInt32 = 3
}

extension ELFFile {
    /// The GNU build-id (NT_GNU_BUILD_ID) as lower-case hex, as `readelf -n`
    /// and `file` print it, or nil if the file has none.
    public var buildID: String? {
        guard let note = notes.first(where: { $0.name == "GNU" && $0.type == ELFNote.gnuBuildIDType }) else {
            return nil
        }
        return note.descriptor.map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
    }
}

extension LibElfReader {
    /// Reads the notes of every PT_NOTE segment, or, in a file without
    /// PT_NOTE (an object file), of every SHT_NOTE section. Decoded here
    /// because `gelf_getnote` is an elfutils extension.
    func readNotes(_ sections: [Section], _ segments: [Segment]) throws(ELFError) -> [ELFNote] {
        let fromSegments = segments.filter { $0.type == .note && $0.fileSize > 0 }
        let places = fromSegments.isEmpty
            ? sections.filter { $0.type == .note }.map { ($0.offset, $0.size, $0.alignment, "section \($0.name)") }
            : fromSegments.map { ($0.offset, $0.fileSize, $0.alignment, "PT_NOTE segment") }
        var notes: [ELFNote] = []
        for (offset, size, alignment, what) in places {
            let raw = LittleEndianBytes(try bytes(at: offset, size: size, what))
            notes += try decodeNotes(raw, alignment: alignment == 8 ? 8 : 4, what)
        }
        return notes
    }

    /// Decodes a run of notes. The name starts 12 bytes into a note; the
    /// descriptor and the next note start at the next multiple of
    /// `alignment` (4, or 8 for PT_NOTE segments aligned to 8 such as
    /// `.note.gnu.property`).
    private func decodeNotes(_ raw: LittleEndianBytes, alignment: Int, _ what: String) throws(ELFError) -> [ELFNote] {
        func aligned(_ offset: Int) -> Int { (offset + alignment - 1) / alignment * alignment }
        var notes: [ELFNote] = []
        var offset = 0
        while raw.count - offset >= 12 {
            guard let nameSize = raw.integer(UInt32.self, at: offset),
                  let descriptorSize = raw.integer(UInt32.self, at: offset + 4),
                  let type = raw.integer(UInt32.self, at: offset + 8),
                  let name = raw.slice(at: offset + 12, length: Int(nameSize)),
                  let descriptor = raw.slice(at: aligned(offset + 12 + Int(nameSize)), length: Int(descriptorSize))
            else { throw error(.malformed("the note at offset \(offset) of the \(what) runs past its end")) }
            let owner = name.prefix { $0 != 0 }
            notes.append(ELFNote(name: String(decoding: owner, as: UTF8.self), type: type, descriptor: Array(descriptor)))
            offset = aligned(descriptor.endIndex)
        }
        return notes
    }
}
