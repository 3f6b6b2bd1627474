import Foundation

/// Pieces shared by the cgroup v1 and v2 translations: access to one cgroup
/// directory's files, the writes of an apply plan, value parsing and the
/// linear weight scales.

/// The files of one cgroup directory. `directory(_:)` reads a real one;
/// `memory(_:)` is the in-memory stand-in tests use.
public struct CgroupFiles: Sendable {
    public var read: @Sendable (String) -> String?
    public var names: @Sendable () -> [String]
    /// Used in error messages: where the files come from.
    public var origin: String

    public init(origin: String, read: @escaping @Sendable (String) -> String?, names: @escaping @Sendable () -> [String]) {
        self.origin = origin
        self.read = read
        self.names = names
    }

    public static func memory(_ files: [String: String], origin: String = "memory") -> CgroupFiles {
        CgroupFiles(origin: origin, read: { files[$0] }, names: { files.keys.sorted() })
    }

    public static func directory(_ url: URL) -> CgroupFiles {
        let path = url.path
        return CgroupFiles(
            origin: path,
            read: { try? String(contentsOfFile: path + "/" + $0, encoding: .utf8) },
            names: { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() })
    }
}

public enum CgroupVersion: String, Codable, Sendable { case v1, v2 }

/// One write the restore engine performs into the container's cgroup.
public struct CgroupWrite: Codable, Equatable, Sendable, CustomStringConvertible {
    /// v1: the controller hierarchy (`cpu`, `memory`, …); nil for v2.
    public var controller: String?
    /// File name inside the container's cgroup directory.
    public var file: String
    public var value: String

    public init(controller: String? = nil, file: String, value: String) {
        self.controller = controller
        self.file = file
        self.value = value
    }

    public var description: String { "\(controller.map { "\($0)/" } ?? "")\(file) = \(value)" }
}

/// A linear map between two weight ranges, as runc converts OCI (v1) weights
/// to v2: `to = to.lo + (from - from.lo) × toSpan / fromSpan` (floor). The
/// way back rounds up, so a v2 value read and converted back writes the same
/// v2 value again.
struct LinearScale {
    let from: ClosedRange<UInt64>
    let to: ClosedRange<UInt64>

    /// v1 cpu.shares 2...262144 → v2 cpu.weight 1...10000: weight = 1 + ((shares − 2) × 9999) / 262142.
    static let cpuWeight = LinearScale(from: 2...262_144, to: 1...10_000)
    /// v1 blkio.weight 10...1000 → v2 io.weight 1...10000.
    static let ioWeight = LinearScale(from: 10...1_000, to: 1...10_000)

    private var fromSpan: UInt64 { from.upperBound - from.lowerBound }
    private var toSpan: UInt64 { to.upperBound - to.lowerBound }

    func forward(_ x: UInt64) -> UInt64 {
        let c = min(max(x, from.lowerBound), from.upperBound)
        return to.lowerBound + (c - from.lowerBound) * toSpan / fromSpan
    }

    func backward(_ y: UInt64) -> UInt64 {
        let c = min(max(y, to.lowerBound), to.upperBound)
        let n = (c - to.lowerBound) * fromSpan
        return from.lowerBound + (n + toSpan - 1) / toSpan
    }
}

/// Public face of the weight conversions.
public enum CPUWeight {
    /// v1 cpu.shares → v2 cpu.weight.
    public static func weight(fromShares shares: UInt64) -> UInt64 { LinearScale.cpuWeight.forward(shares) }
    /// v2 cpu.weight → v1 cpu.shares (rounded up, so `weight(fromShares:)` gives the weight back).
    public static func shares(fromWeight weight: UInt64) -> UInt64 { LinearScale.cpuWeight.backward(weight) }
}

/// Parsing of cgroup file values, with errors naming the file.
enum CgroupValue {
    /// A number, or nil for "max" / "-1" (unlimited) and for an absent file.
    static func limit(_ text: String?, field: String) throws -> UInt64? {
        guard let t = text?.trimmingCharacters(in: .whitespacesAndNewlines) else { return nil }
        if t == "max" || t == "-1" { return nil }
        if let v = UInt64(t) { return v }
        if let i = Int64(t), i < 0 { throw ContainerError.invalid(field: field, reason: "\(i) is negative") }
        if t.allSatisfy(\.isNumber) { throw ContainerError.invalid(field: field, reason: "\(t) overflows 64 bits") }
        throw ContainerError.invalid(field: field, reason: "expected a number or max, got \"\(t)\"")
    }

    /// "MAJ:MIN VALUE" lines (v1 blkio throttle files).
    static func deviceRates(_ text: String?, field: String) throws -> [DeviceRate] {
        try lines(text).map { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2 else {
                throw ContainerError.invalid(field: field, reason: "expected \"MAJ:MIN VALUE\", got \"\(line)\"")
            }
            guard let rate = try limit(String(parts[1]), field: field) else {
                throw ContainerError.invalid(field: field, reason: "a device rate cannot be max")
            }
            return DeviceRate(device: try DeviceNumber(parsing: parts[0], field: field), rate: rate)
        }
    }

    static func lines(_ text: String?) -> [Substring] {
        (text ?? "").split(separator: "\n").map { Substring($0.trimmingCharacters(in: .whitespaces)) }.filter { !$0.isEmpty }
    }

    static func cpuList(_ text: String?, field: String) throws -> CPUList? {
        guard let t = text?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty else { return nil }
        return try CPUList(parsing: t, field: field)
    }
}

/// Controllers ferry neither translates nor ignores: when set to anything
/// but their default, readers report them.
enum UntranslatedController {
    static func hugetlbNotes(_ files: CgroupFiles, field: (String) -> String, suffixes: [String]) -> [Untranslated] {
        files.names().filter { name in name.hasPrefix("hugetlb.") && suffixes.contains { name.hasSuffix($0) } }
            .compactMap { name in
                guard let v = files.read(name)?.trimmingCharacters(in: .whitespacesAndNewlines),
                      v != "max", v != "9223372036854771712" else { return nil }
                return Untranslated(field: field(name), value: v, reason: "huge page limits are not part of the container spec")
            }
    }
}
