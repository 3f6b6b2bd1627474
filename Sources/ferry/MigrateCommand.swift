#if os(Linux)
import ArgumentParser
import Foundation
import FerryCore
import FerryImage
import FerryLinux
import FerryTransport

/// Options shared by `serve` and `migrate`.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "PEM certificate of this host (mutual TLS).") var cert: String?
    @Option(help: "PEM private key of --cert.") var key: String?
    @Option(help: "PEM certificate of the CA that signed the peer's certificate.") var ca: String?
    @Flag(help: "Use plain TCP: no encryption and no authentication, loopback included (tests and demos only; a warning is printed).")
    var insecure = false
    @Option(help: "Seconds to wait for the peer before giving up (a stalled peer ends the migration).") var timeout: Double = 30
    @Option(help: "Also write the image stream to this directory (none is written otherwise).") var keepImage: String?

    /// How the connection to or from `endpoint` is authenticated; throws (one
    /// line naming the fix) where it would not be. `peerUIDs`: serve's --allow-uid.
    func authentication(for endpoint: Endpoint, role: String, peerUIDs: Set<UInt32> = []) throws -> PeerAuthentication {
        let given = [cert, key, ca].compactMap { $0 }
        switch endpoint {
        case .unix:
            guard given.isEmpty, !insecure else {
                throw MigrationError("\(role) \(role == "serve" ? "on" : "to") \(endpoint) authenticates peers by uid (SO_PEERCRED); --cert/--key/--ca and --insecure are for TCP")
            }
            return .peerUIDs(peerUIDs)
        case .tcp:
            guard peerUIDs.isEmpty else { throw MigrationError("--allow-uid applies to --listen unix:/PATH only") }
            if given.isEmpty {
                guard insecure else {
                    throw MigrationError("\(role) \(role == "serve" ? "on" : "to") \(endpoint) needs authentication: mutual TLS (--cert FILE --key FILE --ca FILE) or a Unix socket (unix:/PATH); --insecure allows plain TCP for tests and demos")
                }
                var e = StandardError()
                print(role == "serve"
                      ? "warning: --insecure: plain TCP without authentication on \(endpoint); anyone who can reach it can have a process of their choosing restored as root here"
                      : "warning: --insecure: plain TCP to \(endpoint); the process's memory travels unencrypted to a target that is not authenticated", to: &e)
                return .none
            }
            guard let cert, let key, let ca else { throw MigrationError("TLS needs all three of --cert, --key and --ca") }
            return .tls(TLSFiles(certificate: cert, key: key, ca: ca))
        }
    }

    var limits: ConnectionLimits { ConnectionLimits(timeout: timeout) }

    func keptImageSink(name: String) throws -> ByteSink? {
        guard let dir = keepImage else { return nil }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return try FileSink(path: dir + "/" + name)
    }
}

extension PeerAuthentication {
    /// ", 1000, 1001": the uids besides root a Unix socket admits.
    var peerUIDsShown: String {
        guard case .peerUIDs(let uids) = self else { return "" }
        return uids.subtracting([0]).sorted().map { ", \($0)" }.joined()
    }
}

