import Testing
import FerryImage
@testable import FerryCore

@Test func aPlainProcessHasNothingFreeBSDCannotCarry() {
    #expect(FreeBSDTargetCheck.reasons(process: ProcessImage(pid: 7, threads: [ThreadImage(tid: 7)])).isEmpty)
}

@Test func threadIdsKeptInMemoryAreNamedForAFreeBSDTarget() {
    var main = ThreadImage(tid: 7)
    main.clearChildTid = 0x7f00_0000_0990
    var worker = ThreadImage(tid: 8)
    worker.attributes = ThreadAttributes(robustListHead: 0x7f00_0010_09a0, robustListLength: 24)
    let r = FreeBSDTargetCheck.reasons(process: ProcessImage(pid: 7, threads: [main, worker]))
    #expect(r == ["cannot restore process 7 on FreeBSD: FreeBSD gives it a new pid and new thread ids, and threads 7 (clear_child_tid 0x7f0000000990), 8 (robust futex list 0x7f00001009a0) keep the old id in memory, which ferry does not rewrite yet; restore it on Linux, which keeps the ids"])
}

@Test func aThreadOnItsAlternateSignalStackIsRefusedForFreeBSD() {
    var t = ThreadImage(tid: 9)
    t.sigaltstack = SignalStack(sp: 0x7f00_0020_0000, size: 0x4000, flags: 0)
    t.registers.rsp = 0x7f00_0020_3f00
    let r = FreeBSDTargetCheck.reasons(process: ProcessImage(pid: 9, threads: [t]))
    #expect(r.count == 1 && r[0].contains("thread 9 is running a signal handler on its alternate stack"))
    // The same stack registered but not in use: nothing to say.
    t.registers.rsp = 0x7ffd_0000_0000
    #expect(FreeBSDTargetCheck.reasons(process: ProcessImage(pid: 9, threads: [t])).isEmpty)
    // SS_ONSTACK reported by the kernel decides on its own.
    t.sigaltstack.flags = 1
    #expect(FreeBSDTargetCheck.reasons(process: ProcessImage(pid: 9, threads: [t])).count == 1)
}

@Test func theFreeBSDChecksJoinTheVerdictOnlyForAFreeBSDTarget() {
    var t = ThreadImage(tid: 1)
    t.clearChildTid = 0x1000
    let meta = ImageMetadata(source: SourceHost(os: "linux", kernelRelease: "6.18", pageSize: 4096, cpu: avx2Host),
                             processes: [ProcessImage(pid: 1, threads: [t])])
    let bsd = Compatibility.verdict(image: meta, target: TargetCapabilities(os: .freebsd, kernelRelease: "14.3", cpu: avx2Host))
    #expect(bsd.reasons.count == 1 && bsd.reasons[0].contains("new pid and new thread ids"))
    let linux = Compatibility.verdict(image: meta, target: TargetCapabilities(os: .linux, kernelRelease: "6.18", cpu: avx2Host))
    #expect(linux.canRestore)
}

@Test func pagesStoredInTheParentOnlyAreRefusedForFreeBSD() {
    var p = ProcessImage(pid: 9, ppid: 8, threads: [ThreadImage(tid: 9)])
    p.inheritedPages = [PageRange(start: 0x10000, end: 0x12000)]
    let r = FreeBSDTargetCheck.reasons(process: p)
    #expect(r.count == 1 && r[0].contains("process 9 on FreeBSD: its pages from 0x10000 are stored only in its parent's image"))
}

@Test func systemVShmAndASharedDescriptorTableAreRefusedForFreeBSD() {
    let seg = SysVSegment(id: 3, key: 0, mode: 0o600, uid: 0, gid: 0, cuid: 0, cgid: 0, size: 4096, destroyed: false)
    var p = ProcessImage(pid: 9, mappings: [Mapping(start: 0x10000, end: 0x11000, protection: [.read, .write], kind: .sharedAnonymous,
                                                    flags: [.shared, .mayWrite], sysv: seg)], threads: [ThreadImage(tid: 9)])
    p.sharesFilesWithParent = true
    let r = FreeBSDTargetCheck.reasons(process: p)
    #expect(r.count == 2 && r[0].contains("attaches System V shared memory (shmid 3) at 0x10000") && r[1].contains("CLONE_FILES"), "\(r)")
}
