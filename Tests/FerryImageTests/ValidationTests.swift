import Testing
import FerryImage
import FerryImageFixtures

/// Values the restore passes to the kernel as they are (fd numbers, timer
/// kinds) are checked when the image is read: a bad one is a one-line error.
@Suite("Validation of values the restore uses")
struct ValidationTests {
    static func refusal(_ edit: (inout ProcessImage) -> Void) -> String? {
        var meta = ImageGenerator.make(seed: 7, size: .small).metadata
        edit(&meta.processes[0])
        do { try Validation.validate(meta, name: "img"); return nil } catch let e as ImageError {
            #expect(!e.description.contains("\n"))
            return e.message
        } catch { return "\(error)" }
    }

    @Test func generatedImageIsValid() {
        #expect(Self.refusal { _ in } == nil)
    }

    /// The hold name becomes an abstract Unix socket address a restore connects to.
    @Test func aDamagedTCPHoldNameIsRefused() throws {
        var meta = ImageGenerator.make(seed: 7, size: .small).metadata
        meta.source.tcpHold = "ferry-tcp-hold-0123456789abcdef"
        try Validation.validate(meta, name: "img")
        for bad in ["ferry-tcp-hold-../../x", "ferry-tcp-hold-0123456789abcdef\u{0}", ""] {
            meta.source.tcpHold = bad
            #expect(throws: ImageError.self) { try Validation.validate(meta, name: "img") }
        }
    }

    @Test func negativeEpollWatchFdIsRefused() {
        let message = Self.refusal { p in
            p.files.append(FileDescriptorImage(fd: 900, kind: .epoll, flags: 2, epollWatches: [EpollWatch(fd: -5, events: 1, data: 0)]))
        }
        #expect(message?.contains("epoll fd 900 watches invalid fd -5") == true, "\(String(describing: message))")
    }

    /// A cgroup path becomes a directory under a mount point: it never climbs out of it.
    @Test(arguments: [("freezer", "/a/../../etc", "has a \"..\" component"), ("freezer", "relative", "not an absolute path"),
                      ("free/zer", "/", "not a controller list"), ("", "/a\u{0}b", "NUL")])
    func damagedCgroupMembershipIsRefused(controllers: String, path: String, why: String) {
        let message = Self.refusal { p in p.cgroups = [CgroupMembership(controllers: controllers, path: path)] }
        #expect(message?.contains(why) == true, "\(String(describing: message))")
        let thread = Self.refusal { p in p.threads[0].cgroups = [CgroupMembership(controllers: controllers, path: path)] }
        #expect(thread?.contains(why) == true, "\(String(describing: thread))")
    }

    @Test func aHierarchyListedTwiceIsRefused() {
        let message = Self.refusal { p in p.cgroups = [CgroupMembership(controllers: "pids", path: "/a"), CgroupMembership(controllers: "pids", path: "/b")] }
        #expect(message?.contains("listed twice") == true, "\(String(describing: message))")
    }

    @Test(arguments: [Int32(-1), 3, Int32.min])
    func invalidIntervalTimerIsRefused(which: Int32) {
        let message = Self.refusal { p in p.timers = [IntervalTimer(which: which, intervalNs: 0, valueNs: 1000)] }
        #expect(message?.contains("interval timer \(which) invalid or repeated") == true, "\(String(describing: message))")
    }

    @Test(arguments: [("type", 3), ("peer", 0), ("buffer", -1), ("peek", -2), ("shutdown", 4), ("name", 0), ("empty", 0)])
    func damagedUnixSocketRecordIsRefused(field: String, value: Int) {
        let message = Self.refusal { p in
            var s = UnixSocketImage(inode: 10, peer: 11, type: UnixSocketImage.datagram, sendBuffer: 4096, receiveBuffer: 4096,
                                    passCredentials: false, peekOffset: -1, shutdown: 0, queue: [[1, 2]])
            switch field {
            case "type": s.type = Int32(value)
            case "peer": s.peer = UInt64(value)
            case "buffer": s.receiveBuffer = Int32(value)
            case "peek": s.peekOffset = Int32(value)
            case "shutdown": s.shutdown = UInt8(value)
            case "name": s.abstractName = Bytes([])
            default: s.queue.append(Bytes([]))
            }
            var f = FileDescriptorImage(fd: 901, kind: .socket, flags: 2)
            f.unixSocket = s
            p.files.append(f)
        }
        #expect(message?.contains("socket fd 901") == true, "\(field): \(String(describing: message))")
    }

