#if os(Linux)
import Glibc
import Foundation
import FerryImage

/// How one record of a mapped image is filled.
enum DirectFill {
    /// UFFDIO_COPY into pages never filled before: from any thread, in any order.
    case copy(UserfaultFill)
    /// A ZERO run over pages never filled: nothing to write.
    case nothing
    /// Through `ProcessBuilder.fill` on the restoring thread, in file order;
    /// with `drain`, only once every copy queued before it is done (it may
    /// write pages they write).
    case inOrder(drain: Bool)
}

/// Fills a restore's memory from a mapped pages.img on two CPUs. The
/// restoring (ptrace) thread walks the records, checks their layout and
/// decides how each is filled (`DirectFill`, which also does the bookkeeping
/// of filled pages, so file order decides which copy of a page wins). Runs of copies go in
/// jobs of a few MiB to a queue, and each job — checksums, then UFFDIO_COPY
/// from the mapping, then dropping its file pages from the RSS — is done by
/// whichever thread takes it: a helper thread, or the restoring thread
/// itself whenever a job waits (the helper is busy or not scheduled). So the
/// restoring thread never waits for the helper except for its job in
/// progress at the end (or before an in-order fill that needs it): a
/// preempted helper costs at most one job. (A reader thread feeding the
/// filling thread, tried before, stalled whenever either was preempted.)
///
/// Checksums are verified by the jobs, after the layout checks; every job
/// is done (or the restore fails) before this returns, and the process
/// runs only after that. Of several problems, the one earliest in the file
/// is reported, as reading in order would.
final class MappedFill: @unchecked Sendable {
    /// File bytes per job: small enough that a job's file pages stay few MiB of RSS and the last job is short.
    /// (Hand-run at 1 GiB: 1 MiB jobs filled ~20 % slower than 4 MiB, 8 MiB no
    /// faster with 12 MiB more RSS. About 11 MiB of pages.img was mapped at a
    /// time with 1 MiB jobs as with 4 MiB: faults seem to map more than the
    /// job touches, whole large folios perhaps; not confirmed.)
    static let jobBytes: Int64 = 4 << 20

    private struct Job {
        var records: [(record: MappedPageFile.Record, target: UserfaultFill?)] = []
        var from: Int64 = -1, to: Int64 = 0
        var isEmpty: Bool { records.isEmpty }
        var bytes: Int64 { to - from }

        mutating func add(_ r: MappedPageFile.Record, _ target: UserfaultFill?) {
            if from < 0 { from = r.offset }
            records.append((r, target))
            to = r.end
        }
    }

    private let file: MappedPageFile
    private let lock = NSCondition()
    private var queue: [Job] = []
    private var head = 0
    private var helperBusy = false, stopping = false, helperExited = false
    /// Errors found so far with the file offset they concern; the earliest wins.
    private var failures: [(offset: Int64, error: Error)] = []

    private init(file: MappedPageFile) { self.file = file }

