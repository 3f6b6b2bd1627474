// The stub a FreeBSD restore execs under PT_TRACE_ME: a static, Linux-
// branded ELF64 executable whose segments describe the restored process,
// so that FreeBSD's imgact_elf picks the Linuxulator's ABI (linux64) and
// sets vm_taddr/vm_tsize and vm_daddr/vm_dsize itself:
//
//   PT_LOAD  R+X  [text start, text end)   the file's first bytes, then zeros
//   PT_LOAD  R+W  [data start, brk)        no file bytes (bss only); last
//   PT_NOTE       GNU ABI tag, OS 0 (Linux) 3.2.0
//
// Branding is twofold: EI_OSABI is ELFOSABI_LINUX (3), and the GNU ABI-tag
// note names Linux, the two ways FreeBSD's Linux brand recognises a binary.
// The code at the entry loops on Linux `pause` (34); the tracer replaces
// all of it before the restored process runs. An empty heap (brk ==
// start_brk) gets no data segment: then the restore sets vm_daddr with the
// module's SET_LAYOUT, which is why that op is still needed.

/// A generated stub executable.
public struct LinuxStubELF: Equatable, Sendable {
    public var bytes: [UInt8]
    /// Whether the ELF carries a data segment (false: empty heap, see above).
    public var hasDataSegment: Bool
    public var entry: UInt64

    /// ELFOSABI_LINUX (also called ELFOSABI_GNU).
    public static let osABILinux: UInt8 = 3
    /// NT_GNU_ABI_TAG, owner "GNU": {os 0 = Linux, major, minor, patch}.
    public static let gnuABITagType: UInt32 = 1
    /// `1: mov eax, 34; syscall; jmp 1b` (Linux pause in a loop).
    static let pauseLoop: [UInt8] = [0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7]

    static let headerSize = 64, phdrSize = 56

    /// The stub for a FreeBSD layout (`FreeBSDLayoutPlan.fromLinux`).
    public static func generate(_ l: FreeBSDVMLayout, pageSize: UInt64 = 4096) throws -> LinuxStubELF {
        func bad(_ why: String) -> FreeBSDLayoutError { FreeBSDLayoutError(description: "cannot build the FreeBSD restore stub: \(why)") }
        let mask = pageSize - 1
        guard pageSize >= 0x1000, pageSize & mask == 0,
              (l.textStart | l.textEnd | l.dataStart | l.brk) & mask == 0 else {
            throw bad("the layout \(l) is not page-aligned")
        }
        guard l.textStart < l.textEnd, l.dataStart <= l.brk else { throw bad("the layout \(l) has a reversed range") }
        let hasData = l.dataStart < l.brk
        if hasData, AddressRange(l.textStart, l.textEnd).overlaps(AddressRange(l.dataStart, l.brk)) {
            throw bad("text and data overlap in \(l)")
        }

        let phnum = hasData ? 3 : 2
        let noteOffset = headerSize + phnum * phdrSize
        let note: [UInt8] = {
            var n = [UInt8](repeating: 0, count: 32)
            n.storeLE(UInt32(4), at: 0)   // namesz
            n.storeLE(UInt32(16), at: 4)  // descsz
            n.storeLE(gnuABITagType, at: 8)
            n.replaceSubrange(12..<16, with: Array("GNU\0".utf8))
            for (i, v) in [UInt32(0), 3, 2, 0].enumerated() { n.storeLE(v, at: 16 + i * 4) }
            return n
        }()
        let codeOffset = (noteOffset + note.count + 15) & ~15
        let fileSize = codeOffset + pauseLoop.count
        guard UInt64(fileSize) <= l.textEnd - l.textStart else { throw bad("the text range of \(l) is smaller than the stub") }
        let entry = l.textStart + UInt64(codeOffset)

        var b = [UInt8](repeating: 0, count: fileSize)
        // ELF header.
        b.replaceSubrange(0..<4, with: [0x7f, 0x45, 0x4c, 0x46])
        b[4] = 2; b[5] = 1; b[6] = 1; b[7] = osABILinux  // ELFCLASS64, LSB, EV_CURRENT
        b.storeLE(UInt16(2), at: 16)                    // ET_EXEC
        b.storeLE(UInt16(62), at: 18)                   // EM_X86_64
        b.storeLE(UInt32(1), at: 20)                    // e_version
        b.storeLE(entry, at: 24)
        b.storeLE(UInt64(headerSize), at: 32)           // e_phoff
        b.storeLE(UInt64(0), at: 40)                    // e_shoff: no sections
        b.storeLE(UInt16(headerSize), at: 52)           // e_ehsize
        b.storeLE(UInt16(phdrSize), at: 54)
        b.storeLE(UInt16(phnum), at: 56)
        b.storeLE(UInt16(64), at: 58)                   // e_shentsize

        func phdr(_ i: Int, type: UInt32, flags: UInt32, offset: UInt64, vaddr: UInt64,
                  filesz: UInt64, memsz: UInt64, align: UInt64) {
            let o = headerSize + i * phdrSize
            b.storeLE(type, at: o); b.storeLE(flags, at: o + 4)
            b.storeLE(offset, at: o + 8); b.storeLE(vaddr, at: o + 16); b.storeLE(vaddr, at: o + 24)
            b.storeLE(filesz, at: o + 32); b.storeLE(memsz, at: o + 40); b.storeLE(align, at: o + 48)
        }
        // PT_LOAD segments in ascending address order (the ELF rule).
        var loads: [(flags: UInt32, vaddr: UInt64, filesz: UInt64, memsz: UInt64)] =
            [(4 | 1, l.textStart, UInt64(fileSize), l.textEnd - l.textStart)]
        if hasData { loads.append((4 | 2, l.dataStart, 0, l.brk - l.dataStart)) }
        loads.sort { $0.vaddr < $1.vaddr }
        for (i, s) in loads.enumerated() {
            phdr(i, type: 1, flags: s.flags, offset: 0, vaddr: s.vaddr, filesz: s.filesz, memsz: s.memsz, align: pageSize)
        }
        phdr(loads.count, type: 4, flags: 4, offset: UInt64(noteOffset), vaddr: l.textStart + UInt64(noteOffset),
             filesz: UInt64(note.count), memsz: UInt64(note.count), align: 4)
        b.replaceSubrange(noteOffset..<(noteOffset + note.count), with: note)
        b.replaceSubrange(codeOffset..<fileSize, with: pauseLoop)
        return LinuxStubELF(bytes: b, hasDataSegment: hasData, entry: entry)
    }
}
