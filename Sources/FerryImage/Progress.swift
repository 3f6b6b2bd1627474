import Synchronization

/// Bytes of page contents moved so far in this run (read from a process at
/// checkpoint, written into one at restore), counted where the work is done
/// and read by a progress display on another thread. One relaxed atomic add
/// per run of pages.
public final class PageProgress: Sendable {
    public static let shared = PageProgress()
    private let moved = Atomic<UInt64>(0)

    public init() {}

    public func add(pages: Int) {
        moved.wrappingAdd(UInt64(max(0, pages)) * UInt64(ImageFormat.pageSize), ordering: .relaxed)
    }

    public var bytes: UInt64 { moved.load(ordering: .relaxed) }
}
