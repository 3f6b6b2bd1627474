import FerryImage

/// Gives `p` the state of a two-thread Linux process that the FreeBSD
/// restore tests use: layout fields over its code and heap, rlimits
/// (RLIMIT_STACK among them), a main thread with TLS, a mask, an alternate
/// stack and a clear_child_tid, and a worker with a robust futex list.
public func makeFreeBSDCandidate(_ p: inout ProcessImage) {
    p.layout = LayoutFields(startCode: 0x55_5555_4000, endCode: 0x55_5555_5a00, startBrk: 0x55_5555_9000, brk: 0x55_5557_9f00)
    p.rlimits = [ResourceLimit(resource: 7, soft: 1024, hard: 4096), ResourceLimit(resource: 3, soft: 8 << 20, hard: .max)]
    var main = ThreadImage(tid: 100)
    main.registers.rsp = 0x7fff_ffff_e000
    main.registers.rip = 0x55_5555_4100
    main.registers.fsBase = 0x7f00_0000_0740
    main.sigmask = 0x4000
    main.sigaltstack = SignalStack(sp: 0x55_5556_0000, size: 0x4000, flags: 0)
    main.clearChildTid = 0x7f00_0000_0a10
    var worker = ThreadImage(tid: 101)
    worker.registers.rsp = 0x7f00_0100_0000
    worker.attributes = ThreadAttributes(robustListHead: 0x7f00_0100_09a0, robustListLength: 24)
    p.threads = [main, worker]
}
