import FerryImage

/// A generated image: its metadata and its page runs, in the order a
/// checkpoint writes them (each run at most one record: ≤ 1024 data pages).
public struct GeneratedImage: Sendable {
    public var metadata: ImageMetadata
    public var runs: [PageRun]

    public init(metadata: ImageMetadata, runs: [PageRun]) { self.metadata = metadata; self.runs = runs }

    public var dataPages: Int { runs.filter { $0.data != nil }.reduce(0) { $0 + $1.pageCount } }
    public var zeroPages: Int { runs.filter { $0.data == nil }.reduce(0) { $0 + $1.pageCount } }
}

/// Builds realistic, seeded, deterministic images: a process tree, threads
/// with XSAVE areas, rseq, syscall state and pending signals, mappings of
/// every `MappingKind`, fds of every `FileKind`, pipes with data, a container.
public struct ImageGenerator {
    public struct Size: Sendable {
        public var processes: ClosedRange<Int>
        public var threads: ClosedRange<Int>
        public var extraAnonymous: ClosedRange<Int>
        public var runsPerMapping: ClosedRange<Int>
        public var pagesPerRun: ClosedRange<Int>
        public static let small = Size(processes: 1...2, threads: 1...2, extraAnonymous: 0...1, runsPerMapping: 0...1, pagesPerRun: 1...2)
        public static let realistic = Size(processes: 2...4, threads: 1...4, extraAnonymous: 1...4, runsPerMapping: 0...3, pagesPerRun: 1...24)
    }

    public static func make(seed: UInt64, size: Size = .realistic) -> GeneratedImage {
        var g = ImageGenerator(seed: seed, size: size)
        return g.build()
    }

    private var rng: SplitMix64
    private let size: Size
    private var nextPipeID: UInt64 = 0x4000

    init(seed: UInt64, size: Size) { rng = SplitMix64(seed: seed); self.size = size }

