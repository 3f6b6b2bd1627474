#if os(Linux)
import ArgumentParser
import Foundation
import FerryImage
import FerryLinux
import FerryTransport

/// Options shared by `serve` and `migrate`.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "PEM certificate of this host (mutual TLS).") var cert: String?
    @Option(help: "PEM private key of --cert.") var key: String?
    @Option(help: "PEM certificate of the CA that signed the peer's certificate.") var ca: String?
    @Flag(help: "Allow a plain TCP connection to or from a non-loopback address (no encryption, no authentication).")
    var insecure = false
    @Option(help: "Seconds to wait for the peer before giving up (a stalled peer ends the migration).") var timeout: Double = 30
    @Option(help: "Also write the image stream to this directory (none is written otherwise).") var keepImage: String?

    /// The TLS files, or nil for plain TCP (allowed on loopback, or with --insecure).
    func tls(for host: String, role: String) throws -> TLSFiles? {
        let given = [cert, key, ca].compactMap { $0 }
        if given.isEmpty {
            if !insecure && !HostPort.isLoopback(host) {
                throw MigrationError("\(role) on \(host) needs mutual TLS (--cert FILE --key FILE --ca FILE); pass --insecure to use plain TCP anyway")
            }
            return nil
        }
        guard let cert, let key, let ca else { throw MigrationError("TLS needs all three of --cert, --key and --ca") }
        return TLSFiles(certificate: cert, key: key, ca: ca)
    }

    var limits: ConnectionLimits { ConnectionLimits(timeout: timeout) }

    func keptImageSink(name: String) throws -> ByteSink? {
        guard let dir = keepImage else { return nil }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return try FileSink(path: dir + "/" + name)
    }
}

