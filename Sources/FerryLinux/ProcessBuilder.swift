#if os(Linux)
import Glibc
import CFerryLinux
import FerryCore
import FerryImage

/// Turns a freshly exec'd, stopped process into the image's process, step
/// by step, from the tracer: scratch area, address space, contents, kernel
/// state, threads, registers.
final class ProcessBuilder {
    let child: SpawnedProcess
    /// Replaced by the final metadata's process after pre-copy (same mappings).
    var image: ProcessImage
    let meta: ImageMetadata
    let memory: RemoteMemory
    let scratch: ScratchArea
    let main: Injector
    /// Mappings created writable for filling, to be given their final protection.
    private var pendingProtect: [Mapping] = []
    /// Anonymous mmaps and mprotects queued to run in one resume.
    private var batch = InjectedBatch()
    /// image tid → Tracee of the restored thread.
    private var threads: [Int32: Tracee] = [:]
    private let index: MappingIndex
    private lazy var pageWriter = BatchedWriter(pid: child.pid)
    /// Fills the private anonymous mappings (nil: process_vm_writev fills everything).
    private var userfault: UserfaultFill?
    private(set) var fillNote: String?
    /// The kernel's own vDSO was moved to the image's address: its pages in the image are not written.
    private var kernelVDSO = false
    /// Restoring into another layout (stack moved, vDSO proxied), when asked.
    private(set) var adaptation: LayoutAdaptation?
    /// The image's vDSO mapping when its code is kept and patched (proxy), with the kernel's block base.
    private var proxiedVDSO: (image: Mapping, kernelVDSO: UInt64)?
    private(set) var vdsoNote: String?
    /// Mappings inherited from the parent this process was forked from once
    /// filled (`CopyOnWritePlan.keptMappings`), and the pages in them it keeps.
    private var keptMappings: [Mapping] = []
    private var inheritedPages: [PageRange] = []
    /// Shared memory object id → the descriptor holding it (`SharedMemoryRestore`), inherited by forked children.
    var sharedObjects: [UInt64: Int32] = [:]
    /// The fds, by process, that take a re-created memfd's own open file (`SharedMemoryPlan.memfdOriginals`).
    private(set) lazy var memfdOriginals = SharedMemoryPlan.memfdOriginals(meta.processes, contents: meta.contents)

    static let MAP_PRIVATE: UInt64 = 0x02, MAP_SHARED: UInt64 = 0x01, MAP_ANON: UInt64 = 0x20
    static let MAP_GROWSDOWN: UInt64 = 0x100, MAP_FIXED_NOREPLACE: UInt64 = 0x100000

    /// `inheritedScratch`: a child forked from an already prepared process
    /// shares its scratch area's address (and the pipe pool); otherwise the
    /// scratch area is created here.
    init(child: SpawnedProcess, image original: ProcessImage, meta: ImageMetadata, target: TargetLayout? = nil,
         inheritedScratch: ScratchArea? = nil) throws {
        self.child = child
        self.adaptation = try target.map { try LayoutAdaptation(process: original, target: $0) }
        let image = adaptation?.image ?? original
        self.image = image
        self.meta = meta
        self.memory = RemoteMemory(pid: child.pid)
        self.index = MappingIndex(ImageMetadata(source: meta.source, processes: [image]))
        let t = child.tracee
        let regs = try t.getRegs()
        if let inheritedScratch {
            scratch = inheritedScratch // the signal mask (all blocked) is inherited too
        } else {
            scratch = try ProcessBuilder.createScratch(tracee: t, regs: regs, pid: child.pid, avoiding: image.mappings)
            // Nothing may interrupt the injected calls (restored timers fire early): signals stay
            // pending until release, when each thread gets its own mask. New threads inherit this.
            try t.setSigMask(ThreadState.blockAll)
        }
        main = Injector(tracee: t, pid: child.pid, base: regs, trampoline: scratch.address)
        threads[image.threads[0].tid] = t
    }

