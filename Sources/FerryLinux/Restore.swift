#if os(Linux)
import Glibc
import CFerryLinux
import FerryImage

public struct RestoreOptions: Sendable {
    public var newPidNamespace: Bool
    /// Path of the ferry binary (the init of a fresh pid namespace runs `ferry __pidns-init`).
    public var ferryPath: String
    public init(newPidNamespace: Bool = false, ferryPath: String = "/proc/self/exe") {
        self.newPidNamespace = newPidNamespace; self.ferryPath = ferryPath
    }
}

public struct RestoreResult: Sendable {
    /// The restored processes' pids in ferry's pid namespace, root first.
    public var pids: [Int32] = []
    /// The init of the fresh pid namespace, with --new-pidns.
    public var namespaceInit: Int32?
    /// Things restored differently from the image, one line each.
    public var notes: [String] = []
}

/// `ferry restore`: recreate the image's process so it continues where it
/// stopped. Refusals happen before anything is created; once the process
/// exists, any failure kills it (PTRACE_O_EXITKILL covers ferry dying).
public enum Restore {
    public static func run(image: DirectoryImageReader, options: RestoreOptions = .init()) throws -> RestoreResult {
        let meta = image.metadata
        try RestoreChecks.preflight(meta, newPidNamespace: options.newPidNamespace)
        guard meta.processes.count == 1 else {
            throw FerryError("cannot restore: the image holds a tree of \(meta.processes.count) processes; this ferry restores single (multi-threaded) processes")
        }
        let p = meta.processes[0]
        let pipes = Dictionary(uniqueKeysWithValues: meta.pipes.map { ($0.pipeID, $0) })
        let wanted = options.newPidNamespace ? (p.nsPids.last ?? p.pid) : p.pid
        let exe = p.exe?.path ?? ""
        let child = try SpawnedProcess.start(exe: exe, wantedPid: wanted, newPidNamespace: options.newPidNamespace,
                                            reaperPath: options.ferryPath)
        var ok = false
        defer { if !ok { child.abandon() } }
        var result = RestoreResult()
        result.namespaceInit = child.reaper
        let builder = try ProcessBuilder(child: child, image: p, meta: meta)
        try builder.buildAddressSpace()
        try image.forEachPageRun { run in try builder.fill(run) }
        try builder.finishAddressSpace()
        result.notes += try builder.restoreProcessState(pipes: pipes)
        try builder.createThreads()
        try builder.release()
        ok = true
        result.pids = [child.pid]
        return result
    }
}

/// Checks made before anything is created.
enum RestoreChecks {
    static func preflight(_ meta: ImageMetadata, newPidNamespace: Bool) throws {
        let host = Host.cpu()
        for p in meta.processes {
            for t in p.threads {
                if let x = t.extendedState, x.xcr0 & ~host.xcr0 != 0 {
                    throw FerryError("cannot restore: the image uses XSAVE state components 0x\(String(x.xcr0, radix: 16)) but this CPU enables 0x\(String(host.xcr0, radix: 16))")
                }
            }
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
            for f in p.files where f.kind == .regular || f.kind == .directory || f.kind == .characterDevice {
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
