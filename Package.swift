// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ferry",
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // OS-neutral image: model, encodings. Imports no OS module.
        .target(name: "CFerryCRC"),
        .target(name: "FerryImage", dependencies: ["CFerryCRC"]),
        // Linux backend: C shims for what Swift cannot call, then /proc, ptrace, injection.
        .target(name: "CFerryLinux"),
        .target(name: "FerryLinux", dependencies: ["FerryImage", "CFerryLinux"]),
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryImage",
                .target(name: "FerryLinux", condition: .when(platforms: [.linux])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "FerryImageTests", dependencies: ["FerryImage"]),
        // ELF64 reading over libelf/gelf (elfutils on Linux, base libelf on FreeBSD).
        .systemLibrary(
            name: "CLibElf",
            path: "Sources/CLibElf",
            providers: [.apt(["libelf-dev"])]),
        .target(name: "FerryELF", dependencies: ["CLibElf"]),
        .testTarget(name: "FerryELFTests", dependencies: ["FerryELF"]),
        // FreeBSD backend: C shim (empty on Linux) and thin Swift over it.
        .target(name: "CFerryFreeBSD"),
        .target(name: "FerryFreeBSD", dependencies: ["CFerryFreeBSD"]),
    ],
    swiftLanguageModes: [.v6]
)