    /// A 64 KiB home for the injected code, free now and in the image, created with a syscall
    /// poked at the exec entry point (that code is unmapped later anyway).
    static func createScratch(tracee t: Tracee, regs: LinuxRegs, pid: Int32, avoiding mappings: [Mapping]) throws -> ScratchArea {
        let current = try ProcFS.maps(pid, withFlags: false)
        let busy = (mappings.map { ($0.start, $0.end) } + current.map { ($0.start, $0.end) }).sorted { $0.0 < $1.0 }
        var candidate: UInt64 = 0x1_0000_0000
        for (s, e) in busy where e > candidate {
            if s >= candidate + UInt64(ScratchArea.defaultSize) { break }
            candidate = (e + 0xffff) & ~UInt64(0xffff)
        }
        let word = try t.peek(regs.rip)
        try t.poke(regs.rip, (word & ~UInt64(0xff_ffff)) | 0xcc_050f)
        let boot = Injector(tracee: t, pid: pid, base: regs, trampoline: regs.rip)
        let addr = try boot.call(SYS.mmap, [candidate, UInt64(ScratchArea.defaultSize), 7,
                                            ProcessBuilder.MAP_PRIVATE | ProcessBuilder.MAP_ANON | ProcessBuilder.MAP_FIXED_NOREPLACE,
                                            UInt64.max, 0], "mmap(ferry scratch at \(hex(candidate)))")
        let scratch = ScratchArea(address: UInt64(bitPattern: addr), size: ScratchArea.defaultSize)
        try RemoteMemory(pid: pid).write(scratch.address, syscallTrap)
        return scratch
    }

    /// Closes everything the exec'd root inherited from ferry.
    func closeInherited() throws {
        try main.call(436 /* close_range */, [0, UInt64(UInt32.max), 0], "close_range")
    }

    /// Creates the pipes and shared files of the whole tree (after `closeInherited` and the shared memory objects).
    func createPipePool(_ pipes: [PipeData], processes: [ProcessImage]) throws -> FileState.PipePool {
        var ids: [UInt64] = []
        for p in processes { for f in p.files where f.kind == .pipe && !ids.contains(f.pipeID) { ids.append(f.pipeID) } }
        let data = Dictionary(uniqueKeysWithValues: pipes.map { ($0.pipeID, $0) })
        let slots = FileState.WorkingFDs(processes: processes)
        try FileState.allowDescriptors(below: slots.end, pid: child.pid)
        return try FileState.createPipePool(ids, data: data, processes: processes, slots: slots, objects: sharedObjects,
                                            originals: memfdOriginals, injector: main, scratch: scratch)
    }

    /// Forks `image` from this (still unbuilt) process with clone3 and its pid.
    func forkChild(_ image: ProcessImage, newPidNamespace: Bool, target: TargetLayout?) throws -> ProcessBuilder {
        let wanted = newPidNamespace ? (image.nsPids.last ?? image.pid) : image.pid
        let pid = try cloneInjected(flags: FileTableState.cloneFlags(image), exitSignal: UInt64(SIGCHLD), wanted: wanted, what: "process \(wanted)")
        let spawned = SpawnedProcess(pid: pid, reaper: nil, tracee: Tracee(pid))
        let b = try ProcessBuilder(child: spawned, image: image, meta: meta, target: target, inheritedScratch: scratch)
        b.sharedObjects = sharedObjects
        // A child forked once this process is built inherits its userfaultfd too (not its registrations).
        if let fd = userfault?.remoteFD, image.sharesFilesWithParent != true {
            try b.main.call(SYS.close, [UInt64(fd)], "close(userfaultfd \(fd) inherited from process \(self.image.pid))")
        }
        return b
    }

    /// Keeps `kept` (mappings this process inherited from its filled parent
    /// at fork) and, in them, the pages `pages`; everything else of them is
    /// dropped when the address space is built.
    func inherit(kept: [Mapping], pages: [PageRange]) {
        keptMappings = kept
        inheritedPages = pages
    }

    // MARK: address space

