#if os(Linux)
import Glibc
import CFerryLinux

/// A failed system call: which call, errno, and what ferry was doing.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32
    public var context: String

    public init(_ call: String, errno: Int32, _ context: String) {
        self.call = call; self.errno = errno; self.context = context
    }

    public var description: String {
        "\(context): \(call) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// A refusal or failure ferry explains in one sentence (no errno).
public struct FerryError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Checks a `-errno`-style result from the C shims.
@discardableResult
func check(_ result: Int, _ call: @autoclosure () -> String, _ context: @autoclosure () -> String) throws -> Int {
    if result < 0 { throw SystemError(call(), errno: Int32(-result), context()) }
    return result
}

/// Checks a libc result (-1 and errno).
@discardableResult
func checkLibc(_ result: Int32, _ call: @autoclosure () -> String, _ context: @autoclosure () -> String) throws -> Int32 {
    if result < 0 { throw SystemError(call(), errno: Glibc.errno, context()) }
    return result
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
#endif
