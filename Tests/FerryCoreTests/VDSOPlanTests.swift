import Testing
@testable import FerryCore

let linuxBlock = TargetLayout.linuxVDSOBlock(at: 0x7fff_f7fc_0000)

@Test func equalLayoutMovesTogether() {
    let image = TargetLayout.linuxVDSOBlock(at: 0x7ffc_1234_0000)
    #expect(VDSOPlan.decide(image: image, target: linuxBlock) == .moveTogether(to: [0x7ffc_1234_0000, 0x7ffc_1234_4000, 0x7ffc_1234_6000]))
}

@Test func differentLayoutsProxy() {
    let freebsd = TargetLayout.freebsdLinuxulator().vdsoAreas
    #expect(VDSOPlan.decide(image: linuxBlock, target: freebsd) == .proxy)
    var olderKernel = linuxBlock            // [vvar] 12 KiB on an older kernel
    olderKernel[0].size = 0x3000
    #expect(VDSOPlan.decide(image: olderKernel, target: linuxBlock) == .proxy)
    var gap = linuxBlock                    // same sizes, different distance
    gap[2].start += 0x1000
    #expect(VDSOPlan.decide(image: gap, target: linuxBlock) == .proxy)
}

@Test func proxyPatchesHaveExactBytes() throws {
    let old: VDSOSymbolTable = [
        "__vdso_clock_gettime": (0xa40, 0x300), "clock_gettime": (0xa40, 0x300),
        "__vdso_time": (0x9f0, 0x40),
    ]
    let new: VDSOSymbolTable = ["__vdso_clock_gettime": (0x6c0, 0x200), "__vdso_time": (0x600, 0x30)]
    let patches = try VDSOPlan.proxyPatches(oldBase: 0x7fff_f7fc_6000, oldSymbols: old,
                                            newBase: 0x7fff_ffff_e000, newSymbols: new)
    #expect(patches == [
        CodePatch(address: 0x7fff_f7fc_69f0,
                  bytes: [0xFF, 0x25, 0, 0, 0, 0, 0x00, 0xe6, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x00], symbol: "__vdso_time"),
        CodePatch(address: 0x7fff_f7fc_6a40,
                  bytes: [0xFF, 0x25, 0, 0, 0, 0, 0xc0, 0xe6, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x00],
                  symbol: "__vdso_clock_gettime/clock_gettime"),
    ])
}

@Test func missingSymbolIsRefused() {
    let old: VDSOSymbolTable = ["__vdso_future_call": (0xb00, 0x200), "__vdso_time": (0x9f0, 0x40)]
    let new: VDSOSymbolTable = ["__vdso_time": (0x600, 0x30)]
    #expect(throws: VDSOPlanError(description: "cannot proxy the vDSO: the image's vDSO exports __vdso_future_call, which this kernel's vDSO lacks; restore on a kernel that provides it")) {
        try VDSOPlan.proxyPatches(oldBase: 0x7000_0000, oldSymbols: old, newBase: 0x7000_8000, newSymbols: new)
    }
}

@Test func missingGetrandomBecomesItsSyscall() throws {
    // 6.18's vDSO has getrandom (6.11+); 6.1's has not.
    let old: VDSOSymbolTable = ["__vdso_getrandom": (0xb00, 0x200), "getrandom": (0xb00, 0x200), "__vdso_time": (0x9f0, 0x40)]
    let new: VDSOSymbolTable = ["__vdso_time": (0x600, 0x30)]
    let p = try VDSOPlan.proxyPatches(oldBase: 0x7000_0000, oldSymbols: old, newBase: 0x7000_8000, newSymbols: new)
    #expect(p.count == 2)
    // mov $318, %eax; syscall; ret
    #expect(p.last == CodePatch(address: 0x7000_0b00, bytes: [0xB8, 0x3e, 0x01, 0, 0, 0x0F, 0x05, 0xC3],
                                symbol: "__vdso_getrandom/getrandom (missing here: system call 318)"))
}

@Test func missingSGXEntryReturnsENOSYS() throws {
    // 6.1's vDSO exports __vdso_sgx_enter_enclave; a kernel without SGX does not.
    let old: VDSOSymbolTable = ["__vdso_sgx_enter_enclave": (0xc00, 0x100)]
    let p = try VDSOPlan.proxyPatches(oldBase: 0x7000_0000, oldSymbols: old, newBase: 0x7000_8000, newSymbols: [:])
    #expect(p == [CodePatch(address: 0x7000_0c00, bytes: [0x48, 0xC7, 0xC0, 0xDA, 0xFF, 0xFF, 0xFF, 0xC3],
                            symbol: "__vdso_sgx_enter_enclave (missing here: returns -ENOSYS)")])
}

@Test func smallBodyUsesANearJumpOrIsRefused() throws {
    let old: VDSOSymbolTable = ["__vdso_getcpu": (0x100, 8)]
    let new: VDSOSymbolTable = ["__vdso_getcpu": (0x200, 0x40)]
    let near = try VDSOPlan.proxyPatches(oldBase: 0x1000_0000, oldSymbols: old, newBase: 0x1001_0000, newSymbols: new)
    // target 0x10010200 − (0x10000100 + 5) = 0x100fb
    #expect(near == [CodePatch(address: 0x1000_0100, bytes: [0xE9, 0xfb, 0x00, 0x01, 0x00], symbol: "__vdso_getcpu")])
    #expect(throws: VDSOPlanError.self) {
        try VDSOPlan.proxyPatches(oldBase: 0x1000_0000, oldSymbols: old, newBase: 0x7fff_0000_0000, newSymbols: new)
    }
}