    func buildAddressSpace() throws {
        let current = try ProcFS.maps(child.pid, withFlags: false)
        var vdsoPlan = VDSOPlacement.plan(image: image.mappings, current: current)
        if adaptation?.proxiesVDSO == true { vdsoPlan = VDSOPlacement.Plan() }
        // Everything of the exec'd program (or of the parent) goes, except our scratch, the kernel's
        // vDSO block and the mappings kept from the parent.
        let kept = keptMappings.map { PageRange(start: $0.start, end: $0.end) }
        for m in current where m.start != scratch.address && !VDSOPlacement.isVDSO(m.path) && m.path != "[vsyscall]" {
            for r in CopyOnWritePlan.subtracting(kept, from: PageRange(start: m.start, end: m.end)) {
                batch.add(.init(SYS.munmap, [r.start, r.end - r.start], "munmap(\(hex(r.start))) of the exec'd program or the parent"))
            }
        }
        try batch.run(main, scratch: scratch)
        for move in vdsoPlan.moves {
            try main.call(SYS.mremap, [move.from, move.size, move.size, 3 /* MAYMOVE|FIXED */, move.to],
                          "mremap of the vDSO from \(hex(move.from)) to \(hex(move.to))")
        }
        kernelVDSO = vdsoPlan.kernelVDSOAtImageAddress
        if !kernelVDSO, let old = image.mappings.first(where: { $0.kind == .vdso }) {
            // Proxy: the kernel's block stays (moved aside if the image needs its place).
            let base = try moveKernelVDSOAside(current: current.filter { VDSOPlacement.isVDSO($0.path) })
            proxiedVDSO = (old, base)
        }
        let keptStarts = Set(keptMappings.map(\.start))
        for m in image.mappings {
            if keptStarts.contains(m.start) { keep(m) } else { try create(m, keepKernelVDSO: kernelVDSO) }
        }
        try batch.run(main, scratch: scratch)
        // Kept mappings hold the parent's pages: written with process_vm_writev, not through the userfaultfd.
        let anonymous = image.mappings.filter { $0.kind.isPrivateAnonymous && !keptStarts.contains($0.start) }
        if image.sharesFilesWithParent == true {
            // Its descriptor table is its parent's, which restores fds into it (FileTableState).
            fillNote = "memory filled with process_vm_writev (the descriptor table is shared with the parent)"
        } else if !anonymous.isEmpty {
            do {
                userfault = try UserfaultFill.start(injector: main, scratch: scratch, ranges: anonymous.map { ($0.start, $0.end) })
            } catch {
                fillNote = "memory filled with process_vm_writev (no userfaultfd: \(error))"
            }
        }
    }

    /// Moves this kernel's vDSO block out of the way of the image's mappings
    /// (keeping the areas' offsets); returns where its code ([vdso]) is.
    private func moveKernelVDSOAside(current block: [ProcFS.MapEntry]) throws -> UInt64 {
        guard let first = block.map(\.start).min(), let last = block.map(\.end).max(),
              let code = block.first(where: { $0.path == "[vdso]" }) else {
            throw FerryError("cannot restore: this kernel shows no [vdso] to proxy the image's vDSO to")
        }
        let wanted = image.mappings.filter { $0.kind != .vvar && $0.kind != .vsyscall }
        guard wanted.contains(where: { $0.start < last && first < $0.end }) || (scratch.address < last && first < scratch.address + UInt64(scratch.size)) else {
            return code.start
        }
        let size = last - first
        let busy = (wanted.map { ($0.start, $0.end) } + [(scratch.address, scratch.address + UInt64(scratch.size)), (first, last)]).sorted { $0.0 < $1.0 }
        var to: UInt64 = 0x2_0000_0000
        for (s, e) in busy where e > to {
            if s >= to + size { break }
            to = (e + 0xffff) & ~UInt64(0xffff)
        }
        for area in block {
            let dest = to + (area.start - first)
            try main.call(SYS.mremap, [area.start, area.end - area.start, area.end - area.start, 3, dest],
                          "mremap of this kernel's \(area.path) out of the image's way")
        }
        return to + (code.start - first)
    }

    /// A mapping kept from the parent: only its inherited pages stay (the
    /// others read as zero, or as the file, again), writable until
    /// `finishAddressSpace` as the parent created it.
    private func keep(_ m: Mapping) {
        for r in CopyOnWritePlan.notInherited(in: m, inherited: inheritedPages) {
            batch.add(.init(SYS.madvise, [r.start, r.end - r.start, 4 /* MADV_DONTNEED */],
                            "madvise(\(hex(r.start)), MADV_DONTNEED) of pages not inherited from the parent"))
        }
        if !m.protection.contains(.write) { pendingProtect.append(m) }
    }

