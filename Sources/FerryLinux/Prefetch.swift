#if os(Linux)
import Foundation
import CFerryLinux
import FerryImage

/// Runs a page reader (read, CRC32C check, decoding) on a thread of its own
/// while the calling thread fills the process, so the two overlap on two
/// CPUs. Runs go over in batches, in order; at most `maxBytes` of page data
/// wait between the two. A failure on either side stops both: the reader's
/// error is thrown here, and a fill error makes the reader stop at its next
/// batch (not waited for: it may be blocked reading a stalled stream).
enum Prefetch {
    static let maxBytes = 16 << 20, batchBytes = 1 << 20, batchRuns = 64

    static func run(_ produce: @escaping ((PageRun) throws -> Void) throws -> Void, consume: (PageRun) throws -> Void) throws {
        // Each run's pages are allocated on this thread and freed on the other: glibc
        // otherwise trims the reader's arena again and again, and every page of every
        // run is faulted in anew (measured at 1 GiB: 141,000 page faults, ~0.3 s of CPU).
        // The memory in flight is bounded (maxBytes), so keeping it does not grow.
        _ = ferry_malloc_trim_threshold(4 * maxBytes)
        let q = Queue(maxBytes: maxBytes)
        let box = UncheckedBox(produce)
        let thread = Thread {
            var batch: [PageRun] = [], bytes = 0
            do {
                try box.value { run in
                    batch.append(run)
                    bytes += run.data?.count ?? 0
                    if bytes >= batchBytes || batch.count >= batchRuns {
                        guard q.put(batch, bytes: bytes) else { throw Cancelled() }
                        batch.removeAll(keepingCapacity: true); bytes = 0
                    }
                }
                if !batch.isEmpty { _ = q.put(batch, bytes: bytes) }
                q.finish(nil)
            } catch {
                // What was read before the failure is still handed over, then the error.
                if !(error is Cancelled) && !batch.isEmpty { _ = q.put(batch, bytes: bytes) }
                q.finish(error)
            }
        }
        thread.stackSize = 1 << 20
        thread.start()
        do {
            while let batch = try q.take() {
                for run in batch { try consume(run) }
            }
        } catch {
            q.cancel()
            throw error
        }
    }

    private struct Cancelled: Error {}

    private final class UncheckedBox<T>: @unchecked Sendable {
        let value: T
        init(_ value: T) { self.value = value }
    }

    /// Batches handed from the reader thread to the filling one.
    private final class Queue: @unchecked Sendable {
        private let cond = NSCondition()
        private var batches: [(runs: [PageRun], bytes: Int)] = []
        private var head = 0
        private var bytes = 0
        private let maxBytes: Int
        private var finished = false, cancelled = false
        private var failure: Error?

        init(maxBytes: Int) { self.maxBytes = maxBytes }

        /// Blocks while full; false once the consumer gave up.
        func put(_ runs: [PageRun], bytes n: Int) -> Bool {
            cond.lock(); defer { cond.unlock() }
            while bytes > 0 && bytes + n > maxBytes && !cancelled { cond.wait() }
            if cancelled { return false }
            batches.append((runs, n))
            bytes += n
            cond.broadcast()
            return true
        }

        /// The reader is done (with its error, if it failed).
        func finish(_ error: Error?) {
            cond.lock(); defer { cond.unlock() }
            failure = error
            finished = true
            cond.broadcast()
        }

        /// The next batch; nil after the last; the reader's error once everything before it was taken.
        func take() throws -> [PageRun]? {
            cond.lock(); defer { cond.unlock() }
            while head == batches.count && !finished { cond.wait() }
            if head < batches.count {
                let b = batches[head]
                batches[head] = ([], 0)
                head += 1
                if head > 64 { batches.removeFirst(head); head = 0 }
                bytes -= b.bytes
                cond.broadcast()
                return b.runs
            }
            if let failure { throw failure }
            return nil
        }

        /// The consumer failed: the reader stops at its next batch.
        func cancel() {
            cond.lock(); defer { cond.unlock() }
            cancelled = true
            batches.removeAll()
            head = 0
            bytes = 0
            cond.broadcast()
        }
    }
}
#endif
