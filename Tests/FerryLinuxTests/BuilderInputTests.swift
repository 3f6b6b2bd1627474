#if os(Linux)
import Testing
@testable import FerryLinux

/// An image whose thread list does not match the threads the builder made
/// (a tid missing or repeated) is refused in one line instead of trapping.
struct BuilderInputTests {
    @Test func missingThreadIsAnError() {
        let error = #expect(throws: FerryError.self) {
            _ = try ProcessBuilder.thread(42, in: [41: Tracee(41)], pid: 41)
        }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("thread 42 was not created"), "\(text)")
        #expect(!text.contains("\n"))
    }

    @Test func presentThreadIsFound() throws {
        #expect(try ProcessBuilder.thread(41, in: [41: Tracee(41)], pid: 41).tid == 41)
    }
}
#endif
