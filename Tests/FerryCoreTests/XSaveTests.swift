import Testing
import FerryImage
@testable import FerryCore

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

// CPUs of this project's kind, as CPUID 0xD describes them.
/// AMD Zen 4: AVX-512 without MPX's hole, so ZMM state sits lower than on Intel.
let zen4 = CPUFeatures(xcr0: 0xe7, xsaveSize: 2432, flags: ["avx", "avx512f"], vendor: "AuthenticAMD",
                       xsaveLayout: [XSaveExtent(component: 2, offset: 576, size: 256),
                                     XSaveExtent(component: 5, offset: 832, size: 64),
                                     XSaveExtent(component: 6, offset: 896, size: 512),
                                     XSaveExtent(component: 7, offset: 1408, size: 1024)])
/// Intel Sapphire Rapids: AVX-512, PKRU and AMX at the Intel offsets.
let sapphireRapids = CPUFeatures(xcr0: 0x602e7, xsaveSize: 11008, flags: ["avx", "avx512f", "amx_tile"], vendor: "GenuineIntel",
                                 xsaveLayout: [XSaveExtent(component: 2, offset: 576, size: 256),
                                               XSaveExtent(component: 5, offset: 1088, size: 64),
                                               XSaveExtent(component: 6, offset: 1152, size: 512),
                                               XSaveExtent(component: 7, offset: 1664, size: 1024),
                                               XSaveExtent(component: 9, offset: 2688, size: 8),
                                               XSaveExtent(component: 17, offset: 2752, size: 64),
                                               XSaveExtent(component: 18, offset: 2816, size: 8192)])
/// A qemu TCG guest: AVX only.
let tcgGuest = CPUFeatures(xcr0: 0x7, xsaveSize: 832, flags: ["avx"],
                           xsaveLayout: [XSaveExtent(component: 2, offset: 576, size: 256)])

/// A thread's area as Linux's NT_X86_XSTATE gives it on `cpu`: XCR0 word at
/// 464, XSTATE_BV, each component in `bv` filled with its own byte pattern.
func recorded(on cpu: CPUFeatures, bv: UInt64, pkru: UInt32? = nil) -> ExtendedState {
    var a = [UInt8](repeating: 0, count: Int(cpu.xsaveSize))
    for i in 0..<464 { a[i] = UInt8(truncatingIfNeeded: i &* 7) }
    put(&a, 464, 8, cpu.xcr0)
    put(&a, 512, 8, bv)
    for e in cpu.xsaveLayout ?? [] where bv & (1 << UInt64(e.component)) != 0 {
        for i in 0..<e.size { a[e.offset + i] = UInt8(truncatingIfNeeded: e.component &* 31 &+ i) }
    }
    if let pkru, let e = cpu.xsaveLayout?.first(where: { $0.component == 9 }) { put(&a, e.offset, 4, UInt64(pkru)) }
    return ExtendedState(xcr0: cpu.xcr0, area: a)
}

@Test func aThreadThatNeverUsedAVX512MovesToACPUWithoutIt() throws {
    // Zen 4 and Sapphire Rapids threads with only x87/SSE/AVX in use (PKRU at Linux's default).
    for (cpu, state) in [(zen4, recorded(on: zen4, bv: 0x7)),
                         (sapphireRapids, recorded(on: sapphireRapids, bv: 0x207, pkru: XSave.linuxDefaultPKRU))] {
        #expect(XSave.verdict(thread: 7, state: state, source: cpu, permitted: 0x2e7, target: tcgGuest) == nil)
        let out = try XSave.forLinux(state, tid: 7, source: cpu, permitted: 0x2e7, target: tcgGuest)
        #expect(out.count == 832)
        #expect(XSave.xstateBV(out) == 0x7)
        #expect(XSave.xcr0Word(out) == 0x7)
        #expect(out[0..<464] == state.area.value[0..<464])
        #expect(out[576..<832] == state.area.value[576..<832])
    }
}

