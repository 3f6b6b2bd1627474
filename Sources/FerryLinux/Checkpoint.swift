#if os(Linux)
import Glibc
import FerryCore
import FerryImage
import FerryContainer

public struct CheckpointOptions: Sendable {
    public var leaveRunning: Bool
    /// The tree belongs to a shell's job: its session and group, led from
    /// outside, become the restoring ferry's (`--shell-job`).
    public var shellJob: Bool
    /// Pages a child still shares copy-on-write with its parent are stored
    /// once, in the parent (`ProcessImage.inheritedPages`); false stores
    /// every process's pages in full (`--no-cow-sharing`, e.g. for a FreeBSD target).
    public var shareCopyOnWrite: Bool
    public init(leaveRunning: Bool = false, shellJob: Bool = false, shareCopyOnWrite: Bool = true) {
        self.leaveRunning = leaveRunning; self.shellJob = shellJob; self.shareCopyOnWrite = shareCopyOnWrite
    }
}

public struct CheckpointResult: Sendable {
    public var processes = 0
    public var threads = 0
    public var dataPages = 0
    public var zeroPages = 0
    /// Time from the first thread frozen to the image complete.
    public var frozenSeconds = 0.0
    /// Connections the repair guard holds after the kill for a restore on
    /// this host (`TCPHold.seconds`), and its hold name.
    public var heldConnections = 0
    public var tcpHold: String?
}

/// `ferry checkpoint`: freeze a process tree, capture it into an image sink,
/// then kill it or let it go. On any failure every thread is let go with
/// its registers and memory as they were.
public enum Checkpoint {
    public static func run(pid: Int32, sink: ImageSink, options: CheckpointOptions = .init()) throws -> CheckpointResult {
        let session = try CheckpointSession(pid: pid)
        session.shellJob = options.shellJob
        session.shareCopyOnWrite = options.shareCopyOnWrite
        session.leavesRunning = options.leaveRunning
        do {
            let result = try session.write(to: sink)
            if options.leaveRunning { session.resume() } else { session.sendKill() }
            return result
        } catch {
            session.resume()
            throw error
        }
    }
}

/// A frozen process tree: captured into a sink, then resumed unchanged or
/// killed. Migration keeps it frozen between `write` and the target's
/// acknowledgement; `resume()` is the rollback. Dropping it resumes.
public final class CheckpointSession {
    public let pid: Int32
    private let freezer = Freezer()
    /// Root first, then descendants level by level.
    public private(set) var tree: [Int32] = []
    private let frozenAt: Double
    private var open = true
    /// SIGKILL was sent (`sendKill`): the tree is never let go again.
    private var killSent = false
    /// Descriptors left out of the image, per process (pre-copy's userfaultfd).
    public var ignoredFDs: [Int32: Set<Int32>] = [:]
    /// Mappings known from an earlier capture (pre-copy's preliminary one):
    /// when /proc/PID/maps shows exactly these, their VmFlags are taken from
    /// them instead of reading /proc/PID/smaps, which walks every page table
    /// entry (~30 ms per GiB) while the process is frozen.
    public var knownMappings: [Int32: [Mapping]] = [:]
    /// Signal actions known from an earlier capture: only the signals that
    /// can differ are read again (`SignalState.toReread`), each an injected call.
    public var knownSignalActions: [Int32: [SignalAction]] = [:]
    /// A container record captured earlier (pre-copy's start) with the
    /// namespaces it was read in: used again when the root's namespaces are
    /// the same, instead of reading its cgroups while frozen (2–80 ms here).
    public var knownContainer: ContainerSnapshot?
    /// A shell's job: a session and group led from outside the tree are accepted (`JobControl`).
    public var shellJob = false
    /// The tree goes on after the checkpoint (`CheckpointOptions.leaveRunning`);
    /// only `Checkpoint.run` says otherwise, and only then are connections held after the kill.
    var leavesRunning = true
    /// The image goes to another host (`ferry migrate`): a shell job's terminal is refused there.
    public var migrating = false
    /// See `CheckpointOptions.shareCopyOnWrite` (and the sink's `storesInheritedPagesOnce`).
    public var shareCopyOnWrite = true

