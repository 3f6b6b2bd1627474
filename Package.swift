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
        .target(name: "FerryImage"),
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryImage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "FerryImageTests", dependencies: ["FerryImage"]),
        // FreeBSD backend: C shim (empty on Linux) and thin Swift over it.
        .target(name: "CFerryFreeBSD"),
        .target(name: "FerryFreeBSD", dependencies: ["CFerryFreeBSD"]),
    ],
    swiftLanguageModes: [.v6]
)
