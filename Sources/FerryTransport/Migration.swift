import FerryCore
import FerryImage
import Foundation
import NIOCore

// Both ends of one migration, over a `Connection`, independent of the OS
// backend: the source drives a `MigrationSubject` (freeze, write the image,
// resume or kill), the target a `MigrationTarget` (describe itself, restore
// from the stream, discard what it restored). The `ferry` command wires in
// FerryLinux.

/// The process tree being migrated, on the source.
public protocol MigrationSubject: AnyObject {
    /// Every pid and tid of the tree.
    var pids: [Int32] { get }
    /// Resident memory of the tree.
    var memoryBytes: UInt64 { get }
    /// Work before `freeze` that needs the tree running (not counted as downtime).
    func prepareFreeze()
    /// Stops every thread. After this, `resume` or `kill` must follow.
    func freeze() throws
    /// Writes the whole image in the stream encoding (metadata first).
    func writeImage(to sink: ByteSink) throws
    /// Lets the frozen tree run on, unchanged.
    func resume()
    /// Ends the frozen tree (the target has it now): it never runs again, at once.
    func kill()
    /// After `kill`: frees what the killed tree held and collects it (not part of the migration's time).
    func collect()
}

extension MigrationSubject {
    public func collect() {}
    public func prepareFreeze() {}
}

/// A subject that can be copied while it runs (pre-copy).
public protocol PrecopySubject: MigrationSubject {
    /// Starts dirty tracking (briefly freezing the process) and returns the
    /// preliminary metadata. Throws where tracking is unavailable.
    func startPrecopy() throws -> ImageMetadata
    /// One round while the tree runs, over every process:
    /// `emit(pid, address, data or nil for zero pages, page count)`; returns pages sent.
    func precopyRound(_ emit: (Int32, UInt64, UnsafeRawBufferPointer?, Int) throws -> Void) throws -> Int
    /// Undoes `startPrecopy` while the process runs (rollback).
    func cancelPrecopy()
    /// How long `startPrecopy` kept the process frozen (ms).
    var precopyFreezeMs: Double { get }
}

/// Pre-copy limits.
public struct PrecopyOptions: Sendable {
    public var enabled: Bool
    /// Rounds while the process runs, at most.
    public var maxRounds: Int
    /// A round that finds at most this many dirty pages ends pre-copy.
    public var smallDirtyPages: Int
    public init(enabled: Bool = true, maxRounds: Int = 8, smallDirtyPages: Int = 256) {
        self.enabled = enabled; self.maxRounds = max(1, maxRounds); self.smallDirtyPages = smallDirtyPages
    }
}

/// A restore under way on the target during pre-copy.
public protocol PrecopyRestoring: AnyObject {
    /// Writes pages received during pre-copy (the span is valid only during the call).
    func fill(_ span: PageSpan) throws
    /// Writes every page queued so far into the process.
    func flush() throws
    /// Reads the final image (metadata first) and lets the process run.
    func finish(from source: ByteSource) throws -> RestoredProcess
    /// Kills what was created.
    func abandon()
}

/// A target that builds the process while pre-copy runs.
public protocol PrecopyTarget: MigrationTarget {
    func beginPrecopy(metadata: ImageMetadata) throws -> PrecopyRestoring
}

/// What a restore on the target produced.
public struct RestoredProcess {
    public var ack: Ack
    /// Kills the restored process (and anything restore created for it).
    public var discard: () -> Void
    public init(ack: Ack, discard: @escaping () -> Void) { self.ack = ack; self.discard = discard }
}

/// The receiving host.
public protocol MigrationTarget: AnyObject {
    func capabilities(for hello: Hello) -> Capabilities
    /// Restores the image read from `source`; on failure nothing it created remains.
    func restore(from source: ByteSource) throws -> RestoredProcess
}

