#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

public struct RestoreOptions: Sendable {
    public var newPidNamespace: Bool
    /// Path of the ferry binary (the init of a fresh pid namespace runs `ferry __pidns-init`).
    public var ferryPath: String
    /// Restore into another OS's address-space layout (on this kernel), e.g. FreeBSD's Linuxulator.
    public var targetLayout: TargetLayoutChoice
    /// CPU features the source had and this CPU may lack, because the process
    /// is known not to use them (e.g. glibc told by GLIBC_TUNABLES).
    public var allowMissingCPUFeatures: Set<String>
    /// Restore even when this CPU enables XSAVE components the source's did not.
    public var allowXSaveGrowth: Bool
    /// The operator's limits (uids, executables), checked before anything is
    /// created and again on pre-copy's final metadata.
    public var policy: RestorePolicy
    /// Where a container's veth host ends go (`--bridge`, `--net-hook`); neither: up and unattached.
    public var bridge: String?
    public var netHook: String?
    public init(newPidNamespace: Bool = false, ferryPath: String = "/proc/self/exe", targetLayout: TargetLayoutChoice = .native,
                allowMissingCPUFeatures: Set<String> = [], allowXSaveGrowth: Bool = false, policy: RestorePolicy = RestorePolicy()) {
        self.newPidNamespace = newPidNamespace; self.ferryPath = ferryPath; self.targetLayout = targetLayout
        self.allowMissingCPUFeatures = allowMissingCPUFeatures; self.allowXSaveGrowth = allowXSaveGrowth
        self.policy = policy
    }
}

public enum TargetLayoutChoice: String, Sendable, CaseIterable {
    /// Every mapping where it was; the vDSO moved or proxied as this kernel allows.
    case native
    /// The stack ends at the Linuxulator's stack top (0x7fffffffd000) and the vDSO is proxied.
    case freebsdLinuxulator = "freebsd-linuxulator"

    var layout: TargetLayout? { self == .freebsdLinuxulator ? TargetLayout.freebsdLinuxulator() : nil }
}

public struct RestoreResult: Sendable {
    /// The restored processes' pids in ferry's pid namespace, root first.
    public var pids: [Int32] = []
    /// The init of the fresh pid namespace, with --new-pidns.
    public var namespaceInit: Int32?
    /// Things restored differently from the image, one line each.
    public var notes: [String] = []
}

/// `ferry restore`: recreate the image's processes so they continue where
/// they stopped. Refusals happen before anything is created; once a process
/// exists, any failure kills everything created (PTRACE_O_EXITKILL covers
/// ferry dying).
public enum Restore {
    /// pages.img is read through a mapping and filled on two threads
    /// (`MappedFill`), or record by record where it cannot be mapped.
    public static func run(image: DirectoryImageReader, options: RestoreOptions = .init()) throws -> RestoreResult {
        PhaseTimer.shared.mark("read metadata")
        guard let pages = try image.mappedPages() else {
            return try run(metadata: image.metadata, pages: image.forEachPageRun, options: options)
        }
        let restore = try PhasedRestore(metadata: image.metadata, options: options)
        PhaseTimer.shared.mark("tree, address spaces")
        try restore.fill(mapped: pages, index: MappingIndex(image.metadata))
        PhaseTimer.shared.mark("pages")
        return try restore.complete()
    }

    /// Restores from a metadata-first stream (a socket): pages are written
    /// into the new processes as they arrive, never buffered.
    public static func run(stream: ByteSource, options: RestoreOptions = .init()) throws -> RestoreResult {
        let reader = try MetadataFirstStreamReader(source: stream)
        return try run(metadata: reader.metadata, pages: reader.forEachPageRun, options: options)
    }

    /// The tree is rebuilt top-down: the root is the image's executable
    /// started traced; it creates every pipe of the tree at reserved
    /// descriptors; each process forks its children (clone3 with their pids)
    /// before any address space is built, so children inherit the pipes; then
    /// every process gets its memory, state and threads, and the tree is let
    /// go leaves first.
    static func run(metadata meta: ImageMetadata, pages: ((PageRun) throws -> Void) throws -> Void,
                    options: RestoreOptions) throws -> RestoreResult {
        let restore = try PhasedRestore(metadata: meta, options: options)
        try pages { run in try restore.fill(run) }
        return try restore.complete()
    }
}

