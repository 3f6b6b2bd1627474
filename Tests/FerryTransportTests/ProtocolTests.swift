import FerryImage
import FerryImageFixtures
@testable import FerryTransport
import Foundation
import Testing

/// The protocol end to end in one process over loopback, with a fake source
/// process and a fake target that validates the stream as restore does.
/// Every failure must leave the source running (resumed, or never frozen)
/// and nothing restored on the target.
@Suite(.serialized)
struct ProtocolTests {
    static func image(seed: UInt64 = 7) throws -> [UInt8] {
        try ImageIO.streamBytes(ImageGenerator.make(seed: seed))
    }

    /// A generated image plus an anonymous area of `mib` MiB full of pages (a long transfer).
    static func bigImage(mib: Int) throws -> [UInt8] {
        var g = ImageGenerator.make(seed: 3)
        let start: UInt64 = 0x6000_0000_0000
        let size = UInt64(mib) << 20
        g.metadata.processes[0].mappings.append(Mapping(start: start, end: start + size, protection: [.read, .write], kind: .anonymous))
        for off in stride(from: UInt64(0), to: size, by: 1 << 20) {
            g.runs.append(PageRun(pid: g.metadata.processes[0].pid, address: start + off, pageCount: 256,
                                  data: [UInt8](repeating: UInt8(truncatingIfNeeded: off >> 20), count: 1 << 20)))
        }
        return try ImageIO.streamBytes(g)
    }

    @Test("a migration moves every byte, then the source is killed and the target keeps its copy")
    func success() throws {
        let bytes = try Self.image()
        let subject = FakeSubject(stream: bytes)
        let target = FakeTarget()
        let r = try migrateOverLoopback(subject: subject, target: target)
        #expect(r.sourceError == nil)
        #expect(subject.state == .killed)
        #expect(r.outcome == .migrated(pid: 777))
        #expect(target.running == 1)
        let s = try #require(r.summary)
        #expect(s.bytes == UInt64(bytes.count))
        #expect(s.rounds == 1)
        #expect(s.downtime_ms <= s.total_ms)
        let expected = try ImageIO.readStream(bytes)
        #expect(target.restored.first == expected.metadata)
    }

    @Test("mutual TLS: certificates from the same CA migrate")
    func tls() throws {
        let pki = try TestPKI(label: "ok")
        let subject = FakeSubject(stream: try Self.image())
        let target = FakeTarget()
        let r = try migrateOverLoopback(subject: subject, target: target, serverTLS: try pki.issue("target"), clientTLS: try pki.issue("source"))
        #expect(r.sourceError == nil, "\(r.sourceError ?? "")")
        #expect(subject.state == .killed)
        #expect(target.running == 1)
    }

    @Test("a client certificate from another CA is dropped before any message is read")
    func wrongCertificate() throws {
        let good = try TestPKI(label: "good")
        let evil = try TestPKI(label: "evil")
        let subject = FakeSubject(stream: try Self.image())
        let target = FakeTarget()
        let r = try migrateOverLoopback(subject: subject, target: target, serverTLS: try good.issue("target"),
                                        clientTLS: try evil.issue("source"), acceptTimeout: 2)
        #expect(r.sourceError?.contains("TLS") == true, "\(r.sourceError ?? "no error")")
        #expect(r.outcome == nil, "the connection must never be accepted")
        #expect(subject.freezes == 0)
        #expect(target.restored.isEmpty)
        #expect(r.targetLog.contains { $0.contains("dropped") }, "\(r.targetLog)")
    }

    @Test("a client without a certificate is dropped")
    func noClientCertificate() throws {
        let pki = try TestPKI(label: "nocert")
        let subject = FakeSubject(stream: try Self.image())
        let target = FakeTarget()
        let r = try migrateOverLoopback(subject: subject, target: target, serverTLS: try pki.issue("target"), clientTLS: nil, acceptTimeout: 2)
        #expect(r.sourceError != nil)
        #expect(r.outcome == nil)
        #expect(subject.freezes == 0)
    }

