import Foundation

/// A set of CPU (or memory node) numbers in the list syntax shared by Linux
/// `cpuset.cpus` and FreeBSD `cpuset -l`: "0-3,6". Stored as sorted,
/// disjoint, non-adjacent ranges, so equal sets compare and print equal.
public struct CPUList: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    public private(set) var ranges: [ClosedRange<UInt32>]

    /// The largest CPU number accepted (FreeBSD's CPU_MAXSIZE is 1024; Linux
    /// NR_CPUS tops out at 8192).
    public static let maxCPU: UInt32 = 8191

    public init(_ cpus: [UInt32]) {
        ranges = []
        for cpu in Set(cpus).sorted() {
            if let last = ranges.last, last.upperBound &+ 1 == cpu {
                ranges[ranges.count - 1] = last.lowerBound...cpu
            } else {
                ranges.append(cpu...cpu)
            }
        }
    }

    /// Parses "0-3,6". Empty text, reversed ranges, junk and numbers above
    /// `maxCPU` are errors naming `field`.
    public init(parsing text: String, field: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        func bad(_ why: String) -> ContainerError {
            .invalid(field: field, reason: "\(why) in CPU list \"\(trimmed)\"")
        }
        guard !trimmed.isEmpty else { throw bad("nothing") }
        var cpus: [UInt32] = []
        for item in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let ends = item.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count),
                  let low = UInt32(ends[0]), let high = UInt32(ends[ends.count - 1])
            else { throw bad("\"\(item)\" is not a number or range") }
            guard low <= high else { throw bad("reversed range \"\(item)\"") }
            guard high <= Self.maxCPU else { throw bad("\(high) is above \(Self.maxCPU)") }
            cpus += Array(low...high)
        }
        self.init(cpus)
    }

    public var cpus: [UInt32] { ranges.flatMap { Array($0) } }

    public var description: String {
        ranges.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
            .joined(separator: ",")
    }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: text, field: decoder.codingPath.map(\.stringValue).joined(separator: "."))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