/// A restore in two phases: the processes and their address spaces are built
/// from a (preliminary) metadata and filled as pages come, possibly while the
/// source still runs (pre-copy); `update(final:)` takes the final metadata
/// (same processes and mappings; newer threads, descriptors and registers),
/// the last pages follow, and `complete` lets the tree run. Until `complete`
/// returns, dropping or `abandon()` kills everything created.
public final class PhasedRestore {
    let options: RestoreOptions
    private(set) var meta: ImageMetadata
    private let child: SpawnedProcess
    private var created: [SpawnedProcess]
    private let container: ContainerRestore?
    private let cgroups: CgroupPlacement
    /// Deleted working directories, present while the processes enter them.
    private let ghostDirectories = GhostDirectories()
    private var builders: [Int32: ProcessBuilder] = [:]
    private var order: [ProcessBuilder] = []
    private let pool: FileState.PipePool
    /// Processes forked once their parent's memory is filled, to inherit
    /// the pages they shared copy-on-write with it (`CopyOnWritePlan`).
    private let late: Set<Int32>
    /// Processes a late child was forked from: their memory is final.
    private var sealed: Set<Int32> = []
    private var result = RestoreResult()
    private var finished = false
    /// System V segments of the image, and those this restore created (`SysVShm`).
    private let sysvSegments: [SysVSegment]
    private var sysvCreated: [Int32] = []

    public init(metadata meta: ImageMetadata, options: RestoreOptions) throws {
        try options.policy.enforce(meta)
        var meta = meta
        try Terminals.attachShellTerminal(&meta)
        self.meta = meta
        // A container's pid namespace is re-created (the pids inside it are the image's innermost).
        let ctRecord = try ContainerState.record(meta)
        var options = options
        if ctRecord?.spec.isolation.has(.pid) == true { options.newPidNamespace = true }
        self.options = options
        try RestoreChecks.preflight(meta, newPidNamespace: options.newPidNamespace, allowMissingCPU: options.allowMissingCPUFeatures,
                                    allowXSaveGrowth: options.allowXSaveGrowth)
        let root = meta.processes[0]
        late = CopyOnWritePlan.lateForked(meta.processes)
        let sharedMemory = try SharedMemoryRestore.plan(meta)
        sysvSegments = try SysVShm.plan(meta)
        var sysvCreated: [Int32] = []
        let container = try ctRecord.map { try ContainerRestore.prepare($0, leafName: ContainerState.leafName($0.spec, restorer: getpid())) }
        self.container = container
        do {
            cgroups = try CgroupPlacement.prepare(meta, skipping: container?.mountPoints ?? [])
        } catch {
            container?.remove()
            throw error
        }
        let wanted = options.newPidNamespace ? (root.nsPids.last ?? root.pid) : root.pid
        // In a fresh pid namespace the tree also gets a fresh time namespace
        // whose CLOCK_MONOTONIC/BOOTTIME go on from the source's (another
        // host's clocks started elsewhere), as CRIU does.
        let offsets = options.newPidNamespace ? meta.source.clocks.map { Host.clockOffsets(from: $0) } : nil
        do {
            let parts = try container?.spawnParts()
            defer { parts?.closeFDs() }
            child = try SpawnedProcess.start(exe: root.exe?.path ?? "", wantedPid: wanted, newPidNamespace: options.newPidNamespace,
                                             reaperPath: options.ferryPath, container: parts, clockOffsets: offsets)
        } catch {
            container?.remove()
            throw error
        }
        created = [child]
        result.namespaceInit = child.reaper
        do {
            // Before any socket of the tree is re-created: they bind to the container's addresses.
            try container?.createNetwork(pid: child.pid, attach: .init(bridge: options.bridge, hook: options.netHook))
            result.notes += container?.notes ?? []
            try cgroups.place(process: root.pid, as: child.pid)
            let target = options.targetLayout.layout
            let rootBuilder = try ProcessBuilder(child: child, image: root, meta: meta, target: target)
            try rootBuilder.closeInherited()
            // Shared memory and re-created files first: shared fds of re-created files reopen them.
            rootBuilder.sharedObjects = try SharedMemoryRestore.create(sharedMemory, base: FileState.WorkingFDs(processes: meta.processes).end,
                                                                       pid: child.pid, main: rootBuilder.main, scratch: rootBuilder.scratch)
            sysvCreated = try SysVShm.create(sysvSegments, imagePids: Set(meta.processes.map(\.pid)), pid: child.pid,
                                             main: rootBuilder.main, scratch: rootBuilder.scratch)
            pool = try rootBuilder.createPipePool(meta.pipes, processes: meta.processes)
            try rootBuilder.startSession()
            builders[root.pid] = rootBuilder
            order = [rootBuilder]
            var next = 0
            while next < order.count {
                let parent = order[next]
                next += 1
                for c in meta.processes where c.ppid == parent.image.pid && builders[c.pid] == nil && c.pid != root.pid && !late.contains(c.pid) {
                    let b = try parent.forkChild(c, newPidNamespace: options.newPidNamespace, target: target)
                    created.append(b.child)
                    try cgroups.place(process: c.pid, as: b.child.pid)
                    try b.startSession()
                    builders[c.pid] = b
                    order.append(b)
                }
            }
            let reached = PhasedRestore.descendants(of: root.pid, in: meta.processes)
            guard reached.count == meta.processes.count else {
                throw FerryError("cannot restore: \(meta.processes.count - reached.count) process(es) of the image are not descendants of its root \(root.pid)")
            }
            for b in order { try b.buildAddressSpace() }
        } catch {
            SysVShm.removeFromHost(sysvCreated, root: child.pid)
            for c in created.dropFirst() { kill(c.pid, SIGKILL) }
            child.abandon()
            container?.remove()
            cgroups.remove()
            throw error
        }
        self.sysvCreated = sysvCreated
    }