    private func create(_ m: Mapping, keepKernelVDSO: Bool) throws {
        let size = m.end - m.start
        // Made only for an error message: a restore creates tens of thousands of mappings.
        func what() -> String { "mapping \(hex(m.start))-\(hex(m.end)) \(m.name)" }
        var prot = UInt64(m.protection.rawValue)
        var needsProtect = false
        switch m.kind {
        case .vsyscall, .vvar:
            return
        case .vdso:
            if keepKernelVDSO { return }
            try batch.run(main, scratch: scratch)
            // Proxy: the image's own vDSO code, patched once filled (finishAddressSpace).
            try main.call(SYS.mmap, [m.start, size, 3, ProcessBuilder.MAP_PRIVATE | ProcessBuilder.MAP_ANON | ProcessBuilder.MAP_FIXED_NOREPLACE,
                                     UInt64.max, 0], "mmap(\(what())) for the proxied vDSO")
            needsProtect = true
        case .sharedAnonymous where m.sysv != nil:
            // System V: one shmat per attach, at its first mapping, read-write until filled (SysVShm).
            if let call = SysVShm.attach(m) { batch.add(call) }
            needsProtect = m.protection != [.read, .write]
        case .anonymous, .heap, .stack, .sharedAnonymous:
            var flags = ProcessBuilder.MAP_FIXED_NOREPLACE | ProcessBuilder.MAP_ANON
            flags |= m.kind == .sharedAnonymous ? ProcessBuilder.MAP_SHARED : ProcessBuilder.MAP_PRIVATE
            if m.flags.contains(.growsDown) { flags |= ProcessBuilder.MAP_GROWSDOWN }
            // A re-created file is filled already (its pages are not in the image), and may be sealed against writing.
            let filled = m.sharedObject.map { id in meta.contents.contains { $0.id == id } } ?? false
            if !m.protection.contains(.write) && !filled { prot |= 3; needsProtect = true }
            if let id = m.sharedObject {
                // One object for all its mappings (SharedMemoryRestore).
                guard m.kind == .sharedAnonymous, let fd = sharedObjects[id] else { throw FerryError("cannot restore \(what()): shared object \(id) was not created") }
                flags = ProcessBuilder.MAP_FIXED_NOREPLACE | ProcessBuilder.MAP_SHARED
                batch.add(.init(SYS.mmap, [m.start, size, prot, flags, UInt64(fd), m.fileOffset], "mmap(\(what())) of shared object \(id)"))
            } else {
                batch.add(.init(SYS.mmap, [m.start, size, prot, MappingAdvice.mmapFlags(m, flags), UInt64.max, 0], "mmap(\(what()))"))
            }
        case .privateFile, .sharedFile:
            try batch.run(main, scratch: scratch)
            guard let file = m.file else { throw FerryError("cannot restore \(what()): no file recorded") }
            let shared = m.kind == .sharedFile
            let writable = m.protection.contains(.write) || m.flags.contains(.mayWrite)
            let openFlags: UInt64 = shared && writable ? UInt64(O_RDWR) : UInt64(O_RDONLY)
            let path = try ProcessMisc.put(file.path, injector: main, scratch: scratch)
            let fd = try main.call(SYS.open, [path, openFlags | UInt64(O_CLOEXEC), 0], "open(\(file.path)) for \(what())")
            defer { _ = try? main.call(SYS.close, [UInt64(fd)], "close") }
            if !shared && !m.protection.contains(.write) { prot |= 3; needsProtect = true }
            let flags = (shared ? ProcessBuilder.MAP_SHARED : ProcessBuilder.MAP_PRIVATE) | ProcessBuilder.MAP_FIXED_NOREPLACE
            try main.call(SYS.mmap, [m.start, size, prot, MappingAdvice.mmapFlags(m, flags), UInt64(fd), m.fileOffset], "mmap(\(what()) of \(file.path))")
        }
        if needsProtect { pendingProtect.append(m) }
    }