    @Test func repeatedIntervalTimerIsRefused() {
        let t = IntervalTimer(which: 0, intervalNs: 0, valueNs: 1000)
        #expect(Self.refusal { p in p.timers = [t, t] }?.contains("interval timer 0 invalid or repeated") == true)
    }

    @Test func fdSharedWithAMissingFdIsRefused() {
        let message = Self.refusal { p in
            var f = FileDescriptorImage(fd: 901, kind: .regular, flags: 0, path: "/dev/null")
            f.sharedWith = 999
            p.files.append(f)
        }
        #expect(message?.contains("fd 901 shares the open file of fd 999") == true, "\(String(describing: message))")
    }

    @Test func repeatedThreadIsRefused() {
        let message = Self.refusal { p in p.threads.append(p.threads[0]) }
        #expect(message?.contains("invalid or repeated") == true)
    }
}

extension ValidationTests {
    /// A proxied vDSO is read whole from the process: an oversized one is refused up front.
    @Test func oversizedVDSOMappingIsRefused() {
        let message = Self.refusal { p in
            let i = p.mappings.firstIndex { $0.kind == .vdso }!
            p.mappings[i].end = p.mappings[i].start + (2 << 20)
        }
        #expect(message?.contains("larger than any kernel's") == true, "\(String(describing: message))")
    }

    /// POSIX timers become timer_create arguments: each field is checked.
    @Test(arguments: [
        (PosixTimer(id: -1, clock: 1, notify: 0, signal: 10), "id invalid"),
        (PosixTimer(id: 1, clock: 4, notify: 0, signal: 10), "clock 4"),
        (PosixTimer(id: 1, clock: -2, notify: 0, signal: 10), "clock -2"),
        (PosixTimer(id: 1, clock: 1, notify: 3, signal: 10), "notify kind 3"),
        (PosixTimer(id: 1, clock: 1, notify: 0, signal: 65), "signal 65"),
        (PosixTimer(id: 1, clock: 1, notify: 0, signal: 0), "signal 0"),
        (PosixTimer(id: 1, clock: 1, notify: 4, signal: 10), "target thread none"),
        (PosixTimer(id: 1, clock: 1, notify: 4, signal: 10, thread: 999_999), "target thread 999999"),
        (PosixTimer(id: 1, clock: 1, notify: 0, signal: 10, thread: 1), "does not match"),
        (PosixTimer(id: 1, clock: 1, notify: 0, signal: 10, valueNs: .max), "time out of range"),
    ])
    func damagedPosixTimerIsRefused(timer: PosixTimer, why: String) {
        let message = Self.refusal { p in p.posixTimers = [timer] }
        #expect(message?.contains(why) == true, "\(String(describing: message))")
    }

    @Test func posixTimersAreBoundedAndUnique() {
        let twice = Self.refusal { p in p.posixTimers = [PosixTimer(id: 3, clock: 1, notify: 1, signal: 0), PosixTimer(id: 3, clock: 0, notify: 1, signal: 0)] }
        #expect(twice?.contains("POSIX timer 3: id invalid or repeated") == true, "\(String(describing: twice))")
        let many = Self.refusal { p in p.posixTimers = (0...Int32(Validation.maxPosixTimers)).map { PosixTimer(id: $0, clock: 1, notify: 1, signal: 0) } }
        #expect(many?.contains("exceed the limit") == true, "\(String(describing: many))")
        let fine = Self.refusal { p in
            p.posixTimers = [PosixTimer(id: 0, clock: -6, notify: 1, signal: 0),
                             PosixTimer(id: 2, clock: 7, notify: 4, signal: 36, thread: p.threads[0].tid, valueNs: 5, intervalNs: 5)]
        }
        #expect(fine == nil, "\(String(describing: fine))")
    }
}

