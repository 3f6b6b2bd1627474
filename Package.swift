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
                "FerryContainer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "FerryImageTests", dependencies: ["FerryImage"]),
        // Neutral container spec and its Linux/OCI/FreeBSD translations. Foundation only.
        .target(name: "FerryContainer"),
        .testTarget(name: "FerryContainerTests", dependencies: ["FerryContainer"]),
    ],
    swiftLanguageModes: [.v6]
)
