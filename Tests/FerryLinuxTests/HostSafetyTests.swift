import FerryContainer
import FerryImage
@testable import FerryLinux
import Testing

/// What keeps a restore from touching the host outside what the image
/// means, as pure decisions (no root needed).
struct HostSafetyTests {
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
        // One pipe (two ends) and one shared file in the pool; the root parks 4 files (the dup is not parked).
        #expect(slots.tempBase == slots.base + 3)
        #expect(slots.end == slots.tempBase + 4)
        #expect(FileState.WorkingFDs(processes: [Self.process(1, [])]).base >= 3)
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
