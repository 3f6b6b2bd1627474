import FerryImage
import FerryImageFixtures
import FerryTransport
import Foundation
import Testing
import FerryTestSupport

/// Runs a command, returning its status and combined output.
@discardableResult
func sh(_ args: [String], env: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let r = try Child.run(args, env: env, stderr: .mergeIntoStdout)
    return (r.status, r.stdout)
}

/// A CA and certificates signed by it, made with openssl in a temporary directory.
final class TestPKI {
    let dir: String

    init(label: String = "pki") throws {
        dir = try ImageIO.temporaryDirectory("ferry-\(label)")
        try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", "\(dir)/ca.key", "-out", "\(dir)/ca.pem", "-days", "2", "-subj", "/CN=ferry test CA \(label)"])
        try "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,IP:10.77.0.1,IP:10.77.0.2\n"
            .write(toFile: "\(dir)/ext.cnf", atomically: true, encoding: .utf8)
    }

    deinit { ImageIO.remove(dir) }

    private func run(_ args: [String]) throws {
        let r = try sh(["/usr/bin/openssl"] + args)
        if r.status != 0 { throw MigrationError("openssl \(args.joined(separator: " ")): \(r.output)") }
    }

    /// A certificate for `name` signed by this CA.
    func issue(_ name: String) throws -> TLSFiles {
        try run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr", "-subj", "/CN=\(name)"])
        try run(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/ca.pem", "-CAkey", "\(dir)/ca.key",
                 "-CAcreateserial", "-out", "\(dir)/\(name).pem", "-days", "2", "-extfile", "\(dir)/ext.cnf"])
        return TLSFiles(certificate: "\(dir)/\(name).pem", key: "\(dir)/\(name).key", ca: "\(dir)/ca.pem")
    }
}

/// A source "process" whose image is a fixed byte string.
final class FakeSubject: MigrationSubject, @unchecked Sendable {
    enum State: Equatable { case running, frozen, resumed, killed }
    let stream: [UInt8]
    let pids: [Int32] = [4242]
    let memoryBytes: UInt64 = 1 << 20
    private(set) var state = State.running
    private(set) var freezes = 0
    /// Called with the byte offset after each piece written (to fail mid-transfer).
    var afterWrite: ((Int) throws -> Void)?

    init(stream: [UInt8]) { self.stream = stream }

    func freeze() throws { state = .frozen; freezes += 1 }
    func writeImage(to sink: ByteSink) throws {
        precondition(state == .frozen)
        var offset = 0
        while offset < stream.count {
            let n = min(64 << 10, stream.count - offset)
            try stream.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n])) }
            offset += n
            try afterWrite?(offset)
        }
    }
    func resume() { state = .resumed }
    func kill() { state = .killed }
}

/// A target that validates the stream as restore does, and "restores" it by keeping its metadata.
final class FakeTarget: MigrationTarget, @unchecked Sendable {
    var capabilities: Capabilities
    private(set) var restored: [ImageMetadata] = []
    private(set) var discarded = 0
    private(set) var pageBytes = 0
    /// Runs after the whole image was read (to fail after the transfer).
    var afterRead: (() throws -> Void)?
    /// Runs for each page run (to stall or fail mid-transfer).
    var onPages: ((Int) throws -> Void)?

    init(capabilities: Capabilities = FakeTarget.compatible()) { self.capabilities = capabilities }

    static func local() -> SourceHost {
        SourceHost(os: "linux", kernelRelease: "6.18.0", cpu: CPUFeatures(xcr0: 0x7, xsaveSize: 832, flags: ["sse2", "avx"], vendor: "v", model: "m"))
    }

    static func compatible() -> Capabilities {
        Capabilities(host: local(), vdso: [VDSOArea(name: "[vdso]", size: 8192)], pidsFree: true, newPidNamespace: false,
                     freeMemoryBytes: 1 << 30)
    }

    func capabilities(for hello: Hello) -> Capabilities { capabilities }

    func restore(from source: ByteSource) throws -> RestoredProcess {
        let meta = try StreamImageReader.read(from: source) { run in
            pageBytes += run.data?.count ?? 0
            try onPages?(pageBytes)
        }
        try afterRead?()
        restored.append(meta)
        return RestoredProcess(ack: Ack(pid: 777, namespaceInit: nil, restoreMs: 1, notes: [])) { [self] in discarded += 1 }
    }

    var running: Int { restored.count - discarded }
}

/// One in-process migration over loopback: the target served on a background thread.
struct LoopbackRun {
    var summary: MigrationSummary?
    var sourceError: String?
    var outcome: MigrationReceiver.Outcome?
    var targetLog: [String] = []
}

final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// A failed loopback migration: the source resumed with an error (containing
/// `reason`, when given) and nothing left running on the target.
func expectRolledBack(_ r: LoopbackRun, _ subject: FakeSubject, _ target: FakeTarget, reason: String? = nil,
                      sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(subject.state == .resumed, sourceLocation: sourceLocation)
    #expect(r.sourceError.map { reason == nil || $0.contains(reason!) } == true, "\(r.sourceError ?? "no error")",
            sourceLocation: sourceLocation)
    #expect(target.running == 0, sourceLocation: sourceLocation)
}

func migrateOverLoopback(subject: MigrationSubject, target: FakeTarget, serverTLS: TLSFiles? = nil, clientTLS: TLSFiles? = nil,
                         limits: ConnectionLimits = ConnectionLimits(timeout: 5), acceptTimeout: Double = 10,
                         precopy: PrecopyOptions = PrecopyOptions(enabled: false)) throws -> LoopbackRun {
    let rejected = Box<[String]>([])
    let listener = try Listener(host: "127.0.0.1", port: 0, tls: serverTLS, limits: limits) { rejected.value.append($0) }
    defer { listener.close() }
    let result = Box(LoopbackRun())
    let done = DispatchSemaphore(value: 0)
    let t = Thread {
        if let conn = listener.accept(timeout: acceptTimeout) {
            var log: [String] = []
            result.value.outcome = MigrationReceiver.handle(conn, target: target) { log.append($0) }
            result.value.targetLog = log
        }
        done.signal()
    }
    t.start()
    do {
        let conn = try Connection.connect(host: "127.0.0.1", port: listener.localPort, tls: clientTLS, limits: limits)
        result.value.summary = try MigrationSource.run(subject: subject, connection: conn, local: FakeTarget.local(),
                                                       localVDSO: [VDSOArea(name: "[vdso]", size: 8192)], precopy: precopy)
    } catch {
        result.value.sourceError = "\(error)"
    }
    if result.value.sourceError != nil && result.value.outcome == nil {
        // An authentication failure never reaches accept: wake the server thread.
        _ = done.wait(timeout: .now() + acceptTimeout + 2)
    } else {
        done.wait()
    }
    result.value.targetLog += rejected.value
    return result.value
}
