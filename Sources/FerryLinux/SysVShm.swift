#if os(Linux)
import Glibc
import FerryCore
import FerryImage

/// System V shared memory attached by the tree (`SysVShmPlan`): dump and restore.
///
/// Dump: /proc/PID/maps shows an attach as "/SYSV<key> (deleted)" whose
/// inode is the shmid; shmctl(IPC_STAT), injected into the frozen process
/// (so it reads the process's own ipc namespace), gives the segment's key,
/// owner, mode, size and SHM_DEST. Its contents are the mapping's pages.
/// Restore: the root creates each segment before it forks the tree —
/// shm_next_id written in its own ipc namespace, then shmget, IPC_SET for
/// the owner and mode, SHM_LOCK — or adopts the one the source left on its
/// own host (`SysVShmPlan.existing`); each process shmat's it at its
/// addresses (`attach`), writable while its pages are written, then
/// SHM_RDONLY again where it was (`reattachReadOnly`); once every process
/// has attached, a segment removed at checkpoint is removed again
/// (`removeDestroyed`).
enum SysVShm {
    static let shmget = 29, shmat = 30, shmctl = 31
    static let ipcRMID: UInt64 = 0, ipcSET: UInt64 = 1, ipcSTAT: UInt64 = 2, shmLock: UInt64 = 11
    static let ipcCreat: UInt64 = 0o1000, ipcExcl: UInt64 = 0o2000
    static let shmRdonly: UInt64 = 0o10000, shmRemap: UInt64 = 0o40000
    static let shmDest: UInt32 = 0o1000, shmLocked: UInt32 = 0o2000
    /// struct shmid64_ds on x86-64 (IPC_64 is implied there).
    static let statSize = 112

    /// The segment a mapping attaches, as far as /proc/PID/maps shows it
    /// (shmid and key); `dump` completes it.
    static func placeholder(_ e: ProcFS.MapEntry) -> SysVSegment? {
        guard e.shared, SharedMemory.isSysV(e), let id = Int32(exactly: e.inode) else { return nil }
        let key = UInt32(e.path.dropFirst(5).prefix(8), radix: 16).map { Int32(bitPattern: $0) } ?? 0
        return SysVSegment(id: id, key: key, mode: 0, uid: 0, gid: 0, cuid: 0, cgid: 0, size: 0, destroyed: false)
    }

