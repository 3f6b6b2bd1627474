/// Bounds-checked little-endian reads from raw file bytes, for the structures
/// decoded here rather than through libelf (notes, symbol versions, PT_DYNAMIC
/// without sections). Every read returns nil past the end instead of trapping.
struct LittleEndianBytes {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var count: Int { bytes.count }

    /// The `T`-sized little-endian integer at `offset`, or nil if it does not fit.
    func integer<T: FixedWidthInteger>(_: T.Type = T.self, at offset: Int) -> T? {
        let width = T.bitWidth / 8
        guard offset >= 0, offset <= bytes.count - width else { return nil }
        var value: T = 0
        for index in (0..<width).reversed() {
            value = value << 8 | T(bytes[offset + index])
        }
        return value
    }

    /// The `length` bytes at `offset`, or nil if they do not fit.
    func slice(at offset: Int, length: Int) -> ArraySlice<UInt8>? {
        guard offset >= 0, length >= 0, offset <= bytes.count, length <= bytes.count - offset else { return nil }
        return bytes[offset..<(offset + length)]
    }

    /// The NUL-terminated string at `offset`, or nil if it does not end inside the bytes.
    func cString(at offset: Int) -> String? {
        guard offset >= 0, offset < bytes.count,
              let end = bytes[offset...].firstIndex(of: 0) else { return nil }
        return String(decoding: bytes[offset..<end], as: UTF8.self)
    }
}
