import Foundation
import Testing
import FerryTestSupport

/// Real processes: each workload is started, checkpointed (which kills it),
/// restored by the built `ferry`, and asked to verify its own state.
/// Needs root (ptrace of any process, clone3 set_tid, PR_SET_MM_MAP); CI runs as root.
@Suite(.serialized, .enabled(if: getuid() == 0, "checkpoint/restore needs root"))
struct WorkloadTests {
    static let ferry = TestPaths.ferry
    static let workloads = TestPaths.workloads
    static let out = TestPaths.out

    /// (name, arguments) — every workload of Tests/Workloads.
    static let cases: [String] = [
        "anon_pattern", "anon_pattern 256 32", "heap_grow", "file_map_private", "file_map_shared", "mprotect",
        "threads_tls", "fork_pipe", "append_log", "pipe_inflight", "signals", "sigaltstack", "sleep_syscall", "fpu_regs",
        "fpu_regs sse", "rseq_cpu", "getpid_same", "cmdline_same", "itimer", "stack_pointers", "clock_loop", "python_loop",
        "event_fds", "shared_file", "attributes", "sessions", "shm_single", "shm_single alias", "shm_fork file", "shm_fork anon", "shm_fork memfd", "shm_tree", "high_fds", "unix_sockets", "unix_listeners", "sigmask_wait", "pipe_size", "membarrier_reg", "file_locks", "file_locks shared",
        "memfd_fds", "deleted_files", "fifo_data", "file_lease", "deleted_cwd", "stopped_child", "chroot_root", "proc_files", "posix_timers", "pty_pair", "inet_unbound", "unix_dgram", "cow_tree",
        "sysv_shm", "shm_fork sysv", "sem_undo plain", "fdt_shared",
        // The scaling sweeps' shapes, small (bench/scale_bench.py runs them large).
        "scale mappings 3000", "scale fds 900", "scale procs 20", "scale threads 50",
    ]

    static func run(_ args: [String], env: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let r = try Child.run(args, env: env, stderr: .null)
        return (r.status, r.stdout)
    }

    static func buildWorkloads() throws { try TestPaths.buildWorkloads() }

    /// A restored workload must say PASS; event_fds is a known issue where
    /// fdinfo does not show EFD_SEMAPHORE (HostFeatures.eventfdSemaphoreShown).
    static func expectPass(_ spec: String, _ output: String, sourceLocation: SourceLocation = #_sourceLocation) {
        withKnownIssue(Comment(rawValue: HostFeatures.semaphoreEventfdIssue)) {
            #expect(output.hasPrefix("PASS"), "\(spec): \(output)", sourceLocation: sourceLocation)
        } when: { spec == "event_fds" && !HostFeatures.eventfdSemaphoreShown }
    }