@Test func componentsInUseNameTheVerdict() {
    let cases: [(CPUFeatures, ExtendedState, UInt64?, String)] = [
        (zen4, recorded(on: zen4, bv: 0xe7), 0xe7, "thread 7 has AVX-512 state in use (XSTATE_BV 0xe7) but this CPU enables XCR0 0x7"),
        (zen4, recorded(on: zen4, bv: 0x27), 0xe7, "thread 7 has AVX-512 opmask state in use (XSTATE_BV 0x27)"),
        (sapphireRapids, recorded(on: sapphireRapids, bv: 0x207, pkru: 0x5555_5550), 0x2e7, "thread 7 has PKRU state in use (XSTATE_BV 0x207)"),
        // Granted AMX: needed even while the tiles hold nothing.
        (sapphireRapids, recorded(on: sapphireRapids, bv: 0x207, pkru: XSave.linuxDefaultPKRU), 0x602e7,
         "thread 7 has AMX state in use (XSTATE_BV 0x207, AMX granted: ARCH_GET_XCOMP_PERM 0x602e7)"),
    ]
    for (cpu, state, permitted, expected) in cases {
        let reason = XSave.verdict(thread: 7, state: state, source: cpu, permitted: permitted, target: tcgGuest)
        #expect(reason?.contains(expected) == true, "\(reason ?? "nil")")
        #expect(throws: XSaveError.self) { try XSave.forLinux(state, tid: 7, source: cpu, permitted: permitted, target: tcgGuest) }
    }
    // PKRU at 0 and at Linux's default both leave no key closed beyond a CPU without PKU.
    for value in [UInt32(0), XSave.linuxDefaultPKRU] {
        let s = recorded(on: sapphireRapids, bv: 0x207, pkru: value)
        #expect(XSave.verdict(thread: 7, state: s, source: sapphireRapids, permitted: 0x2e7, target: zen4) == nil)
    }
}

@Test func avx512StateMovesBetweenAMDAndIntelLayouts() throws {
    let amd = recorded(on: zen4, bv: 0xe7)
    let intel = try XSave.forLinux(amd, source: zen4, permitted: 0xe7, target: sapphireRapids)
    #expect(intel.count == 11008)
    #expect(XSave.xstateBV(intel) == 0xe7)
    for (c, from, to, size) in [(5, 832, 1088, 64), (6, 896, 1152, 512), (7, 1408, 1664, 1024)] {
        #expect(intel[to..<(to + size)] == amd.area.value[from..<(from + size)], "component \(c)")
    }
    // And back: byte-identical to the AMD original.
    let back = try XSave.forLinux(ExtendedState(xcr0: 0x602e7, area: intel), source: sapphireRapids, permitted: 0x2e7, target: zen4)
    #expect(back == amd.area.value)
}

@Test func anImageWithoutARecordedLayoutUsesTheTargetsWhenTheCPUsMatch() throws {
    var old = zen4
    old.xsaveLayout = nil
    let state = recorded(on: zen4, bv: 0xe7)
    #expect(try XSave.forLinux(state, source: old, permitted: nil, target: zen4) == state.area.value)
}

@Test func damagedAreasAreRefusedNotTrapped() {
    let short = ExtendedState(xcr0: 0x7, area: [UInt8](repeating: 0, count: 512))
    #expect(XSave.verdict(thread: 1, state: short, source: tcgGuest, permitted: nil, target: tcgGuest)?.contains("512 bytes") == true)
    // XSTATE_BV claims AVX-512 but the area stops before it.
    var truncated = recorded(on: zen4, bv: 0x7).area.value
    put(&truncated, 512, 8, 0xe7)
    truncated.removeLast(truncated.count - 900)
    let r = XSave.verdict(thread: 1, state: ExtendedState(xcr0: 0xe7, area: truncated), source: zen4, permitted: nil, target: zen4)
    #expect(r?.contains("the image is damaged") == true, "\(r ?? "nil")")
}

@Test func growthIsNamed() {
    #expect(XSave.growth(sourceXCR0: 0x7, targetXCR0: 0xe7)?.contains("AVX-512") == true)
    #expect(XSave.growth(sourceXCR0: 0xe7, targetXCR0: 0x7) == nil)
    #expect(XSave.growth(sourceXCR0: 0, targetXCR0: 0xe7) == nil)
}

@Test func forFreeBSDClearsTheXCR0WordAndRoundTrips() throws {
    let original = area(size: 832, xstateBV: 0x7)
    let state = try XSave.normalizeFromFreeBSD(original, xcr0: 0x7)
    var expected = original
    for i in 464..<512 { expected[i] = 0 }
    #expect(try XSave.forFreeBSD(state, source: tcgGuest, permitted: nil, target: tcgGuest) == expected)
}

@Test func forLinuxPadsMasksAndSetsXCR0() throws {
    var a = area(size: 832, xstateBV: 0x7, xcr0Word: 0x7)
    put(&a, 520, 8, 0x8000_0000_0000_0007)  // a compacted-format XCOMP_BV must not reach Linux
    let out = try XSave.forLinux(ExtendedState(xcr0: 0x7, area: a), source: tcgGuest, permitted: nil, target: sapphireRapids)
    #expect(out.count == 11008)
    #expect(XSave.xcr0Word(out) == 0x602e7)
    #expect(XSave.xstateBV(out) == 0x7)
    #expect(out[520..<576].allSatisfy { $0 == 0 })
    #expect(out[832...].allSatisfy { $0 == 0 })
    #expect(out[0..<464] == a[0..<464])
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