    deinit { abandon() }

    /// `root` and every process below it (ppid links), root first.
    static func descendants(of root: Int32, in processes: [ProcessImage]) -> [Int32] {
        var out = [root], seen: Set<Int32> = [root], next = 0
        while next < out.count {
            let parent = out[next]
            next += 1
            for c in processes where c.ppid == parent && seen.insert(c.pid).inserted { out.append(c.pid) }
        }
        return out
    }

    /// Forks a late process (and the late ancestors it needs) from its
    /// parent, whose memory is filled by now: the child keeps the mappings
    /// that hold the pages it inherits and builds the rest of its address
    /// space itself. Its parent takes no page after this.
    private func forkLate(_ pid: Int32, depth: Int = 0) throws -> ProcessBuilder {
        if let b = builders[pid] { return b }
        guard late.contains(pid), depth < meta.processes.count, let image = meta.processes.first(where: { $0.pid == pid }) else {
            throw FerryError("pages for pid \(pid), which is not in the image")
        }
        let parent = try forkLate(image.ppid, depth: depth + 1)
        let kept: [Mapping]
        do {
            // Checked against the original images: an adapted layout moves both alike.
            kept = try CopyOnWritePlan.keptMappings(child: image, parent: meta.processes.first { $0.pid == parent.image.pid } ?? parent.image)
        } catch {
            throw FerryError("\(error)")
        }
        // Everything written to the parent so far reaches the child's copy.
        try parent.flushPages()
        sealed.insert(parent.image.pid)
        let target = options.targetLayout.layout
        let b = try parent.forkChild(image, newPidNamespace: options.newPidNamespace, target: target)
        created.append(b.child)
        try cgroups.place(process: pid, as: b.child.pid)
        try b.startSession()
        if target == nil {
            b.inherit(kept: kept, pages: image.inheritedPages ?? [])
            try b.buildAddressSpace()
        } else {
            // Another layout: the child builds its own mappings and gets copies of the parent's pages.
            try b.buildAddressSpace()
            try b.copyInherited(from: parent)
        }
        builders[pid] = b
        order.append(b)
        return b
    }

