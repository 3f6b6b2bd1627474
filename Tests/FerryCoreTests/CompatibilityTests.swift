import Testing
import FerryImage
@testable import FerryCore

func image(os: String = "linux", pageSize: UInt32 = 4096, cpu: CPUFeatures, threadXCR0: UInt64? = nil) -> ImageMetadata {
    var t = ThreadImage(tid: 1)
    if let x = threadXCR0 {
        var area = [UInt8](repeating: 0, count: 2440)
        put(&area, 464, 8, x)
        put(&area, 512, 8, x)  // every component enabled is in use
        t.extendedState = ExtendedState(xcr0: x, area: area)
    }
    return ImageMetadata(source: SourceHost(os: os, kernelRelease: "6.18", pageSize: pageSize, cpu: cpu),
                         processes: [ProcessImage(pid: 1, threads: [t])])
}

let avx512Host = CPUFeatures(xcr0: 0xe7, xsaveSize: 2440, flags: ["sse2", "avx", "avx2", "avx512f"])
let avx2Host = CPUFeatures(xcr0: 0x7, xsaveSize: 832, flags: ["sse2", "avx", "avx2"])

@Test func sameHostKindIsFine() {
    let v = Compatibility.verdict(image: image(cpu: avx2Host), target: TargetCapabilities(os: .freebsd, kernelRelease: "14.3", cpu: avx2Host))
    #expect(v.canRestore)
}

@Test func everyProblemIsListedOnce() {
    let v = Compatibility.verdict(image: image(pageSize: 16384, cpu: avx512Host, threadXCR0: 0xe7),
                                  target: TargetCapabilities(os: .freebsd, kernelRelease: "14.3", cpu: avx2Host, linuxABIAvailable: false))
    #expect(v.reasons == [
        "cannot restore: the image has 16384-byte pages but the target uses 4096-byte pages",
        "cannot restore on FreeBSD: the Linux ABI is not loaded; run `kldload linux64` on the target",
        "cannot restore: thread 1 has AVX-512 state in use (XSTATE_BV 0xe7) but this CPU enables XCR0 0x7; restore on a CPU that has AVX-512, or run the process with glibc told not to use it (GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,...)",
        "cannot restore: the image ran on a CPU with avx512f, which this CPU lacks; code (e.g. glibc's ifunc-selected memcpy) may already use them; restore on such a CPU, or pass --allow-missing-cpu-features avx512f if the process does not use them",
    ])
}

/// What the source CPU enables does not decide: a process whose threads hold
/// no AVX-512 state moves to a CPU without it (its CPU flags allowed away).
@Test func theThreadsStateDecidesNotTheSourceCPU() {
    let v = Compatibility.verdict(image: image(cpu: avx512Host, threadXCR0: 0x7),
                                  target: TargetCapabilities(os: .linux, kernelRelease: "6.1", cpu: avx2Host),
                                  requiredCPUFlags: CPUFeatureCheck.isaFlags.subtracting(["avx512f"]))
    #expect(v.reasons == [])
}

@Test func xsaveGrowthIsRefusedUnlessAllowed() {
    let img = image(cpu: avx2Host, threadXCR0: 0x7)
    let target = TargetCapabilities(os: .linux, kernelRelease: "6.18", cpu: avx512Host)
    #expect(Compatibility.verdict(image: img, target: target).reasons.count == 1)
    #expect(Compatibility.verdict(image: img, target: target).reasons.first?.contains("--allow-xsave-growth") == true)
    #expect(Compatibility.verdict(image: img, target: target, allowXSaveGrowth: true).canRestore)
}