public struct MigrationSummary: Codable, Sendable, Equatable {
    public var total_ms: Double
    public var downtime_ms: Double
    public var bytes: UInt64
    public var rounds: Int
    /// The process on the target.
    public var target_pid: Int32
    public var target_restore_ms: Double
    /// The downtime split on the source (freeze → ACK received), in order.
    public var downtime_phases: [Phase] = []
    /// The target's part (first image byte → ACK sent), in order.
    public var target_phases: [Phase] = []
    /// The brief freeze that started pre-copy's dirty tracking (0 without pre-copy).
    public var precopy_freeze_ms: Double = 0
}

public struct MigrationProgress: Sendable {
    public var bytesSent: UInt64
    public var round: Int
    /// Bytes dirtied per second during the last round (0 in stop-and-copy).
    public var dirtyRate: Double
    /// The dirty set the last completed pre-copy round sent, in bytes (nil before one completed).
    public var dirtyBytes: UInt64? = nil
}

/// The source side.
public enum MigrationSource {
    /// Runs a migration over `connection`. Throws with a one-line reason on
    /// any failure; the subject is then running as before (resumed if it was frozen).
    public static func run(subject: MigrationSubject, connection: Connection, local: SourceHost, localVDSO: [VDSOArea],
                           precopy: PrecopyOptions = PrecopyOptions(enabled: false),
                           keepImage: ByteSink? = nil, allowMissingCPUFeatures: Set<String> = [], allowXSaveGrowth: Bool = false,
                           progress: ((MigrationProgress) -> Void)? = nil,
                           log: (String) -> Void = { _ in }) throws -> MigrationSummary {
        let start = now()
        let hello = Hello(pids: subject.pids, memoryBytes: subject.memoryBytes,
                          allowMissingCPUFeatures: allowMissingCPUFeatures.isEmpty ? nil : allowMissingCPUFeatures.sorted(),
                          allowXSaveGrowth: allowXSaveGrowth ? true : nil)
        do {
            try connection.send(.hello, json: hello)
            let first = try connection.receive(waitingFor: "CAPABILITIES")
            guard first.type == .capabilities else { throw Connection.unexpected(first, wanted: "CAPABILITIES", peer: connection.peer) }
            // Another version's CAPABILITIES need not decode: its version is read first.
            let version = try WireJSON.decode(VersionOnly.self, first).protocolVersion
            guard version == WireProtocol.version else {
                try? connection.send(.verdict, json: Verdict(go: false, reasons: ["protocol \(WireProtocol.version)"]))
                connection.close()
                throw MigrationError("the target \(connection.peer) cannot take this process (nothing was frozen): it speaks migration protocol \(version), this ferry \(WireProtocol.version): use the same ferry version on both hosts")
            }
            let caps = try WireJSON.decode(Capabilities.self, first)
            let reasons = verdict(hello: hello, capabilities: caps, local: local, localVDSO: localVDSO)
            guard reasons.isEmpty else {
                try? connection.send(.verdict, json: Verdict.refused(reasons))
                connection.close()
                throw MigrationError("the target \(connection.peer) cannot take this process (nothing was frozen): " + reasons.joined(separator: "; "))
            }
            if caps.vdso != localVDSO {
                func show(_ v: [VDSOArea]) -> String { v.isEmpty ? "none" : v.map(\.description).joined(separator: ", ") }
                log("note: the target's vDSO layout (\(show(caps.vdso))) differs from this host's (\(show(localVDSO))); restore will move or proxy it")
            }
            try connection.send(.verdict, json: Verdict(go: true))
        } catch {
            connection.close()
            throw error
        }

        var rounds = 1
        if precopy.enabled, let p = subject as? PrecopySubject {
            rounds = try precopyRounds(p, connection: connection, options: precopy, progress: progress, log: log)
        } else if precopy.enabled {
            log("warning: pre-copy is not available for this process: stop-and-copy")
        }
        subject.prepareFreeze()
        let frozenAt = now()
        let phases = PhaseTimer.shared
        phases.reset()
        do {
            try subject.freeze()
            phases.mark("freeze")
        } catch {
            connection.close(with: .abort, reason: "the source could not freeze the process: \(error)")
            throw error
        }
        let ack: Ack
        do {
            let sink = ConnectionSink(connection: connection, copy: keepImage)
            sink.progress = { bytes in progress?(MigrationProgress(bytesSent: bytes, round: rounds, dirtyRate: 0)) }
            try subject.writeImage(to: sink)
            try sink.flush()
            phases.mark("send rest")
            ack = try connection.expect(.ack, Ack.self)
            phases.mark("wait for ACK")
        } catch {
            subject.resume()
            let reason = oneLine(error)
            connection.close(with: .abort, reason: "the source resumed the process: \(reason)")
            throw MigrationError("migration failed, the process was resumed here unchanged: \(reason)")
        }
        let downtime = now() - frozenAt
        subject.kill()
        connection.close(with: .commit, reason: nil)
        let total = now() - start
        // Freeing 1 GiB of the killed source takes 0.1–0.2 s here; it runs no more, so the migration is over.
        subject.collect()
        return MigrationSummary(total_ms: ms(total), downtime_ms: ms(downtime), bytes: connection.bytesSent, rounds: rounds,
                                target_pid: ack.pid, target_restore_ms: ack.restoreMs,
                                downtime_phases: Phase.from(phases), target_phases: ack.phases ?? [],
                                precopy_freeze_ms: rounds > 1 ? ms(((subject as? PrecopySubject)?.precopyFreezeMs ?? 0) / 1000) : 0)
    }

