import FerryCore
import FerryImage
import Foundation

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
    /// Stops every thread. After this, `resume` or `kill` must follow.
    func freeze() throws
    /// Writes the whole image in the stream encoding (metadata first).
    func writeImage(to sink: ByteSink) throws
    /// Lets the frozen tree run on, unchanged.
    func resume()
    /// Ends the frozen tree (the target has it now).
    func kill()
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
}

public struct MigrationProgress: Sendable {
    public var bytesSent: UInt64
    public var round: Int
    /// Bytes dirtied per second during the last round (0 in stop-and-copy).
    public var dirtyRate: Double
}

/// The source side.
public enum MigrationSource {
    /// Runs a migration over `connection`. Throws with a one-line reason on
    /// any failure; the subject is then running as before (resumed if it was frozen).
    public static func run(subject: MigrationSubject, connection: Connection, local: SourceHost, localVDSO: [VDSOArea],
                           keepImage: ByteSink? = nil, progress: ((MigrationProgress) -> Void)? = nil,
                           log: (String) -> Void = { _ in }) throws -> MigrationSummary {
        let start = now()
        let hello = Hello(pids: subject.pids, memoryBytes: subject.memoryBytes)
        do {
            try connection.send(.hello, json: hello)
            let caps = try connection.expect(.capabilities, Capabilities.self)
            let reasons = verdict(hello: hello, capabilities: caps, local: local, localVDSO: localVDSO)
            guard reasons.isEmpty else {
                try? connection.send(.verdict, json: Verdict(go: false, reasons: reasons))
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

        log("stop-and-copy: no pre-copy rounds (the process is frozen for the whole transfer)")
        let frozenAt = now()
        do {
            try subject.freeze()
        } catch {
            connection.close(with: .abort, reason: "the source could not freeze the process: \(error)")
            throw error
        }
        let ack: Ack
        do {
            let sink = ConnectionSink(connection: connection, copy: keepImage)
            sink.progress = { bytes in progress?(MigrationProgress(bytesSent: bytes, round: 1, dirtyRate: 0)) }
            try subject.writeImage(to: sink)
            try sink.flush()
            ack = try connection.expect(.ack, Ack.self)
        } catch {
            subject.resume()
            let reason = oneLine(error)
            connection.close(with: .abort, reason: "the source resumed the process: \(reason)")
            throw MigrationError("migration failed, the process was resumed here unchanged: \(reason)")
        }
        let downtime = now() - frozenAt
        subject.kill()
        connection.close(with: .commit, reason: nil)
        return MigrationSummary(total_ms: ms(now() - start), downtime_ms: ms(downtime), bytes: connection.bytesSent, rounds: 1,
                                target_pid: ack.pid, target_restore_ms: ack.restoreMs)
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
        reasons += Compatibility.verdict(image: ImageMetadata(source: local, processes: [], pipes: []), target: target).reasons
        if !caps.newPidNamespace && !caps.pidsInUse.isEmpty {
            reasons.append("pid(s) \(caps.pidsInUse.map(String.init).joined(separator: ", ")) are in use on the target; free them or run `ferry serve --new-pidns` there")
        }
        if caps.freeMemoryBytes < hello.memoryBytes {
            reasons.append("the target has \(caps.freeMemoryBytes >> 20) MiB of memory available but the process uses \(hello.memoryBytes >> 20) MiB")
        }
        return reasons
    }
}

/// The target side: one migration per connection.
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

    private struct VersionOnly: Decodable { var protocolVersion: Int }

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
            guard v.protocolVersion <= WireProtocol.version else {
                return fail("the source speaks migration protocol \(v.protocolVersion), newer than this ferry's \(WireProtocol.version): upgrade ferry on this host")
            }
            hello = try WireJSON.decode(Hello.self, f)
            guard hello.imageVersion <= Int(ImageFormat.version) else {
                return fail("the source writes image version \(hello.imageVersion), newer than this ferry's \(ImageFormat.version): upgrade ferry on this host")
            }
            try connection.send(.capabilities, json: target.capabilities(for: hello))
            let f2 = try connection.receive(waitingFor: "VERDICT")
            guard f2.type == .verdict else { throw Connection.unexpected(f2, wanted: "VERDICT", peer: peer) }
            if f2.payload.readableBytes == 0 {
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
        do {
            restored = try target.restore(from: ConnectionSource(connection: connection, copy: keepImage))
            try keepImage?.flush()
        } catch {
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
                log("migrated from \(peer): running as pid \(restored.ack.pid)")
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

func now() -> Double { Date().timeIntervalSince1970 }
func ms(_ seconds: Double) -> Double { (seconds * 1000 * 10).rounded() / 10 }
func oneLine(_ error: Error) -> String {
    String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
}
