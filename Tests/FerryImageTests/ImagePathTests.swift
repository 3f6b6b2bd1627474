import Testing
import FerryImage

/// Names and paths from an image are checked before any use (`ImagePath`),
/// and the readers refuse pages aimed at a shared file mapping.
struct ImagePathTests {
    @Test("a single name", arguments: [
        ("ct42", nil), ("my.container-1", nil), ("..x", nil),
        ("", "it is empty"), (".", "it is \".\""), ("..", "it is \"..\""),
        ("a/b", "it contains a \"/\""), ("/etc", "it contains a \"/\""), ("../../etc", "it contains a \"/\""),
        ("a\u{0}b", "it contains a NUL byte"), (String(repeating: "n", count: 256), "it is longer than 255 bytes"),
    ] as [(String, String?)])
    func name(_ text: String, _ problem: String?) {
        #expect(ImagePath.problem(text, as: .name) == problem)
    }

    @Test("an absolute path", arguments: [
        ("/usr/bin/app", nil), ("/", nil), ("/var//log/app.log", nil), ("/tmp/..data", nil), ("/tmp/x (deleted)", nil),
        ("usr/bin/app", "it is not an absolute path"), ("", "it is not an absolute path"),
        ("/tmp/../etc/shadow", "it has a \"..\" component"), ("/..", "it has a \"..\" component"),
        ("/tmp/./x", "it has a \".\" component"), ("/tmp/x\u{0}", "it contains a NUL byte"),
    ] as [(String, String?)])
    func absolute(_ text: String, _ problem: String?) {
        #expect(ImagePath.problem(text, as: .absolute) == problem)
    }

    @Test func messageNamesTheFieldOnOneLine() {
        let e = #expect(throws: ImageError.self) {
            try ImagePath.check("/a/../b\nc", as: .absolute, field: "process 7: path of fd 3", in: "meta.img")
        }
        #expect(e?.description == "meta.img: process 7: path of fd 3 \"/a/../b\\u{a}c\" is refused: it has a \"..\" component")
    }

    static func meta(_ change: (inout ProcessImage) -> Void) -> ImageMetadata {
        var p = ProcessImage(pid: 10, exe: FileIdentity(path: "/usr/bin/app", size: 1, mtimeNs: 0), cwd: "/srv",
                             mappings: [Mapping(start: 0x10000, end: 0x20000, protection: [.read, .write], kind: .anonymous),
                                        Mapping(start: 0x20000, end: 0x30000, protection: [.read, .write], kind: .sharedFile,
                                                file: FileIdentity(path: "/srv/data", size: 65536, mtimeNs: 0), name: "/srv/data")],
                             threads: [ThreadImage(tid: 10)],
                             files: [FileDescriptorImage(fd: 0, kind: .characterDevice, flags: 2, path: "/dev/null")])
        change(&p)
        return ImageMetadata(source: SourceHost(os: "linux", kernelRelease: "6.8", cpu: CPUFeatures(xcr0: 7, xsaveSize: 832, flags: [])),
                             processes: [p])
    }

    @Test func validationChecksEveryPathARestoreUses() throws {
        try Validation.validate(Self.meta { _ in }, name: "ok")
        let bad: [(String, (inout ProcessImage) -> Void)] = [
            ("executable", { $0.exe?.path = "/usr/../bin/sh" }),
            ("working directory", { $0.cwd = "srv" }),
            ("file of mapping 0x20000", { $0.mappings[1].file?.path = "/srv/../etc/passwd" }),
            ("path of fd 0", { $0.files[0].path = "/dev/../etc/shadow" }),
            ("path of fd 4", { $0.files.append(FileDescriptorImage(fd: 4, kind: .regular, flags: 0, path: "/ok",
                                                                   file: FileIdentity(path: "relative", size: 0, mtimeNs: 0))) }),
        ]
        for (field, change) in bad {
            let e = #expect(throws: ImageError.self) { try Validation.validate(Self.meta(change), name: "m") }
            #expect(e?.message.contains("process 10: \(field) ") == true, "\(field): \(String(describing: e))")
        }
    }

    @Test func pagesInASharedFileMappingAreRefused() throws {
        let index = MappingIndex(Self.meta { _ in })
        try index.check(pid: 10, address: 0x10000, bytes: 4096, file: "pages.img", offset: 16)
        let e = #expect(throws: ImageError.self) {
            try index.check(pid: 10, address: 0x21000, bytes: 4096, file: "pages.img", offset: 32)
        }
        #expect(e?.message.contains("a shared mapping of the file /srv/data") == true, "\(String(describing: e))")
    }
}
