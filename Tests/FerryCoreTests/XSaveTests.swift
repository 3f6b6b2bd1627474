import Testing
import FerryImage
@testable import FerryCore

let incompatibleCases: [(UInt64, Int, UInt64, Int, String)] = [
    (0xe7, 2440, 0x7, 832,
     "cannot restore: the image uses AVX-512 state (XCR0 0xe7) but this CPU enables 0x7"),
    (0x2e7, 2696, 0xe7, 2440,
     "cannot restore: the image uses PKRU state (XCR0 0x2e7) but this CPU enables 0xe7"),
    (0x1f, 1088, 0x7, 832,
     "cannot restore: the image uses MPX state (XCR0 0x1f) but this CPU enables 0x7"),
    (0x60207, 11008, 0x207, 2696,
     "cannot restore: the image uses AMX state (XCR0 0x60207) but this CPU enables 0x207"),
    (0x47, 1152, 0x27, 1152,
     "cannot restore: the image uses AVX-512 ZMM_Hi256 state (XCR0 0x47) but this CPU enables 0x27"),
]

@Test(arguments: incompatibleCases)
func xsaveIncompatible(_ imageXCR0: UInt64, _ imageSize: Int, _ targetXCR0: UInt64, _ targetSize: Int, _ reason: String) {
    #expect(XSave.canRestore(imageXCR0: imageXCR0, imageSize: imageSize, targetXCR0: targetXCR0, targetSize: targetSize)
            == .incompatible(reason: reason))
}

let compatibleCases: [(UInt64, Int, UInt64, Int)] = [
    (0x7, 832, 0x2e7, 2696),                    // AVX image on an AVX-512 host
    (0x2e7, 2696, 0x2e7, 2696),                 // same
    (0x3, 576, 0x7, 832),                       // SSE only
]

@Test(arguments: compatibleCases)
func xsaveCompatible(_ imageXCR0: UInt64, _ imageSize: Int, _ targetXCR0: UInt64, _ targetSize: Int) {
    #expect(XSave.canRestore(imageXCR0: imageXCR0, imageSize: imageSize, targetXCR0: targetXCR0, targetSize: targetSize).isCompatible)
}

@Test func shortAreaIsRefused() {
    #expect(XSave.canRestore(imageXCR0: 0x7, imageSize: 512, targetXCR0: 0x7, targetSize: 832).reason?.contains("512 bytes") == true)
}

func area(size: Int, xstateBV: UInt64, xcr0Word: UInt64 = 0) -> [UInt8] {
    var a = [UInt8](repeating: 0xAB, count: size)
    put(&a, 464, 8, xcr0Word)
    for i in 512..<576 { a[i] = 0 }
    put(&a, 512, 8, xstateBV)
    return a
}

@Test func freeBSDAreaGetsXCR0PatchedIn() throws {
    let state = try XSave.normalizeFromFreeBSD(area(size: 832, xstateBV: 0x7), xcr0: 0x7)
    #expect(state.xcr0 == 0x7)
    #expect(XSave.xcr0Word(state.area.value) == 0x7)
    #expect(throws: XSaveError.self) { try XSave.normalizeFromFreeBSD([UInt8](repeating: 0, count: 512), xcr0: 0x7) }
}

@Test func linuxAreaKeepsItsXCR0() throws {
    let state = try XSave.normalizeFromLinux(area(size: 2696, xstateBV: 0x207, xcr0Word: 0x2e7))
    #expect(state.xcr0 == 0x2e7)
}

@Test func forFreeBSDClearsTheXCR0WordAndRoundTrips() throws {
    let original = area(size: 832, xstateBV: 0x7)
    let state = try XSave.normalizeFromFreeBSD(original, xcr0: 0x7)
    #expect(try XSave.forFreeBSD(state, targetXCR0: 0x7, targetSize: 832) == original)
}

@Test func forLinuxPadsMasksAndSetsXCR0() throws {
    var a = area(size: 832, xstateBV: 0x7, xcr0Word: 0x7)
    put(&a, 520, 8, 0x8000_0000_0000_0007)  // a compacted-format XCOMP_BV must not reach Linux
    let out = try XSave.forLinux(ExtendedState(xcr0: 0x7, area: a), targetXCR0: 0x2e7, targetSize: 2696)
    #expect(out.count == 2696)
    #expect(XSave.xcr0Word(out) == 0x2e7)
    #expect(XSave.xstateBV(out) == 0x7)
    #expect(out[520..<576].allSatisfy { $0 == 0 })
    #expect(out[832...].allSatisfy { $0 == 0 })
    #expect(out[0..<464] == a[0..<464])
}

@Test func preparingForASmallerCPUThrowsTheVerdict() {
    let state = ExtendedState(xcr0: 0xe7, area: area(size: 2440, xstateBV: 0xe7, xcr0Word: 0xe7))
    #expect(throws: XSaveError(description: "cannot restore: the image uses AVX-512 state (XCR0 0xe7) but this CPU enables 0x7")) {
        try XSave.forLinux(state, targetXCR0: 0x7, targetSize: 832)
    }
}

@Test func componentNames() {
    #expect(XSaveComponent.describe(0x60000) == "AMX")
    #expect(XSaveComponent.describe(0x20000) == "AMX tilecfg")
    #expect(XSaveComponent.describe(0x8 | (1 << 40)) == "MPX bndregs, bit 40")
}

@Test func cpuFlagsMissingOnTheTarget() {
    let image = CPUFeatures(xcr0: 0x7, xsaveSize: 832, flags: ["sse2", "avx", "avx2", "bmi2", "hypervisor"])
    let target = CPUFeatures(xcr0: 0x7, xsaveSize: 832, flags: ["sse2", "avx"])
    let result = CPUFeatureCheck.cpuCompatibility(image: image, target: target, required: CPUFeatureCheck.isaFlags)
    #expect(result.missing == ["avx2", "bmi2"])
    #expect(result.reason?.hasPrefix("cannot restore: the image ran on a CPU with avx2, bmi2") == true)
    #expect(CPUFeatureCheck.cpuCompatibility(image: target, target: image, required: CPUFeatureCheck.isaFlags).isCompatible)
}
