import Foundation
import Testing
import FerryTestSupport

/// The rule as a test: every kind of descriptor and mapping the kernel can
/// show (Tests/Workloads/fd_kinds.c) is either carried — checkpointed,
/// restored, and the workload finds it with its state — or refused at
/// checkpoint in one line that names it. A restore that succeeds without
/// it, or a restore that fails after the checkpoint succeeded, fails here.
@Suite(.serialized, .enabled(if: getuid() == 0, "checkpoint/restore needs root"))
struct KindWalkTests {
    static let kinds = [
        "file", "dir", "pipe", "pipe_reopen", "fifo", "fifo_data", "socket", "eventfd", "epoll", "signalfd", "timerfd", "inotify",
        "fanotify", "userfaultfd", "pidfd", "memfd", "io_uring", "perf_event", "bpf", "procfile", "ptmx", "devnull",
        "deleted", "anon_shared", "anon_private", "file_private", "file_shared_ro", "memfd_map", "sysv_shm", "aio",
    ]
    /// Kinds a kernel may not offer (configuration, sysctls): without them the case is skipped, said so.
    static let optional: Set<String> = ["fanotify", "io_uring", "perf_event", "bpf", "aio"]

    @Test("carried or refused by name, never lost", arguments: kinds)
    func carriedOrRefused(_ kind: String) throws {
        try WorkloadTests.buildWorkloads()
        let r = try WorkloadTests.run(["/bin/bash", WorkloadTests.workloads + "/run_cr.sh", WorkloadTests.ferry,
                                       WorkloadTests.out, "fd_kinds", kind])
        let line = r.output.split(separator: "\n").first.map(String.init) ?? ""
        if line.hasPrefix("PASS") { return }
        if Self.optional.contains(kind), line.contains("no ready") {
            print("KindWalkTests: \(kind) skipped: this kernel did not let the workload create it")
            return
        }
        let refusal = "FAIL fd_kinds: checkpoint: ferry: cannot checkpoint"
        #expect(line.hasPrefix(refusal), "\(kind): neither carried nor refused at checkpoint: \(line)")
        #expect(r.output.split(separator: "\n").count == 1, "\(kind): the refusal is one line: \(r.output)")
    }
}
