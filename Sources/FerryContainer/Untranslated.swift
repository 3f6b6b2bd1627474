import Foundation

/// Something a translation could not carry over exactly. Nothing is ever
/// dropped silently: every reader and writer returns these next to its result,
/// and the CLI prints them (and puts them in `--json`).
public struct Untranslated: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable {
        /// Left out: the other side has no counterpart.
        case notTranslated = "not-translated"
        /// Carried over, but the value or the semantics changed; `reason` says how.
        case approximated
    }

    public var kind: Kind
    /// The source field, in the source's own terms (`cpu.shares`, `jail:web:wallclock`).
    public var field: String
    /// The source value as text, exact.
    public var value: String
    public var reason: String

    public init(_ kind: Kind = .notTranslated, field: String, value: String, reason: String) {
        self.kind = kind
        self.field = field
        self.value = value
        self.reason = reason
    }

    public var description: String {
        "\(kind == .approximated ? "approximated" : "not translated"): \(field) = \(value): \(reason)"
    }
}

/// A translation result: what was produced and what could not be carried.
public struct Translated<Output> {
    public var output: Output
    public var notes: [Untranslated]

    public init(_ output: Output, notes: [Untranslated] = []) {
        self.output = output
        self.notes = notes
    }
}

extension Translated: Sendable where Output: Sendable {}
extension Translated: Equatable where Output: Equatable {}

/// Accumulates notes while a reader or writer works.
struct NoteList {
    private(set) var items: [Untranslated] = []

    mutating func drop(_ field: String, _ value: CustomStringConvertible, _ reason: String) {
        items.append(Untranslated(.notTranslated, field: field, value: value.description, reason: reason))
    }

    mutating func approximate(_ field: String, _ value: CustomStringConvertible, _ reason: String) {
        items.append(Untranslated(.approximated, field: field, value: value.description, reason: reason))
    }

    mutating func append(contentsOf other: [Untranslated]) { items += other }
}
