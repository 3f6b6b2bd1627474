/// A numeric ELF constant (segment type, section type, symbol type, dynamic
/// tag, …) that keeps values this module has no name for, and prints the
/// ELF name where it has one (`PT_LOAD`) and hex otherwise.
public protocol ELFConstant: RawRepresentable, Hashable, Sendable, CustomStringConvertible
where RawValue: FixedWidthInteger & Sendable {
    /// The names of the values this module knows, as the ELF specification spells them.
    static var names: [RawValue: String] { get }
}

extension ELFConstant {
    public var description: String {
        Self.names[rawValue] ?? "0x" + String(rawValue, radix: 16)
    }
}
