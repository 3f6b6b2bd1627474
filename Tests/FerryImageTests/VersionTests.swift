import Testing
@testable import FerryImage

@Test func versionIsSet() { #expect(!FerryVersion.string.isEmpty) }
