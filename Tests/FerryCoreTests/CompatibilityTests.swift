import Testing
import FerryImage
@testable import FerryCore

func image(os: String = "linux", pageSize: UInt32 = 4096, cpu: CPUFeatures, threadXCR0: UInt64? = nil) -> ImageMetadata {
    var t = ThreadImage(tid: 1)
    if let x = threadXCR0 { t.extendedState = ExtendedState(xcr0: x, area: [UInt8](repeating: 0, count: 2440)) }
    return ImageMetadata(source: SourceHost(os: os, kernelRelease: "6.18", pageSize: pageSize, cpu: cpu),
                         processes: [ProcessImage(pid: 1, threads: [t])])
}

let avx512Host = CPUFeatures(xcr0: 0xe7, xsaveSize: 2440, flags: ["sse2", "avx", "avx2", "avx512f"])
let avx2Host = CPUFeatures(xcr0: 0x7, xsaveSize: 832, flags: ["sse2", "avx", "avx2"])

@Test func sameHostKindIsFine() {
    let v = Compatibility.verdict(image: image(cpu: avx2Host), target: TargetCapabilities(os: .freebsd, kernelRelease: "14.3", cpu: avx512Host))
    #expect(v.canRestore)
}

@Test func everyProblemIsListedOnce() {
    let v = Compatibility.verdict(image: image(pageSize: 16384, cpu: avx512Host, threadXCR0: 0xe7),
                                  target: TargetCapabilities(os: .freebsd, kernelRelease: "14.3", cpu: avx2Host, linuxABIAvailable: false))
    #expect(v.reasons == [
        "cannot restore: the image has 16384-byte pages but the target uses 4096-byte pages",
        "cannot restore on FreeBSD: the Linux ABI is not loaded; run `kldload linux64` on the target",
        "cannot restore: the image uses AVX-512 state (XCR0 0xe7) but this CPU enables 0x7",
        "cannot restore: the image ran on a CPU with avx512f, which this CPU lacks; code (e.g. glibc's ifunc-selected memcpy) may already use them",
    ])
}