    /// The processes outside a tree that map its shared memory, found by
    /// reading every process's /proc/PID/maps (100–400 ms on a loaded host)
    /// while the tree still runs, just before it is frozen.
    public struct OutsideSharers {
        let uses: [SharedMemory.Use]
        public static func scan(pid: Int32) -> OutsideSharers {
            OutsideSharers(uses: SharedMemory.outsideSharers(of: SharedMemory.tree(of: pid)))
        }
    }

    /// Preflight checks, then freezes `pid` and its descendants and refuses
    /// a tree whose shared memory a restore would split (`SharedMemory`).
    /// `sharers`: the scan for sharers outside the tree, if the caller made
    /// it just before (so that a migration does not count it as downtime).
    public init(pid: Int32, sharers scanned: OutsideSharers? = nil) throws {
        self.pid = pid
        try Preflight.checkCheckpointable(pid)
        let sharers = (scanned ?? OutsideSharers.scan(pid: pid)).uses
        // Started while the tree runs, so that only the hand-over of the sockets falls in the freeze.
        InetSocket.TCPRepair.startGuardIfConnected(tree: ProcFS.tree(of: pid))
        frozenAt = Host.now()
        do {
            // The root first so it cannot fork meanwhile; then its descendants.
            var queue = [pid]
            while !queue.isEmpty {
                let p = queue.removeFirst()
                if p != pid { try Preflight.checkCheckpointable(p) }
                try freezer.freeze(process: p)
                tree.append(p)
                queue += ProcFS.children(p)
            }
            try SharedMemory.check(tree: tree, outside: sharers)
            RepairStop.tree = tree.filter { !freezer.groupStopped.contains($0) }.compactMap { p in
                freezer.threads.first { $0.pid == p }.map { (p, $0.tid) }
            }
        } catch {
            InetSocket.TCPRepair.leave()
            freezer.thaw()
            throw error
        }
    }

    deinit { if open && !killSent { InetSocket.TCPRepair.leave(); freezer.thaw() } }

    /// Captures every process: all metadata first (`beginPages`), then the pages, then `finish`.
    public func write(to sink: ImageSink) throws -> CheckpointResult {
        var result = CheckpointResult()
        var processes: [ProcessImage] = []
        var pipes: [UInt64: PipeData] = [:]
        var contents: [UInt64: FileContents] = [:]
        for p in tree {
            let threads = freezer.threads.filter { $0.pid == p }.map(\.tid)
            processes.append(try ProcessDump.capture(pid: p, threads: threads, pipes: &pipes, contents: &contents, ignoringFDs: ignoredFDs[p] ?? [],
                                                     knownMappings: knownMappings[p], knownSignalActions: knownSignalActions[p]))
            processes[processes.count - 1].stopSignal = freezer.stopSignals[p]
        }
        try ProcessDump.finishTree(&processes, shellJob: shellJob, migrating: migrating)
        try FileContentsState.refuseMappings(tree: tree, carried: contents)
        if shareCopyOnWrite && sink.storesInheritedPagesOnce {
            for i in processes.indices.dropFirst() {
                guard let parent = processes.first(where: { $0.pid == processes[i].ppid }) else { continue }
                processes[i].inheritedPages = try MemoryState.inheritedPages(child: processes[i], parent: parent)
            }
            PhaseTimer.shared.mark("capture: pages shared with the parent")
        }
        let container: [UInt8]?
        if let k = knownContainer, k.namespaces == ContainerSnapshot.namespaces(of: pid) {
            container = k.record
        } else {
            container = try ContainerState.dump(pid: pid, tree: tree)
        }
        PhaseTimer.shared.mark("capture: container")
        var source = Host.describe()
        source.tcpHold = InetSocket.TCPRepair.holdForImage(leaveRunning: leavesRunning)
        if source.tcpHold != nil {
            result.tcpHold = source.tcpHold
            result.heldConnections = InetSocket.TCPRepair.held.count
        }
        let meta = ImageMetadata(source: source, processes: processes,
                                 pipes: pipes.values.sorted { $0.pipeID < $1.pipeID },
                                 container: container, fileContents: contents.values.sorted { $0.id < $1.id })
        try Validation.validate(meta, name: "checkpoint of \(pid)")
        PhaseTimer.shared.mark("capture: host, validation")
        try sink.beginPages(metadata: meta)
        PhaseTimer.shared.mark("send metadata")
        // Each page of a shared anonymous object is stored once (SharedMemoryPlan.dumped).
        // A memfd whose contents the image holds is not stored again through its mappings.
        for (image, dumped) in zip(processes, SharedMemoryPlan.dumped(processes, carried: Set(contents.keys))) {
            let stats = try MemoryState.dumpPages(pid: image.pid, mappings: dumped.filter { !sink.skipsMapping(pid: image.pid, mapping: $0) },
                                                  skipping: image.inheritedPages ?? [], to: sink)
            result.dataPages += stats.dataPages
            result.zeroPages += stats.zeroPages
            result.threads += image.threads.count
        }
        try sink.finish(metadata: meta)
        PhaseTimer.shared.mark("pages")
        result.processes = processes.count
        result.frozenSeconds = Host.now() - frozenAt
        return result
    }