    /// Sends the preliminary metadata and rounds of pages while the process
    /// runs; returns the number of rounds including the final one (1 when
    /// tracking is unavailable: stop-and-copy).
    static func precopyRounds(_ p: PrecopySubject, connection: Connection, options: PrecopyOptions,
                              progress: ((MigrationProgress) -> Void)?, log: (String) -> Void) throws -> Int {
        let pre: ImageMetadata
        do {
            pre = try p.startPrecopy()
        } catch {
            log("warning: no dirty tracking (\(oneLine(error))): stop-and-copy")
            return 1
        }
        // The metadata must fit one PRECOPY_META frame. Tracking is already
        // in the process by now: a tree too large for it is rolled back to
        // stop-and-copy here, before anything is sent.
        let preBytes = WireJSON.encode(pre)
        if let why = precopyMetadataProblem(bytes: preBytes.count, processes: pre.processes.count) {
            p.cancelPrecopy()
            log("warning: \(why): stop-and-copy")
            return 1
        }
        var rounds = 0
        do {
            try connection.send(.precopyMeta, bytes: preBytes)
            var previous: Int?
            var rate = 0.0
            var dirty: UInt64?
            while true {
                rounds += 1
                let start = now()
                let (round, lastRate, lastDirty) = (rounds, rate, dirty)
                let pages = try sendRound(p, connection) {
                    progress?(MigrationProgress(bytesSent: connection.bytesSent, round: round, dirtyRate: lastRate, dirtyBytes: lastDirty))
                }
                if rounds > 1 { rate = Double(pages * 4096) / max(now() - start, 1e-6) }
                dirty = UInt64(pages) * 4096
                log("pre-copy round \(rounds): \(pages) pages (\(pages >> 8) MiB)")
                progress?(MigrationProgress(bytesSent: connection.bytesSent, round: rounds, dirtyRate: rate, dirtyBytes: dirty))
                if PrecopyRounds.isLast(round: rounds, pages: pages, previous: previous, maxRounds: options.maxRounds,
                                        smallDirtyPages: options.smallDirtyPages) { break }
                if rounds > 1 { previous = pages }
            }
            // Before the freeze the target writes what is still queued or in
            // flight (up to the connection's windows, 16 MiB), which would
            // otherwise count as downtime; then one short round sends what was
            // written meanwhile, and the freeze follows at once.
            try connection.send(.precopySync, bytes: [])
            let f = try connection.receive(waitingFor: "PRECOPY_SYNCED")
            guard f.type == .precopySynced else { throw Connection.unexpected(f, wanted: "PRECOPY_SYNCED", peer: connection.peer) }
            rounds += 1
            let pages = try sendRound(p, connection)
            log("pre-copy round \(rounds) (after the target caught up): \(pages) pages")
        } catch {
            p.cancelPrecopy()
            let reason = oneLine(error)
            connection.close(with: .abort, reason: "pre-copy failed on the source: \(reason)")
            throw MigrationError("pre-copy failed, the process keeps running here unchanged: \(reason)")
        }
        return rounds + 1
    }

