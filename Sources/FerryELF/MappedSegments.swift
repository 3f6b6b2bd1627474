/// Where an ELF file's PT_LOAD segments lie once it is loaded with some load
/// bias: what stack relocation asks to tell a code pointer (leave it alone)
/// from a pointer into a moved area (adjust it).
///
/// Ranges are exact (`p_vaddr + bias ..< p_vaddr + p_memsz + bias`), not
/// rounded out to pages, so a value in the padding of a page is not counted.
public struct MappedSegments: Sendable, Equatable {
    /// One loaded segment.
    public struct Range: Sendable, Equatable {
        /// The addresses it covers in the process.
        public let addresses: Swift.Range<UInt64>
        /// Its protection.
        public let flags: SegmentFlags
    }

    /// The loaded segments, sorted by address; segments whose biased range
    /// would wrap around the address space, or that are empty, are left out.
    public let ranges: [Range]

    /// The ranges of `file`'s PT_LOAD segments moved by `loadBias` (0 for a
    /// fixed-address ET_EXEC; the mapping base for a PIE, shared object or
    /// vDSO, see `ELFFile.loadBias(forMappedBase:)`).
    public init(_ file: ELFFile, loadBias: UInt64) {
        ranges = file.loadableSegments.compactMap { segment in
            let (start, wrapsStart) = segment.virtualAddress.addingReportingOverflow(loadBias)
            let (end, wrapsEnd) = start.addingReportingOverflow(segment.memorySize)
            guard !wrapsStart, !wrapsEnd, start < end else { return nil }
            return Range(addresses: start..<end, flags: segment.flags)
        }.sorted { $0.addresses.lowerBound < $1.addresses.lowerBound }
    }

    /// The loaded segment that contains `address`, or nil.
    public func range(containing address: UInt64) -> Range? {
        ranges.first { $0.addresses.contains(address) }
    }

    /// Whether `value` points into an executable segment (a return address
    /// or a function pointer, most likely).
    public func isCodePointer(_ value: UInt64) -> Bool {
        range(containing: value)?.flags.contains(.execute) ?? false
    }
}

extension ELFFile {
    /// The address ranges and protections of the PT_LOAD segments when
    /// loaded with `loadBias`.
    public func mappedSegments(loadBias: UInt64) -> MappedSegments {
        MappedSegments(self, loadBias: loadBias)
    }
}