    /// Writes one run of pages (checked against the mappings by the caller's reader).
    public func fill(_ run: PageRun) throws {
        TestKill.point(.batch)
        if run.data != nil { PageProgress.shared.add(pages: run.pageCount) }
        try builder(run.pid).fill(run)
    }

    private func builder(_ pid: Int32) throws -> ProcessBuilder {
        if sealed.contains(pid) {
            throw FerryError("cannot restore: pages of process \(pid) come after its child was forked from it to inherit its copy-on-write pages (the image's pages are out of order: damaged or hostile)")
        }
        return try builders[pid] ?? forkLate(pid)
    }

    /// `fill` for pages that stay where they are (a received frame): no copy where the userfaultfd fill takes them.
    public func fill(_ span: PageSpan) throws {
        TestKill.point(.batch)
        if span.data != nil { PageProgress.shared.add(pages: span.pageCount) }
        try builder(span.pid).fill(span)
    }

    /// Writes every page of a mapped pages.img (see `MappedFill`).
    public func fill(mapped file: MappedPageFile, index: MappingIndex) throws {
        try MappedFill.run(file: file, index: index,
                           plan: { r in
                               TestKill.point(.batch)
                               if r.data != nil { PageProgress.shared.add(pages: r.pageCount) }
                               // A late process is forked in order, once every copy queued for its parent is done.
                               if self.builders[r.pid] == nil { return .inOrder(drain: true) }
                               return try self.builder(r.pid).directFill(address: r.address, pageCount: r.pageCount, hasData: r.data != nil)
                           },
                           inOrder: { r in try self.builder(r.pid).fill(r.span) })
    }

    /// Writes the pages queued so far (pre-copy: before the source freezes).
    public func flushPages() throws {
        for b in order { try b.flushPages() }
    }

    /// Makes the pages of a ZERO run zero, whatever was filled there before
    /// (pre-copy's final image: pages dropped or zeroed since they were sent).
    public func zero(_ run: PageRun) throws {
        try builder(run.pid).zero(run)
    }

    /// Why a restore built from `preliminary` cannot be completed with `final`
    /// (nil: it can). The source asks the same question to decide whether the
    /// final image must carry every page.
    public static func mismatch(preliminary: ImageMetadata, final: ImageMetadata) -> String? {
        if final.contents != preliminary.contents { return "the contents of the tree's memfds or deleted files changed during pre-copy" }
        if final.processes.map(\.pid) != preliminary.processes.map(\.pid) { return "the process tree changed during pre-copy" }
        // The container was made from the preliminary metadata.
        if final.container != preliminary.container { return "the tree's container (namespaces, limits or network) changed during pre-copy" }
        // The pipes were created empty from the preliminary metadata; the final image fills them (`update`).
        if preliminary.pipes.contains(where: { !$0.bytes.value.isEmpty }) { return "the pre-copy metadata carries bytes in pipes" }
        if Set(final.pipes.map(\.pipeID)) != Set(preliminary.pipes.map(\.pipeID)) { return "the tree's pipes changed during pre-copy" }
        // Unix socket pairs and their queues were created from the preliminary metadata.
        for (a, b) in zip(preliminary.processes, final.processes) where a.files.compactMap(\.unixSocket) != b.files.compactMap(\.unixSocket) {
            return "the unix sockets of process \(b.pid) or their queues changed during pre-copy"
        }
        for (a, b) in zip(preliminary.processes, final.processes) where a.mappings != b.mappings {
            return "process \(b.pid) changed its mappings during pre-copy"
        }
        // The tree was forked from the preliminary metadata: a child whose pages are stored in its parent only would lack them.
        for (a, b) in zip(preliminary.processes, final.processes) where a.inheritedPages != b.inheritedPages {
            return "process \(b.pid)'s pages shared copy-on-write with its parent changed during pre-copy"
        }
        for (a, b) in zip(preliminary.processes, final.processes) where a.cgroups != b.cgroups {
            return "process \(b.pid) moved to another cgroup during pre-copy"
        }
        if let why = InetSocket.sharedSocketsChanged(preliminary: preliminary, final: final) { return why }
        // ptys are created with their state and queues from the preliminary metadata.
        if Terminals.pairs(preliminary.processes).map(\.1) != Terminals.pairs(final.processes).map(\.1)
            || Terminals.pairs(preliminary.processes).map(\.0) != Terminals.pairs(final.processes).map(\.0) {
            return "the tree's ptys or their state changed during pre-copy"
        }
        return nil
    }