    /// Why `bytes` of encoded pre-copy metadata (of a tree of `processes`)
    /// cannot go out as PRECOPY_META, or nil.
    static func precopyMetadataProblem(bytes: Int, processes: Int) -> String? {
        if processes == 0 || bytes == 0 { return "the pre-copy metadata holds no process" }
        let cap = MessageType.precopyMeta.maxLength
        if bytes > cap { return "the pre-copy metadata takes \(bytes) bytes, more than one PRECOPY_META message carries (\(cap))" }
        return nil
    }

    /// One pre-copy round, its runs batched into PRECOPY_PAGES frames;
    /// `batchSent` after each full batch. Returns the pages of the round.
    static func sendRound(_ p: PrecopySubject, _ c: Connection, batchSent: () -> Void = {}) throws -> Int {
        var batch = PageBatch(allocator: c.channel.allocator)
        let pages = try p.precopyRound { pid, address, data, count in
            if try add(&batch, c, pid: pid, address: address, data: data, count: count) { batchSent() }
        }
        try c.send(&batch)
        return pages
    }

    /// Adds a run to `batch`, sending the batch whenever the next piece
    /// would not fit (long runs are split); returns whether a batch went out.
    @discardableResult
    static func add(_ batch: inout PageBatch, _ c: Connection, pid: Int32, address: UInt64, data: UnsafeRawBufferPointer?,
                    count: Int) throws -> Bool {
        var done = 0, sent = false
        while done < count {
            let n = min(count - done, data == nil ? PageRecord.maxZeroPages : PageBatch.maxRunPages)
            if !batch.fits(pages: n, data: data != nil) { try c.send(&batch); sent = true }
            batch.add(pid: pid, address: address + UInt64(done * 4096),
                      data: data.map { UnsafeRawBufferPointer(rebasing: $0[done * 4096..<(done + n) * 4096]) }, count: n)
            done += n
        }
        return sent
    }

