/// An ELF64 x86-64 file (executable, shared object, object file or core
/// dump), read completely and checked when it is created, then immutable.
///
/// Reading goes through libelf/gelf (elfutils on Linux, the base system's
/// libelf on FreeBSD). Every table count, offset and size is checked against
/// the file size first, so malformed input gives an `ELFError`, never a crash.
///
/// ```swift
/// let ls = try ELFFile(path: "/bin/ls")
/// ls.interpreter        // "/lib64/ld-linux-x86-64.so.2"
/// ls.neededLibraries    // ["libselinux.so.1", "libc.so.6"]
/// ls.buildID            // "…"
/// ```
public struct ELFFile: Sendable {
    /// The path it was read from, or `<memory>`.
    public let source: String
    /// The ELF header.
    public let header: ELFHeader
    /// All program headers, in file order.
    public let segments: [Segment]
    /// All section headers, in index order, starting with the null section 0;
    /// empty if the file has none.
    public let sections: [Section]
    /// The symbols of `.symtab` (if not stripped) then `.dynsym`, without
    /// each table's null entry. Found through the section headers, so empty
    /// for a file without them.
    public let symbols: [Symbol]
    /// The dynamic table up to DT_NULL; empty for a static file.
    public let dynamicEntries: [DynamicEntry]
    /// The DT_NEEDED library names, in order.
    public let neededLibraries: [String]
    /// DT_SONAME, if present.
    public let soname: String?
    /// DT_RUNPATH (or DT_RPATH), if present.
    public let runpath: String?
    /// The PT_INTERP path (`/lib64/ld-linux-x86-64.so.2`), if present.
    public let interpreter: String?
    /// The notes of the PT_NOTE segments (or the SHT_NOTE sections of a file without them).
    public let notes: [ELFNote]

    /// Reads the file at `path`.
    public init(path: String) throws(ELFError) {
        try self.init(reader: LibElfReader(path: path))
    }

    /// Reads an ELF image held in memory, e.g. a vDSO copied out of a
    /// process. The bytes are copied; the caller's array is not kept.
    public init(bytes: [UInt8]) throws(ELFError) {
        try self.init(reader: LibElfReader(bytes: bytes))
    }

    private init(reader: LibElfReader) throws(ELFError) {
        source = reader.source
        header = try reader.readHeader()
        segments = try reader.readSegments()
        sections = try reader.readSections()
        interpreter = try reader.readInterpreter(segments)
        symbols = try reader.readSymbols(sections)
        let dynamic = try reader.readDynamic(sections, segments)
        dynamicEntries = dynamic.entries
        neededLibraries = dynamic.needed
        soname = dynamic.soname
        runpath = dynamic.runpath
        notes = try reader.readNotes(sections, segments)
    }
}