    private static let cpus: [(xcr0: UInt64, size: UInt32, flags: [String])] = [
        (0x7, 832, ["fpu", "sse", "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "xsave"]),
        (0xe7, 2688, ["fpu", "sse", "sse2", "sse4_2", "avx", "avx2", "avx512f", "avx512bw", "xsave"]),
        (0x2e7, 2696, ["fpu", "sse2", "sse4_2", "avx2", "avx512f", "pku", "xsave", "xsaves"]),
    ]

    mutating func build() -> GeneratedImage {
        let cpu = rng.pick(Self.cpus)
        let os = rng.pick(["linux", "freebsd"])
        let source = SourceHost(
            os: os, kernelRelease: os == "linux" ? rng.pick(["6.8.0-45-generic", "6.1.0-26-amd64"]) : "14.1-RELEASE",
            cpu: CPUFeatures(xcr0: cpu.xcr0, xsaveSize: cpu.size, flags: cpu.flags,
                             vendor: rng.pick(["GenuineIntel", "AuthenticAMD"]), model: "Test CPU @ 3.00GHz"),
            hostname: "host-\(rng.int(1...99))", createdAt: 1_700_000_000 + Double(rng.int(0...50_000_000)) + 0.25)
        var processes: [ProcessImage] = []
        var pipes: [PipeData] = []
        var runs: [PageRun] = []
        let count = rng.int(size.processes)
        let rootPid = Int32(rng.int(100...30_000))
        for i in 0..<count {
            let pid = rootPid + Int32(i * 7)
            let ppid = i == 0 ? Int32(1) : processes[rng.int(0...i - 1)].pid
            let (p, pipeData, pageRuns) = process(pid: pid, ppid: ppid, pgid: rootPid, xsaveSize: Int(cpu.size), xcr0: cpu.xcr0)
            processes.append(p); pipes += pipeData; runs += pageRuns
        }
        let spec = #"{"hostname":"ct1","limits":{"cpuPercent":50,"memoryBytes":268435456},"isolation":["pid","mount","net"]}"#
        let container: [UInt8]? = rng.int(0...3) == 0 ? nil : Array(spec.utf8)
        return GeneratedImage(metadata: ImageMetadata(source: source, processes: processes, pipes: pipes, container: container), runs: runs)
    }

    private mutating func file(_ path: String) -> FileIdentity {
        FileIdentity(path: path, size: UInt64(rng.int(4096...4_000_000)), mtimeNs: Int64(rng.int(0...1 << 40)) * 1000,
                     device: UInt64(rng.int(1...2049)), inode: UInt64(rng.int(1...1 << 30)),
                     buildID: rng.bool() ? String(rng.next(), radix: 16) + String(rng.next(), radix: 16) : nil)
    }

    private mutating func mappings(exe: FileIdentity) -> [Mapping] {
        let page: UInt64 = 4096
        var maps: [Mapping] = []
        var cursor: UInt64 = 0x40_0000 + UInt64(rng.int(0...64)) * page
        func add(_ pages: Int, _ prot: Protection, _ kind: MappingKind, flags: MappingFlags = [], file: FileIdentity? = nil,
                 offset: UInt64 = 0, name: String = "", gap: Int = 0) {
            cursor += UInt64(gap) * page
            let m = Mapping(start: cursor, end: cursor + UInt64(pages) * page, protection: prot, kind: kind, flags: flags,
                            fileOffset: offset, file: file, name: name)
            maps.append(m)
            cursor = m.end
        }
        // The executable: text, rodata, data.
        add(rng.int(2...16), [.read, .exec], .privateFile, file: exe)
        add(rng.int(1...4), [.read], .privateFile, file: exe, offset: 0x10000)
        add(rng.int(1...4), [.read, .write], .privateFile, file: exe, offset: 0x20000)
        add(rng.int(4...64), [.read, .write], .heap, name: "[heap]", gap: rng.int(1...512))
        cursor = 0x7f00_0000_0000 + UInt64(rng.int(0...0xffff)) * page
        for _ in 0..<rng.int(size.extraAnonymous) {
            add(rng.int(1...256), rng.pick([[.read, .write], [.read], []]), .anonymous, gap: rng.int(0...16))
        }
        add(rng.int(1...32), [.read, .write], .sharedAnonymous, flags: .shared, name: "/dev/zero (deleted)", gap: 1)
        add(rng.int(1...8), [.read, .write], .sharedFile, flags: .shared, file: file("/var/lib/app/shm.db"), gap: 1)
        let libc = file("/usr/lib/x86_64-linux-gnu/libc.so.6")
        add(rng.int(8...40), [.read, .exec], .privateFile, file: libc, gap: 2)
        add(rng.int(1...4), [.read], .privateFile, file: libc, offset: 0x1d0000)
        add(2, [.read, .write], .privateFile, flags: rng.bool() ? [.deletedFile] : [], file: rng.bool() ? libc : nil,
            offset: 0x1d4000)
        if maps.last!.file == nil { maps[maps.count - 1].flags.insert(.deletedFile) }
        cursor = 0x7ffc_0000_0000 + UInt64(rng.int(0...0xfff)) * page
        add(rng.int(33...64), [.read, .write], .stack, flags: .growsDown, name: "[stack]")
        add(4, [.read], .vvar, name: "[vvar]", gap: rng.int(1...64))
        add(2, [.read, .exec], .vdso, name: "[vdso]")
        maps.append(Mapping(start: 0xffff_ffff_ff60_0000, end: 0xffff_ffff_ff60_1000, protection: [.exec], kind: .vsyscall,
                            name: "[vsyscall]"))
        return maps
    }

    private mutating func siginfo(_ signo: Int32) -> PendingSignal {
        var info = rng.bytes(128)
        withUnsafeBytes(of: signo.littleEndian) { info.replaceSubrange(0..<4, with: $0) }
        return PendingSignal(signo: signo, info: info)
    }

    private mutating func thread(tid: Int32, xsaveSize: Int, xcr0: UInt64, stack: Mapping, text: Mapping) -> ThreadImage {
        var r = Registers()
        r.rax = rng.next(); r.rbx = rng.next(); r.rcx = rng.next(); r.rdx = rng.next()
        r.rsi = rng.next(); r.rdi = rng.next(); r.rbp = stack.end - 0x200; r.rsp = stack.end - UInt64(rng.int(0x100...0x4000))
        r.r8 = rng.next(); r.r9 = 0; r.r10 = UInt64.max; r.r11 = 0x246
        r.r12 = rng.next(); r.r13 = rng.next(); r.r14 = rng.next(); r.r15 = rng.next()
        r.rip = text.start + UInt64(rng.int(0...Int(text.size) - 1)); r.rflags = 0x246
        r.fsBase = 0x7f00_dead_0000 + UInt64(tid) * 0x1000; r.gsBase = 0
        let syscalls: [(Int64, SyscallRestart)] = [(0, .restart), (7, .restartWithRemaining), (35, .restartWithRemaining),
                                                    (202, .restart), (61, .interrupted), (232, .interrupted)]
        let sc = rng.int(0...2) == 0 ? nil : rng.pick(syscalls)
        let pending = (0..<rng.int(0...2)).map { _ in Int32(rng.pick([10, 12, 17, 34, 40, 64])) }.map { siginfo($0) }
        return ThreadImage(
            tid: tid, nsTids: [tid, Int32(rng.int(1...500))], registers: r,
            extendedState: ExtendedState(xcr0: xcr0, area: rng.bytes(xsaveSize)),
            sigmask: rng.next() & 0xffff_fffe_ffff_feff, sigaltstack: rng.bool() ? SignalStack() : SignalStack(sp: stack.start + 0x1000, size: 0x2000, flags: 0),
            rseq: RseqArea(address: r.fsBase + 0x9a0, length: 32, signature: 0x5305_3053),
            syscall: sc.map { SyscallState(number: $0.0, args: (0..<6).map { _ in rng.next() }, restart: $0.1) },
            pendingSignals: pending, clearChildTid: r.fsBase + 0x2d0, name: rng.pick(["worker", "main", "io-\(tid)", "gc"]))
    }

    private mutating func files(pid: Int32) -> ([FileDescriptorImage], [PipeData]) {
        var fds: [FileDescriptorImage] = [
            FileDescriptorImage(fd: 0, kind: .characterDevice, flags: 2, path: "/dev/null"),
            FileDescriptorImage(fd: 1, kind: .regular, flags: 0o2001, offset: Int64(rng.int(0...1 << 20)), path: "/var/log/app.log",
                                file: file("/var/log/app.log")),
            FileDescriptorImage(fd: 2, kind: .fifo, flags: 1, path: "/run/app.fifo"),
            FileDescriptorImage(fd: 3, kind: .directory, flags: 0o200000, closeOnExec: true, path: "/var/lib/app"),
            FileDescriptorImage(fd: 4, kind: .socket, flags: 0o4002, closeOnExec: true),
            FileDescriptorImage(fd: 7, kind: .other, flags: 0o2000000, path: "anon_inode:[eventfd]"),
        ]
        var pipes: [PipeData] = []
        var fd: Int32 = 8
        for _ in 0..<rng.int(1...3) {
            nextPipeID += UInt64(rng.int(1...100))
            fds.append(FileDescriptorImage(fd: fd, kind: .pipe, flags: 0, pipeID: nextPipeID))
            fds.append(FileDescriptorImage(fd: fd + 1, kind: .pipe, flags: 0o4001, closeOnExec: rng.bool(), pipeID: nextPipeID))
            pipes.append(PipeData(pipeID: nextPipeID, bytes: rng.bytes(rng.pick([0, 1, 17, 4096, 65536]))))
            fd += 2
        }
        return (fds, pipes)
    }

    private mutating func pageRuns(pid: Int32, mappings: [Mapping]) -> [PageRun] {
        var runs: [PageRun] = []
        // As ferry: no pages for a shared file mapping (its contents are the file's; readers refuse them).
        for m in mappings where m.kind != .vsyscall && m.kind != .vvar && m.kind != .sharedFile {
            let pages = Int(m.size / 4096)
            var page = 0
            for _ in 0..<rng.int(size.runsPerMapping) {
                guard page < pages else { break }
                page += rng.int(0...2)
                let n = min(rng.int(size.pagesPerRun), pages - page)
                guard n > 0 else { break }
                let address = m.start + UInt64(page) * 4096
                let zero = rng.int(0...3) == 0
                runs.append(PageRun(pid: pid, address: address, pageCount: n, data: zero ? nil : rng.bytes(n * 4096)))
                page += n
            }
        }
        return runs
    }

    private mutating func process(pid: Int32, ppid: Int32, pgid: Int32, xsaveSize: Int, xcr0: UInt64)
        -> (ProcessImage, [PipeData], [PageRun]) {
        let comm = rng.pick(["nginx", "postgres", "redis-server", "python3", "app"])
        let exe = file("/usr/bin/\(comm)")
        let maps = mappings(exe: exe)
        let stack = maps.first { $0.kind == .stack }!
        let heap = maps.first { $0.kind == .heap }!
        let threads = (0..<rng.int(size.threads)).map { i in
            thread(tid: pid + Int32(i), xsaveSize: xsaveSize, xcr0: xcr0, stack: stack, text: maps[0])
        }
        let (fds, pipes) = files(pid: pid)
        let layout = LayoutFields(
            startCode: maps[0].start, endCode: maps[0].end, startData: maps[2].start, endData: maps[2].end,
            startBrk: heap.start, brk: heap.end - 0x123, startStack: stack.end - 0x1000,
            argStart: stack.end - 0x800, argEnd: stack.end - 0x700, envStart: stack.end - 0x700, envEnd: stack.end - 0x10,
            auxv: [33, maps.first { $0.kind == .vdso }!.start, 6, 4096, 9, maps[0].start + 0x40, 0, 0])
        let p = ProcessImage(
            pid: pid, nsPids: [pid, Int32(rng.int(1...50))], ppid: ppid, pgid: pgid, sid: pgid, comm: comm,
            credentials: Credentials(uid: 1000, euid: 1000, suid: 1000, fsuid: 1000, gid: 100, egid: 100, sgid: 100, fsgid: 100, groups: [100, 27]),
            exe: exe, cwd: "/var/lib/app", root: "/", umask: 0o27,
            rlimits: [ResourceLimit(resource: 7, soft: 1024, hard: 524_288), ResourceLimit(resource: 3, soft: 8 << 20, hard: UInt64.max)],
            layout: layout, mappings: maps, threads: threads,
            signalActions: [SignalAction(signo: 15, handler: maps[0].start + 0x120, flags: 0x0400_0000, restorer: maps[0].start + 0x40, mask: 0),
                            SignalAction(signo: 13, handler: 1, flags: 0, restorer: 0, mask: 0)],
            sharedPendingSignals: rng.bool() ? [siginfo(17)] : [],
            files: fds, timers: [IntervalTimer(which: 0, intervalNs: 0, valueNs: UInt64(rng.int(1...1_000_000_000)))],
            personality: 0)
        return (p, pipes, pageRuns(pid: pid, mappings: maps))
    }
}
