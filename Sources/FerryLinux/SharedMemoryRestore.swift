#if os(Linux)
import Glibc
import FerryCore
import FerryImage

/// Restore of shared memory objects (`SharedMemoryPlan`): the root creates
/// each object — a memfd with memfd_create under its name and ftruncate to
/// its size, or anonymous memory as a MAP_SHARED|MAP_ANONYMOUS area reopened
/// through /proc/self/map_files (a descriptor of the same shmem object, which
/// maps show as "/dev/zero (deleted)" as before) — and keeps the descriptor
/// at a working number that the processes it forks inherit.
/// Each process maps its mappings of the object from that descriptor and
/// closes it once its address space and descriptors are built (the fds of
/// a re-created file reopen it: `FileContentsState`).
enum SharedMemoryRestore {
    /// The plan of `meta`, checked before anything is created.
    static func plan(_ meta: ImageMetadata) throws -> SharedMemoryPlan {
        do {
            return try SharedMemoryPlan.make(meta.processes, contents: meta.contents)
        } catch {
            throw FerryError(error.description)
        }
    }

    /// Creates every object of `plan` in the process `main` drives, at
    /// descriptors `base`, `base + 1`, …; returns object id → descriptor.
    static func create(_ plan: SharedMemoryPlan, base: Int32, pid: Int32, main: Injector, scratch: ScratchArea) throws -> [UInt64: Int32] {
        guard !plan.objects.isEmpty else { return [:] }
        let (end, overflow) = base.addingReportingOverflow(Int32(clamping: plan.objects.count))
        guard !overflow else { throw FerryError("cannot restore: too many shared memory objects (\(plan.objects.count))") }
        try FileState.allowDescriptors(below: end, pid: pid)
        var fds: [UInt64: Int32] = [:]
        for o in plan.objects {
            let what = "shared memory object \(o.id) (\(o.size) bytes)"
            let opened: Int64
            if let c = o.contents {
                opened = try FileContentsState.create(c, pid: pid, main: main, scratch: scratch)
            } else if let memfd = o.memfd {
                let name = try ProcessMisc.put(memfd.name, injector: main, scratch: scratch)
                opened = try main.call(SYS.memfdCreate, [name, memfd.allowsSealing ? 2 /* MFD_ALLOW_SEALING */ : 0], "memfd_create(\(memfd.name)) for \(what)")
                try main.call(77 /* ftruncate */, [UInt64(opened), o.size], "ftruncate of \(what)")
            } else {
                let area = UInt64(bitPattern: try main.call(SYS.mmap, [0, o.size, 3, ProcessBuilder.MAP_SHARED | ProcessBuilder.MAP_ANON, UInt64.max, 0],
                                                            "mmap(\(what))"))
                let link = "/proc/self/map_files/\(String(area, radix: 16))-\(String(area + o.size, radix: 16))"
                let path = try ProcessMisc.put(link, injector: main, scratch: scratch)
                opened = try main.call(SYS.open, [path, UInt64(O_RDWR), 0], "open(\(link)) for \(what)")
                try main.call(SYS.munmap, [area, o.size], "munmap(\(what)) once opened")
            }
            let fd = base + Int32(o.slot)
            if opened != Int64(fd) {
                try main.call(SYS.dup3, [UInt64(opened), UInt64(fd), 0], "dup3 of \(what) to fd \(fd)")
                try main.call(SYS.close, [UInt64(opened)], "close")
            }
            fds[o.id] = fd
        }
        return fds
    }
}
#endif
