import Foundation

/// A JSON document as plain values, so readers can check every field
/// themselves and report errors by path (`linux.resources.cpu.quota`), and
/// can notice fields they do not translate instead of ignoring them.
enum JSONValue: Codable, Equatable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    /// Integers above Int64.max (OCI uses uint64 for some limits).
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Int64.self) { self = .int(v) }
        else if let v = try? c.decode(UInt64.self) { self = .uint(v) }
        else if let v = try? c.decode(Double.self) { self = .double(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([JSONValue].self) { self = .array(v) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case let .bool(v): try c.encode(v)
        case let .int(v): try c.encode(v)
        case let .uint(v): try c.encode(v)
        case let .double(v): try c.encode(v)
        case let .string(v): try c.encode(v)
        case let .array(v): try c.encode(v)
        case let .object(v): try c.encode(v)
        }
    }

    var description: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "?"
    }

    static func parse(_ data: Data, source: String) throws -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw ContainerError.malformed(source: source, reason: "not valid JSON (\(Self.brief(error, data)))")
        }
    }

    func rendered() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// JSONDecoder says only "not valid JSON"; JSONSerialization says where.
    private static func brief(_ error: Error, _ data: Data) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            if let where_ = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String { return where_ }
        }
        return "\(error)"
    }
}

/// A cursor on one JSON object that knows its path, for typed field access
/// with one-line errors.
struct JSONObject {
    let fields: [String: JSONValue]
    let path: String

    init(_ value: JSONValue, path: String) throws {
        guard case let .object(fields) = value else {
            throw ContainerError.invalid(field: path, reason: "expected an object, got \(value)")
        }
        self.fields = fields
        self.path = path
    }

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func object(_ key: String) throws -> JSONObject? {
        guard let v = fields[key], v != .null else { return nil }
        return try JSONObject(v, path: field(key))
    }

    func array(_ key: String) throws -> [JSONValue] {
        guard let v = fields[key], v != .null else { return [] }
        guard case let .array(items) = v else {
            throw ContainerError.invalid(field: field(key), reason: "expected an array, got \(v)")
        }
        return items
    }

    func objects(_ key: String) throws -> [JSONObject] {
        try array(key).enumerated().map { try JSONObject($1, path: "\(field(key))[\($0)]") }
    }

    func string(_ key: String) throws -> String? {
        guard let v = fields[key], v != .null else { return nil }
        guard case let .string(s) = v else {
            throw ContainerError.invalid(field: field(key), reason: "expected a string, got \(v)")
        }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = fields[key], v != .null else { return nil }
        guard case let .bool(b) = v else {
            throw ContainerError.invalid(field: field(key), reason: "expected true or false, got \(v)")
        }
        return b
    }

    /// A signed integer; doubles and integers beyond Int64 are errors.
    func int(_ key: String) throws -> Int64? {
        guard let v = fields[key], v != .null else { return nil }
        switch v {
        case let .int(i): return i
        case _ where v.isLargeNumber:
            throw ContainerError.invalid(field: field(key), reason: "\(v) overflows a 64-bit integer")
        default:
            throw ContainerError.invalid(field: field(key), reason: "expected an integer, got \(v)")
        }
    }

    /// A non-negative integer; negative values are errors.
    func unsigned(_ key: String) throws -> UInt64? {
        guard let v = fields[key], v != .null else { return nil }
        if case let .uint(u) = v { return u }
        guard let i = try int(key) else { return nil }
        guard i >= 0 else { throw ContainerError.invalid(field: field(key), reason: "\(i) is negative") }
        return UInt64(i)
    }

    /// A limit where -1 means unlimited (nil); other negatives are errors.
    func limit(_ key: String) throws -> UInt64? {
        if case .int(-1)? = fields[key] { return nil }
        return try unsigned(key)
    }

    /// Fields present here that the reader does not translate, as notes.
    func unhandled(except known: Set<String>, reason: String) -> [Untranslated] {
        fields.keys.filter { !known.contains($0) && fields[$0] != .null }.sorted().map {
            Untranslated(.notTranslated, field: field($0), value: fields[$0]!.description, reason: reason)
        }
    }
}

extension JSONValue {
    var isLargeNumber: Bool {
        switch self {
        case .uint: true
        case let .double(d): d.rounded() == d && abs(d) >= 9.2e18
        default: false
        }
    }
}
