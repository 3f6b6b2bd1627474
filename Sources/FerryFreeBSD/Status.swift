/// FerryFreeBSD: the FreeBSD backend of ferry, a thin Swift layer over the
/// C shim CFerryFreeBSD (ptrace, kinfo_getvmmap, the ferry_layout kernel
/// module's syscall, jail and RCTL).
///
/// Status: every other file of this module is wrapped in `#if os(FreeBSD)`,
/// so on Linux the module is empty apart from this note. Swift cannot be
/// cross-compiled to FreeBSD on the development machine, so that code is
/// UNVERIFIED: it has never been compiled. The C underneath it is
/// cross-compiled and linked for x86_64-freebsd14 by `kernel/check.sh`
/// (`make kernel-check`), and has never run. See docs/freebsd.md.
internal enum FerryFreeBSDStatus {
    /// Whether the Swift code of this module was ever compiled: no.
    static let swiftCompiled = false
}