    /// Lets every thread go as it was (not after `sendKill`).
    public func resume() {
        guard open, !killSent else { return }
        open = false
        InetSocket.TCPRepair.leave()
        freezer.thaw()
    }

    /// Kills the frozen tree (the checkpoint or migration succeeded) and
    /// returns once every thread has exited, its memory freed at once with
    /// process_mrelease (hand-timed: tens of ms per GiB here).
    public func kill() {
        guard open else { return }
        open = false
        InetSocket.TCPRepair.killing()
        freezer.kill()
        InetSocket.TCPRepair.release()
    }

    /// Kills the frozen tree without waiting, as `criu dump` does (SIGKILL,
    /// no wait): it runs no further instruction and the kernel frees its
    /// memory as it exits. `kill` may collect it afterwards; otherwise its
    /// parent can reap it once this process (its tracer) exits, which
    /// `ferry checkpoint` does right after.
    public func sendKill() {
        guard open, !killSent else { return }
        killSent = true
        InetSocket.TCPRepair.killing()
        freezer.sendKill()
        InetSocket.TCPRepair.release()
    }
}

/// A process's container record and the namespaces it was taken in.
public struct ContainerSnapshot: Sendable {
    public var record: [UInt8]?
    public var namespaces: [String]

    /// The /proc/PID/ns links of every namespace kind.
    static func namespaces(of pid: Int32) -> [String] {
        NamespaceKind.allCases.map { (try? ProcFS.readlink("/proc/\(pid)/ns/\($0.procName)")) ?? "" }
    }

    /// Reads it now (the tree must be frozen).
    static func capture(pid: Int32, tree: [Int32]) throws -> ContainerSnapshot {
        ContainerSnapshot(record: try ContainerState.dump(pid: pid, tree: tree), namespaces: namespaces(of: pid))
    }
}

/// One frozen process → ProcessImage (its pages are dumped after all metadata).
enum ProcessDump {
    /// What is decided over the whole captured tree: state ferry does not
    /// carry, refused by name; open files shared between its processes.
    /// `migrating`: the tree is restored elsewhere, where no terminal of this one can be attached.
    static func finishTree(_ processes: inout [ProcessImage], shellJob: Bool, migrating: Bool = false) throws {
        let pids = Set(processes.map(\.pid))
        for p in processes {
            try AttributeState.refuseUncarried(pid: p.pid, comm: p.comm, status: try ProcFS.status(p.pid), mappings: p.mappings,
                                               root: !pids.contains(p.ppid), threads: p.threads)
            try ProcessChecks.refuse(p, tree: pids)
        }
        try AttributeState.refuseSharedResources(processes.map(\.pid))
        try SemUndoState.refuse(processes)
        try FileTableState.mark(&processes)
        try JobControl.refuseOutsideLeaders(processes, shellJob: shellJob)
        FileState.markSharedAcrossProcesses(&processes)
        try ProcFileState.checkTree(processes)
        try Terminals.controllingTerminals(&processes, shellJob: shellJob, migrating: migrating)
        try UnixSocket.checkTree(&processes)
        try InetSocket.checkTree(&processes)
        try FileOwnerState.checkTree(&processes)
    }

