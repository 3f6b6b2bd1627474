import CLibElf

/// `p_type`: what a program header describes.
public struct SegmentType: ELFConstant {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let null = Self(rawValue: 0)
    /// PT_LOAD: mapped into memory.
    public static let load = Self(rawValue: 1)
    /// PT_DYNAMIC: the dynamic section.
    public static let dynamic = Self(rawValue: 2)
    /// PT_INTERP: the path of the program interpreter.
    public static let interpreter = Self(rawValue: 3)
    /// PT_NOTE: notes (build-id, ABI tag; in a core file the process state).
    public static let note = Self(rawValue: 4)
    public static let programHeaders = Self(rawValue: 6)
    /// PT_TLS: the thread-local storage template.
    public static let tls = Self(rawValue: 7)
    public static let gnuEHFrame = Self(rawValue: 0x6474_e550)
    /// PT_GNU_STACK: its flags say whether the stack is executable.
    public static let gnuStack = Self(rawValue: 0x6474_e551)
    public static let gnuRelro = Self(rawValue: 0x6474_e552)
    public static let gnuProperty = Self(rawValue: 0x6474_e553)

    public static let names: [UInt32: String] = [
        0: "PT_NULL", 1: "PT_LOAD", 2: "PT_DYNAMIC", 3: "PT_INTERP", 4: "PT_NOTE", 5: "PT_SHLIB",
        6: "PT_PHDR", 7: "PT_TLS", 0x6474_e550: "PT_GNU_EH_FRAME", 0x6474_e551: "PT_GNU_STACK",
        0x6474_e552: "PT_GNU_RELRO", 0x6474_e553: "PT_GNU_PROPERTY",
    ]
}

/// `p_flags`: the protection a segment is mapped with.
public struct SegmentFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// PF_X.
    public static let execute = Self(rawValue: 1)
    /// PF_W.
    public static let write = Self(rawValue: 2)
    /// PF_R.
    public static let read = Self(rawValue: 4)

    /// `r-x` style, as in `/proc/PID/maps`.
    public var description: String {
        (contains(.read) ? "r" : "-") + (contains(.write) ? "w" : "-") + (contains(.execute) ? "x" : "-")
    }
}

/// One program header.
public struct Segment: Sendable, Equatable {
    /// `p_type`.
    public let type: SegmentType
    /// `p_flags`.
    public let flags: SegmentFlags
    /// `p_offset`: where its bytes start in the file.
    public let offset: UInt64
    /// `p_vaddr`: where it is mapped, before the load bias is added.
    public let virtualAddress: UInt64
    /// `p_filesz`: how many bytes come from the file.
    public let fileSize: UInt64
    /// `p_memsz`: how many bytes it takes in memory (the rest is zero-filled).
    public let memorySize: UInt64
    /// `p_align`.
    public let alignment: UInt64

    /// `virtualAddress ..< virtualAddress + memorySize` (checked not to overflow).
    public var virtualRange: Range<UInt64> { virtualAddress..<(virtualAddress + memorySize) }
}

extension ELFFile {
    /// The PT_LOAD segments, in file order (which the specification requires
    /// to be ascending by address).
    public var loadableSegments: [Segment] { segments.filter { $0.type == .load } }

    /// Whether the file can be loaded at any address (ET_DYN: a shared object
    /// or a PIE executable), so that its load bias is not always zero.
    public var isPositionIndependent: Bool { header.type == .sharedObject }

    /// The load bias of this file when its lowest PT_LOAD segment's page is
    /// mapped at `mappedBase` (e.g. the start of `[vdso]` in
    /// `/proc/PID/maps`, or the lowest mapping of a binary).
    /// Nil without PT_LOAD segments.
    public func loadBias(forMappedBase mappedBase: UInt64, pageSize: UInt64 = 4096) -> UInt64? {
        guard let lowest = loadableSegments.map(\.virtualAddress).min() else { return nil }
        return mappedBase &- (lowest & ~(pageSize - 1))
    }
}

extension LibElfReader {
    /// Reads every program header, checking each against the file size.
    func readSegments() throws(ELFError) -> [Segment] {
        var libelfCount = 0
        guard elf_getphdrnum(elf, &libelfCount) == 0 else { throw libelfFailure("elf_getphdrnum") }
        let ehdr = try rawHeader()
        let count = try checkedTableCount(
            "the program header table", offset: ehdr.e_phoff, declared: ehdr.e_phnum == 0xffff ? 0 : ehdr.e_phnum,
            libelfCount: libelfCount, entrySize: ehdr.e_phentsize, expected: 56)
        var segments: [Segment] = []
        segments.reserveCapacity(count)
        for index in 0..<count {
            var phdr = GElf_Phdr()
            guard gelf_getphdr(elf, Int32(index), &phdr) != nil else { throw libelfFailure("gelf_getphdr") }
            let segment = Segment(
                type: SegmentType(rawValue: phdr.p_type), flags: SegmentFlags(rawValue: phdr.p_flags),
                offset: phdr.p_offset, virtualAddress: phdr.p_vaddr, fileSize: phdr.p_filesz,
                memorySize: phdr.p_memsz, alignment: phdr.p_align)
            try check(segment, index: index)
            segments.append(segment)
        }
        return segments
    }

    private func check(_ segment: Segment, index: Int) throws(ELFError) {
        guard segment.type != .null else { return }
        let what = "segment \(index) (\(segment.type))"
        try checkInFile(offset: segment.offset, size: segment.fileSize, what)
        guard !segment.virtualAddress.addingReportingOverflow(segment.memorySize).overflow else {
            throw error(.malformed("\(what) wraps around the address space"))
        }
        if segment.type == .load && segment.fileSize > segment.memorySize {
            throw error(.malformed("\(what) has more file bytes (0x\(String(segment.fileSize, radix: 16))) "
                                   + "than memory bytes (0x\(String(segment.memorySize, radix: 16)))"))
        }
    }

    /// The PT_INTERP string without its terminating NUL, or nil without PT_INTERP.
    func readInterpreter(_ segments: [Segment]) throws(ELFError) -> String? {
        guard let interp = segments.first(where: { $0.type == .interpreter }) else { return nil }
        guard interp.fileSize <= 4096 else {
            throw error(.malformed("PT_INTERP is 0x\(String(interp.fileSize, radix: 16)) bytes long"))
        }
        let bytes = try bytes(at: interp.offset, size: interp.fileSize, "PT_INTERP")
        guard let end = bytes.firstIndex(of: 0) else { throw error(.malformed("PT_INTERP is not NUL-terminated")) }
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}
