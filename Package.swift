// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ferry",
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
    ],
    targets: [
        // OS-neutral image: model, encodings. Imports no OS module.
        .target(name: "CFerryCRC"),
        .target(name: "CFerryFile"),
        .target(name: "FerryImage", dependencies: ["CFerryCRC", "CFerryFile"]),
        // ELF64 reading over libelf/gelf (elfutils on Linux, base libelf on FreeBSD).
        .systemLibrary(
            name: "CLibElf",
            path: "Sources/CLibElf",
            providers: [.apt(["libelf-dev"])]),
        .target(name: "FerryELF", dependencies: ["CLibElf"]),
        // OS-neutral logic: register conversion, XSAVE, syscall restart, layout, relocation, vDSO plans.
        .target(name: "FerryCore", dependencies: ["FerryImage", "FerryContainer"]),
        // Neutral container spec and its Linux / FreeBSD / OCI translations.
        .target(name: "FerryContainer"),
        // Linux backend: C shims for what Swift cannot call, then /proc, ptrace, injection.
        .target(name: "CFerryLinux"),
        .target(name: "FerryLinux", dependencies: ["FerryImage", "FerryCore", "FerryELF", "FerryContainer", "CFerryLinux"]),
        // FreeBSD backend: C shim (empty on Linux) and thin Swift over it.
        .target(name: "CFerryFreeBSD"),
        .target(name: "FerryFreeBSD", dependencies: ["CFerryFreeBSD", "FerryCore", "FerryImage"]),
        // Migration over the network: framing, handshake, NIO channel <-> blocking byte streams, TLS.
        .target(
            name: "FerryTransport",
            dependencies: [
                "FerryImage",
                "FerryCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryImage",
                "FerryContainer",
                "FerryCore",
                "FerryTransport",
                .target(name: "FerryLinux", condition: .when(platforms: [.linux])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // Seeded image generator and record-level helpers shared by the image and CLI tests.
        .target(name: "FerryImageFixtures", dependencies: ["FerryImage"], path: "Tests/FerryImageFixtures"),
        // Paths of the built ferry and the workloads, for the tests that run real processes.
        .target(name: "FerryTestSupport", dependencies: ["CFerryLinux"], path: "Tests/FerryTestSupport"),
        .testTarget(name: "FerryImageTests", dependencies: ["FerryImage", "FerryImageFixtures", "CFerryCRC"]),
        // Runs the built `ferry` binary (so `swift build` must have built it).
        .testTarget(name: "FerryCLITests", dependencies: ["FerryImage", "FerryImageFixtures", "FerryTestSupport"]),
        .testTarget(name: "FerryELFTests", dependencies: ["FerryELF", "FerryTestSupport"]),
        .testTarget(name: "FerryCoreTests", dependencies: ["FerryCore", "FerryImage", "FerryImageFixtures", "FerryELF", "CFerryFreeBSD", "FerryContainer"]),
        // The FreeBSD restorer's walk, against a recording double of the FreeBSD calls (runs on Linux).
        .testTarget(name: "FerryFreeBSDTests", dependencies: ["FerryFreeBSD", "FerryCore", "FerryImage", "FerryImageFixtures"]),
        .testTarget(name: "FerryContainerTests", dependencies: ["FerryContainer", "FerryTestSupport"]),
        // Real processes: workloads checkpointed and restored (root).
        .testTarget(name: "FerryLinuxTests", dependencies: ["FerryLinux", "FerryImage", "FerryContainer", "FerryTestSupport"]),
        // Framing/handshake units, and live migrations between two network namespaces (root).
        // The fuzz targets (decoders of image and wire input), shared by the libFuzzer binary
        // (FERRY_FUZZ, below) and the tests that replay the saved corpus (Tests/FuzzCorpus).
        .target(name: "FerryFuzzTargets", dependencies: ["FerryImage", "FerryCore", "FerryContainer", "FerryTransport", .product(name: "NIOCore", package: "swift-nio"),
                                                         .product(name: "NIOEmbedded", package: "swift-nio")],
                path: "Tests/FerryFuzzTargets"),
        .testTarget(name: "FerryFuzzTests", dependencies: ["FerryFuzzTargets", "FerryTestSupport"]),
        .testTarget(
            name: "FerryTransportTests",
            dependencies: ["FerryTransport", "FerryImage", "FerryImageFixtures", "FerryTestSupport", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio")]),
    ],
    swiftLanguageModes: [.v6]
)

// `FERRY_FUZZ=1 swift build --scratch-path .build/fuzz --product ferry-fuzz` (what `make fuzz` runs):
// the decoders and the fuzz targets built with libFuzzer's coverage instrumentation, and the
// libFuzzer binary. Kept out of the normal build, which must not carry the instrumentation.
if let sanitizers = Context.environment["FERRY_FUZZ"] {
    let flags: [SwiftSetting] = [.unsafeFlags(["-sanitize=" + (sanitizers == "1" ? "fuzzer" : sanitizers)])]
    for target in package.targets where ["FerryImage", "FerryCore", "FerryTransport", "FerryFuzzTargets"].contains(target.name) {
        target.swiftSettings = (target.swiftSettings ?? []) + flags
    }
    package.products.append(.executable(name: "ferry-fuzz", targets: ["FerryFuzz"]))
    package.targets.append(.executableTarget(
        name: "FerryFuzz", dependencies: ["FerryFuzzTargets", "FerryImageFixtures", "FerryImage", "FerryTransport",
                                          .product(name: "NIOCore", package: "swift-nio")],
        path: "Tests/FerryFuzz", swiftSettings: flags,
        linkerSettings: [.unsafeFlags(["-sanitize=" + (sanitizers == "1" ? "fuzzer" : sanitizers)])]))
}