    /// Everything that keeps the target from holding this process, one line each; empty means go.
    public static func verdict(hello: Hello, capabilities caps: Capabilities, local: SourceHost, localVDSO: [VDSOArea]) -> [String] {
        var reasons: [String] = []
        if caps.protocolVersion != WireProtocol.version {
            reasons.append("the target speaks migration protocol \(caps.protocolVersion), this ferry \(WireProtocol.version): use the same ferry version on both hosts")
        }
        guard let os = TargetOS(rawValue: caps.host.os) else {
            return reasons + ["the target runs \"\(caps.host.os)\", which ferry does not restore on"]
        }
        if os != .linux {
            reasons.append("the target runs \(caps.host.os); this ferry migrates to Linux only")
        }
        let target = TargetCapabilities(os: os, kernelRelease: caps.host.kernelRelease, arch: caps.host.arch,
                                        pageSize: caps.host.pageSize, cpu: caps.host.cpu)
        // CPU features the process is declared not to use (HELLO) need not be
        // on the target, where its operator permits that too.
        let granted = hello.requested.granted(by: caps.grants)
        let required = CPUFeatureCheck.isaFlags.subtracting(granted.missingCPUFeatures)
        let cpuReasons = Compatibility.verdict(image: ImageMetadata(source: local, processes: [], pipes: []), target: target,
                                               requiredCPUFlags: required, allowXSaveGrowth: granted.xsaveGrowth).reasons
        reasons += cpuReasons
        let refused = hello.requested.missingCPUFeatures.subtracting(granted.missingCPUFeatures)
        if !cpuReasons.isEmpty && !refused.isEmpty {
            let listed = refused.sorted().joined(separator: ",")
            reasons.append("the target does not permit --allow-missing-cpu-features \(listed): its operator must start `ferry serve --allow-missing-cpu-features \(listed)`")
        }
        if hello.requested.xsaveGrowth && !granted.xsaveGrowth && XSave.growth(sourceXCR0: local.cpu.xcr0, targetXCR0: caps.host.cpu.xcr0) != nil {
            reasons.append("the target does not permit --allow-xsave-growth: its operator must start `ferry serve --allow-xsave-growth`")
        }
        if !caps.newPidNamespace && !caps.pidsFree {
            let shown = hello.pids.prefix(8).map(String.init).joined(separator: ", ") + (hello.pids.count > 8 ? ", …" : "")
            reasons.append("some of the pids of this tree (\(shown)) are in use on the target; free them or run `ferry serve --new-pidns` there")
        }
        if caps.freeMemoryBytes < hello.memoryBytes {
            reasons.append("the target has \(caps.freeMemoryBytes >> 20) MiB of memory available but the process uses \(hello.memoryBytes >> 20) MiB")
        }
        return reasons
    }
}

/// The target side: one migration per connection.
/// The first field of HELLO and CAPABILITIES, readable whatever the version.
struct VersionOnly: Decodable { var protocolVersion: Int }

public enum MigrationReceiver {
    public enum Outcome: Equatable, Sendable {
        /// The process runs here and the source killed its copy.
        case migrated(pid: Int32)
        /// The process runs here but the source's final word never came.
        case uncommitted(pid: Int32)
        /// Nothing runs here; the reason in one line.
        case failed(String)
        /// The source decided not to migrate after seeing our capabilities.
        case declined
    }

