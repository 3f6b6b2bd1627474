import Testing
import FerryImage
@testable import FerryCore

/// Values from a damaged image that reach unchecked arithmetic: each is a one-line refusal.
@Suite struct HostileInputTests {
    /// A vDSO symbol offset (from the image's vDSO) past the end of the address space.
    @Test func vdsoSymbolOffsetOverflowIsRefused() {
        let old: VDSOSymbolTable = ["__vdso_time": (UInt64.max - 0x10, 0x40)]
        let new: VDSOSymbolTable = ["__vdso_time": (0x600, 0x30)]
        let error = #expect(throws: VDSOPlanError.self) {
            _ = try VDSOPlan.proxyPatches(oldBase: 0x7fff_f7fc_6000, oldSymbols: old, newBase: 0x7fff_f7fd_0000, newSymbols: new)
        }
        #expect(error?.description.contains("outside the address space") == true)
        #expect(error?.description.contains("\n") == false)
    }

    /// An offset that stays in 64 bits but leaves user space is refused too.
    @Test func vdsoSymbolOffsetAboveUserSpaceIsRefused() {
        let old: VDSOSymbolTable = ["__vdso_time": (0x8000_0000_0000, 0x40)]
        #expect(throws: VDSOPlanError.self) {
            _ = try VDSOPlan.proxyPatches(oldBase: 0x7fff_f7fc_6000, oldSymbols: old, newBase: 0x7fff_f7fd_0000,
                                          newSymbols: ["__vdso_time": (0x600, 0x30)])
        }
    }

    /// A stack larger than the space below the target's stack top cannot be moved there.
    @Test func oversizedStackIsRefused() {
        let stack = Mapping(start: 0x1000, end: 0x7fff_ffff_f000, protection: [.read, .write], kind: .stack,
                            flags: .growsDown, name: "[stack]")
        let p = ProcessImage(pid: 100, mappings: [stack])
        let error = #expect(throws: PlacementError.self) {
            _ = try Placement.planPlacement(process: p, target: .freebsdLinuxulator(), stackPolicy: .moveToTargetTop)
        }
        #expect(error?.description.contains("the stack is larger than the address space under it") == true,
                "\(String(describing: error))")
    }
}