    @Test("checkpoint → restore → self-check", arguments: cases)
    func checkpointRestore(_ spec: String) throws {
        try Self.buildWorkloads()
        let parts = spec.split(separator: " ").map(String.init)
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out] + parts)
        Self.expectPass(spec, r.output)
    }

    @Test("checkpoint → restore into a fresh pid namespace", arguments: ["getpid_same", "threads_tls", "sleep_syscall", "fork_pipe", "shared_file", "attributes", "sessions",
                                                                          "shm_fork anon", "shm_fork memfd", "shm_tree", "unix_sockets", "unix_listeners",
                                                                          "memfd_fds", "deleted_files", "fifo_data", "file_lease", "deleted_cwd", "stopped_child", "chroot_root", "proc_files", "posix_timers", "pty_pair", "inet_unbound", "unix_dgram", "cow_tree",
                                                                          "sysv_shm", "shm_fork sysv", "sem_undo plain", "fdt_shared"])
    func checkpointRestoreNewPidns(_ name: String) throws {
        try Self.buildWorkloads()
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out] + name.split(separator: " ").map(String.init),
                             env: ["RESTORE_ARGS": "--new-pidns"])
        #expect(r.output.hasPrefix("PASS"), "\(name): \(r.output)")
    }

    /// The stack moves to FreeBSD's Linuxulator stack top (pointers into it fixed everywhere) and the vDSO is
    /// proxied: what a FreeBSD target needs, run for real on this kernel. A child's copy-on-write pages come back
    /// as copies there (contents checked, frames not).
    @Test("restore --target-layout freebsd-linuxulator (stack relocated, vDSO proxied)",
          arguments: cases.filter { $0 != "cow_tree" } + ["fork_pipe", "cow_tree 256 1 0"])
    func freebsdLayout(_ spec: String) throws {
        try Self.buildWorkloads()
        let parts = spec.split(separator: " ").map(String.init)
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out] + parts,
                             env: ["RESTORE_ARGS": "--target-layout freebsd-linuxulator"])
        Self.expectPass(spec, r.output)
    }

    /// On the source's host the source holds its lease until it is killed, after a stream restore
    /// read the metadata: opening the file would break it, so the restore refuses, naming the lease.
    @Test("a stream restore on the source's host does not break the source's lease")
    func streamRestoreKeepsTheSourcesLease() throws {
        try Self.buildWorkloads()
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out, "file_lease"],
                             env: ["STREAM": "1", "RESTORE_ARGS": "--new-pidns"])
        #expect(r.output.contains("holds a write lease on") && r.output.contains("which opening it would break"), "\(r.output)")
    }

    /// file_lease, pty_pair and unix_dgram are not here: on one host the source holds its leases until it is
    /// killed, after the metadata is read, and the restore refuses to open a file whose lease that
    /// would break; the source holds its ptys' indices and its socket names until its image is sent, and a restore never
    /// takes another index (docs/process-state.md, "Terminals").
    @Test("checkpoint --stream - | restore --stream - (no image on disk)", arguments: ["threads_tls", "fork_pipe", "anon_pattern 256 32", "signals", "event_fds", "shm_tree", "shm_fork memfd", "unix_sockets", "memfd_fds", "deleted_files", "fifo_data", "deleted_cwd", "stopped_child", "chroot_root", "proc_files", "posix_timers", "inet_unbound", "cow_tree", "sysv_shm", "shm_fork sysv", "fdt_shared"])
    func streamPipeline(_ spec: String) throws {
        try Self.buildWorkloads()
        let parts = spec.split(separator: " ").map(String.init)
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out] + parts,
                             env: ["STREAM": "1", "RESTORE_ARGS": "--new-pidns"])
        Self.expectPass(spec, r.output)
    }

    @Test("--leave-running leaves the process running and correct", arguments: ["threads_tls", "itimer", "pipe_inflight", "event_fds", "unix_sockets", "unix_listeners", "memfd_fds", "deleted_files", "fifo_data", "file_lease", "deleted_cwd", "stopped_child", "chroot_root", "proc_files", "posix_timers", "pty_pair", "inet_unbound", "unix_dgram"])
    func leaveRunning(_ name: String) throws {
        try Self.buildWorkloads()
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out, name], env: ["LEAVE_RUNNING": "1"])
        #expect(r.output.hasPrefix("PASS"), "\(name): \(r.output)")
    }

    /// A restore reads pages.img through a mapping on two threads and verifies the checksums
    /// as it fills: damage deep in the file still fails the restore, with one line, and kills what it built.
    @Test("a damaged pages.img is refused with one line, nothing left running",
          arguments: [("flip", "checksum mismatch"), ("truncate", "truncated")])
    func damagedPages(_ damage: String, _ expected: String) throws {
        try Self.buildWorkloads()
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out, "anon_pattern", "64"],
                             env: ["DAMAGE": damage])
        #expect(r.output.hasPrefix("PASS"), "\(damage): \(r.output)")
        #expect(r.output.contains(expected), "\(damage): \(r.output)")
    }

    @Test("bad input is refused with one line and leaves the process alone", arguments: [
        (["checkpoint", "999999999", "-o", "/tmp/ferry-nope"], "no such process"),
        (["checkpoint", "2", "-o", "/tmp/ferry-nope"], "kernel thread"),
        (["restore", "/tmp/ferry-no-such-image"], "meta.img"),
    ])
    func badInput(_ args: [String], _ expected: String) throws {
        let r = try Child.run([Self.ferry] + args)
        let text = r.stderr
        #expect(r.status != 0)
        #expect(text.split(separator: "\n").count == 1, "\(text)")
        #expect(text.contains(expected), "\(text)")
    }
}