    public static func handle(_ connection: Connection, target: MigrationTarget, keepImage: ByteSink? = nil,
                              log: (String) -> Void = { _ in }) -> Outcome {
        let peer = connection.peer
        func fail(_ reason: String, send: Bool = true) -> Outcome {
            connection.close(with: send ? .nack : nil, reason: reason)
            log("migration from \(peer) failed, nothing is left here: \(reason)")
            return .failed(reason)
        }
        let hello: Hello
        do {
            let f = try connection.receive(waitingFor: "HELLO")
            guard f.type == .hello else { throw Connection.unexpected(f, wanted: "HELLO", peer: peer) }
            let v = try WireJSON.decode(VersionOnly.self, f)
            guard v.protocolVersion == WireProtocol.version else {
                let which = v.protocolVersion > WireProtocol.version ? "upgrade ferry on this host" : "upgrade ferry on the source"
                return fail("the source speaks migration protocol \(v.protocolVersion), this ferry \(WireProtocol.version): \(which) (the same ferry version on both hosts)")
            }
            hello = try WireJSON.decode(Hello.self, f)
            if let why = hello.problem { return fail(why) }
            guard hello.imageVersion <= Int(ImageFormat.version) else {
                return fail("the source writes image version \(hello.imageVersion), newer than this ferry's \(ImageFormat.version): upgrade ferry on this host")
            }
            try connection.send(.capabilities, json: target.capabilities(for: hello))
            let f2 = try connection.receive(waitingFor: "VERDICT")
            guard f2.type == .verdict else { throw Connection.unexpected(f2, wanted: "VERDICT", peer: peer) }
            if f2.byteCount == 0 {
                connection.close()
                log("\(peer) decided not to migrate after seeing this host's capabilities")
                return .declined
            }
            let verdict = try WireJSON.decode(Verdict.self, f2)
            guard verdict.go else {
                connection.close()
                log("\(peer) decided not to migrate: \(verdict.reasons.joined(separator: "; "))")
                return .declined
            }
        } catch {
            return fail(oneLine(error))
        }

        let restored: RestoredProcess
        var precopy: PrecopyRestoring?
        do {
            let first = try connection.receive(waitingFor: "image data")
            if first.type == .precopyMeta {
                let (r, next) = try receivePrecopy(connection, first: first, target: target)
                precopy = r
                restored = try r.finish(from: ConnectionSource(connection: connection, first: next, copy: keepImage))
            } else {
                restored = try target.restore(from: ConnectionSource(connection: connection, first: first, copy: keepImage))
            }
            try keepImage?.flush()
        } catch {
            precopy?.abandon()
            return fail(oneLine(error))
        }
        // The source resumes its copy unless it gets the ACK: if the ACK cannot
        // be sent, ours must go.
        do {
            if let f = connection.inbox.failed { throw f }
            try connection.send(.ack, json: restored.ack)
            try connection.drain()
        } catch {
            restored.discard()
            return fail("could not acknowledge: \(oneLine(error))", send: false)
        }
        do {
            let f = try connection.receive(waitingFor: "COMMIT")
            switch f.type {
            case .commit:
                connection.close()
                log("migrated from \(peer): running as pid \(restored.ack.pid)" + (restored.ack.namespaceInit.map { " (namespace init \($0))" } ?? ""))
                return .migrated(pid: restored.ack.pid)
            case .abort:
                restored.discard()
                return fail(oneLine(Connection.unexpected(f, wanted: "COMMIT", peer: peer)), send: false)
            default:
                throw Connection.unexpected(f, wanted: "COMMIT", peer: peer)
            }
        } catch {
            // The source may or may not have seen the ACK: keeping the process is
            // the choice that cannot lose it.
            connection.close()
            log("warning: no COMMIT from \(peer) after the ACK (\(oneLine(error))); pid \(restored.ack.pid) keeps running here: check the source host")
            return .uncommitted(pid: restored.ack.pid)
        }
    }
}

extension MigrationReceiver {
    /// Builds the process from PRECOPY_META and fills PRECOPY_PAGES until the
    /// final image starts; returns the restore under way and that first frame.
    static func receivePrecopy(_ c: Connection, first: Frame, target: MigrationTarget) throws -> (PrecopyRestoring, Frame) {
        guard let t = target as? PrecopyTarget else { throw MigrationError("this target does not take pre-copy") }
        let pre = try WireJSON.decode(ImageMetadata.self, first)
        try Validation.validate(pre, name: "pre-copy metadata from \(c.peer)")
        let index = MappingIndex(pre)
        let r = try t.beginPrecopy(metadata: pre)
        do {
            var offset: Int64 = 0
            while true {
                let f = try c.receive(waitingFor: "pre-copy pages")
                if f.type == .precopySync {
                    try r.flush()
                    try c.send(.precopySynced, bytes: [])
                    continue
                }
                guard f.type == .precopyPages else {
                    if f.type == .imageChunk { return (r, f) }
                    throw Connection.unexpected(f, wanted: "pre-copy pages", peer: c.peer)
                }
                try PageBatch.forEachRun(f, peer: c.peer) { span in
                    try index.check(span, file: "pre-copy from \(c.peer)", offset: offset)
                    try r.fill(span)
                    offset += 1
                }
            }
        } catch {
            r.abandon()
            throw error
        }
    }
}

func now() -> Double { Date().timeIntervalSince1970 }
func ms(_ seconds: Double) -> Double { (seconds * 1000 * 10).rounded() / 10 }
func oneLine(_ error: Error) -> String {
    String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
}