    @Test("an incompatible target is refused before anything is frozen", arguments: [
        "xsave", "pids", "memory", "os", "protocol",
    ])
    func incompatible(_ what: String) throws {
        var caps = FakeTarget.compatible()
        switch what {
        // More XSAVE components on the target (AVX-512), not allowed: refused at the source (the threads' state is the target's to check).
        case "xsave": caps.host.cpu.xcr0 = 0xe7; caps.host.cpu.xsaveSize = 2440
        case "pids": caps.pidsFree = false
        case "memory": caps.freeMemoryBytes = 1024
        case "protocol": caps.protocolVersion = WireProtocol.version + 1
        default: caps.host.os = "plan9"
        }
        let subject = FakeSubject(stream: try Self.image())
        let target = FakeTarget(capabilities: caps)
        let r = try migrateOverLoopback(subject: subject, target: target)
        let e = try #require(r.sourceError)
        #expect(e.contains("nothing was frozen"), "\(e)")
        #expect(!e.contains("\n"))
        #expect(subject.freezes == 0 && subject.state == .running)
        #expect(r.outcome == .declined)
        #expect(target.restored.isEmpty)
    }

    @Test("pids in use do not matter when the target restores into a new pid namespace")
    func pidsInNewNamespace() throws {
        var caps = FakeTarget.compatible()
        caps.pidsFree = false
        caps.newPidNamespace = true
        let reasons = MigrationSource.verdict(hello: Hello(pids: [4242], memoryBytes: 1), capabilities: caps,
                                              local: FakeTarget.local(), localVDSO: caps.vdso)
        #expect(reasons.isEmpty, "\(reasons)")
    }

    @Test("CPU features the source declares unused (HELLO) are not required of the target where its operator permits them; others still are")
    func allowedMissingFeatures() throws {
        var caps = FakeTarget.compatible()
        caps.host.cpu.flags = ["sse2"]  // no avx
        let local = FakeTarget.local()
        let plain = MigrationSource.verdict(hello: Hello(pids: [1], memoryBytes: 1), capabilities: caps, local: local, localVDSO: caps.vdso)
        #expect(plain.count == 1 && plain[0].contains("avx"), "\(plain)")
        let hello = Hello(pids: [1], memoryBytes: 1, allowMissingCPUFeatures: ["avx"], allowXSaveGrowth: true)
        // The target's serve did not permit it: still refused, and the refusal says how to permit it.
        let notGranted = MigrationSource.verdict(hello: hello, capabilities: caps, local: local, localVDSO: caps.vdso)
        #expect(notGranted.contains { $0.contains("avx") && $0.contains("serve --allow-missing-cpu-features avx") }, "\(notGranted)")
        caps.grantsMissingCPUFeatures = ["avx"]
        #expect(MigrationSource.verdict(hello: hello, capabilities: caps, local: local, localVDSO: caps.vdso).isEmpty)
        // The allowances reach the target; a HELLO without them still decodes.
        let decoded = try JSONDecoder().decode(Hello.self, from: JSONEncoder().encode(hello))
        #expect(decoded.allowMissingCPUFeatures == ["avx"] && decoded.allowXSaveGrowth == true)
        let old = #"{"protocolVersion":1,"role":"source","ferryVersion":"0","imageVersion":1,"pids":[1],"memoryBytes":1}"#
        let oldHello = try JSONDecoder().decode(Hello.self, from: Data(old.utf8))
        #expect(oldHello.allowMissingCPUFeatures == nil && oldHello.allowXSaveGrowth == nil)
    }

    @Test("XSAVE growth on the target: refused unless the source asks for it and the target's operator permits it")
    func xsaveGrowthGranted() {
        var caps = FakeTarget.compatible()
        caps.host.cpu.xcr0 = 0xe7
        caps.host.cpu.xsaveSize = 2440
        let local = FakeTarget.local()  // XCR0 0x7
        let asked = Hello(pids: [1], memoryBytes: 1, allowXSaveGrowth: true)
        let plain = MigrationSource.verdict(hello: Hello(pids: [1], memoryBytes: 1), capabilities: caps, local: local, localVDSO: caps.vdso)
        #expect(!plain.isEmpty, "growth is refused by default")
        let notGranted = MigrationSource.verdict(hello: asked, capabilities: caps, local: local, localVDSO: caps.vdso)
        #expect(notGranted.contains { $0.contains("serve --allow-xsave-growth") }, "\(notGranted)")
        caps.grantsXSaveGrowth = true
        #expect(MigrationSource.verdict(hello: asked, capabilities: caps, local: local, localVDSO: caps.vdso).isEmpty)
    }

