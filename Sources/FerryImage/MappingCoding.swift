/// A mapping's JSON. A plain mapping — no file, shared object, memfd or System V segment, the
/// bulk of a large address space (a JVM's heap, an allocator's arenas) — is
/// the array `[start, end, protection, kind, flags, fileOffset, name]`: half
/// the bytes of the keyed form, and a third of the time and of the memory
/// Foundation's encoder and decoder spend on it (docs/performance.md). Every
/// other mapping is an object with named fields, optional ones omitted when
/// absent. A reader takes either form for any mapping.
extension Mapping {
    /// One per stored property (MappingCodingTests checks the count: a field
    /// added to Mapping must be added here, or it would be lost).
    enum Field: String, CodingKey, CaseIterable {
        case start, end, protection, kind, flags, fileOffset, file, name, sharedObject, memfd, sysv
    }

    /// True when the array form holds the whole mapping.
    var isPlain: Bool { file == nil && sharedObject == nil && memfd == nil && sysv == nil }

    public init(from decoder: Decoder) throws {
        if var a = try? decoder.unkeyedContainer() {
            start = try a.decode(UInt64.self)
            end = try a.decode(UInt64.self)
            protection = try a.decode(Protection.self)
            kind = try a.decode(MappingKind.self)
            flags = try a.decode(MappingFlags.self)
            fileOffset = try a.decode(UInt64.self)
            name = try a.decode(String.self)
            guard a.isAtEnd else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "a mapping array has more than its 7 fields"))
            }
            file = nil; sharedObject = nil; memfd = nil; sysv = nil
            return
        }
        let c = try decoder.container(keyedBy: Field.self)
        start = try c.decode(UInt64.self, forKey: .start)
        end = try c.decode(UInt64.self, forKey: .end)
        protection = try c.decode(Protection.self, forKey: .protection)
        kind = try c.decode(MappingKind.self, forKey: .kind)
        flags = try c.decode(MappingFlags.self, forKey: .flags)
        fileOffset = try c.decode(UInt64.self, forKey: .fileOffset)
        file = try c.decodeIfPresent(FileIdentity.self, forKey: .file)
        name = try c.decode(String.self, forKey: .name)
        sharedObject = try c.decodeIfPresent(UInt64.self, forKey: .sharedObject)
        memfd = try c.decodeIfPresent(MemfdIdentity.self, forKey: .memfd)
        sysv = try c.decodeIfPresent(SysVSegment.self, forKey: .sysv)
    }

    public func encode(to encoder: Encoder) throws {
        if isPlain {
            var a = encoder.unkeyedContainer()
            try a.encode(start)
            try a.encode(end)
            try a.encode(protection)
            try a.encode(kind)
            try a.encode(flags)
            try a.encode(fileOffset)
            try a.encode(name)
            return
        }
        var c = encoder.container(keyedBy: Field.self)
        try c.encode(start, forKey: .start)
        try c.encode(end, forKey: .end)
        try c.encode(protection, forKey: .protection)
        try c.encode(kind, forKey: .kind)
        try c.encode(flags, forKey: .flags)
        try c.encode(fileOffset, forKey: .fileOffset)
        try c.encodeIfPresent(file, forKey: .file)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(sharedObject, forKey: .sharedObject)
        try c.encodeIfPresent(memfd, forKey: .memfd)
        try c.encodeIfPresent(sysv, forKey: .sysv)
    }
}
