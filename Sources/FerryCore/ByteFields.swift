// Little-endian field access on byte arrays, for the fixed C layouts
// FerryCore converts (register sets, XSAVE areas, code patches).

extension Array where Element == UInt8 {
    /// Reads an unsigned little-endian integer of `T`'s width at `offset`.
    /// The caller has checked the bounds.
    @inlinable
    func loadLE<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for i in 0..<(T.bitWidth / 8) {
            value |= T(self[offset + i]) << (8 * i)
        }
        return value
    }

    /// Writes `value` little-endian at `offset`. The caller has checked the bounds.
    @inlinable
    mutating func storeLE<T: FixedWidthInteger & UnsignedInteger>(_ value: T, at offset: Int) {
        for i in 0..<(T.bitWidth / 8) {
            self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i))
        }
    }
}

/// `0x…` form used in every message FerryCore produces.
@inlinable
func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }
