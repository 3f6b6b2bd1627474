import Foundation

/// Where the tests find the built `ferry` and the C workloads: one place for
/// every test target that runs real processes.
public enum TestPaths {
    /// The package root (this file is Tests/FerryTestSupport/TestPaths.swift).
    public static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `ferry` SwiftPM built next to the running test bundle (debug or
    /// release), or failing that `.build/debug/ferry`.
    public static let ferry: String = {
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("ferry").path)
        }
        let fallback = root.appendingPathComponent(".build/debug/ferry").path
        candidates.append(fallback)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? fallback
    }()

    /// True when `ferry` exists (the CLI tests say "run swift build" otherwise).
    public static var ferryIsBuilt: Bool { FileManager.default.isExecutableFile(atPath: ferry) }

    /// Sources of the workloads and where `make` puts their binaries.
    public static let workloads = root.appendingPathComponent("Tests/Workloads").path
    public static let out = root.appendingPathComponent(".build/workloads").path

    public struct BuildFailed: Error, CustomStringConvertible {
        public let output: String
        public var description: String { "building the workloads (make -C Tests/Workloads) failed: \(output)" }
    }

    /// Builds the workloads (make is incremental, so every suite may call it).
    public static func buildWorkloads() throws {
        let r = try Child.run(["/usr/bin/make", "-s", "-C", workloads, "OUT=\(out)"], stderr: .mergeIntoStdout)
        guard r.status == 0 else { throw BuildFailed(output: r.stdout) }
    }
}
