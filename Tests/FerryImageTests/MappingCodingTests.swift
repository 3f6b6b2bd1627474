import Foundation
import Testing
@testable import FerryImage

/// The two JSON forms of a mapping (MappingCoding.swift).
@Suite("Mapping JSON")
struct MappingCodingTests {
    static let plain = Mapping(start: 0x7f00_0000_0000, end: 0x7f00_0000_2000, protection: [.read], kind: .anonymous,
                               flags: [.locked, .dontFork], fileOffset: 0x1000, name: "[anon:x]")
    static let file = Mapping(start: 0x40_0000, end: 0x40_1000, protection: [.read, .exec], kind: .privateFile,
                              fileOffset: 0, file: FileIdentity(path: "/bin/true", size: 1, mtimeNs: 2, device: 3, inode: 4), name: "/bin/true")

    static func text(_ m: Mapping) throws -> String { String(decoding: try ImageJSON.encode(m), as: UTF8.self) }
    static func decode(_ s: String) throws -> Mapping { try ImageJSON.decode(Mapping.self, from: Array(s.utf8)) }

    @Test func plainMappingIsAnArrayAndRoundTrips() throws {
        let s = try Self.text(Self.plain)
        #expect(s == "[139637976727552,139637976735744,1,\"anonymous\",136,4096,\"[anon:x]\"]")
        #expect(try Self.decode(s) == Self.plain)
    }

    @Test func otherMappingsKeepNamedFields() throws {
        var shared = Self.plain
        shared.kind = .sharedAnonymous
        shared.sharedObject = 77
        shared.memfd = MemfdIdentity(name: "m", size: 8192, allowsSealing: true)
        for m in [Self.file, shared] {
            let s = try Self.text(m)
            #expect(s.hasPrefix("{\"end\":"))
            #expect(try Self.decode(s) == m)
        }
    }

    /// A System V attach keeps its segment (the array form has no room for it).
    @Test func sysvAttachKeepsItsSegment() throws {
        var m = Self.plain
        m.kind = .sharedAnonymous
        m.sysv = SysVSegment(id: 32770, key: 0x1234, mode: 0o640, uid: 1, gid: 2, cuid: 3, cgid: 4, size: 8192, destroyed: true, locked: false)
        let s = try Self.text(m)
        #expect(s.hasPrefix("{") && s.contains("\"sysv\""))
        #expect(try Self.decode(s) == m)
    }

    /// Every stored property of Mapping has a coding key: one added to the
    /// struct and not to MappingCoding would be dropped from every image.
    @Test func everyPropertyIsCoded() {
        let stored = Mirror(reflecting: Self.plain).children.compactMap(\.label)
        #expect(Set(stored) == Set(Mapping.Field.allCases.map(\.rawValue)))
    }

    /// Images written before the array form hold every mapping as an object.
    @Test func keyedPlainMappingStillReads() throws {
        let old = "{\"end\":139637976735744,\"fileOffset\":4096,\"flags\":136,\"kind\":\"anonymous\",\"name\":\"[anon:x]\",\"protection\":1,\"start\":139637976727552}"
        #expect(try Self.decode(old) == Self.plain)
    }

    @Test(arguments: [
        "[1,2,1,\"anonymous\",0,0,\"\",5]",       // a field too many
        "[1,2,1,\"anonymous\",0,0]",              // a field short
        "[1,2,1,\"nosuchkind\",0,0,\"\"]",        // unknown kind
        "[-1,2,1,\"anonymous\",0,0,\"\"]",        // negative address
        "[1,2,1,\"anonymous\",0,0,null]",         // no name
        "[]",
    ])
    func malformedArraysAreRefused(_ s: String) {
        #expect(throws: (any Error).self) { try Self.decode(s) }
    }
}