    /// In another layout (`adaptation`), where mappings are not kept from the
    /// parent: the inherited pages are copied from the parent's memory, where
    /// the parent's own adaptation (the same moves, checked) put them.
    func copyInherited(from parent: ProcessBuilder) throws {
        let moves = adaptation?.plan.moves ?? []
        guard moves == (parent.adaptation?.plan.moves ?? []) else {
            throw FerryError("cannot restore process \(image.pid) in this layout: its areas move unlike its parent \(parent.image.pid)'s, so the pages it shares copy-on-write with it cannot be copied; restore with the native layout")
        }
        let page = UInt64(ImageFormat.pageSize), chunk = 256
        // `image.inheritedPages` keeps the image's (original) addresses. Pages the parent never
        // got are zero (and reading them would wait on its userfaultfd): the child's are zero too.
        func unfilled(_ a: UInt64) -> Bool { parent.userfault?.unfilled(a) ?? false }
        for r in image.inheritedPages ?? [] {
            let delta = moves.first { $0.old.contains(r.start) }?.delta ?? 0
            var at = r.start &+ delta
            let end = r.end &+ delta
            while at < end {
                if unfilled(at) { at += page; continue }
                var n = 1
                while n < chunk && at + UInt64(n) * page < end && !unfilled(at + UInt64(n) * page) { n += 1 }
                let bytes = try parent.memory.read(at, count: n * Int(page))
                try write(PageRun(pid: image.pid, address: at, pageCount: n, data: bytes))
                at += UInt64(n) * page
            }
        }
    }

    /// Writes one run of pages from the image.
    func fill(_ original: PageRun) throws {
        guard original.pid == image.pid else { return }
        try write(adaptation != nil ? adaptation!.adapt(original) : original)
    }

    /// Writes a run at its place in this (possibly adapted) address space.
    private func write(_ run: PageRun) throws {
        let m = index.mapping(pid: run.pid, containing: run.address)
        if m?.kind == .vdso && kernelVDSO { return }
        // Readers refuse these (MappingIndex.check); the write itself must never reach a host file either.
        if m?.kind == .sharedFile {
            throw FerryError("cannot restore: pages at \(hex(run.address)) lie in a shared mapping of the file \(m!.file?.path ?? m!.name); ferry never writes an image's pages into a file")
        }
        if let u = userfault, try run.withSpan({ try u.fill($0, owned: run.data, overwrite: pageWriter) }) { return }
        if let data = run.data {
            try pageWriter.add(run.address, data)
        } else if let m, m.kind == .privateFile || m.kind == .sharedAnonymous {
            // Zero pages over file contents (or shared memory) must be written; anonymous memory is already zero.
            try pageWriter.addZeros(run.address, count: run.byteCount)
        }
    }

    /// `fill` for pages that stay where they are: the userfaultfd fill copies
    /// them into the process straight from there; anything else (layout
    /// adaptation rewrites pages, writes are batched) takes its own copy.
    func fill(_ span: PageSpan) throws {
        guard span.pid == image.pid else { return }
        // Only private anonymous memory is registered (never the vDSO, which `fill` of a run handles).
        if adaptation == nil, let u = userfault, try u.fill(span, overwrite: pageWriter) { return }
        try fill(PageRun(copying: span))
    }

    func flushPages() throws { try pageWriter.flush() }

    /// How a run at `address` (of this process, checked against its mappings)
    /// can be filled from a mapped image; see `DirectFill`.
    func directFill(address: UInt64, pageCount: Int, hasData: Bool) -> DirectFill {
        guard let u = userfault else { return .inOrder(drain: false) }
        // An adapted run may move into a registered range.
        guard adaptation == nil else { return .inOrder(drain: true) }
        switch u.claimUntouched(address: address, pageCount: pageCount, hasData: hasData) {
        case true?: return hasData ? .copy(u) : .nothing
        case false?: return .inOrder(drain: true)
        case nil: return .inOrder(drain: false)
        }
    }