enum HostPort {
    static func parse(_ text: String) throws -> (host: String, port: Int) {
        var host = text, portText = ""
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[text.index(after: close)...].dropFirst())
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
        }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty else {
            throw MigrationError("\"\(text)\" is not ADDRESS:PORT")
        }
        return (host, port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

func vdsoAreas() -> [VDSOArea] { MigrationHost.vdsoLayout().map { VDSOArea(name: $0.name, size: $0.size) } }

/// The source side on Linux: a CheckpointSession, after pre-copy rounds when asked.
final class LinuxSubject: PrecopySubject {
    let pid: Int32
    let pids: [Int32]
    let memoryBytes: UInt64
    private var session: CheckpointSession?
    private var precopy: PrecopySource?

    let shellJob: Bool

    init(pid: Int32, shellJob: Bool) throws {
        self.pid = pid
        self.shellJob = shellJob
        (pids, memoryBytes) = try MigrationHost.tree(of: pid)
    }

    // TestKill.point(.step) marks each protocol step of the source (debug builds: FERRY_TEST_KILL_AT=step:N).
    func freeze() throws {
        TestKill.point(.step)
        session = try CheckpointSession(pid: pid)
        session?.shellJob = shellJob
        TestKill.point(.step)
    }

    func writeImage(to sink: ByteSink) throws {
        guard let session else { throw MigrationError("not frozen") }
        TestKill.point(.step)
        let writer = try StreamImageWriter(sink: sink, source: Host.describe())
        PhaseTimer.shared.mark("image writer")
        if let p = precopy {
            // The last dirty and dropped pages (the process is frozen now). The
            // userfaultfd stays in the process, out of the image: closing it
            // costs a walk of every page table entry; the source is killed
            // after the ACK, or `resume` closes it.
            let final = try p.finalScan()
            PhaseTimer.shared.mark("final scan")
            session.ignoredFDs[pid] = [p.remoteFD]
            session.knownMappings[pid] = p.metadata.processes[0].mappings
            session.knownSignalActions[pid] = p.metadata.processes[0].signalActions
            session.knownContainer = p.container
            _ = try session.write(to: DirtyFilterSink(writer, pid: pid, tracked: p.tracked, final: final, preliminary: p.metadata))
        } else {
            _ = try session.write(to: writer)
        }
    }

    func resume() {
        if let p = precopy, session != nil { p.release(frozen: true) }
        precopy = nil
        session?.resume()
    }

    func kill() {
        TestKill.point(.step)
        session?.sendKill()
    }

    func collect() { session?.kill() }

    func startPrecopy() throws -> ImageMetadata {
        TestKill.point(.step)
        let p = try PrecopySource(pid: pid, shellJob: shellJob)
        precopy = p
        TestKill.point(.step)
        return p.metadata
    }

    func precopyRound(_ emit: (UInt64, UnsafeRawBufferPointer?, Int) throws -> Void) throws -> Int {
        guard let p = precopy else { return 0 }
        TestKill.point(.step)
        return try p.round(emit)
    }

    func cancelPrecopy() {
        precopy?.cancel()
        precopy = nil
    }

    var precopyFreezeMs: Double { precopy?.startFreezeMs ?? 0 }
}

/// The target side on Linux: Restore from the stream (after pre-copy, a PhasedRestore).
final class LinuxTarget: PrecopyTarget {
    let newPidNamespace: Bool
    /// Restored processes (and pid-namespace inits) to collect once they exit.
    var children: [Int32] = []
    /// What the current migration's HELLO allows (serve takes one migration at a time).
    private var hello: Hello?

    init(newPidNamespace: Bool) { self.newPidNamespace = newPidNamespace }

    func capabilities(for hello: Hello) -> Capabilities {
        self.hello = hello
        return Capabilities(host: Host.describe(), vdso: vdsoAreas(), pidsInUse: MigrationHost.pidsInUse(hello.pids),
                            newPidNamespace: newPidNamespace, freeMemoryBytes: MigrationHost.availableMemory())
    }

    /// The source's allowances (`migrate --allow-missing-cpu-features/--allow-xsave-growth`) apply as `restore`'s do.
    var options: RestoreOptions {
        let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
        return RestoreOptions(newPidNamespace: newPidNamespace, ferryPath: selfPath,
                              allowMissingCPUFeatures: Set(hello?.allowMissingCPUFeatures ?? []),
                              allowXSaveGrowth: hello?.allowXSaveGrowth ?? false)
    }

    func beginPrecopy(metadata: ImageMetadata) throws -> PrecopyRestoring {
        LinuxPrecopyRestoring(target: self, restore: try PhasedRestore(metadata: metadata, options: options))
    }

    func restore(from source: ByteSource) throws -> RestoredProcess {
        let start = Date()
        return try running(try Restore.run(stream: source, options: options), since: start)
    }

    /// Checks the restored tree runs and describes it for the ACK.
    func running(_ r: RestoreResult, since start: Date) throws -> RestoredProcess {
        let pid = r.pids[0]
        let all = r.pids
        let nsInit = r.namespaceInit
        let discard = {
            for p in all.dropFirst() { kill(p, SIGKILL) }
            MigrationHost.discard(pid: pid, namespaceInit: nsInit)
        }
        guard all.allSatisfy(MigrationHost.isRunning) else {
            discard()
            throw MigrationError("a restored process died at once (pids \(all.map(String.init).joined(separator: ", ")))")
        }
        children += [pid] + (nsInit.map { [$0] } ?? [])
        let restoreMs = (Date().timeIntervalSince(start) * 10000).rounded() / 10
        return RestoredProcess(ack: Ack(pid: pid, namespaceInit: nsInit, restoreMs: restoreMs, notes: r.notes)) { [weak self] in
            discard()
            self?.children.removeAll { $0 == pid || $0 == nsInit }
        }
    }

    func reapExited() { children.removeAll { MigrationHost.reapIfExited($0) } }
}

final class LinuxPrecopyRestoring: PrecopyRestoring {
    let target: LinuxTarget
    let restore: PhasedRestore
    let start = Date()

    init(target: LinuxTarget, restore: PhasedRestore) { self.target = target; self.restore = restore }

    func fill(_ span: PageSpan) throws { try restore.fill(span) }

    func flush() throws { try restore.flushPages() }

    func finish(from source: ByteSource) throws -> RestoredProcess {
        let phases = PhaseTimer.shared
        phases.reset()
        let reader = try MetadataFirstStreamReader(source: source)
        phases.mark("read metadata")
        var phased = restore
        do {
            try phased.update(final: reader.metadata)
        } catch {
            // The mappings changed during pre-copy: the source sends every page, start over from the final image.
            say("note: \(error)")
            restore.abandon()
            phased = try PhasedRestore(metadata: reader.metadata, options: target.options)
            second = phased
        }
        // After pre-copy a ZERO run in private anonymous memory means "zero
        // these now": the pages may hold what an earlier round sent.
        let restarted = second != nil
        try reader.forEachPageRun { run in
            if run.data == nil && !restarted { try phased.zero(run) } else { try phased.fill(run) }
        }
        phases.mark("pages")
        var r = try phased.complete()
        if second != nil { r.notes.append("restored from the final image alone") }
        for n in r.notes { say("note: \(n)") }
        var running = try target.running(r, since: start)
        phases.mark("running check")
        running.ack.phases = Phase.from(phases)
        say("final phase here: " + phases.summary.map { "\($0.name) \($0.ms) ms" }.joined(separator: ", "))
        return running
    }

    private var second: PhasedRestore?

    func abandon() {
        restore.abandon()
        second?.abandon()
    }
}

/// Prints one line, at once (serve's log is read by people and tests as it happens).
func say(_ line: String) {
    print(line)
    fflush(nil)
}

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Receive live migrations and restore them on this host.")

    @Option(help: "Address and port to listen on, e.g. 10.0.0.2:7070 or 127.0.0.1:0.") var listen: String
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Restore each process into a fresh pid namespace (its pids need not be free here).") var newPidns = false
    @Flag(help: "Exit after one migration (its outcome is the exit status).") var once = false

    func run() throws {
        try reportingErrors {
            let (host, port) = try HostPort.parse(listen)
            let tls = try connection.tls(for: host, role: "serve")
            let listener = try Listener(host: host, port: port, tls: tls, limits: connection.limits) { say($0) }
            defer { listener.close() }
            say("listening on \(host):\(listener.localPort)\(tls == nil ? " (plain TCP, no authentication)" : " (mutual TLS)")")
            let target = LinuxTarget(newPidNamespace: newPidns)
            while true {
                target.reapExited()
                guard let conn = listener.accept(timeout: 1) else { continue }
                say("migration from \(conn.peer)")
                let stamp = Int(Date().timeIntervalSince1970)
                let outcome = MigrationReceiver.handle(conn, target: target,
                                                       keepImage: try connection.keptImageSink(name: "migration-\(stamp).stream"),
                                                       log: say)
                if once {
                    switch outcome {
                    case .migrated, .uncommitted: return
                    case .failed, .declined: throw ExitCode(1)
                    }
                }
            }
        }
    }
}

struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move a running process to a host running `ferry serve`; it keeps running there.")

    @Argument(help: "The process to migrate (with its children).") var pid: Int32
    @Option(help: "The target, ADDRESS:PORT of `ferry serve`.") var to: String
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the summary as JSON (total_ms, downtime_ms, bytes, rounds).") var json = false
    @Flag(help: "The process is a shell's job: its session and process group, led by the shell, become those of the target's ferry.")
    var shellJob = false
    @Flag(help: "Freeze at once and copy everything (no pre-copy rounds while the process runs).") var noPrecopy = false
    @Option(help: "Pre-copy rounds while the process runs, at most.") var maxRounds: Int = 8
    @Option(help: "Pre-copy ends once a round finds at most this many MiB dirty.") var dirtyThreshold: Double = 1
    @Option(help: "Comma-separated CPU features (cpuinfo names) this CPU has and the target may lack, because the process is known not to use them (as `restore --allow-missing-cpu-features`); the target is told.")
    var allowMissingCpuFeatures: String = ""
    @Flag(help: "Migrate even when the target's CPU enables XSAVE components this one does not (as `restore --allow-xsave-growth`: the process binds eagerly with LD_BIND_NOW=1).")
    var allowXsaveGrowth = false

    func run() throws {
        try reportingErrors {
            let (host, port) = try HostPort.parse(to)
            let tls = try connection.tls(for: host, role: "migrate")
            let subject = try LinuxSubject(pid: pid, shellJob: shellJob)
            let conn = try Connection.connect(host: host, port: port, tls: tls, limits: connection.limits)
            let terminal = isatty(STDERR_FILENO) == 1
            var lastShown = 0.0
            var shown = false
            let summary = try MigrationSource.run(
                subject: subject, connection: conn, local: Host.describe(), localVDSO: vdsoAreas(),
                precopy: PrecopyOptions(enabled: !noPrecopy, maxRounds: maxRounds, smallDirtyPages: Int(dirtyThreshold * 256)),
                keepImage: try connection.keptImageSink(name: "migration-\(pid).stream"),
                allowMissingCPUFeatures: Set(allowMissingCpuFeatures.split(separator: ",").map(String.init)),
                allowXSaveGrowth: allowXsaveGrowth,
                progress: { p in
                    guard terminal else { return }
                    let t = Date().timeIntervalSince1970
                    guard t - lastShown > 0.1 else { return }
                    lastShown = t
                    shown = true
                    let line = String(format: "\rsent %.1f MiB, round %d, dirty rate %.1f MiB/s ", Double(p.bytesSent) / 1048576, p.round, p.dirtyRate / 1048576)
                    FileHandle.standardError.write(Data(line.utf8))
                },
                log: { line in
                    if terminal || line.hasPrefix("warning") {
                        var e = StandardError()
                        print((shown ? "\n" : "") + line, to: &e)
                        shown = false
                    }
                })
            if shown { FileHandle.standardError.write(Data("\n".utf8)) }
            if json {
                let out = try JSONSerialization.data(withJSONObject: [
                    "total_ms": summary.total_ms, "downtime_ms": summary.downtime_ms, "bytes": summary.bytes,
                    "rounds": summary.rounds, "target_pid": summary.target_pid, "target_restore_ms": summary.target_restore_ms,
                    "downtime_phases": summary.downtime_phases.map { [$0.name, $0.ms] as [Any] },
                    "target_phases": summary.target_phases.map { [$0.name, $0.ms] as [Any] },
                    "precopy_freeze_ms": summary.precopy_freeze_ms,
                ] as [String: Any], options: [.sortedKeys])
                print(String(decoding: out, as: UTF8.self))
            } else {
                print(String(format: "migrated pid %d to %@ (pid %d there): total %.1f ms, downtime %.1f ms, %.1f MiB, %d round(s)",
                             pid, conn.peer, summary.target_pid, summary.total_ms, summary.downtime_ms,
                             Double(summary.bytes) / 1048576, summary.rounds)
                      + (summary.precopy_freeze_ms > 0 ? String(format: " (and %.1f ms frozen to start pre-copy)", summary.precopy_freeze_ms) : ""))
            }
        }
    }
}
#endif
