import Foundation
import Testing
import FerryTestSupport

/// Runs a tool and returns its standard output, for comparing with what
/// binutils says about the same file.
func run(_ tool: String, _ arguments: String...) throws -> String {
    try Child.run([tool] + arguments, env: ["LC_ALL": "C"], stderr: .null).stdout
}

/// The text after `marker` on the first line of `text` that has it.
func field(after marker: String, in text: String) -> String? {
    for line in text.split(separator: "\n") {
        if let range = line.range(of: marker) {
            return line[range.upperBound...].trimmingCharacters(in: .whitespaces)
        }
    }
    return nil
}

/// The first existing path among `candidates`.
func firstExisting(_ candidates: String...) -> String? {
    candidates.first { FileManager.default.fileExists(atPath: $0) }
}

let libcPath = firstExisting("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6")
let readelfPath = firstExisting("/usr/bin/readelf")
