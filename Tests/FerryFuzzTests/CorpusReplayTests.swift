import Foundation
import Testing
import FerryFuzzTargets
import FerryTestSupport

/// Every input saved under Tests/FuzzCorpus/<target>/ (crashes, hangs and
/// huge allocations the fuzzers found, once fixed) replayed through its
/// target without the fuzzer: each ends in an error or a result.
@Suite struct CorpusReplayTests {
    static let corpus = TestPaths.root.appendingPathComponent("Tests/FuzzCorpus").path

    static func inputs(_ target: FuzzTarget) -> [String] {
        let dir = corpus + "/" + target.rawValue
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir + "/" + $0 }
    }

    @Test(arguments: FuzzTarget.allCases)
    func savedInputsDecodeWithoutTrapping(_ target: FuzzTarget) throws {
        for path in Self.inputs(target) {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            target.run(bytes)
        }
    }
}
