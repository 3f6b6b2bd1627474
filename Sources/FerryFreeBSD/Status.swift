/// FerryFreeBSD: the FreeBSD backend of ferry, a thin Swift layer over the
/// C shim CFerryFreeBSD (ptrace, kinfo_getvmmap, the ferry_layout kernel
/// module's syscall, jail and RCTL).
///
/// Status: `FreeBSDRestorer` (the walk of a FreeBSDRestorePlan through the
/// `FreeBSDTracer` protocol) is OS-neutral: it builds on Linux and
/// FerryFreeBSDTests run it against a recording double. The files wrapped in
/// `#if os(FreeBSD)` (the ptrace backend and FreeBSDPtraceTracer) are
/// UNVERIFIED: Swift cannot be cross-compiled to FreeBSD on the development
/// machine, so they have never been compiled. The C underneath it is
/// cross-compiled and linked for x86_64-freebsd14 by `kernel/check.sh`
/// (`make kernel-check`), and has never run. See docs/freebsd.md.
internal enum FerryFreeBSDStatus {
    /// Whether the FreeBSD-only Swift code of this module was ever compiled: no.
    static let swiftCompiled = false
}
