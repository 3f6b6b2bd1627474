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
