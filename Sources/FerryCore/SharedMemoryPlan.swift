import FerryImage

/// Who creates and who maps the shared memory objects of an image
/// (MAP_SHARED|MAP_ANONYMOUS or /dev/zero mapped shared, inherited across
/// fork): each object named by a mapping's `sharedObject` is created once,
/// in the root before it forks the tree, as a shmem file as large as the
/// furthest byte any mapping of it reaches; it is held at a working
/// descriptor that every process inherits, and each mapping of the object
/// maps that descriptor at its own offset. Mappings in different processes,
/// at different offsets or twice in one process all reach the same pages.
public struct SharedMemoryPlan: Equatable, Sendable {
    public struct Object: Equatable, Sendable {
        /// The object's id in the image (its shmem inode at checkpoint).
        public var id: UInt64
        /// Bytes: the end of the furthest mapping of it.
        public var size: UInt64
        /// Index of its working descriptor, from the plan's first one.
        public var slot: Int
    }

    /// In the order of first use (root first, then the image's process order).
    public private(set) var objects: [Object] = []

    /// Largest object restored (bytes): larger ones are refused as corrupt.
    public static let maxObjectSize: UInt64 = 1 << 46

    public init() {}

    /// The plan for `processes`, or the one-line reason the image is refused.
    public static func make(_ processes: [ProcessImage]) throws(PlanError) -> SharedMemoryPlan {
        var plan = SharedMemoryPlan()
        var index: [UInt64: Int] = [:]
        for p in processes {
            for m in p.mappings {
                guard let id = m.sharedObject else { continue }
                guard m.kind == .sharedAnonymous else {
                    throw PlanError("process \(p.pid) maps \(m.kind.rawValue) memory at 0x\(String(m.start, radix: 16)) as shared object \(id), which only shared anonymous memory can be")
                }
                let (end, overflow) = m.fileOffset.addingReportingOverflow(m.end &- m.start)
                guard m.end > m.start, !overflow, end <= maxObjectSize, m.fileOffset % 4096 == 0 else {
                    throw PlanError("process \(p.pid) maps shared object \(id) at 0x\(String(m.start, radix: 16)) with offset \(m.fileOffset) and size \(m.end &- m.start), out of bounds")
                }
                if let i = index[id] {
                    plan.objects[i].size = max(plan.objects[i].size, end)
                } else {
                    index[id] = plan.objects.count
                    plan.objects.append(Object(id: id, size: end, slot: plan.objects.count))
                }
            }
        }
        return plan
    }

    /// The object `id`, if the plan has it.
    public func object(_ id: UInt64) -> Object? { objects.first { $0.id == id } }

    public struct PlanError: Error, Equatable, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = "cannot restore: " + d }
    }
}
