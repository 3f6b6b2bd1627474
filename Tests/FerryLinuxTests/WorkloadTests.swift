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
    ]

    static func run(_ args: [String], env: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: args[0])
        p.arguments = Array(args.dropFirst())
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func buildWorkloads() throws { try TestPaths.buildWorkloads() }

    @Test("checkpoint → restore → self-check", arguments: cases)
    func checkpointRestore(_ spec: String) throws {
        try Self.buildWorkloads()
        let parts = spec.split(separator: " ").map(String.init)
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out] + parts)
        #expect(r.output.hasPrefix("PASS"), "\(spec): \(r.output)")
    }

    @Test("checkpoint → restore into a fresh pid namespace", arguments: ["getpid_same", "threads_tls", "sleep_syscall", "fork_pipe"])
    func checkpointRestoreNewPidns(_ name: String) throws {
        try Self.buildWorkloads()
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out, name],
                             env: ["RESTORE_ARGS": "--new-pidns"])
        #expect(r.output.hasPrefix("PASS"), "\(name): \(r.output)")
    }

    /// The stack moves to FreeBSD's Linuxulator stack top (pointers into it fixed everywhere) and the vDSO is
    /// proxied: what a FreeBSD target needs, run for real on this kernel.
    @Test("restore --target-layout freebsd-linuxulator (stack relocated, vDSO proxied)", arguments: cases + ["fork_pipe"])
    func freebsdLayout(_ spec: String) throws {
        try Self.buildWorkloads()
        let parts = spec.split(separator: " ").map(String.init)
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out] + parts,
                             env: ["RESTORE_ARGS": "--target-layout freebsd-linuxulator"])
        #expect(r.output.hasPrefix("PASS"), "\(spec): \(r.output)")
    }

    @Test("checkpoint --stream - | restore --stream - (no image on disk)", arguments: ["threads_tls", "fork_pipe", "anon_pattern 256 32", "signals"])
    func streamPipeline(_ spec: String) throws {
        try Self.buildWorkloads()
        let parts = spec.split(separator: " ").map(String.init)
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out] + parts,
                             env: ["STREAM": "1", "RESTORE_ARGS": "--new-pidns"])
        #expect(r.output.hasPrefix("PASS"), "\(spec): \(r.output)")
    }

    @Test("--leave-running leaves the process running and correct", arguments: ["threads_tls", "itimer", "pipe_inflight"])
    func leaveRunning(_ name: String) throws {
        try Self.buildWorkloads()
        let r = try Self.run(["/bin/bash", Self.workloads + "/run_cr.sh", Self.ferry, Self.out, name], env: ["LEAVE_RUNNING": "1"])
        #expect(r.output.hasPrefix("PASS"), "\(name): \(r.output)")
    }

    @Test("bad input is refused with one line and leaves the process alone", arguments: [
        (["checkpoint", "999999999", "-o", "/tmp/ferry-nope"], "no such process"),
        (["checkpoint", "2", "-o", "/tmp/ferry-nope"], "kernel thread"),
        (["restore", "/tmp/ferry-no-such-image"], "meta.img"),
    ])
    func badInput(_ args: [String], _ expected: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.ferry)
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        #expect(text.split(separator: "\n").count == 1, "\(text)")
        #expect(text.contains(expected), "\(text)")
    }
}