    @Test("the target grants only what both the source asks for and its own operator permits")
    func allowancesIntersect() {
        let asked = Allowances(missingCPUFeatures: ["avx", "avx2"], xsaveGrowth: true)
        #expect(asked.granted(by: Allowances()) == Allowances())
        #expect(asked.granted(by: Allowances(missingCPUFeatures: ["avx2", "sse4_2"], xsaveGrowth: false))
                == Allowances(missingCPUFeatures: ["avx2"], xsaveGrowth: false))
        #expect(Allowances().granted(by: Allowances(missingCPUFeatures: ["avx"], xsaveGrowth: true)) == Allowances())
        #expect(asked.granted(by: asked) == asked)
    }

    @Test("CAPABILITIES says whether the pids are free, never which are in use")
    func capabilitiesHidePids() throws {
        let json = String(decoding: WireJSON.encode(FakeTarget.compatible()), as: UTF8.self)
        #expect(json.contains("\"pidsFree\":true") && !json.contains("pidsInUse"), "\(json)")
    }

    /// Streams the target must refuse; each ends with the source resumed and nothing on the target.
    static let badStreams: [String] = ["garbage", "truncated", "newer-version", "pages-outside", "corrupted-record"]

    @Test("bad image streams end the migration with one line on both sides, source resumed", arguments: badStreams)
    func badStream(_ kind: String) throws {
        var bytes = try Self.image(seed: 11)
        switch kind {
        case "garbage":
            bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }
        case "truncated":
            bytes = Array(bytes[0..<bytes.count / 2])
        case "newer-version":
            bytes[8] = 2  // header version; the header checksum is fixed up so only the version is wrong
            let sum = crc32c(Array(bytes[0..<28]))
            withUnsafeBytes(of: sum.littleEndian) { bytes.replaceSubrange(28..<32, with: $0) }
        case "pages-outside":
            var g = ImageGenerator.make(seed: 11)
            g.runs.append(PageRun(pid: g.metadata.processes[0].pid, address: 0x1000, pageCount: 1, data: [UInt8](repeating: 9, count: 4096)))
            bytes = try ImageIO.streamBytes(g)
        default:
            bytes[bytes.count / 2] ^= 0xff
        }
        let subject = FakeSubject(stream: bytes)
        let target = FakeTarget()
        let r = try migrateOverLoopback(subject: subject, target: target, limits: ConnectionLimits(timeout: 2))
        let e = try #require(r.sourceError)
        #expect(subject.state == .resumed, "\(kind): \(e)")
        #expect(target.running == 0)
        #expect(!e.contains("\n"))
        guard case .failed(let reason) = r.outcome else { Issue.record("\(kind): target outcome \(String(describing: r.outcome))"); return }
        #expect(!reason.contains("\n"))
        if kind == "newer-version" { #expect(reason.contains("version 2"), "\(reason)") }
        if kind == "pages-outside" { #expect(reason.contains("outside"), "\(reason)") }
        // The source tells why: the target's NACK, or (truncated) the stall.
        #expect(e.contains("resumed"), "\(e)")
    }

    @Test("the target failing after the whole image was read: source resumed, NACK reason shown")
    func targetRefusesLate() throws {
        let subject = FakeSubject(stream: try Self.image())
        let target = FakeTarget()
        target.afterRead = { throw MigrationError("restore failed: the executable changed") }
        let r = try migrateOverLoopback(subject: subject, target: target)
        expectRolledBack(r, subject, target, reason: "the executable changed")
    }

    @Test("a target that stalls mid-transfer: source times out and resumes, target removes its half")
    func targetStalls() throws {
        let subject = FakeSubject(stream: try Self.bigImage(mib: 16))
        let target = FakeTarget()
        let stalled = Box(false)
        target.onPages = { (n: Int) in if n > 1 << 20 && !stalled.value { stalled.value = true; Thread.sleep(forTimeInterval: 4) } }
        let r = try migrateOverLoopback(subject: subject, target: target,
                                        limits: ConnectionLimits(timeout: 1.5, inboxHighWater: 1 << 20, sendHighWater: 1 << 20))
        expectRolledBack(r, subject, target, reason: "stalled")
    }

    @Test("the connection dropping mid-transfer: source resumed")
    func connectionDrops() throws {
        let subject = FakeSubject(stream: try Self.image(seed: 5))
        let target = FakeTarget()
        target.onPages = { _ in throw MigrationError("simulated crash of the target") }
        let r = try migrateOverLoopback(subject: subject, target: target)
        expectRolledBack(r, subject, target)
    }

    @Test("the source failing mid-transfer aborts the target, which removes its half")
    func sourceAborts() throws {
        let subject = FakeSubject(stream: try Self.bigImage(mib: 4))
        subject.afterWrite = { (n: Int) in if n > 1 << 20 { throw MigrationError("could not read the process memory") } }
        let target = FakeTarget()
        let r = try migrateOverLoopback(subject: subject, target: target)
        #expect(subject.state == .resumed)
        guard case .failed(let reason) = r.outcome else { Issue.record("outcome \(String(describing: r.outcome))"); return }
        #expect(reason.contains("could not read the process memory"), "\(reason)")
        #expect(target.running == 0)
    }

    @Test("garbage instead of HELLO is dropped before the migration loop sees it; a HELLO of another protocol version is refused with one line naming both")
    func badHandshake() throws {
        for kind in ["garbage", "newer", "older"] {
            let rejected = Box<[String]>([])
            let listener = try Listener(host: "127.0.0.1", port: 0, tls: nil, limits: ConnectionLimits(timeout: 2)) { rejected.value.append($0) }
            defer { listener.close() }
            let outcome = Box<MigrationReceiver.Outcome?>(nil)
            let done = DispatchSemaphore(value: 0)
            Thread {
                if let c = listener.accept(timeout: kind == "garbage" ? 2 : 5) { outcome.value = MigrationReceiver.handle(c, target: FakeTarget()) }
                done.signal()
            }.start()
            let conn = try Connection.connect(host: "127.0.0.1", port: listener.localPort, tls: nil, limits: ConnectionLimits(timeout: 2))
            if kind == "garbage" {
                try conn.channel.writeAndFlush(conn.channel.allocator.buffer(bytes: [UInt8](repeating: 0x41, count: 64))).wait()
            } else {
                let version = kind == "newer" ? 9 : 3
                try conn.send(.hello, bytes: Array(#"{"protocolVersion":\#(version),"role":"source"}"#.utf8))
                let f = try conn.receive(waitingFor: "NACK")
                #expect(f.type == .nack)
                let reason = try WireJSON.decode(Reason.self, f).reason
                #expect(reason.contains("protocol \(version), this ferry \(WireProtocol.version)"), "\(reason)")
                #expect(reason.contains(kind == "newer" ? "upgrade ferry on this host" : "upgrade ferry on the source"), "\(reason)")
            }
            done.wait()
            conn.close()
            if kind == "garbage" {
                #expect(outcome.value == nil, "garbage must never be accepted")
                #expect(rejected.value.contains { $0.contains("dropped") && $0.contains("protocol error") }, "\(rejected.value)")
                continue
            }
            guard case .failed(let reason) = outcome.value else { Issue.record("\(kind): \(String(describing: outcome.value))"); continue }
            #expect(!reason.contains("\n"))
        }
    }

    @Test("a target of another protocol version: the source refuses with one line before freezing anything")
    func olderTarget() throws {
        let listener = try Listener(host: "127.0.0.1", port: 0, tls: nil, limits: ConnectionLimits(timeout: 2))
        defer { listener.close() }
        Thread {
            guard let c = listener.accept(timeout: 5) else { return }
            _ = try? c.receive(waitingFor: "HELLO")
            // A protocol 3 target's CAPABILITIES: pidsInUse, no pidsFree.
            try? c.send(.capabilities, bytes: Array(#"{"protocolVersion":3,"pidsInUse":[],"newPidNamespace":false,"freeMemoryBytes":1}"#.utf8))
            _ = try? c.receive(waitingFor: "VERDICT")
            c.close()
        }.start()
        let subject = FakeSubject(stream: try Self.image())
        let conn = try Connection.connect(host: "127.0.0.1", port: listener.localPort, tls: nil, limits: ConnectionLimits(timeout: 2))
        do {
            _ = try MigrationSource.run(subject: subject, connection: conn, local: FakeTarget.local(), localVDSO: [])
            Issue.record("migrated to a protocol 3 target")
        } catch {
            #expect("\(error)".contains("protocol 3, this ferry \(WireProtocol.version)") && "\(error)".contains("nothing was frozen"), "\(error)")
        }
        #expect(subject.freezes == 0)
    }

    @Test("frames: round trip and caps")
    func frames() throws {
        let payload: [UInt8] = Array("hello".utf8)
        let b = payload.withUnsafeBytes { FrameEncoding.encode(.hello, $0, allocator: ByteBufferAllocator()) }
        #expect(b.readableBytes == 12 + 5)
        #expect(MessageType.imageChunk.maxLength >= WireProtocol.chunkSize)
        #expect(MessageType.hello.maxLength < MessageType.imageChunk.maxLength)
    }
}

import NIOCore
