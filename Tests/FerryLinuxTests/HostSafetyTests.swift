import FerryContainer
import FerryImage
@testable import FerryLinux
import Testing

/// What keeps a restore from splitting shared memory or touching the host
/// outside what the image means, as pure decisions (no root needed).
struct HostSafetyTests {
    static func entry(_ start: UInt64, _ pages: UInt64 = 1, offset: UInt64 = 0, inode: UInt64, path: String,
                      shared: Bool = true) -> ProcFS.MapEntry {
        ProcFS.MapEntry(start: start, end: start + pages * 4096, read: true, write: true, exec: false, shared: shared,
                        offset: offset, device: 1, inode: inode, path: path)
    }

    static let anon = "/dev/zero (deleted)"

    @Test func oneSharedMappingNobodyElseMapsIsCarried() {
        let tree = [(pid: Int32(10), maps: [Self.entry(0x1000, 4, inode: 5, path: Self.anon),
                                            Self.entry(0x9000, 2, inode: 6, path: "/memfd:buf (deleted)"),
                                            Self.entry(0x20000, inode: 7, path: "/srv/data")]),
                    (pid: Int32(11), maps: [Self.entry(0x1000, 4, inode: 8, path: Self.anon),
                                            Self.entry(0x20000, inode: 7, path: "/srv/data"),
                                            Self.entry(0x30000, inode: 5, path: "/x", shared: false)])]
        // Two processes sharing a regular file (inode 7) is fine: the file stays the shared medium.
        #expect(SharedMemory.refusal(tree: tree) == nil)
    }

    /// MAP_SHARED|MAP_ANONYMOUS memory or a memfd across fork, at other offsets or twice in a process
    /// is carried (one object, SharedMemoryPlan); a deleted file shared across fork is not.
    @Test func sharedAnonymousMemoryAcrossForkIsCarriedMemfdIsNot() throws {
        let tree = [(pid: Int32(10), maps: [Self.entry(0x7f00_0000_0000, inode: 5, path: Self.anon),
                                            Self.entry(0x7f00_0001_0000, offset: 0, inode: 5, path: Self.anon)]),
                    (pid: Int32(11), maps: [Self.entry(0x7f00_0000_0000, inode: 5, path: Self.anon)])]
        #expect(SharedMemory.refusal(tree: tree) == nil)
        let entry = Self.entry(0x1000, inode: 5, path: Self.anon)
        #expect(SharedMemory.isAnonymousShared(entry))
        #expect(!SharedMemory.isAnonymousShared(Self.entry(0x1000, inode: 5, path: Self.anon, shared: false)))
        #expect(!SharedMemory.isAnonymousShared(Self.entry(0x1000, inode: 6, path: "/memfd:buf (deleted)")))
        #expect(SharedMemory.isPlannedShared(Self.entry(0x1000, inode: 6, path: "/memfd:buf (deleted)")))
        let memfd = [(pid: Int32(10), maps: [Self.entry(0x7f00_0000_0000, inode: 6, path: "/memfd:buf (deleted)")]),
                     (pid: Int32(11), maps: [Self.entry(0x7f00_0000_0000, inode: 6, path: "/memfd:buf (deleted)")])]
        #expect(SharedMemory.refusal(tree: memfd) == nil)
        let deleted = [(pid: Int32(10), maps: [Self.entry(0x7f00_0000_0000, inode: 6, path: "/tmp/buf (deleted)")]),
                       (pid: Int32(11), maps: [Self.entry(0x7f00_0000_0000, inode: 6, path: "/tmp/buf (deleted)")])]
        let why = try #require(SharedMemory.refusal(tree: deleted))
        #expect(why.hasPrefix("cannot checkpoint: process 10 at 0x7f0000000000-0x7f0000001000 and process 11 at 0x7f0000000000-0x7f0000001000 share shared memory of the deleted file /tmp/buf;"), "\(why)")
        #expect(!why.contains("\n"))
    }

    @Test func deletedFileMappedTwiceInOneProcess() throws {
        let tree = [(pid: Int32(10), maps: [Self.entry(0x1000, 2, inode: 6, path: "/tmp/jit (deleted)"),
                                            Self.entry(0x8000, 2, inode: 6, path: "/tmp/jit (deleted)")])]
        let why = try #require(SharedMemory.refusal(tree: tree))
        #expect(why.contains("maps the same shared memory of the deleted file /tmp/jit twice"), "\(why)")
        // One area split by mprotect: the same object, parts that follow each other.
        let split = [(pid: Int32(10), maps: [Self.entry(0x1000, 2, inode: 6, path: "/tmp/jit (deleted)"),
                                             Self.entry(0x3000, 2, offset: 0x2000, inode: 6, path: "/tmp/jit (deleted)")])]
        #expect(SharedMemory.refusal(tree: split) == nil)
    }