    /// A ZERO run that must zero what an earlier fill wrote: private
    /// anonymous memory is dropped (MADV_DONTNEED, after the writes queued
    /// before it); other memory gets zeros written as `fill` does.
    func zero(_ original: PageRun) throws {
        guard original.pid == image.pid else { return }
        // Under the userfaultfd fill its bitmap knows which pages hold data (those get zeros written);
        // MADV_DONTNEED there would leave a hole the bitmap calls populated, and the next write into it
        // would fault into the userfaultfd ferry itself serves.
        if adaptation == nil, let u = userfault, try original.withSpan({ try u.fill($0, overwrite: pageWriter) }) { return }
        let m = index.mapping(pid: original.pid, containing: original.address)
        guard adaptation == nil, let m, m.kind.isPrivateAnonymous else { return try fill(original) }
        // Only writable memory was filled during pre-copy.
        guard m.protection.contains(.write) else { return }
        try pageWriter.flush()
        try main.call(SYS.madvise, [original.address, UInt64(original.byteCount), 4 /* MADV_DONTNEED */],
                      "madvise(\(hex(original.address)), \(original.pageCount) pages, MADV_DONTNEED)")
    }

    func finishAddressSpace() throws {
        try pageWriter.flush()
        try userfault?.finish(injector: main)
        userfault = nil
        if let (old, kernelBase) = proxiedVDSO {
            let oldBytes = try memory.read(old.start, count: Int(old.size))
            let newSize = try ProcFS.maps(child.pid, withFlags: false).first { $0.path == "[vdso]" }.map { Int($0.end - $0.start) } ?? 8192
            let newBytes = try memory.read(kernelBase, count: newSize)
            let patches: [CodePatch]
            do {
                patches = try VDSOProxy.patches(old: oldBytes, oldBase: old.start, new: newBytes, newBase: kernelBase)
            } catch {
                throw FerryError("cannot restore: the image's vDSO cannot be redirected to this kernel's: \(error)")
            }
            for p in patches { try memory.write(p.address, p.bytes) }
            vdsoNote = "vDSO proxied: \(patches.count) entry points of the image's vDSO at \(hex(old.start)) jump to this kernel's at \(hex(kernelBase))"
        }
        for c in try SysVShm.reattachReadOnly(image.pid, image.mappings) { batch.add(c) }
        for m in pendingProtect {
            batch.add(.init(SYS.mprotect, [m.start, m.end - m.start, UInt64(m.protection.rawValue)], "mprotect(\(hex(m.start)))"))
        }
        for m in image.mappings { for c in MappingAdvice.calls(m) { batch.add(c) } }
        try batch.run(main, scratch: scratch)
        pendingProtect.removeAll()
    }

    // MARK: kernel state

    /// The process's leases, once every process of the tree holds its fds (`LeaseState`).
    func restoreLeases() throws {
        guard image.sharesFilesWithParent != true else { return }
        try LeaseState.restore(image.files, injector: main)
    }

    func restoreProcessState(pool: FileState.PipePool, rootExe: String) throws -> [String] {
        // A table shared with the parent is restored once, by the group's first process (FileTableState).
        if image.sharesFilesWithParent != true {
            try FileState.restore(image.files, pool: pool, objects: sharedObjects, originals: memfdOriginals[image.pid] ?? [],
                                  injector: main, scratch: scratch)
            // The shared memory objects: mapped, and reopened by the fds of re-created files.
            for fd in sharedObjects.values.sorted() { batch.add(.init(SYS.close, [UInt64(fd)], "close(shared memory fd \(fd))")) }
            try batch.run(main, scratch: scratch)
        }
        let cwd = try ProcessMisc.put(image.cwd, injector: main, scratch: scratch)
        try main.call(SYS.chdir, [cwd], "chdir(\(image.cwd))")
        try main.call(SYS.umask, [UInt64(image.umask)], "umask")
        let name = try ProcessMisc.put(image.comm, injector: main, scratch: scratch)
        try main.call(SYS.prctl, [15 /* PR_SET_NAME */, name], "prctl(PR_SET_NAME)")
        try SignalState.restoreActions(image.signalActions, injector: main, scratch: scratch)
        // /proc/PID/exe: the root was exec'd from its own executable; a child that ran
        // another one gets it through exe_fd (its old mappings are gone by now).
        var exeFD: Int32 = -1
        if let exe = image.exe?.path, exe != rootExe {
            let path = try ProcessMisc.put(exe, injector: main, scratch: scratch)
            exeFD = Int32(try main.call(SYS.open, [path, UInt64(O_RDONLY | O_CLOEXEC), 0], "open(\(exe)) for exe_fd"))
        }
        try LayoutState.restore(image.layout, exeFD: exeFD, injector: main, scratch: scratch)
        if exeFD >= 0 { try main.call(SYS.close, [UInt64(exeFD)], "close") }
        return try ProcessMisc.restoreRlimits(image.rlimits, pid: child.pid)
    }

