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
        // Seeded image generator and record-level helpers shared by the image and CLI tests.
        .target(name: "FerryImageFixtures", dependencies: ["FerryImage"], path: "Tests/FerryImageFixtures"),
        .testTarget(name: "FerryImageTests", dependencies: ["FerryImage", "FerryImageFixtures"]),
        // Runs the built `ferry` binary (so `swift build` must have built it).
        .testTarget(name: "FerryCLITests", dependencies: ["FerryImage", "FerryImageFixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