/// Inherited pages (`ProcessImage.inheritedPages`) are what a child does not
/// store itself: ranges that are damaged or lie outside a private mapping are refused.
@Suite("Validation of inherited copy-on-write pages")
struct InheritedPagesValidationTests {
    static func refusal(root: Bool = false, _ pages: (ProcessImage) -> [PageRange]) -> String? {
        var meta = ImageGenerator.make(seed: 7, size: .small).metadata
        var child = meta.processes[0]
        child.pid = meta.processes.map(\.pid).max()! + 1
        child.ppid = meta.processes[0].pid
        child.threads = child.threads.enumerated().map { i, t in var t = t; t.tid = child.pid + 10_000 + Int32(i); return t }
        child.inheritedPages = pages(child)
        if root { meta.processes[0].inheritedPages = child.inheritedPages } else { meta.processes.append(child) }
        do { try Validation.validate(meta, name: "img"); return nil } catch let e as ImageError {
            #expect(!e.description.contains("\n"))
            return e.message
        } catch { return "\(error)" }
    }

    static func privateMapping(_ p: ProcessImage) -> Mapping {
        p.mappings.first { $0.kind.isPrivateAnonymous && $0.sharedObject == nil && $0.size >= 2 * 4096 }!
    }

    @Test func rangesInsideAPrivateMappingAreValid() {
        #expect(Self.refusal { p in let m = Self.privateMapping(p); return [PageRange(start: m.start, end: m.start + 4096)] } == nil)
    }

    @Test func damagedRangesAreRefused() {
        let cases: [(ProcessImage) -> [PageRange]] = [
            { p in let m = Self.privateMapping(p); return [PageRange(start: m.start + 1, end: m.start + 4096)] },       // unaligned
            { p in let m = Self.privateMapping(p); return [PageRange(start: m.start + 4096, end: m.start + 4096)] },    // empty
            { p in let m = Self.privateMapping(p); return [PageRange(start: m.start + 4096, end: m.start + 8192), PageRange(start: m.start, end: m.start + 4096)] }, // out of order
        ]
        for c in cases {
            let message = Self.refusal(c)
            #expect(message?.contains("not page-aligned, empty, or out of order") == true, "\(String(describing: message))")
        }
        let outside = Self.refusal { p in [PageRange(start: 0x1000, end: 0x2000)] }
        #expect(outside?.contains("do not lie inside one private mapping") == true, "\(String(describing: outside))")
        let root = Self.refusal(root: true) { p in let m = Self.privateMapping(p); return [PageRange(start: m.start, end: m.start + 4096)] }
        #expect(root?.contains("the root has no parent") == true, "\(String(describing: root))")
    }
}

/// System V attaches and shared descriptor tables: records a restore would act on wrongly are refused.
@Suite("Validation of System V attaches and shared descriptor tables")
struct SysVAndFileTableValidationTests {
    static func refusal(_ change: (inout ImageMetadata) -> Void) -> String? {
        var meta = ImageGenerator.make(seed: 11, size: .small).metadata
        change(&meta)
        do { try Validation.validate(meta, name: "img"); return nil } catch let e as ImageError {
            #expect(!e.description.contains("\n"))
            return e.message
        } catch { return "\(error)" }
    }

    static func sysv(_ meta: inout ImageMetadata, _ s: SysVSegment, kind: MappingKind = .sharedAnonymous) {
        // Into the first gap of a page between mappings (they stay in address order).
        var maps = meta.processes[0].mappings
        let i = (1..<maps.count).first { maps[$0].start >= maps[$0 - 1].end + 4096 } ?? maps.count
        let at = i == 0 ? 0x10000 : maps[i - 1].end
        maps.insert(Mapping(start: at, end: at + 4096, protection: [.read, .write], kind: kind, flags: [.shared], sysv: s), at: i)
        meta.processes[0].mappings = maps
    }

    @Test func aSegmentWithinBoundsIsValidOthersAreRefused() {
        let good = SysVSegment(id: 3, key: 7, mode: 0o640, uid: 0, gid: 0, cuid: 0, cgid: 0, size: 4096, destroyed: false)
        #expect(Self.refusal { Self.sysv(&$0, good) } == nil)
        var huge = good
        huge.size = 1 << 50
        var wide = good
        wide.mode = 0o7777
        var negative = good
        negative.id = -2
        for bad in [huge, wide, negative] {
            #expect(Self.refusal { Self.sysv(&$0, bad) }?.contains("System V mapping") == true)
        }
        #expect(Self.refusal { Self.sysv(&$0, good, kind: .anonymous) }?.contains("System V mapping") == true)
    }

    @Test func aTableSharedWithNoParentOfTheImageIsRefused() {
        let root = Self.refusal { $0.processes[0].sharesFilesWithParent = true }
        #expect(root?.contains("shares the descriptor table of a parent the image does not hold") == true, "\(String(describing: root))")
    }
}