    // MARK: threads

    func createThreads() throws {
        let flags: UInt64 = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000 // VM FS FILES SIGHAND THREAD SYSVSEM
        let nsLevel = child.reaper != nil || image.nsPids.count > 1
        try ProcessMisc.restoreXCompPermission(image.xcompPermitted, injector: main)
        for t in image.threads.dropFirst() {
            let wanted = nsLevel ? (t.nsTids.last ?? t.tid) : t.tid
            threads[t.tid] = Tracee(try cloneInjected(flags: flags, exitSignal: 0, wanted: wanted, what: "thread \(wanted)"))
        }
        var injectors: [Int32: Injector] = [:]
        for t in image.threads {
            let tracee = try restoredThread(t.tid)
            let inj = tracee.tid == child.pid ? main
                : Injector(tracee: tracee, pid: child.pid, base: try tracee.getRegs(), trampoline: scratch.address)
            injectors[t.tid] = inj
            try ThreadState.restoreInside(t, injector: inj, scratch: scratch)
            try AttributeState.restoreInside(t.attributes, tid: t.tid, injector: inj)
        }
        try ProcessMisc.restoreTimers(image.timers, injector: main, scratch: scratch)
        try PosixTimerState.restore(image.posixTimers ?? [], injectors: injectors, main: main, scratch: scratch)
        try SignalState.restorePending(process: image, injectors: injectors, main: main, scratch: scratch)
        try AttributeState.restoreProcess(image.attributes, personality: image.personality, pid: child.pid, injector: main, scratch: scratch)
        // The root last of the paths (every path of the image is in ferry's view), before credentials.
        try ChrootState.restore(image, container: meta.container != nil, injector: main, scratch: scratch)
        // Credentials and capabilities are per thread: each thread sets its own.
        for t in image.threads {
            guard let inj = injectors[t.tid] else { continue }
            try AttributeState.restoreCapabilitiesBeforeCredentials(t.attributes, tid: t.tid, liveTid: inj.tracee.tid,
                                                                    injector: inj, scratch: scratch)
            try ProcessMisc.restoreCredentials(image.credentials, injector: inj, scratch: scratch)
            try AttributeState.restoreCapabilitiesAfterCredentials(t.attributes, tid: t.tid, liveTid: inj.tracee.tid,
                                                                   injector: inj, scratch: scratch)
            try AttributeState.restoreAfterCredentials(t.attributes, tid: t.tid, liveTid: inj.tracee.tid,
                                                       noNewPrivs: image.attributes?.noNewPrivs ?? false, injector: inj)
        }
    }

    /// The restored thread standing for the image's `tid`; an image whose
    /// thread list changed under the builder (a tid missing or repeated) is refused, not trapped on.
    func restoredThread(_ tid: Int32) throws -> Tracee {
        try ProcessBuilder.thread(tid, in: threads, pid: image.pid)
    }

    static func thread(_ tid: Int32, in threads: [Int32: Tracee], pid: Int32) throws -> Tracee {
        guard let t = threads[tid] else {
            throw FerryError("cannot restore process \(pid): its thread \(tid) was not created (a thread missing from, or repeated in, the image)")
        }
        return t
    }