    /// What shmctl(IPC_STAT) read for a segment, with its attach count.
    struct Stat {
        var segment: SysVSegment
        var attaches: UInt64
        init(_ b: [UInt8], id: Int32) {
            func u32(_ o: Int) -> UInt32 { b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt32.self) } }
            func u64(_ o: Int) -> UInt64 { b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt64.self) } }
            let mode = u32(20)
            segment = SysVSegment(id: id, key: Int32(bitPattern: u32(0)), mode: mode & 0o777, uid: u32(4), gid: u32(8),
                                  cuid: u32(12), cgid: u32(16), size: u64(48), destroyed: mode & shmDest != 0,
                                  locked: mode & shmLocked != 0)
            attaches = u64(88)
        }
    }

    /// shmctl(IPC_STAT) of `id` run by `injector`'s process; nil when no segment has that id.
    static func stat(_ id: Int32, injector: Injector, scratch: ScratchArea) throws -> Stat? {
        let r = try injector.raw(shmctl, [UInt64(UInt32(bitPattern: id)), ipcSTAT, scratch.data])
        if r == -Int64(EINVAL) || r == -Int64(EIDRM) { return nil }
        if r < 0 { throw SystemError("shmctl(\(id), IPC_STAT)", errno: Int32(-r), "in process \(injector.memory.pid)") }
        return Stat(try injector.memory.read(scratch.data, count: statSize), id: id)
    }

    /// Fills in the segment of every System V mapping of the frozen process `injector` runs in.
    static func dump(_ mappings: inout [Mapping], pid: Int32, injector: Injector, scratch: ScratchArea) throws {
        var read: [Int32: SysVSegment] = [:]
        for i in mappings.indices {
            guard let id = mappings[i].sysv?.id else { continue }
            if read[id] == nil {
                guard let s = try stat(id, injector: injector, scratch: scratch) else {
                    throw FerryError("cannot checkpoint: process \(pid) attaches System V shared memory shmid \(id) at \(hex(mappings[i].start)), which shmctl(IPC_STAT) does not find in its ipc namespace")
                }
                read[id] = s.segment
            }
            mappings[i].sysv = read[id]
        }
    }

    /// The segments of `meta`, checked with every process's attaches before anything is created.
    static func plan(_ meta: ImageMetadata) throws -> [SysVSegment] {
        do {
            for p in meta.processes { _ = try SysVShmPlan.attaches(p) }
            return try SysVShmPlan.segments(meta.processes)
        } catch {
            throw FerryError(error.description)
        }
    }

    /// How many mappings of the image's processes attach shmid `id` in ferry's own ipc namespace
    /// (nothing when `pid`, the restore's root, is in another one).
    static func attachesByImage(_ id: Int32, pids: Set<Int32>, root pid: Int32) -> UInt64 {
        guard (try? ProcFS.readlink("/proc/\(pid)/ns/ipc")) == (try? ProcFS.readlink("/proc/self/ns/ipc")) else { return 0 }
        var n: UInt64 = 0
        for p in pids {
            for e in (try? ProcFS.maps(p, withFlags: false)) ?? [] where SharedMemory.isSysV(e) && e.inode == UInt64(id) { n += 1 }
        }
        return n
    }

    /// Creates (or adopts) every segment of the image in the root `main`
    /// drives, before it forks; returns the shmids it created (removed
    /// again if the restore fails).
    static func create(_ segments: [SysVSegment], imagePids: Set<Int32>, pid: Int32, main: Injector, scratch: ScratchArea) throws -> [Int32] {
        var created: [Int32] = []
        do {
            for s in segments {
                let what = "System V shared memory shmid \(s.id) (key 0x\(SysVShmPlan.hex32(s.key)), \(s.size) bytes)"
                let id = UInt64(UInt32(bitPattern: s.id))
                if let found = try stat(s.id, injector: main, scratch: scratch) {
                    switch SysVShmPlan.existing(s, key: found.segment.key, size: found.segment.size, destroyed: found.segment.destroyed,
                                                attaches: found.attaches, attachesByImage: attachesByImage(s.id, pids: imagePids, root: pid)) {
                    case .refuse(let why): throw FerryError(why)
                    case .adopt: break
                    }
                } else {
                    try setNextID(s.id, pid: pid, main: main, scratch: scratch)
                    let got = try asCreator(s, main: main) {
                        try main.raw(shmget, [UInt64(UInt32(bitPattern: s.key)), s.size, ipcCreat | ipcExcl | 0o600])
                    }
                    if got == -Int64(EEXIST) {
                        throw FerryError("cannot restore: \(what): that key is taken on this host by a segment of another id — remove it (ipcrm -M 0x\(SysVShmPlan.hex32(s.key))) or restore where the key is free")
                    }
                    if got == -Int64(ENOSPC) {
                        throw FerryError("cannot restore: \(what): that id is taken on this host — restore where it is free (a new ipc namespace)")
                    }
                    if got < 0 { throw SystemError("shmget for \(what)", errno: Int32(-got), "in process \(pid)") }
                    if got != Int64(s.id) {
                        _ = try? main.raw(shmctl, [UInt64(got), ipcRMID, 0])
                        throw FerryError("cannot restore: \(what) came back as shmid \(got): another segment was created meanwhile in this ipc namespace — retry")
                    }
                    created.append(s.id)
                }
                var buf = [UInt8](repeating: 0, count: statSize)
                func put(_ v: UInt32, _ o: Int) { withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { buf[o + i] = b } } }
                put(s.uid, 4); put(s.gid, 8); put(s.mode, 20)
                try main.memory.write(scratch.data, buf)
                try main.call(shmctl, [id, ipcSET, scratch.data], "shmctl(IPC_SET) of \(what)")
                if s.locked { try main.call(shmctl, [id, shmLock, 0], "shmctl(SHM_LOCK) of \(what)") }
            }
        } catch {
            remove(created, main: main)
            throw error
        }
        return created
    }

    /// Removes (IPC_RMID) the segments removed at checkpoint, once every
    /// process of the tree has attached them: each then lives exactly as long
    /// as the restored attaches.
    static func removeDestroyed(_ segments: [SysVSegment], main: Injector) throws {
        for s in segments where s.destroyed {
            try main.call(shmctl, [UInt64(UInt32(bitPattern: s.id)), ipcRMID, 0], "shmctl(IPC_RMID) of System V shared memory shmid \(s.id), removed at checkpoint")
        }
    }

    /// Removes segments a failed restore created, through the root if it still runs.
    static func remove(_ ids: [Int32], main: Injector) {
        for id in ids { _ = try? main.raw(shmctl, [UInt64(UInt32(bitPattern: id)), ipcRMID, 0]) }
    }

    /// Removes segments a failed restore created, from ferry (in the same ipc namespace as the root only).
    static func removeFromHost(_ ids: [Int32], root pid: Int32) {
        guard !ids.isEmpty, let ours = try? ProcFS.readlink("/proc/self/ns/ipc"), (try? ProcFS.readlink("/proc/\(pid)/ns/ipc")) == ours else { return }
        for id in ids { _ = Glibc.shmctl(id, IPC_RMID, nil) }
    }

    /// Writes shm_next_id in the root's own ipc namespace (the file is per namespace).
    static func setNextID(_ id: Int32, pid: Int32, main: Injector, scratch: ScratchArea) throws {
        let path = try ProcessMisc.put("/proc/sys/kernel/shm_next_id", injector: main, scratch: scratch)
        let fd = try main.call(SYS.open, [path, UInt64(O_WRONLY | O_CLOEXEC), 0], "open(/proc/sys/kernel/shm_next_id)")
        defer { _ = try? main.call(SYS.close, [UInt64(fd)], "close") }
        let text = Array("\(id)".utf8)
        let at = scratch.data + 256
        try main.memory.write(at, text)
        try main.call(SYS.write, [UInt64(fd), at, UInt64(text.count)], "write of \(id) to /proc/sys/kernel/shm_next_id")
    }

    /// Runs `body` in the root with the segment's creator as effective ids
    /// (shmget records them as cuid/cgid), when they are not ferry's own.
    static func asCreator(_ s: SysVSegment, main: Injector, _ body: () throws -> Int64) throws -> Int64 {
        let (uid, gid) = (geteuid(), getegid())
        guard s.cuid != uid || s.cgid != gid else { return try body() }
        let keep = UInt64.max // -1: unchanged
        try main.call(SYS.setresgid, [keep, UInt64(s.cgid), keep], "setresgid to the creator gid \(s.cgid) of shmid \(s.id)")
        try main.call(SYS.setresuid, [keep, UInt64(s.cuid), keep], "setresuid to the creator uid \(s.cuid) of shmid \(s.id)")
        defer {
            _ = try? main.call(SYS.setresuid, [keep, UInt64(uid), keep], "setresuid back")
            _ = try? main.call(SYS.setresgid, [keep, UInt64(gid), keep], "setresgid back")
        }
        return try body()
    }

    /// The shmat of a mapping that begins an attach (offset 0), writable
    /// while pages are written; nil for the other mappings of an attach.
    static func attach(_ m: Mapping) -> InjectedBatch.Call? {
        guard let s = m.sysv, m.fileOffset == 0 else { return nil }
        return .init(shmat, [UInt64(UInt32(bitPattern: s.id)), m.start, 0], "shmat(shmid \(s.id)) at \(hex(m.start))")
    }

    /// Attaches again with SHM_RDONLY, over themselves, the attaches of
    /// `mappings` that were read-only (run before their final mprotects).
    static func reattachReadOnly(_ pid: Int32, _ mappings: [Mapping]) throws -> [InjectedBatch.Call] {
        let attaches: [SysVShmPlan.Attach]
        do {
            attaches = try SysVShmPlan.attaches(ProcessImage(pid: pid, mappings: mappings))
        } catch {
            throw FerryError(error.description)
        }
        return attaches.filter(\.readOnly).map { a in
            .init(shmat, [UInt64(UInt32(bitPattern: a.segment.id)), a.base, shmRdonly | shmRemap],
                  "shmat(shmid \(a.segment.id), SHM_RDONLY) at \(hex(a.base))")
        }
    }
}
#endif