    static func capture(pid: Int32, threads: [Int32], pipes: inout [UInt64: PipeData], contents: inout [UInt64: FileContents],
                        ignoringFDs: Set<Int32> = [],
                        knownMappings: [Mapping]? = nil, knownSignalActions: [SignalAction]? = nil) throws -> ProcessImage {
        let stat = try ProcFS.stat(pid)
        let status = try ProcFS.status(pid)
        // Mappings first: the scratch area ferry adds below must not be in the image.
        let mappings = try knownMappings.flatMap { try MemoryState.mappings(of: pid, ifUnchangedFrom: $0) } ?? MemoryState.mappings(of: pid)
        PhaseTimer.shared.mark("capture: mappings")
        var image = ProcessImage(pid: pid)
        image.nsPids = (status["NSpid"] ?? "\(pid)").split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { Int32($0) }
        image.ppid = Int32(stat.field(4))
        image.pgid = Int32(stat.field(5))
        image.sid = Int32(stat.field(6))
        image.comm = stat.comm
        image.umask = UInt32(status["Umask"] ?? "022", radix: 8) ?? 0o22
        image.credentials = try ProcessMisc.credentials(pid)
        image.rlimits = try ProcessMisc.rlimits(pid)
        (image.cwd, image.cwdDeleted) = try DeletedDirectoryState.dump(pid: pid)
        image.root = try ProcFS.readlink("/proc/\(pid)/root")
        image.personality = UInt32((try? ProcFS.text("/proc/\(pid)/personality"))?.trimmingWhitespace() ?? "0", radix: 16) ?? 0
        let exePath = try ProcFS.readlink("/proc/\(pid)/exe")
        image.exe = try? MemoryState.identity(ofMappedFile: "/proc/\(pid)/exe", path: exePath)
        image.mappings = mappings
        // A userfaultfd an earlier, killed pre-copy left: closed below, not in the image.
        let stale = DirtyTracker.leftovers(pid: pid).subtracting(ignoringFDs)
        image.files = try FileState.dump(pid: pid, ignoring: ignoringFDs.union(stale))
        try FileState.dumpPipes(pid: pid, files: image.files, into: &pipes)
        try FileContentsState.dump(pid: pid, files: image.files, into: &contents)
        let cgroups = try CgroupState.dump(pid: pid, threads: threads)
        image.cgroups = cgroups.process
        PhaseTimer.shared.mark("capture: /proc, files")

        // Each thread's mask as frozen; ferry blocks every signal only in a thread
        // it injects into (a ptrace-stopped thread is never picked for a signal).
        var masks: [Int32: UInt64] = [:]
        for tid in threads { masks[tid] = try Tracee(tid).getSigMask() }
        try ScratchSession.with(pid: pid, tid: threads[0]) { injector, scratch, mainRegs in
            for fd in stale { try injector.call(SYS.close, [UInt64(fd)], "close(userfaultfd \(fd) left by a killed ferry)") }
            image.layout = try LayoutState.dump(pid: pid, injector: injector)
            try SysVShm.dump(&image.mappings, pid: pid, injector: injector, scratch: scratch)
            let reread = knownSignalActions.flatMap { SignalState.toReread(status: status, known: $0) }
            image.signalActions = try SignalState.dumpActions(injector: injector, scratch: scratch, reading: reread)
            image.timers = try ProcessMisc.dumpTimers(injector: injector, scratch: scratch)
            image.posixTimers = try PosixTimerState.dump(pid: pid, comm: image.comm, threads: threads, injector: injector, scratch: scratch)
            image.xcompPermitted = try ProcessMisc.dumpXCompPermission(injector: injector, scratch: scratch)
            image.attributes = try AttributeState.dumpProcess(pid: pid, status: status, injector: injector, scratch: scratch)
            image.sharedPendingSignals = try SignalState.dumpSharedPending(tid: threads[0])
            /// One thread's state and attributes, read through `inj`, which runs in it.
            func dumpThread(_ tid: Int32, regs: LinuxRegs, mask: UInt64, inj: Injector) throws -> ThreadImage {
                var thread = try ThreadState.dump(tid: tid, regs: regs, sigmask: mask, injector: inj, scratch: scratch)
                thread.attributes = try AttributeState.dumpThread(tid: tid, injector: inj, scratch: scratch)
                try AttributeState.refuseCapabilities(pid: pid, tid: tid, comm: image.comm, euid: image.credentials.euid,
                                                      have: thread.attributes?.capabilities ?? [])
                return thread
            }
            for tid in threads {
                let mask = masks[tid] ?? 0
                if tid == threads[0] {
                    image.threads.append(try dumpThread(tid, regs: mainRegs, mask: mask, inj: injector))
                    continue
                }
                let t = Tracee(tid)
                let regs = try t.getRegs()
                image.threads.append(try Injector.session(t, pid: pid, regs: regs, scratch: scratch) { inj in
                    try dumpThread(tid, regs: regs, mask: mask, inj: inj)
                })
            }
        }
        for i in image.threads.indices { image.threads[i].cgroups = cgroups.threads[image.threads[i].tid] }
        PhaseTimer.shared.mark("capture: injected (signals, timers, threads)")
        return image
    }
}