    /// Takes the final metadata: it must hold the same processes with the same
    /// mappings (the container is the one already set up).
    public func update(final: ImageMetadata) throws {
        if let why = PhasedRestore.mismatch(preliminary: meta, final: final) {
            throw FerryError("cannot complete the restore: \(why)")
        }
        // The final metadata carries credentials and executables of its own.
        try options.policy.enforce(final)
        if order.contains(where: { $0.adaptation != nil }) {
            throw FerryError("cannot complete the restore with an adapted layout after pre-copy")
        }
        try cgroups.update(final)
        try LeaseState.refuseBreaking(final)
        for p in final.processes { builders[p.pid]?.image = p }
        meta = final
        // The bytes in flight in pipes, as the tree was frozen.
        let root = order[0]
        for pipe in final.pipes {
            guard let ends = pool.pipes[pipe.pipeID] else { throw FerryError("cannot complete the restore: pipe \(pipe.pipeID) was not created") }
            try FileState.fillPipe(pipe.pipeID, write: ends.write, bytes: pipe.bytes.value, processes: final.processes,
                                   injector: root.main, scratch: root.scratch)
        }
    }

    /// Finishes every process and lets the tree run.
    public func complete() throws -> RestoreResult {
        let phases = PhaseTimer.shared
        do {
            // Late processes no page of their own came for.
            for p in meta.processes where late.contains(p.pid) { _ = try forkLate(p.pid) }
            // Every process has attached its segments: those removed at checkpoint are removed again.
            try SysVShm.removeDestroyed(sysvSegments, main: order[0].main)
            // Group leaders first: members join groups that exist (every process exists by now).
            for b in order.sorted(by: { ($0.image.pgid == $0.image.pid ? 0 : 1) < ($1.image.pgid == $1.image.pid ? 0 : 1) }) {
                try b.joinGroup(processes: meta.processes, newPidNamespace: options.newPidNamespace)
            }
            // /proc files of the tree name the restored processes' pids.
            let live = Dictionary(order.map { ($0.image.pid, $0.child.pid) }, uniquingKeysWith: { a, _ in a })
            for b in order { b.image.files = try ProcFileState.livePaths(b.image.files, live: live, of: b.image.pid) }
            for b in order {
                try b.finishAddressSpace()
                phases.mark("complete: last pages, mprotect")
                if let a = b.adaptation { result.notes.append("process \(b.image.pid): " + a.summary) }
                if let v = b.vdsoNote { result.notes.append("process \(b.image.pid): " + v) }
                if let f = b.fillNote { result.notes.append("process \(b.image.pid): " + f) }
                // The controlling terminal before the fds: an fd on /dev/tty reopens it.
                if let t = b.image.controllingTerminal {
                    let fg = JobControl.restoredID(t.foregroundGroup, in: meta.processes, newPidNamespace: options.newPidNamespace) ?? t.foregroundGroup
                    try Terminals.restoreControllingTerminal(t, foreground: fg, injector: b.main, scratch: b.scratch)
                }
                try ghostDirectories.prepare(b.image)
                result.notes += try b.restoreProcessState(pool: pool, rootExe: meta.processes[0].exe?.path ?? "")
                phases.mark("complete: fds, signals, layout")
                try b.createThreads()
                try cgroups.placeThreads(of: b.image, live: { try b.restoredThread($0).tid })
                phases.mark("complete: threads, timers, credentials")
            }
            // Every process is in its working directory: the deleted ones go again.
            ghostDirectories.removeAll()
            // Every process has its fds: ptys get their lock and exclusive mode.
            try pool.ptyHandles.finish()
            // Every socket of the tree exists: connections write the bytes they had not sent.
            var written = Set<UInt64>()
            for b in order { try InetSocket.sendUnsent(b.image.files, done: &written, injector: b.main, scratch: b.scratch) }
            // Leases last: every open of the tree (and its pool) is done and none comes after.
            for b in order { try b.restoreLeases() }
            phases.mark("complete: leases")
            // Every process ready before any runs: a ferry killed in the few detach calls
            // between the first and the last is the only way to leave part of a tree running
            // (PTRACE_O_EXITKILL kills the rest).
            for b in order.reversed() { try b.prepareRelease() }
            // A process stopped at the checkpoint gets its stop signal queued while
            // its threads are held: it stops as they are let go, and its parent is told.
            // Children are let go before their parents: a parent finds its stopped child's report there.
            for b in order { if let sig = StopState.signal(for: b.image) { try StopState.stop(b.child.pid, sig) } }
            for b in order.reversed() {
                try b.detach()
                if b.image.stopSignal != nil { try StopState.waitStopped(b.child.pid) }
            }
            phases.mark("complete: registers, release")
        } catch {
            abandon()
            throw error
        }
        finished = true
        result.pids = order.map(\.child.pid)
        return result
    }