func vdsoAreas() -> [FerryTransport.VDSOArea] { MigrationHost.vdsoLayout().map { FerryTransport.VDSOArea(name: $0.name, size: $0.size) } }

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

    private var sharers: CheckpointSession.OutsideSharers?
    /// The container's veth host ends, down from the freeze until a rollback (NetworkNamespace.swift).
    private var hold: NetworkHold?

    func prepareFreeze() { sharers = CheckpointSession.OutsideSharers.scan(pid: pid) }

    // TestKill.point(.step) marks each protocol step of the source (debug builds: FERRY_TEST_KILL_AT=step:N).
    func freeze() throws {
        TestKill.point(.step)
        hold = try NetworkHold.engage(pid: pid)
        do {
            session = try CheckpointSession(pid: pid, sharers: sharers)
        } catch {
            hold?.release()
            hold = nil
            throw error
        }
        session?.shellJob = shellJob
        session?.migrating = true
        TestKill.point(.step)
    }

    func writeImage(to sink: ByteSink) throws {
        guard let session else { throw MigrationError("not frozen") }
        TestKill.point(.step)
        let writer = try StreamImageWriter(sink: sink, source: Host.describe())
        PhaseTimer.shared.mark("image writer")
        if let p = precopy {
            // The last dirty and dropped pages (the tree is frozen now). The
            // userfaultfds stay in the processes, out of the image: closing
            // one costs a walk of every page table entry; the source is
            // killed after the ACK, or `resume` closes them.
            let final = try p.finalScan()
            for (pid, fd) in p.remoteFDs { session.ignoredFDs[pid, default: []].insert(fd) }
            for image in p.metadata.processes {
                session.knownMappings[image.pid] = image.mappings
                session.knownSignalActions[image.pid] = image.signalActions
            }
            session.knownContainer = p.container
            _ = try session.write(to: DirtyFilterSink(writer, tracked: p.tracked, final: final, preliminary: p.metadata))
        } else {
            _ = try session.write(to: writer)
        }
    }

    func resume() {
        if let p = precopy, session != nil { p.release(frozen: true) }
        precopy = nil
        session?.resume()
        hold?.release()
        hold = nil
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

    func precopyRound(_ emit: (Int32, UInt64, UnsafeRawBufferPointer?, Int) throws -> Void) throws -> Int {
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
    /// The allowances this host's operator permits a source to ask for.
    let grants: Allowances
    let policy: RestorePolicy
    /// Restored processes (and pid-namespace inits) to collect once they exit.
    var children: [Int32] = []
    /// What the current migration's HELLO asks for (serve takes one migration at a time).
    private var hello: Hello?
    /// The current peer's uid, on a Unix socket.
    var peerUID: UInt32?
    /// Where a container's veth host ends go (`serve --bridge`, `--net-hook`).
    var bridge: String?
    var netHook: String?

    init(newPidNamespace: Bool, grants: Allowances = Allowances(), policy: RestorePolicy = RestorePolicy()) {
        self.newPidNamespace = newPidNamespace; self.grants = grants; self.policy = policy
    }

    func capabilities(for hello: Hello) -> Capabilities {
        self.hello = hello
        return Capabilities(host: Host.describe(), vdso: vdsoAreas(), pidsFree: MigrationHost.pidsInUse(hello.pids).isEmpty,
                            newPidNamespace: newPidNamespace, freeMemoryBytes: MigrationHost.availableMemory(), grants: grants)
    }

    /// The source's allowances (`migrate --allow-missing-cpu-features/--allow-xsave-growth`)
    /// apply as `restore`'s do, where serve's own options permit them too.
    var options: RestoreOptions {
        let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
        let granted = (hello?.requested ?? Allowances()).granted(by: grants)
        var o = RestoreOptions(newPidNamespace: newPidNamespace, ferryPath: selfPath,
                               allowMissingCPUFeatures: granted.missingCPUFeatures, allowXSaveGrowth: granted.xsaveGrowth, policy: policy.forPeer(uid: peerUID))
        o.bridge = bridge
        o.netHook = netHook
        return o
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

/// `migrate --json`: the summary, each phase as a `[name, ms]` pair.
struct SummaryJSON: Encodable {
    let summary: MigrationSummary
    init(_ summary: MigrationSummary) { self.summary = summary }

    struct Pair: Encodable {
        let phase: Phase
        func encode(to encoder: Encoder) throws {
            var c = encoder.unkeyedContainer()
            try c.encode(phase.name)
            try c.encode(phase.ms)
        }
    }

    enum Key: String, CodingKey {
        case total_ms, downtime_ms, bytes, rounds, target_pid, target_restore_ms, downtime_phases, target_phases, precopy_freeze_ms
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(summary.total_ms, forKey: .total_ms)
        try c.encode(summary.downtime_ms, forKey: .downtime_ms)
        try c.encode(summary.bytes, forKey: .bytes)
        try c.encode(summary.rounds, forKey: .rounds)
        try c.encode(summary.target_pid, forKey: .target_pid)
        try c.encode(summary.target_restore_ms, forKey: .target_restore_ms)
        try c.encode(summary.downtime_phases.map(Pair.init), forKey: .downtime_phases)
        try c.encode(summary.target_phases.map(Pair.init), forKey: .target_phases)
        try c.encode(summary.precopy_freeze_ms, forKey: .precopy_freeze_ms)
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
        abstract: "Receive live migrations and restore them on this host (as root: see docs/security.md).")

    @Option(help: "Where to listen: ADDRESS:PORT (mutual TLS, or --insecure) or unix:/PATH (peers checked by uid), e.g. 10.0.0.2:7070 or unix:/run/ferry/serve.sock.")
    var listen: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var restorePolicy: PolicyOptions
    @Option(name: .customLong("allow-uid"), help: "With unix:/PATH: a uid besides root whose processes may connect (SO_PEERCRED). Repeatable or comma-separated.")
    var allowPeerUID: [String] = []
    @Option(help: "Comma-separated CPU features a source may declare unused (`migrate --allow-missing-cpu-features`); a source's declaration counts only for these.")
    var allowMissingCpuFeatures: String = ""
    @Flag(help: "Let a source ask for `migrate --allow-xsave-growth`; without this the target's XSAVE check always applies.")
    var allowXsaveGrowth = false
    @Option(help: "Seconds a connection has to authenticate and send its first message before it is closed.") var handshakeTimeout: Double = 10
    @Option(help: "Connections waiting to be served (in their handshake or behind a migration) at most; more are closed at once.") var maxPending: Int = 16
    @Flag(help: "Restore each process into a fresh pid namespace (its pids need not be free here).") var newPidns = false
    @Flag(help: "Exit after one migration (its outcome is the exit status).") var once = false
    @OptionGroup var network: NetworkAttachOptions

    func run() throws {
        try reportingErrors {
            let endpoint = try Endpoint.parse(listen)
            let auth = try connection.authentication(for: endpoint, role: "serve",
                                                     peerUIDs: Set(try UIDList.parse(allowPeerUID, option: "--allow-uid")))
            let policy = try restorePolicy.policy
            var limits = connection.limits
            limits.handshakeTimeout = handshakeTimeout
            limits.maxPending = max(1, maxPending)
            let listener = try Listener(endpoint: endpoint, authentication: auth, limits: limits) { say($0) }
            defer { listener.close() }
            let shown: String
            switch (endpoint, auth) {
            case (.tcp(let host, _), .tls): shown = "\(Endpoint.tcp(host: host, port: listener.localPort)) (mutual TLS)"
            case (.tcp(let host, _), _): shown = "\(Endpoint.tcp(host: host, port: listener.localPort)) (plain TCP, no authentication)"
            case (.unix, _): shown = "\(endpoint) (peers checked by uid: root\(auth.peerUIDsShown))"
            }
            say("listening on \(shown)")
            let grants = Allowances(missingCPUFeatures: Set(allowMissingCpuFeatures.split(separator: ",").map(String.init)), xsaveGrowth: allowXsaveGrowth)
            let target = LinuxTarget(newPidNamespace: newPidns, grants: grants, policy: policy)
            target.bridge = network.bridge
            target.netHook = network.netHook
            while true {
                target.reapExited()
                guard let conn = listener.accept(timeout: 1) else { continue }
                say("migration from \(conn.peer)" + (conn.peerUID.map { " (uid \($0))" } ?? ""))
                target.peerUID = conn.peerUID
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
    @Option(help: "The target: ADDRESS:PORT of `ferry serve` (mutual TLS, or --insecure), or unix:/PATH (this host; the listener must run as root).") var to: String
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the summary as JSON (total_ms, downtime_ms, bytes, rounds).") var json = false
    @OptionGroup var progressOptions: ProgressOptions
    @Flag(help: "The process is a shell's job: its session and process group, led by the shell, become those of the target's ferry.")
    var shellJob = false
    @Flag(name: .customLong("ext-unix-sk"), help: "Carry Unix sockets whose peer is outside the tree and bound to a name: on restore they are connected to that name again (the peer's server must be there).")
    var extUnixSk = false
    @Flag(help: "On kernels whose fdinfo does not show an eventfd's mode (before 6.5), take the process's eventfds as plain counters (not EFD_SEMAPHORE) instead of refusing them.")
    var eventfdsAreCounters = false
    @Flag(help: "Freeze at once and copy everything (no pre-copy rounds while the process runs).") var noPrecopy = false
    @Option(help: "Pre-copy rounds while the process runs, at most.") var maxRounds: Int = 8
    @Option(help: "Pre-copy ends once a round finds at most this many MiB dirty.") var dirtyThreshold: Double = 1
    @Option(help: "Comma-separated CPU features (cpuinfo names) this CPU has and the target may lack, because the process is known not to use them (as `restore --allow-missing-cpu-features`); the target is told.")
    var allowMissingCpuFeatures: String = ""
    @Flag(help: "Migrate even when the target's CPU enables XSAVE components this one does not (as `restore --allow-xsave-growth`: the process binds eagerly with LD_BIND_NOW=1).")
    var allowXsaveGrowth = false
    @OptionGroup var ghosts: GhostLimitOption

    func run() throws {
        DescriptorChecks.eventfdsAreCounters = eventfdsAreCounters
        ghosts.apply()
        UnixSocket.externalPeersAllowed = extUnixSk
        try reportingErrors {
            let endpoint = try Endpoint.parse(to)
            let auth = try connection.authentication(for: endpoint, role: "migrate")
            let subject = try LinuxSubject(pid: pid, shellJob: shellJob)
            var tls: TLSFiles?
            if case .tls(let files) = auth { tls = files }
            let conn = try Connection.connect(to: endpoint, tls: tls, limits: connection.limits)
            let terminal = isatty(STDERR_FILENO) == 1
            let display = ProgressDisplay(progressOptions.mode, phase: "migrate", total: nil)
            defer { display.stop() }
            let summary = try MigrationSource.run(
                subject: subject, connection: conn, local: Host.describe(), localVDSO: vdsoAreas(),
                precopy: PrecopyOptions(enabled: !noPrecopy, maxRounds: maxRounds, smallDirtyPages: Int(dirtyThreshold * 256)),
                keepImage: try connection.keptImageSink(name: "migration-\(pid).stream"),
                allowMissingCPUFeatures: Set(allowMissingCpuFeatures.split(separator: ",").map(String.init)),
                allowXSaveGrowth: allowXsaveGrowth,
                progress: { p in display.update(bytes: p.bytesSent, round: p.round, dirty: p.dirtyBytes) },
                log: { line in
                    if terminal || line.hasPrefix("warning") {
                        display.clearLine()
                        var e = StandardError()
                        print(line, to: &e)
                    }
                })
            display.stop()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                let out = try encoder.encode(SummaryJSON(summary))
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