    /// clone3 (with set_tid) injected in the main thread; returns the new
    /// task's id in our namespace once it is stopped for us (auto-attached).
    private func cloneInjected(flags: UInt64, exitSignal: UInt64, wanted: Int32, what: String) throws -> Int32 {
        // struct clone_args, then the set_tid array.
        var a = LEBytes()
        a.u64(flags); a.u64(0); a.u64(0); a.u64(0); a.u64(exitSignal) // pidfd, child_tid, parent_tid
        a.u64(0); a.u64(0); a.u64(0)                                // stack, stack_size, tls
        a.u64(scratch.data + 128); a.u64(1)                         // set_tid, set_tid_size
        try memory.write(scratch.data, a.bytes)
        var tid = LEBytes(); tid.i32(wanted)
        try memory.write(scratch.data + 128, tid.bytes)
        let t = child.tracee
        var r = main.base
        r.rip = scratch.address
        r.rax = UInt64(SYS.clone3)
        r.origRax = UInt64.max
        r.rdi = scratch.data; r.rsi = UInt64(a.bytes.count)
        try t.setRegs(r)
        try t.cont()
        var newTid: Int32 = 0
        while true {
            let st = WaitStatus(try t.wait())
            guard case .stopped(let sig, let event) = st else { throw FerryError("process \(child.pid) \(st.description) while creating \(what)") }
            if event == PT.eventClone || event == PT.eventFork {
                newTid = Int32(truncatingIfNeeded: try t.eventMessage())
                try t.cont()
                continue
            }
            guard sig == SIGTRAP else { throw FerryError("process \(child.pid) stopped by signal \(sig) while creating \(what)") }
            let rax = Int64(bitPattern: try t.getRegs().rax)
            if rax == -Int64(EEXIST) { throw FerryError("cannot restore \(what): that id is in use on this host (try --new-pidns)") }
            if rax < 0 { throw SystemError("clone3(set_tid=\(wanted))", errno: Int32(-rax), "creating \(what)") }
            break
        }
        guard newTid > 0 else { throw FerryError("clone3 for \(what) reported no new task") }
        let st = WaitStatus(try Tracee(newTid).wait())
        guard case .stopped = st else { throw FerryError("new \(what) (\(newTid)) \(st.description)") }
        return newTid
    }

    // MARK: go

    /// Loads every thread's registers and removes the scratch area; the
    /// process stays stopped until `detach`.
    func prepareRelease() throws {
        for t in image.threads.dropFirst() {
            try ThreadState.restoreRegisters(t, tracee: try restoredThread(t.tid), source: meta.source.cpu, permitted: image.xcompPermitted)
        }
        // munmap of the scratch area from inside it: the return lands on unmapped memory, the
        // SIGSEGV stops the thread before anything runs, and the final registers replace it.
        let t = child.tracee
        var r = main.base
        r.rip = scratch.address
        r.rax = UInt64(SYS.munmap); r.origRax = UInt64.max
        r.rdi = scratch.address; r.rsi = UInt64(scratch.size)
        try t.setRegs(r)
        try t.cont()
        let st = WaitStatus(try t.wait())
        guard case .stopped(let sig, _) = st, sig == SIGSEGV else {
            throw FerryError("process \(child.pid) \(st.description) while removing ferry's scratch area")
        }
        try ThreadState.restoreRegisters(image.threads[0], tracee: t, source: meta.source.cpu, permitted: image.xcompPermitted)
    }

    /// Lets the process run (after `prepareRelease`).
    func detach() throws {
        for tr in threads.values { try tr.detach() }
    }
}

/// Where the kernel's vDSO block ([vvar], [vvar_vclock], [vdso]) goes.
enum VDSOPlacement {
    struct Move { var from: UInt64, to: UInt64, size: UInt64 }
    struct Plan {
        var moves: [Move] = []
        /// The kernel's vDSO now sits exactly where the image had its own.
        var kernelVDSOAtImageAddress = false
    }

    static func isVDSO(_ path: String) -> Bool { path == "[vdso]" || path == "[vvar]" || path == "[vvar_vclock]" }

    /// Same layout (sizes and order of the three areas): move the kernel's
    /// block to the image's addresses.
    static func plan(image: [Mapping], current: [ProcFS.MapEntry]) -> Plan {
        let old = image.filter { $0.kind == .vdso || $0.kind == .vvar }.sorted { $0.start < $1.start }
        let new = current.filter { isVDSO($0.path) }.sorted { $0.start < $1.start }
        guard !old.isEmpty, old.count == new.count,
              zip(old, new).allSatisfy({ $0.size == $1.end - $1.start && $0.name == $1.path }) else { return Plan() }
        var plan = Plan(kernelVDSOAtImageAddress: true)
        // Move in an order that never lands on a part not yet moved.
        let pairs = Array(zip(new, old))
        let ordered = old[0].start > new[0].start ? pairs.reversed() : pairs
        for (n, o) in ordered where n.start != o.start {
            plan.moves.append(Move(from: n.start, to: o.start, size: o.size))
        }
        return plan
    }
}
#endif