    /// System V segments are carried (SysVShm): attached by several processes of the tree they are
    /// not refused; one attached by a process outside the tree is.
    @Test func systemVSharedMemoryIsCarriedWithinTheTree() throws {
        let one = [(pid: Int32(10), maps: [Self.entry(0x5000, inode: 3, path: "/SYSV00000000 (deleted)")])]
        #expect(SharedMemory.refusal(tree: one) == nil)
        let two = one + [(pid: Int32(11), maps: [Self.entry(0x5000, inode: 3, path: "/SYSV00000000 (deleted)")])]
        #expect(SharedMemory.refusal(tree: two) == nil)
        let why = try #require(SharedMemory.refusal(tree: one, outside: [.init(pid: 12, entry: Self.entry(0x7000, inode: 3, path: "/SYSV00000000 (deleted)"))]))
        #expect(why.contains("process 10 at 0x5000-0x6000 shares System V shared memory (key 0x00000000, shmid 3) with process 12, which is outside the checkpointed tree"), "\(why)")
    }

    @Test func aSharerOutsideTheTreeIsNamed() throws {
        let tree = [(pid: Int32(11), maps: [Self.entry(0x1000, inode: 5, path: Self.anon)])]
        let why = try #require(SharedMemory.refusal(tree: tree, outside: [.init(pid: 10, entry: Self.entry(0x1000, inode: 5, path: Self.anon))]))
        #expect(why.contains("process 11 at 0x1000-0x2000 shares MAP_SHARED|MAP_ANONYMOUS memory with process 10, which is outside the checkpointed tree"), "\(why)")
    }

    static func process(_ pid: Int32, _ files: [FileDescriptorImage]) -> ProcessImage {
        ProcessImage(pid: pid, threads: [ThreadImage(tid: pid)], files: files)
    }

    @Test func ferrysDescriptorsSitAboveEveryFDOfTheImage() {
        var shared = FileDescriptorImage(fd: 5, kind: .regular, flags: 0, path: "/log")
        shared.treeShareID = 1
        let root = Self.process(1, [FileDescriptorImage(fd: 0, kind: .characterDevice, flags: 0, path: "/dev/null"),
                                    FileDescriptorImage(fd: 700, kind: .regular, flags: 0, path: "/a"),
                                    FileDescriptorImage(fd: 701, kind: .pipe, flags: 0, pipeID: 9),
                                    FileDescriptorImage(fd: 998, kind: .pipe, flags: 1, pipeID: 9),
                                    FileDescriptorImage(fd: 999, kind: .regular, flags: 0, path: "/b"),
                                    FileDescriptorImage(fd: 1000, kind: .regular, flags: 0, path: "/c"),
                                    FileDescriptorImage(fd: 1001, kind: .regular, flags: 0, path: "/c", sharedWith: 1000),
                                    shared])
        let child = Self.process(2, [shared, FileDescriptorImage(fd: 3, kind: .epoll, flags: 0)])
        let slots = FileState.WorkingFDs(processes: [root, child])
        #expect(slots.base > 1001)
        // One pipe (two ends) and one shared file in the pool; files of one process only go straight to their numbers.
        #expect(slots.end == slots.base + 3)
        #expect(FileState.WorkingFDs(processes: [Self.process(1, [])]).base >= 3)
    }

    @Test func fdNumbersStayWhereFerrysOwnFitAbove() throws {
        let meta = { (fd: Int32) in
            ImageMetadata(source: SourceHost(os: "linux", kernelRelease: "6.8", cpu: CPUFeatures(xcr0: 7, xsaveSize: 832, flags: [])),
                          processes: [Self.process(1, [FileDescriptorImage(fd: fd, kind: .eventfd, flags: 0)])])
        }
        #expect(throws: ImageError.self) { try Validation.validate(meta(Int32.max), name: "m") }
        #expect(throws: ImageError.self) { try Validation.validate(meta(Validation.fdLimit), name: "m") }
        try Validation.validate(meta(Validation.fdLimit - 1), name: "m")
        #expect(FileState.WorkingFDs(processes: meta(Validation.fdLimit - 1).processes).base > Validation.fdLimit - 1)
    }

    @Test("a container name is one plain path component", arguments: ["../../../etc", "a/b", ".."])
    func containerNameWithAPathIsRefused(_ name: String) throws {
        let record = try ContainerRecord(spec: ContainerSpec(name: name, isolation: Isolation(namespaces: [Namespace(.uts)]))).encoded()
        let meta = ImageMetadata(source: SourceHost(os: "linux", kernelRelease: "6.8", cpu: CPUFeatures(xcr0: 7, xsaveSize: 832, flags: [])),
                                 processes: [Self.process(1, [])], container: record)
        let e = #expect(throws: FerryError.self) { try ContainerState.record(meta) }
        #expect(e?.description.contains("container name") == true, "\(String(describing: e))")
        #expect(ContainerState.leafName(ContainerSpec(name: "web"), restorer: 42) == "web-42")
    }
}
