import Foundation
import Testing
@testable import FerryContainer

@Test(arguments: [
    ("0", [0] as [UInt32], "0"),
    ("0-3,6", [0, 1, 2, 3, 6], "0-3,6"),
    ("6,0-3", [0, 1, 2, 3, 6], "0-3,6"),
    ("1,2,3", [1, 2, 3], "1-3"),
    (" 0-1\n", [0, 1], "0-1"),
    ("4-4,2", [2, 4], "2,4"),
])
func cpuListParsesAndFormats(text: String, cpus: [UInt32], formatted: String) throws {
    let list = try CPUList(parsing: text, field: "cpus")
    #expect(list.cpus == cpus)
    #expect(list.description == formatted)
}

@Test(arguments: ["", "a", "3-1", "0-", "0,,1", "-1", "0-99999", "1-2-3"])
func cpuListRejects(text: String) {
    #expect(throws: ContainerError.self) { try CPUList(parsing: text, field: "cpuset.cpus") }
}

/// quota, period → pcpu, and whether the result carries a note.
@Test(arguments: [
    (50_000, 100_000, 50, false),
    (200_000, 100_000, 200, false),
    (100_000, 100_000, 100, false),
    (33_333, 100_000, 34, true),      // 33.333 % rounds up
    (25_000, 50_000, 50, true),       // exact, but the period is not carried
    (1_000, 1_000_000, 1, true),      // 0.1 % rounds up to 1
])
func pcpuFromQuota(quota: UInt64, period: UInt64, pcpu: UInt64, noted: Bool) throws {
    var notes = NoteList()
    #expect(try RctlTranslation.percent(quota: quota, period: period, notes: &notes) == pcpu)
    #expect(notes.items.isEmpty == !noted)
    #expect(notes.items.allSatisfy { $0.kind == .approximated })
}

@Test func pcpuRoundingNoteHasTheExactValue() throws {
    var notes = NoteList()
    _ = try RctlTranslation.percent(quota: 33_333, period: 100_000, notes: &notes)
    #expect(notes.items.first?.reason.contains("33.3330") == true)
}

@Test func pcpuOverflowIsAnError() {
    var notes = NoteList()
    #expect(throws: ContainerError.self) {
        try RctlTranslation.percent(quota: UInt64.max, period: 1, notes: &notes)
    }
}

@Test(arguments: [(2, 1), (1024, 39), (262_144, 10_000), (512, 20), (100, 4)] as [(UInt64, UInt64)])
func sharesToWeight(shares: UInt64, weight: UInt64) {
    #expect(CPUWeight.weight(fromShares: shares) == weight)
}

@Test(arguments: [1, 2, 39, 100, 5000, 9999, 10_000] as [UInt64])
func weightSurvivesSharesRoundTrip(weight: UInt64) {
    #expect(CPUWeight.weight(fromShares: CPUWeight.shares(fromWeight: weight)) == weight)
}

@Test(arguments: [10, 11, 500, 999, 1000] as [UInt64])
func ioWeightV1SurvivesV2RoundTrip(weight: UInt64) {
    #expect(LinearScale.ioWeight.backward(LinearScale.ioWeight.forward(weight)) == weight)
}

@Test(arguments: [
    ("0", 0), ("50", 50), ("1k", 1024), ("512m", 536_870_912), ("2G", 2_147_483_648), ("1t", 1 << 40),
] as [(String, UInt64)])
func rctlAmounts(text: String, value: UInt64) {
    #expect(RctlRule.parseAmount(Substring(text)) == value)
}

@Test(arguments: ["", "-1", "1x", "k", "99999999999999999999", "16e"])
func rctlAmountRejects(text: String) {
    #expect(RctlRule.parseAmount(Substring(text)) == nil)
}

@Test(arguments: [(536_870_912, "512m"), (1024, "1k"), (1000, "1000"), (3 << 30, "3g"), (0, "0")] as [(UInt64, String)])
func rctlByteFormatting(value: UInt64, text: String) {
    #expect(RctlRule.formatBytes(value) == text)
}
