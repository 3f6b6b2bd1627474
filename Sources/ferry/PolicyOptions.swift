#if os(Linux)
import ArgumentParser
import Foundation
import FerryCore
import FerryTransport

/// What `serve` and `restore` may create here: --allow-uids, --allow-exe-prefix.
struct PolicyOptions: ParsableArguments {
    @Option(name: .customLong("allow-uids"), help: "Comma-separated uids a restored process may run with (real, effective, saved and fs uid all checked); an image with any other is refused before anything is created. Repeatable.")
    var allowUIDs: [String] = []
    @Option(name: .customLong("allow-exe-prefix"), help: "Directory every executable (the image's and each file mapped executable) must lie in, compared by path component after resolving symlinks; others are refused before anything is created. Repeatable.")
    var allowExePrefix: [String] = []

    var policy: RestorePolicy {
        get throws {
            let uids = allowUIDs.isEmpty ? nil : Set(try UIDList.parse(allowUIDs, option: "--allow-uids"))
            for p in allowExePrefix where !p.hasPrefix("/") { throw MigrationError("--allow-exe-prefix \(p) is not an absolute path") }
            return RestorePolicy(allowedUIDs: uids, exePrefixes: allowExePrefix)
        }
    }
}

enum UIDList {
    /// Uids from repeated options, each a single uid or a comma-separated list.
    static func parse(_ values: [String], option: String) throws -> [UInt32] {
        try values.flatMap { $0.split(separator: ",") }.map { text in
            guard let uid = UInt32(text.trimmingCharacters(in: .whitespaces)) else { throw MigrationError("\(option): \"\(text)\" is not a uid") }
            return uid
        }
    }
}
#endif
