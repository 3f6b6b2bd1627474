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
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryImage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "FerryImageTests", dependencies: ["FerryImage"]),
        // OS-neutral restore logic: register tables, XSAVE, syscall restart,
        // layout planning, stack relocation, vDSO proxying. Pure: no syscalls.
        .target(name: "FerryCore", dependencies: ["FerryImage"]),
        .testTarget(name: "FerryCoreTests", dependencies: ["FerryCore", "FerryImage"]),
    ],
    swiftLanguageModes: [.v6]
)