/// A scratch mapping in a frozen process for the duration of `body`,
/// created and removed by syscalls injected into thread `tid`, which is put
/// back as frozen whatever happens. With an rt_sigreturn gadget in the
/// process (`Gadget`), the injections go through a return frame
/// (`Injector`), so a ferry killed at any moment leaves the thread running
/// on as it was: the program's code is never written. Without one, the
/// first and last call run from `syscall; int3` written over the bytes at
/// the thread's rip (put back at once), which a killed ferry can leave
/// there (a warning says so); the calls in between go through return
/// frames and a gadget ferry writes into the scratch area.
enum ScratchSession {
    static func with(pid: Int32, tid: Int32, _ body: (Injector, ScratchArea, LinuxRegs) throws -> Void) throws {
        // Injected calls resume the thread: ferry's SIGSTOP, if queued, is taken back first.
        try RepairStop.release(pid)
        let t = Tracee(tid)
        let saved = try t.getRegs()
        let size = ScratchArea.defaultSize
        let mmapArgs: [UInt64] = [0, UInt64(size), 7 /* rwx */, 0x22 /* PRIVATE|ANON */, UInt64.max, 0]
        if let gadget = Gadget.find(pid: pid) {
            do {
                let inj = try Injector(live: t, pid: pid, regs: saved, gadget: gadget, trampoline: 0)
                defer { try? inj.finish() }
                let address = try inj.call(SYS.mmap, mmapArgs, "mmap(scratch)")
                let scratch = ScratchArea(address: UInt64(bitPattern: address), size: size, gadget: gadget)
                defer { _ = try? inj.call(SYS.munmap, [scratch.address, UInt64(size)], "munmap(scratch)") }
                // For a thread whose frame cannot be written (`Injector.session`).
                try RemoteMemory(pid: pid).write(scratch.address, syscallTrap)
                try body(inj, scratch, saved)
                return
            } catch let e as FrameUnwritable {
                warnOnce("ferry: warning: \(e); injecting from the thread's own code instead, which is not kill-safe")
            }
        } else {
            warnOnce("ferry: warning: process \(pid) has no rt_sigreturn gadget (mov $15, %rax; syscall); ferry creates and removes its scratch area through `syscall; int3` written over the program's code, which a killed ferry can leave behind (docs/kill-safety.md)")
        }
        let mask = try t.getSigMask()
        func atRipBlocked(_ nr: Int, _ args: [UInt64], _ what: String) throws -> Int64 {
            try t.setSigMask(ThreadState.blockAll)
            defer { try? t.setSigMask(mask); try? t.setRegs(saved) }
            return try atRip(t, saved: saved, pid: pid) { try $0.call(nr, args, what) }
        }
        let address = UInt64(bitPattern: try atRipBlocked(SYS.mmap, mmapArgs, "mmap(scratch)"))
        // A gadget of its own in the scratch area: the calls in between go through return frames.
        let scratch = ScratchArea(address: address, size: size, gadget: Gadget(address: address + 16, length: ReturnFrame.gadgets[0].count))
        defer { _ = try? atRipBlocked(SYS.munmap, [scratch.address, UInt64(size)], "munmap(scratch)") }
        try RemoteMemory(pid: pid).write(scratch.address, syscallTrap)
        try RemoteMemory(pid: pid).write(scratch.address + 16, ReturnFrame.gadgets[0])
        try Injector.session(t, pid: pid, regs: saved, scratch: scratch) { inj in try body(inj, scratch, saved) }
    }

    /// Runs one injected call with `syscall; int3` written over the bytes at rip, then puts them back.
    private static func atRip(_ t: Tracee, saved: LinuxRegs, pid: Int32, _ body: (Injector) throws -> Int64) throws -> Int64 {
        let word = try t.peek(saved.rip)
        var patched = word & ~UInt64(0xff_ffff)
        patched |= 0xcc_050f
        try t.poke(saved.rip, patched)
        defer { try? t.poke(saved.rip, word) }
        return try body(Injector(tracee: t, pid: pid, base: saved, trampoline: saved.rip))
    }
}
#endif
