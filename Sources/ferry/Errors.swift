import ArgumentParser
import Foundation

/// Runs a command body; any error becomes one line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        let text = String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
        FileHandle.standardError.write(Data("ferry: \(text)\n".utf8))
        throw ExitCode(1)
    }
}

/// `print(..., to: &err)` target for messages on stderr.
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { FileHandle.standardError.write(Data(string.utf8)) }
}