    /// Kills everything created (nothing half-restored remains).
    public func abandon() {
        guard !finished else { return }
        finished = true
        SysVShm.removeFromHost(sysvCreated, root: child.pid)
        for c in created.dropFirst() { kill(c.pid, SIGKILL) }
        child.abandon()
        container?.remove()
        cgroups.remove()
        ghostDirectories.removeAll()
    }
}

/// Checks made before anything is created.
enum RestoreChecks {
    static func preflight(_ meta: ImageMetadata, newPidNamespace: Bool, allowMissingCPU: Set<String> = [],
                          allowXSaveGrowth: Bool = false) throws {
        let host = Host.cpu()
        // CPU flags and XSAVE: the one verdict the migration handshake uses too.
        let target = TargetCapabilities(os: .linux, kernelRelease: Host.describe().kernelRelease, cpu: host)
        let cpuProblems = Compatibility.verdict(image: meta, target: target,
                                                requiredCPUFlags: CPUFeatureCheck.isaFlags.subtracting(allowMissingCPU),
                                                allowXSaveGrowth: allowXSaveGrowth).reasons
        if let first = cpuProblems.first { throw FerryError(first) }
        try InetSocket.preflight(meta)
        try LeaseState.refuseBreaking(meta)
        try Terminals.preflight(meta.processes)
        try GhostDirectories.preflight(meta.processes)
        let ptys = Set(Terminals.pairs(meta.processes).map(\.0))
        for p in meta.processes {
            if !newPidNamespace {
                for id in [p.pid] + p.threads.map(\.tid) where ProcFS.exists("/proc/\(id)") {
                    throw FerryError("cannot restore: pid \(id) is in use on this host; stop that process or restore with --new-pidns")
                }
            }
            guard let exe = p.exe else { throw FerryError("cannot restore process \(p.pid): the image names no executable") }
            try checkUnchanged(exe, what: "the executable")
            for m in p.mappings where m.kind == .privateFile || m.kind == .sharedFile {
                if let f = m.file { try checkUnchanged(f, what: "a mapped file") }
            }
            // /proc files are reopened under the restored pids (ProcFileState); a pty of the image is
            // created by the restore (its index must be free: Terminals.preflight).
            for f in p.files where f.procPid == nil && ((f.kind == .regular && f.contentsID == nil) || f.kind == .directory
                                                       || (f.kind == .characterDevice && !ptys.contains(f.pty?.index ?? -1))) {
                let path = f.file?.path ?? f.path
                if access(path, F_OK) != 0 { throw FerryError("cannot restore: fd \(f.fd) of process \(p.pid) refers to \(path), which does not exist here") }
            }
        }
    }

    static func checkUnchanged(_ f: FileIdentity, what: String) throws {
        var st = stat()
        guard stat(f.path, &st) == 0 else { throw FerryError("cannot restore: \(what) \(f.path) does not exist on this host") }
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        if UInt64(st.st_size) != f.size || mtime != f.mtimeNs {
            throw FerryError("cannot restore: \(what) \(f.path) changed since the checkpoint (size \(f.size) → \(st.st_size), or its mtime); restore needs the same file")
        }
    }
}
#endif
