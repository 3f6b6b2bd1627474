import Foundation
import Testing
@testable import FerryContainer

@Test(arguments: [ContainerTranslation.Target.oci, .linux, .freebsd])
func jsonCarriesSpecTranslationAndNotes(target: ContainerTranslation.Target) throws {
    let rendered = try ContainerTranslation.render(linuxOnlySpec, to: target, jailName: "web")
    #expect(!rendered.text.isEmpty)
    let json = try ContainerTranslation.json(spec: linuxOnlySpec, result: rendered, notes: rendered.notes)
    let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    #expect(Set(doc.keys) == ["spec", "translation", "notTranslated"])
    let notes = try #require(doc["notTranslated"] as? [[String: String]])
    #expect(notes.count == rendered.notes.count)
    #expect(notes.allSatisfy { Set($0.keys) == ["kind", "field", "value", "reason"] })
    // The spec in the JSON decodes back to the spec.
    let specData = try JSONSerialization.data(withJSONObject: doc["spec"]!)
    #expect(try JSONDecoder().decode(ContainerSpec.self, from: specData) == linuxOnlySpec)
}

@Test func freeBSDRenderingReadsBack() throws {
    let rendered = try ContainerTranslation.render(translatableSpec, to: .freebsd, jailName: "web")
    // The printed text (jail.conf plus commented command forms) is itself valid input.
    let back = try FreeBSDJail.read(text: rendered.text).output
    #expect(back.name == "web")
    #expect(back.limits.cpu == translatableSpec.limits.cpu)
    #expect(back.isolation == translatableSpec.isolation)
}

@Test func linuxRenderingListsBothCgroupVersions() throws {
    let text = try ContainerTranslation.render(translatableSpec, to: .linux).text
    #expect(text.contains("cpu/cpu.cfs_quota_us = 50000\n"))
    #expect(text.contains("cpu.max = 50000 100000\n"))
    #expect(text.hasPrefix("# namespaces to create: mount uts ipc network\n"))
}

@Test func badJailNameIsRejected() {
    #expect { try FreeBSDJail.write(translatableSpec, name: "a b") } throws: { "\($0)".hasPrefix("name:") }
}
