#if canImport(Glibc)
import Glibc
#endif
import Foundation
import FerryFuzzTargets

// The libFuzzer binary (linked with -sanitize=fuzzer): SwiftPM gives an
// executable its own `main`, which hands the command line to libFuzzer's
// driver with the target named by FERRY_FUZZ_TARGET. With
// FERRY_FUZZ_SEEDS=DIR it writes the seed inputs of every target into
// DIR/<target>/ instead and exits.

enum Fuzzing {
    nonisolated(unsafe) static var target: FuzzTarget = .imageStream
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzzing.target.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
               _ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("ferry-fuzz: \(message)\n".utf8))
    exit(2)
}

if let dir = ProcessInfo.processInfo.environment["FERRY_FUZZ_SEEDS"] {
    do { try Seeds.write(to: dir) } catch { fail("writing seeds failed: \(error)") }
    exit(0)
}
let name = ProcessInfo.processInfo.environment["FERRY_FUZZ_TARGET"] ?? ""
guard let t = FuzzTarget(rawValue: name) else {
    fail("set FERRY_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
}
Fuzzing.target = t
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(runDriver(&argc, &argv, fuzzerTestOneInput))