    /// Fills every record of `file`: `plan` decides how (restoring thread,
    /// file order), `inOrder` fills what it says must be filled in order.
    static func run(file: MappedPageFile, index: MappingIndex, plan: (MappedPageFile.Record) throws -> DirectFill,
                    inOrder: (MappedPageFile.Record) throws -> Void) throws {
        let fill = MappedFill(file: file)
        // Without a helper (a thread that cannot be created: on Linux 6.1 a
        // thread whose time namespace for children differs from its own, as
        // restore's --new-pidns sets it, gets EINVAL) the restoring thread
        // does every job itself.
        var helper = pthread_t()
        let box = Unmanaged.passRetained(fill).toOpaque()
        let started = pthread_create(&helper, nil, { arg in
            let f = Unmanaged<MappedFill>.fromOpaque(arg!).takeRetainedValue()
            f.helperLoop()
            return nil
        }, box) == 0
        if !started {
            Unmanaged<MappedFill>.fromOpaque(box).release()
            fill.helperExited = true
        }
        defer {
            fill.stopHelper()
            if started { pthread_join(helper, nil) }
        }
        var job = Job()
        var current: Int64 = 0
        do {
            try file.forEachRecord(index: index) { r in
                current = r.offset
                switch try plan(r) {
                case .copy(let u): job.add(r, u)
                case .nothing: job.add(r, nil)
                case .inOrder(let drain):
                    fill.submit(&job)
                    if drain { try fill.drain() }
                    try r.verify()
                    try inOrder(r)
                    file.release(from: r.offset, to: r.end)
                }
                if job.bytes >= jobBytes { fill.submit(&job) }
                try fill.helpIfBehind()
            }
            fill.submit(&job)
            try fill.drain()
        } catch {
            // Jobs queued before the failing record still run, in case one of them fails earlier in the file.
            let offset = (error as? ImageError)?.offset ?? current
            fill.record(offset: offset, error)
            _ = try? fill.drain()
            throw fill.earliestFailure()!
        }
    }

    private func submit(_ job: inout Job) {
        guard !job.isEmpty else { return }
        lock.lock()
        queue.append(job)
        lock.signal()
        lock.unlock()
        job = Job()
    }

    /// Takes the oldest queued job, if any.
    private func take() -> Job? {
        guard head < queue.count else { return nil }
        let job = queue[head]
        head += 1
        if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0 }
        return job
    }

    /// Does a queued job here while more than one waits (the helper is
    /// behind): one job always stays queued for the helper to pick up.
    private func helpIfBehind() throws {
        lock.lock()
        let job = queue.count - head > 1 ? take() : nil
        lock.unlock()
        if let job { perform(job) }
        try throwIfFailed()
    }

    /// Does every queued job here, waits for the helper's job in progress, and throws the earliest failure.
    private func drain() throws {
        while true {
            lock.lock()
            let job = take()
            lock.unlock()
            guard let job else { break }
            perform(job)
        }
        lock.lock()
        while helperBusy { lock.wait() }
        lock.unlock()
        try throwIfFailed()
    }

    private func throwIfFailed() throws {
        lock.lock()
        defer { lock.unlock() }
        if let e = earliestFailureLocked() { throw e }
    }

    private func record(offset: Int64, _ error: Error) {
        lock.lock()
        failures.append((offset, error))
        lock.unlock()
    }

    private func earliestFailure() -> Error? {
        lock.lock()
        defer { lock.unlock() }
        return earliestFailureLocked()
    }

    private func earliestFailureLocked() -> Error? { failures.min { $0.offset < $1.offset }?.error }

    /// Checksums, then copies, record by record; stops at the first failure.
    /// After any failure (found anywhere) jobs are skipped: the restore fails.
    private func perform(_ job: Job) {
        lock.lock()
        let failed = !failures.isEmpty
        lock.unlock()
        guard !failed else { return }
        for (r, target) in job.records {
            do {
                try r.verify()
                if let target, let data = r.data { try target.copy(r.address, from: data.baseAddress!, count: data.count) }
            } catch {
                record(offset: r.offset, error)
                return
            }
        }
        file.release(from: job.from, to: job.to)
    }

    private func helperLoop() {
        lock.lock()
        while true {
            while head == queue.count && !stopping { lock.wait() }
            guard let job = take() else { break }
            helperBusy = true
            lock.unlock()
            perform(job)
            lock.lock()
            helperBusy = false
            lock.broadcast()
        }
        helperExited = true
        lock.broadcast()
        lock.unlock()
    }

    /// Stops the helper (what is still queued is dropped: a failure) and waits until it has exited.
    private func stopHelper() {
        lock.lock()
        stopping = true
        queue.removeAll()
        head = 0
        lock.broadcast()
        while !helperExited { lock.wait() }
        lock.unlock()
    }
}

#endif
