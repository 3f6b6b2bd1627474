import Foundation

/// Errors from reading or translating a container configuration. Every case
/// prints as one line that names the offending field, e.g.
/// `linux.resources.cpu.quota: a quota needs a period`.
public enum ContainerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A value is present but wrong.
    case invalid(field: String, reason: String)
    /// The input could not be parsed at all (bad JSON, bad syntax).
    case malformed(source: String, reason: String)
    /// A file or /proc entry could not be read.
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .invalid(field, reason): "\(field): \(reason)"
        case let .malformed(source, reason): "\(source): \(reason)"
        case let .unreadable(path, reason): "cannot read \(path): \(reason)"
        }
    }
}

extension ContainerError: LocalizedError {
    public var errorDescription: String? { description }
}
