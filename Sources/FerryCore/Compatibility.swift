import FerryImage

// The verdict asked before anything is frozen: can this target hold this
// image at all? Every problem found is one line naming what and what to do;
// an empty list means go.

/// What a target host reports in the migration handshake.
public struct TargetCapabilities: Codable, Equatable, Sendable {
    public var os: TargetOS
    public var kernelRelease: String
    public var arch: String
    public var pageSize: UInt32
    public var cpu: CPUFeatures
    /// FreeBSD: the linux64 ABI (linux64.ko) is loaded. Always true on Linux.
    public var linuxABIAvailable: Bool

    public init(os: TargetOS, kernelRelease: String, arch: String = "x86_64", pageSize: UInt32 = 4096,
                cpu: CPUFeatures, linuxABIAvailable: Bool = true) {
        self.os = os; self.kernelRelease = kernelRelease; self.arch = arch; self.pageSize = pageSize
        self.cpu = cpu; self.linuxABIAvailable = linuxABIAvailable
    }
}

public struct RestoreVerdict: Equatable, Sendable {
    /// One line per problem; empty when the restore can go ahead.
    public var reasons: [String]
    public init(reasons: [String] = []) { self.reasons = reasons }
    public var canRestore: Bool { reasons.isEmpty }
}

public enum Compatibility {
    /// Checks architecture, page size, OS (for FreeBSD also what the
    /// Linuxulator cannot carry yet, `FreeBSDTargetCheck`), every thread's XSAVE state, XSAVE
    /// growth (unless `allowXSaveGrowth`) and CPU flags (`requiredCPUFlags` ∩
    /// the source CPU's).
    public static func verdict(image: ImageMetadata, target: TargetCapabilities,
                               requiredCPUFlags: Set<String> = CPUFeatureCheck.isaFlags,
                               allowXSaveGrowth: Bool = false) -> RestoreVerdict {
        var reasons: [String] = []
        let source = image.source
        if source.arch != "x86_64" || target.arch != "x86_64" {
            reasons.append("cannot restore: the image is \(source.arch) and the target is \(target.arch); ferry moves x86_64 processes only")
        }
        if source.pageSize != target.pageSize {
            reasons.append("cannot restore: the image has \(source.pageSize)-byte pages but the target uses \(target.pageSize)-byte pages")
        }
        if source.os != "linux" && source.os != "freebsd" {
            reasons.append("cannot restore: the image comes from \"\(source.os)\", not linux or freebsd")
        }
        if target.os == .freebsd && !target.linuxABIAvailable {
            reasons.append("cannot restore on FreeBSD: the Linux ABI is not loaded; run `kldload linux64` on the target")
        }
        if target.os == .freebsd {
            for p in image.processes { reasons += FreeBSDTargetCheck.reasons(process: p) }
        }
        // XSAVE: decided by the state each thread holds, not by what the
        // source CPU enables (a process that never touched AVX-512 moves to
        // a CPU without it).
        for p in image.processes {
            for t in p.threads {
                guard let x = t.extendedState else { continue }
                if let r = XSave.verdict(thread: t.tid, state: x, source: source.cpu, permitted: p.xcompPermitted, target: target.cpu) {
                    reasons.append(r)
                }
            }
        }
        if !allowXSaveGrowth, let r = XSave.growth(sourceXCR0: source.cpu.xcr0, targetXCR0: target.cpu.xcr0) {
            reasons.append(r)
        }
        if let r = CPUFeatureCheck.cpuCompatibility(image: source.cpu, target: target.cpu, required: requiredCPUFlags).reason {
            reasons.append(r)
        }
        return RestoreVerdict(reasons: reasons)
    }
}
