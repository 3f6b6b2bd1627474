#if os(Linux)
import Glibc
import FerryImage
import FerryCore

/// POSIX timers (timer_create): dump and restore.
///
/// Dump: /proc/PID/timers gives each timer's id, clock, notify kind, signal,
/// sigev_value and target; timer_gettime and timer_getoverrun, injected,
/// give its time left, period and overrun. Restore: timer_create injected
/// in the new process with the same id — named explicitly under
/// PR_TIMER_CREATE_RESTORE_IDS (Linux 6.17+), otherwise reached by creating
/// and deleting timers while the kernel hands out lower ids — then armed
/// with the time left, relative.
enum PosixTimerState {
    static let prTimerCreateRestoreIDs: UInt64 = 77
    /// Timers a restore may create and delete to reach one id on a kernel without PR_TIMER_CREATE_RESTORE_IDS.
    static let fallbackBudget = 1 << 16

    /// The timers /proc shows for `pid`, each checked (clock, target thread):
    /// a timer ferry cannot re-create is refused in one line. `threads`: the
    /// process's tids as /proc shows them.
    static func entries(pid: Int32, comm: String, threads: [Int32]) throws -> [(PosixTimerPlan.ProcEntry, clock: Int32, thread: Int32?)] {
        let who = "process \(pid) (\(comm))"
        let text = (try? ProcFS.text("/proc/\(pid)/timers")) ?? ""
        guard let entries = PosixTimerPlan.parse(text) else {
            throw FerryError("cannot checkpoint \(who): /proc/\(pid)/timers reads \"\(text.prefix(120))\", which ferry cannot parse; ferry carries POSIX timers only as this kernel's /proc shows them")
        }
        let tids = Dictionary(threads.map { ($0, $0) }, uniquingKeysWith: { a, _ in a })
        return try entries.map { e in
            switch (PosixTimerPlan.clock(e, ownPid: pid, who: who), PosixTimerPlan.thread(e, threads: tids, who: who)) {
            case (.success(let clock), .success(let thread)): return (e, clock, thread)
            case (.failure(let r), _), (_, .failure(let r)): throw FerryError(r.description)
            }
        }
    }

    /// Reads every timer of the frozen process through `injector` (any of its threads).
    static func dump(pid: Int32, comm: String, threads: [Int32], injector: Injector, scratch: ScratchArea) throws -> [PosixTimer]? {
        let found = try entries(pid: pid, comm: comm, threads: threads)
        guard !found.isEmpty else { return nil }
        return try found.map { e, clock, thread in
            try injector.call(SYS.timerGettime, [UInt64(e.id), scratch.data], "timer_gettime(\(e.id))")
            let w = try injector.memory.read(scratch.data, count: 32).withUnsafeBytes { p in (0..<4).map { p.load(fromByteOffset: $0 * 8, as: UInt64.self) } }
            let overrun = try injector.call(SYS.timerGetoverrun, [UInt64(e.id)], "timer_getoverrun(\(e.id))")
            return PosixTimer(id: e.id, clock: clock, notify: e.notify, signal: e.signal, value: e.value, thread: thread,
                              valueNs: w[2] * 1_000_000_000 + w[3], intervalNs: w[0] * 1_000_000_000 + w[1],
                              overrun: Int32(truncatingIfNeeded: overrun))
        }
    }

    /// Re-creates `timers` in the new process, each with its id, and arms
    /// them. `injectors` runs in each restored thread (by image tid): a
    /// SIGEV_THREAD_ID timer names the thread's own id, read with gettid
    /// there (right inside a new pid namespace too).
    static func restore(_ timers: [PosixTimer], injectors: [Int32: Injector], main: Injector, scratch: ScratchArea) throws {
        guard !timers.isEmpty else { return }
        let explicit = try main.raw(SYS.prctl, [prTimerCreateRestoreIDs, 1]) == 0
        defer { if explicit { _ = try? main.raw(SYS.prctl, [prTimerCreateRestoreIDs, 0]) } }
        let event = scratch.data, idSlot = scratch.data + 64, spec = scratch.data + 128
        var spent = 0
        for t in PosixTimerPlan.creationOrder(timers) {
            var tid: Int32 = 0
            if let thread = t.thread {
                guard let inj = injectors[thread] else { throw FerryError("cannot restore POSIX timer \(t.id): its thread \(thread) was not restored") }
                tid = Int32(try inj.call(SYS.gettid, [], "gettid"))
            }
            // struct sigevent: sigev_value, sigev_signo, sigev_notify, then the thread id; 64 bytes.
            var b = LEBytes()
            b.u64(t.value); b.i32(t.signal); b.i32(t.notify); b.i32(tid)
            try main.memory.write(event, b.bytes + [UInt8](repeating: 0, count: 64 - b.bytes.count))
            while true {
                try main.memory.write(idSlot, withUnsafeBytes(of: t.id.littleEndian, Array.init))
                try main.call(SYS.timerCreate, [UInt64(bitPattern: Int64(t.clock)), event, idSlot], "timer_create(id \(t.id), clock \(t.clock))")
                let got = try main.memory.read(idSlot, count: 4).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
                if explicit && got != t.id {
                    throw FerryError("cannot restore POSIX timer \(t.id): timer_create under PR_TIMER_CREATE_RESTORE_IDS gave id \(got)")
                }
                switch PosixTimerPlan.step(got: got, wanted: t.id, spent: spent, budget: fallbackBudget) {
                case .keep: break
                case .deleteAndRetry:
                    spent += 1
                    try main.call(SYS.timerDelete, [UInt64(got)], "timer_delete(\(got))")
                    continue
                case .refuse(let why): throw FerryError(why)
                }
                break
            }
            guard let a = PosixTimerPlan.arming(valueNs: t.valueNs, intervalNs: t.intervalNs) else { continue }
            var s = LEBytes()
            s.u64(a.intervalNs / 1_000_000_000); s.u64(a.intervalNs % 1_000_000_000)
            s.u64(a.valueNs / 1_000_000_000); s.u64(a.valueNs % 1_000_000_000)
            try main.memory.write(spec, s.bytes)
            try main.call(SYS.timerSettime, [UInt64(t.id), 0, spec, 0], "timer_settime(\(t.id))")
        }
    }
}
#endif
