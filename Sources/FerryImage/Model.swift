// The OS-neutral image model. Everything here is meaningful on Linux and on
// FreeBSD's Linuxulator alike. ABI constants (signal numbers, open flags,
// syscall numbers, errno values, rlimit resources, mmap/prot bits) are those of
// the Linux x86-64 ABI, because a migrated process is always a Linux-ABI
// process on both systems; nothing kernel-internal (segment selectors,
// -ERESTARTSYS codes, orig_rax) is stored.

/// The host an image was taken on.
public struct SourceHost: Codable, Equatable, Sendable {
    /// "linux" or "freebsd".
    public var os: String
    public var kernelRelease: String
    /// Always "x86_64" in version 1; readers refuse anything else.
    public var arch: String
    public var pageSize: UInt32
    public var cpu: CPUFeatures
    public var ferryVersion: String
    public var hostname: String
    /// Seconds since the epoch when the checkpoint was taken.
    public var createdAt: Double
    /// The source's clocks read together when the checkpoint began (absent
    /// in older images): a restore on another host offsets its time
    /// namespace so CLOCK_MONOTONIC/BOOTTIME go on from these.
    public var clocks: SourceClocks?
    /// The abstract Unix socket name ("ferry-tcp-hold-" and 16 lowercase hex
    /// digits) of the repair guard that holds the tree's TCP connections on
    /// the source host between the kill and the restore (absent when none):
    /// a restore on that host asks it to let go of them first.
    public var tcpHold: String?

    /// Whether `name` has the form of a `tcpHold` name.
    public static func validTCPHold(_ name: String) -> Bool {
        let prefix = "ferry-tcp-hold-"
        guard name.hasPrefix(prefix) else { return false }
        let digits = name.utf8.dropFirst(prefix.utf8.count)
        return digits.count == 16 && digits.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    public init(os: String, kernelRelease: String, arch: String = "x86_64", pageSize: UInt32 = 4096,
                cpu: CPUFeatures, ferryVersion: String = FerryVersion.string, hostname: String = "",
                createdAt: Double = 0, clocks: SourceClocks? = nil) {
        self.os = os; self.kernelRelease = kernelRelease; self.arch = arch; self.pageSize = pageSize
        self.cpu = cpu; self.ferryVersion = ferryVersion; self.hostname = hostname; self.createdAt = createdAt
        self.clocks = clocks
    }
}

/// CLOCK_REALTIME, CLOCK_MONOTONIC and CLOCK_BOOTTIME in nanoseconds.
public struct SourceClocks: Codable, Equatable, Sendable {
    public var realtimeNs: Int64
    public var monotonicNs: Int64
    public var boottimeNs: Int64
    public init(realtimeNs: Int64, monotonicNs: Int64, boottimeNs: Int64) {
        self.realtimeNs = realtimeNs; self.monotonicNs = monotonicNs; self.boottimeNs = boottimeNs
    }
}

/// What the CPU offers a user process, in the terms both OSes share.
public struct CPUFeatures: Codable, Equatable, Sendable {
    /// XCR0: the XSAVE state components the kernel enabled.
    public var xcr0: UInt64
    /// Size of the standard-format XSAVE area for `xcr0` (CPUID 0xD.0 EBX).
    public var xsaveSize: UInt32
    /// CPUID feature names (lower-case, as in /proc/cpuinfo: "sse4_2", "avx2", "avx512f", …).
    public var flags: [String]
    public var vendor: String
    public var model: String
    /// Where each extended XSAVE component lies in this CPU's standard-format
    /// area (CPUID 0xD sub-leaf n), for every component of `xcr0` above SSE.
    /// CPUs differ: AMD has no MPX hole, so its AVX-512 and PKRU offsets are
    /// lower than Intel's. Absent from older images.
    public var xsaveLayout: [XSaveExtent]?

    public init(xcr0: UInt64, xsaveSize: UInt32, flags: [String], vendor: String = "", model: String = "",
                xsaveLayout: [XSaveExtent]? = nil) {
        self.xcr0 = xcr0; self.xsaveSize = xsaveSize; self.flags = flags; self.vendor = vendor; self.model = model
        self.xsaveLayout = xsaveLayout
    }
}

/// One XSAVE state component's place in a standard-format area.
public struct XSaveExtent: Codable, Equatable, Sendable {
    /// The component's bit number in XCR0 / XSTATE_BV.
    public var component: Int
    public var offset: Int
    public var size: Int
    public init(component: Int, offset: Int, size: Int) { self.component = component; self.offset = offset; self.size = size }
}

/// A reference to a file as it was when the image was taken, so the restorer
/// can check it maps the same file.
public struct FileIdentity: Codable, Equatable, Sendable {
    public var path: String
    public var size: UInt64
    /// Modification time, nanoseconds since the epoch.
    public var mtimeNs: Int64
    public var device: UInt64
    public var inode: UInt64
    /// GNU build-id (hex) for ELF files, when present: preferred over size+mtime.
    public var buildID: String?

    public init(path: String, size: UInt64, mtimeNs: Int64, device: UInt64 = 0, inode: UInt64 = 0, buildID: String? = nil) {
        self.path = path; self.size = size; self.mtimeNs = mtimeNs; self.device = device; self.inode = inode; self.buildID = buildID
    }
}

public struct Credentials: Codable, Equatable, Sendable {
    public var uid: UInt32, euid: UInt32, suid: UInt32, fsuid: UInt32
    public var gid: UInt32, egid: UInt32, sgid: UInt32, fsgid: UInt32
    public var groups: [UInt32]
    public init(uid: UInt32 = 0, euid: UInt32 = 0, suid: UInt32 = 0, fsuid: UInt32 = 0,
                gid: UInt32 = 0, egid: UInt32 = 0, sgid: UInt32 = 0, fsgid: UInt32 = 0, groups: [UInt32] = []) {
        self.uid = uid; self.euid = euid; self.suid = suid; self.fsuid = fsuid
        self.gid = gid; self.egid = egid; self.sgid = sgid; self.fsgid = fsgid; self.groups = groups
    }
}

/// One resource limit. `UInt64.max` is "unlimited" on both systems.
public struct ResourceLimit: Codable, Equatable, Sendable {
    /// Linux resource number (RLIMIT_NOFILE = 7, …).
    public var resource: Int32
    public var soft: UInt64
    public var hard: UInt64
    public init(resource: Int32, soft: UInt64, hard: UInt64) { self.resource = resource; self.soft = soft; self.hard = hard }
}

/// The address-space layout fields the kernel keeps for a process (the
/// fields of Linux's `prctl_mm_map`; FreeBSD holds a subset, set by the
/// ferry kernel module).
public struct LayoutFields: Codable, Equatable, Sendable {
    public var startCode: UInt64, endCode: UInt64
    public var startData: UInt64, endData: UInt64
    public var startBrk: UInt64, brk: UInt64
    public var startStack: UInt64
    public var argStart: UInt64, argEnd: UInt64
    public var envStart: UInt64, envEnd: UInt64
    /// The auxiliary vector as (type, value) pairs flattened, ending with AT_NULL.
    public var auxv: [UInt64]

    public init(startCode: UInt64 = 0, endCode: UInt64 = 0, startData: UInt64 = 0, endData: UInt64 = 0,
                startBrk: UInt64 = 0, brk: UInt64 = 0, startStack: UInt64 = 0,
                argStart: UInt64 = 0, argEnd: UInt64 = 0, envStart: UInt64 = 0, envEnd: UInt64 = 0, auxv: [UInt64] = []) {
        self.startCode = startCode; self.endCode = endCode; self.startData = startData; self.endData = endData
        self.startBrk = startBrk; self.brk = brk; self.startStack = startStack
        self.argStart = argStart; self.argEnd = argEnd; self.envStart = envStart; self.envEnd = envEnd; self.auxv = auxv
    }
}

/// Page protection, in PROT_* bits.
public struct Protection: OptionSet, Codable, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = Protection(rawValue: 1)
    public static let write = Protection(rawValue: 2)
    public static let exec = Protection(rawValue: 4)

    /// "rwx" / "r--" form as in /proc/PID/maps.
    public var description: String {
        (contains(.read) ? "r" : "-") + (contains(.write) ? "w" : "-") + (contains(.exec) ? "x" : "-")
    }
}

/// What a mapping is. The restorer decides from this how to recreate it.
public enum MappingKind: String, Codable, Sendable, CaseIterable {
    /// Private anonymous memory.
    case anonymous
    /// Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, or a deleted/SysV shm file).
    case sharedAnonymous
    /// A private mapping of a file (code, data, copy-on-write).
    case privateFile
    /// A shared mapping of a file; writes reach the file.
    case sharedFile
    /// The main thread's stack.
    case stack
    /// The brk heap.
    case heap
    /// The kernel-provided vDSO code.
    case vdso
    /// The kernel-provided vDSO data pages ([vvar], [vvar_vclock]).
    case vvar
    /// The legacy vsyscall page: not restorable, never recreated.
    case vsyscall
}

extension MappingKind {
    /// Private anonymous memory of any kind (plain, heap, stack): what
    /// pre-copy tracks and restore fills through a userfaultfd.
    public var isPrivateAnonymous: Bool { self == .anonymous || self == .heap || self == .stack }
}

public struct Mapping: Codable, Equatable, Sendable {
    public var start: UInt64
    public var end: UInt64
    public var protection: Protection
    public var kind: MappingKind
    /// Mapping flags that matter for restore (see `MappingFlags`).
    public var flags: MappingFlags
    /// Offset into the file, for file mappings.
    public var fileOffset: UInt64
    /// The mapped file, for file mappings.
    public var file: FileIdentity?
    /// The name the kernel shows ("[heap]", "[stack]", "[vvar]", …) or "".
    public var name: String
    /// For shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, /dev/zero): the
    /// object it maps, the same in every mapping of the image that shares it
    /// (its shmem inode at checkpoint); `fileOffset` is the offset in it.
    public var sharedObject: UInt64?
    /// When that object is a memfd: its name, size and whether it allows sealing.
    public var memfd: MemfdIdentity?
    /// For a System V shared memory attach (shmat): the segment, the same in
    /// every mapping of it; `fileOffset` is the offset in it.
    public var sysv: SysVSegment?

    public init(start: UInt64, end: UInt64, protection: Protection, kind: MappingKind, flags: MappingFlags = [],
                fileOffset: UInt64 = 0, file: FileIdentity? = nil, name: String = "", sharedObject: UInt64? = nil,
                memfd: MemfdIdentity? = nil, sysv: SysVSegment? = nil) {
        self.start = start; self.end = end; self.protection = protection; self.kind = kind; self.flags = flags
        self.fileOffset = fileOffset; self.file = file; self.name = name; self.sharedObject = sharedObject
        self.memfd = memfd; self.sysv = sysv
    }

    public var size: UInt64 { end - start }
    public func contains(_ address: UInt64) -> Bool { address >= start && address < end }
}

/// A System V shared memory segment (shmget) as a restore re-creates it:
/// what shmctl(IPC_STAT) shows of it at checkpoint.
public struct SysVSegment: Codable, Equatable, Sendable {
    /// The shmid, kept on restore (programs keep it).
    public var id: Int32
    /// IPC_PRIVATE (0) for a private or removed segment.
    public var key: Int32
    /// Permission bits (the low 9 bits of shm_perm.mode).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var cuid: UInt32
    public var cgid: UInt32
    /// shm_segsz: bytes, as given to shmget (attaches round it up to pages).
    public var size: UInt64
    /// Removed (IPC_RMID) while attached (SHM_DEST): gone once the last attach goes.
    public var destroyed: Bool
    /// Locked in memory (SHM_LOCK).
    public var locked: Bool
    public init(id: Int32, key: Int32, mode: UInt32, uid: UInt32, gid: UInt32, cuid: UInt32, cgid: UInt32, size: UInt64,
                destroyed: Bool, locked: Bool = false) {
        self.id = id; self.key = key; self.mode = mode; self.uid = uid; self.gid = gid; self.cuid = cuid; self.cgid = cgid
        self.size = size; self.destroyed = destroyed; self.locked = locked
    }
}

/// A memfd (memfd_create) as a restore re-creates it.
public struct MemfdIdentity: Codable, Equatable, Sendable {
    /// The name given to memfd_create (without "memfd:").
    public var name: String
    public var size: UInt64
    /// Created with MFD_ALLOW_SEALING and not sealed yet (F_GET_SEALS read 0).
    public var allowsSealing: Bool
    public init(name: String, size: UInt64, allowsSealing: Bool) {
        self.name = name; self.size = size; self.allowsSealing = allowsSealing
    }
}

public struct MappingFlags: OptionSet, Codable, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let shared = MappingFlags(rawValue: 1 << 0)
    public static let growsDown = MappingFlags(rawValue: 1 << 1)
    /// The file was deleted while mapped: contents are in the image.
    public static let deletedFile = MappingFlags(rawValue: 1 << 2)
    public static let locked = MappingFlags(rawValue: 1 << 3)
    public static let dontDump = MappingFlags(rawValue: 1 << 4)
    /// madvise advice and mmap flags the kernel shows in VmFlags (sr, rr, dc, mg, hg, nh, wf, nr, dp).
    public static let sequential = MappingFlags(rawValue: 1 << 5)
    public static let random = MappingFlags(rawValue: 1 << 6)
    public static let dontFork = MappingFlags(rawValue: 1 << 7)
    public static let mergeable = MappingFlags(rawValue: 1 << 8)
    public static let hugePage = MappingFlags(rawValue: 1 << 9)
    public static let noHugePage = MappingFlags(rawValue: 1 << 10)
    public static let wipeOnFork = MappingFlags(rawValue: 1 << 11)
    public static let noReserve = MappingFlags(rawValue: 1 << 12)
    public static let droppable = MappingFlags(rawValue: 1 << 13)
    /// A shared mapping whose file was opened for writing (VmFlags "mw"): it
    /// may be mprotect'ed writable later, so the file is opened read-write on
    /// restore even where the mapping is read-only now.
    public static let mayWrite = MappingFlags(rawValue: 1 << 14)
}

/// General-purpose registers in a neutral x86-64 form: no segment selectors,
/// no orig_rax, no kernel restart codes (see `SyscallState`).
public struct Registers: Codable, Equatable, Sendable {
    public var rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0
    public var rsi: UInt64 = 0, rdi: UInt64 = 0, rbp: UInt64 = 0, rsp: UInt64 = 0
    public var r8: UInt64 = 0, r9: UInt64 = 0, r10: UInt64 = 0, r11: UInt64 = 0
    public var r12: UInt64 = 0, r13: UInt64 = 0, r14: UInt64 = 0, r15: UInt64 = 0
    public var rip: UInt64 = 0
    public var rflags: UInt64 = 0
    public var fsBase: UInt64 = 0
    public var gsBase: UInt64 = 0
    public init() {}
}

/// The FPU/SSE/AVX state: an XSAVE area in the standard (non-compacted)
/// format, with the XCR0 mask it was saved under. The first 512 bytes are
/// the FXSAVE image both OSes share.
public struct ExtendedState: Codable, Equatable, Sendable {
    public var xcr0: UInt64
    public var area: Bytes
    public init(xcr0: UInt64, area: [UInt8]) { self.xcr0 = xcr0; self.area = Bytes(area) }
}

/// How a thread that was stopped inside a system call continues.
public enum SyscallRestart: String, Codable, Sendable {
    /// Not inside a syscall, or the syscall completed: nothing to redo.
    case none
    /// Re-issue the same syscall with the same arguments (restart semantics).
    case restart
    /// Re-issue as `restart_syscall`-style with the remaining time (nanosleep, clock_nanosleep, poll…):
    /// the restorer re-issues the syscall; the arguments already hold what remains where the kernel
    /// updated them.
    case restartWithRemaining
    /// Return EINTR to the program (the kernel would have: a handler ran without SA_RESTART, …).
    case interrupted
}

public struct SyscallState: Codable, Equatable, Sendable {
    /// Linux x86-64 syscall number.
    public var number: Int64
    public var args: [UInt64]
    public var restart: SyscallRestart
    public init(number: Int64, args: [UInt64], restart: SyscallRestart) { self.number = number; self.args = args; self.restart = restart }
}

public struct SignalStack: Codable, Equatable, Sendable {
    public var sp: UInt64, size: UInt64, flags: Int32
    public init(sp: UInt64 = 0, size: UInt64 = 0, flags: Int32 = 2 /* SS_DISABLE */) { self.sp = sp; self.size = size; self.flags = flags }
}

/// A registered restartable-sequences area.
public struct RseqArea: Codable, Equatable, Sendable {
    public var address: UInt64, length: UInt32, signature: UInt32
    public init(address: UInt64, length: UInt32, signature: UInt32) { self.address = address; self.length = length; self.signature = signature }
}

/// A pending signal with its siginfo (128 bytes, Linux layout).
public struct PendingSignal: Codable, Equatable, Sendable {
    public var signo: Int32
    public var info: Bytes
    public init(signo: Int32, info: [UInt8]) { self.signo = signo; self.info = Bytes(info) }
}

public struct ThreadImage: Codable, Equatable, Sendable {
    public var tid: Int32
    /// The tid in each pid namespace, outermost first (last = innermost).
    public var nsTids: [Int32]
    public var registers: Registers
    public var extendedState: ExtendedState?
    /// Blocked-signal mask, bit (signo-1).
    public var sigmask: UInt64
    public var sigaltstack: SignalStack
    public var rseq: RseqArea?
    public var syscall: SyscallState?
    public var pendingSignals: [PendingSignal]
    /// set_tid_address() pointer, 0 if unknown.
    public var clearChildTid: UInt64
    public var name: String
    /// Scheduling, timer slack, parent-death signal and robust futex list.
    /// Absent from older images.
    public var attributes: ThreadAttributes?
    /// The thread's cgroups where they differ from its process's (a v1
    /// hierarchy places threads one by one). Absent: the process's.
    public var cgroups: [CgroupMembership]?

    public init(tid: Int32, nsTids: [Int32] = [], registers: Registers = Registers(), extendedState: ExtendedState? = nil,
                sigmask: UInt64 = 0, sigaltstack: SignalStack = SignalStack(), rseq: RseqArea? = nil,
                syscall: SyscallState? = nil, pendingSignals: [PendingSignal] = [], clearChildTid: UInt64 = 0, name: String = "") {
        self.tid = tid; self.nsTids = nsTids; self.registers = registers; self.extendedState = extendedState
        self.sigmask = sigmask; self.sigaltstack = sigaltstack; self.rseq = rseq; self.syscall = syscall
        self.pendingSignals = pendingSignals; self.clearChildTid = clearChildTid; self.name = name
    }
}

/// Per-thread kernel attributes a program can set and later rely on.
public struct ThreadAttributes: Codable, Equatable, Sendable {
    /// sched_getscheduler: SCHED_OTHER 0, FIFO 1, RR 2, BATCH 3, IDLE 5, DEADLINE 6;
    /// with SCHED_RESET_ON_FORK (0x40000000) when set.
    public var schedPolicy: Int32
    /// sched_priority (real-time policies; 0 otherwise).
    public var schedPriority: Int32
    /// The nice value, -20…19.
    public var nice: Int32
    /// prctl(PR_GET_TIMERSLACK), in ns.
    public var timerSlackNs: UInt64
    /// prctl(PR_GET_PDEATHSIG): the signal sent when the parent dies, 0 none.
    public var parentDeathSignal: Int32
    /// get_robust_list: the list head's address and length (0 when none).
    public var robustListHead: UInt64
    public var robustListLength: UInt64
    /// CapInh, CapPrm, CapEff, CapBnd and CapAmb as /proc shows them (hex).
    public var capabilities: [String]?

    public init(schedPolicy: Int32 = 0, schedPriority: Int32 = 0, nice: Int32 = 0, timerSlackNs: UInt64 = 50_000,
                parentDeathSignal: Int32 = 0, robustListHead: UInt64 = 0, robustListLength: UInt64 = 0) {
        self.schedPolicy = schedPolicy; self.schedPriority = schedPriority; self.nice = nice
        self.timerSlackNs = timerSlackNs; self.parentDeathSignal = parentDeathSignal
        self.robustListHead = robustListHead; self.robustListLength = robustListLength
    }
}

/// The cgroup a task is in, in one hierarchy (a line of /proc/PID/cgroup).
public struct CgroupMembership: Codable, Equatable, Sendable {
    /// The v1 hierarchy's controllers, sorted and comma-separated ("cpu,cpuacct",
    /// "name=systemd"); "" for the v2 unified hierarchy.
    public var controllers: String
    /// The cgroup's path from the hierarchy's root ("/" is the root).
    public var path: String
    /// The checkpointing ferry was in this same cgroup: a restore leaves the
    /// task in the restoring ferry's own cgroup of this hierarchy instead.
    public var checkpointerOwn: Bool?
    public init(controllers: String, path: String, checkpointerOwn: Bool? = nil) {
        self.controllers = controllers; self.path = path; self.checkpointerOwn = checkpointerOwn
    }
}

/// Per-process kernel attributes a program can set and later rely on.
public struct ProcessAttributes: Codable, Equatable, Sendable {
    /// /proc/PID/oom_score_adj, -1000…1000.
    public var oomScoreAdj: Int32
    /// prctl(PR_GET_THP_DISABLE).
    public var thpDisabled: Bool
    /// prctl(PR_GET_CHILD_SUBREAPER).
    public var childSubreaper: Bool
    /// prctl(PR_GET_NO_NEW_PRIVS) (NoNewPrivs in /proc/PID/status).
    public var noNewPrivs: Bool
    /// /proc/PID/loginuid; 4294967295 is "unset".
    public var loginUID: UInt32
    /// membarrier REGISTER commands in effect (4 GLOBAL_EXPEDITED, 16 PRIVATE_EXPEDITED, 64 …_SYNC_CORE, 256 …_RSEQ); absent in older images.
    public var membarrierRegistrations: UInt32?

    public init(oomScoreAdj: Int32 = 0, thpDisabled: Bool = false, childSubreaper: Bool = false, noNewPrivs: Bool = false,
                loginUID: UInt32 = .max) {
        self.oomScoreAdj = oomScoreAdj; self.thpDisabled = thpDisabled; self.childSubreaper = childSubreaper
        self.noNewPrivs = noNewPrivs; self.loginUID = loginUID
    }
}

public struct SignalAction: Codable, Equatable, Sendable {
    public var signo: Int32
    /// Handler address; 0 = SIG_DFL, 1 = SIG_IGN.
    public var handler: UInt64
    /// SA_* flags, Linux values.
    public var flags: UInt64
    public var restorer: UInt64
    public var mask: UInt64
    public init(signo: Int32, handler: UInt64, flags: UInt64, restorer: UInt64, mask: UInt64) {
        self.signo = signo; self.handler = handler; self.flags = flags; self.restorer = restorer; self.mask = mask
    }
}

public enum FileKind: String, Codable, Sendable {
    case regular, directory, pipe, fifo, characterDevice, socket, other
    /// Linux anonymous-inode files (`anon_inode:[eventfd]` …), restored by
    /// recreating them with the same state.
    case eventfd, timerfd, signalfd, epoll
}

/// An eventfd's counter and mode.
public struct EventFDState: Codable, Equatable, Sendable {
    public var count: UInt64
    /// EFD_SEMAPHORE: each read returns 1.
    public var semaphore: Bool
    public init(count: UInt64, semaphore: Bool) { self.count = count; self.semaphore = semaphore }
}

/// A timerfd: clock, settings and the expirations not yet read.
public struct TimerFDState: Codable, Equatable, Sendable {
    /// Linux clock id (0 REALTIME, 1 MONOTONIC, 7 BOOTTIME, 8/9 the _ALARM ones).
    public var clock: Int32
    /// TFD_TIMER_ABSTIME (1) / TFD_TIMER_CANCEL_ON_SET (2) as last set.
    public var settimeFlags: Int32
    /// Time left until the next expiration (0: disarmed) and the period.
    public var valueNs: UInt64
    public var intervalNs: UInt64
    /// Expirations that happened and were not read yet.
    public var ticks: UInt64
    /// For a CLOCK_REALTIME(_ALARM) timer set with TFD_TIMER_ABSTIME: its
    /// deadline in ns since the epoch, which holds on any host (wall clocks agree).
    public var realtimeDeadlineNs: UInt64?
    public init(clock: Int32, settimeFlags: Int32, valueNs: UInt64, intervalNs: UInt64, ticks: UInt64,
                realtimeDeadlineNs: UInt64? = nil) {
        self.clock = clock; self.settimeFlags = settimeFlags; self.valueNs = valueNs; self.intervalNs = intervalNs; self.ticks = ticks
        self.realtimeDeadlineNs = realtimeDeadlineNs
    }
}

/// One file an epoll instance watches, registered under fd `fd` of the same process.
public struct EpollWatch: Codable, Equatable, Sendable {
    public var fd: Int32
    /// EPOLLIN … plus EPOLLET/EPOLLONESHOT/EPOLLEXCLUSIVE/EPOLLWAKEUP, Linux values.
    public var events: UInt32
    public var data: UInt64
    public init(fd: Int32, events: UInt32, data: UInt64) { self.fd = fd; self.events = events; self.data = data }
}

public struct FileDescriptorImage: Codable, Equatable, Sendable {
    public var fd: Int32
    public var kind: FileKind
    /// open(2) flags, Linux values (access mode, O_APPEND, O_NONBLOCK, …).
    public var flags: Int32
    public var closeOnExec: Bool
    public var offset: Int64
    /// Path for files, directories, fifos and devices.
    public var path: String
    /// For pipes: an id shared by both ends within the image (the pipe's
    /// inode, below 2^32). For FIFOs: an id shared by every fd of one FIFO,
    /// with `fifoIDBit` set (so it never meets a pipe's); 0 in older images
    /// (the FIFO's bytes and size were not carried).
    public var pipeID: UInt64
    /// For pipes and FIFOs: the size (F_GETPIPE_SZ); absent in older images (the default, 65536).
    public var pipeSize: Int?
    /// The bit every FIFO's `pipeID` has and no pipe's has.
    public static let fifoIDBit: UInt64 = 1 << 63
    /// For regular files, identity when opened.
    public var file: FileIdentity?
    /// Set when this fd shares its open file (offset, status flags, state)
    /// with the lower fd `sharedWith` of the same process (dup, dup2,
    /// `2>&1`); it is restored as a dup of that fd and its other fields are
    /// informational.
    public var sharedWith: Int32?
    /// Set on the fds of *different* processes of the tree that share one
    /// open file (inherited across fork): the same id on each. It is opened
    /// once, from the first process's entry, and inherited by the others.
    public var treeShareID: UInt64?
    public var eventfd: EventFDState?
    public var timerfd: TimerFDState?
    /// signalfd: the signals it reads (bit n-1 = signal n).
    public var signalMask: UInt64?
    /// epoll: what it watches.
    public var epollWatches: [EpollWatch]?
    /// A TCP or UDP socket (kind `socket`).
    public var inet: InetSocketImage?
    /// A Unix socket (kind `.socket`): see `UnixSocketImage`.
    public var unixSocket: UnixSocketImage?
    /// A netlink route or generic socket (kind `.socket`): see `NetlinkSocketImage`.
    public var netlink: NetlinkSocketImage?
    /// POSIX, flock and OFD locks held through this open file, taken again on restore.
    public var locks: [FileLock]?
    /// A memfd or a regular file unlinked while open (kind `.regular`): the
    /// id of its contents in `ImageMetadata.fileContents`. The file is
    /// re-created from them and this fd reopens it (its own open file).
    public var contentsID: UInt64?
    /// The owner (F_SETOWN) and signal (F_SETSIG) of the open file, which
    /// signal-driven I/O (O_ASYNC, in `flags`) notifies; nil when neither is set.
    public var owner: FileOwner?
    /// A file under /proc/PID of a process of the tree (`path` names it with
    /// that process's pid, as recorded): the pid, reopened on restore under
    /// the restored process's pid (`ProcFilePlan`).
    public var procPid: Int32?
    /// A pseudo-terminal end (kind `.characterDevice`) whose master the tree
    /// holds: the pty is re-created at its index; nil for other devices.
    public var pty: PtyEnd?
    /// The controlling terminal of a shell job (`--shell-job`: a session led
    /// outside the tree): restored as the terminal the restore runs on.
    public var shellTerminal: Bool?

    public init(fd: Int32, kind: FileKind, flags: Int32, closeOnExec: Bool = false, offset: Int64 = 0,
                path: String = "", pipeID: UInt64 = 0, file: FileIdentity? = nil, sharedWith: Int32? = nil,
                eventfd: EventFDState? = nil, timerfd: TimerFDState? = nil, signalMask: UInt64? = nil,
                epollWatches: [EpollWatch]? = nil) {
        self.fd = fd; self.kind = kind; self.flags = flags; self.closeOnExec = closeOnExec; self.offset = offset
        self.path = path; self.pipeID = pipeID; self.file = file; self.sharedWith = sharedWith
        self.eventfd = eventfd; self.timerfd = timerfd; self.signalMask = signalMask; self.epollWatches = epollWatches
    }
}

/// One end of a pseudo-terminal: /dev/pts/`index`'s master (/dev/ptmx) or
/// slave. The master's primary fd carries the pair's state.
public struct PtyEnd: Codable, Equatable, Sendable {
    public var index: Int32
    public var master: Bool
    public var pair: PtyState?
    public init(index: Int32, master: Bool, pair: PtyState? = nil) { self.index = index; self.master = master; self.pair = pair }
}

/// A pseudo-terminal's state: the slave's termios (struct termios2, Linux
/// values), window size, lock (TIOCSPTLCK), packet mode (TIOCPKT),
/// exclusive mode (TIOCEXCL), the owner and mode of /dev/pts/N, and the
/// bytes queued in each direction: written on the master and not yet read
/// from the slave (`toSlave`), written on the slave and not yet read from
/// the master (`toMaster`).
public struct PtyState: Codable, Equatable, Sendable {
    /// At most this many bytes queued in one direction (a tty's line buffer
    /// is 4 KiB; its flip buffers at most 64 KiB more).
    public static let maxQueued = 1 << 20
    public var termios: Termios
    public var rows: UInt16, columns: UInt16, xPixels: UInt16, yPixels: UInt16
    public var locked: Bool
    public var packet: Bool
    public var exclusive: Bool
    public var slaveUID: UInt32, slaveGID: UInt32, slaveMode: UInt32
    public var toSlave: Bytes
    public var toMaster: Bytes
    public init(termios: Termios, rows: UInt16 = 0, columns: UInt16 = 0, xPixels: UInt16 = 0, yPixels: UInt16 = 0,
                locked: Bool = false, packet: Bool = false, exclusive: Bool = false,
                slaveUID: UInt32 = 0, slaveGID: UInt32 = 0, slaveMode: UInt32 = 0o620, toSlave: [UInt8] = [], toMaster: [UInt8] = []) {
        self.termios = termios; self.rows = rows; self.columns = columns; self.xPixels = xPixels; self.yPixels = yPixels
        self.locked = locked; self.packet = packet; self.exclusive = exclusive
        self.slaveUID = slaveUID; self.slaveGID = slaveGID; self.slaveMode = slaveMode
        self.toSlave = Bytes(toSlave); self.toMaster = Bytes(toMaster)
    }

    /// Why the record cannot be restored (nil: it can).
    public func problem() -> String? {
        if termios.cc.count != Termios.controlCount { return "termios has \(termios.cc.count) control characters, not \(Termios.controlCount)" }
        for (what, b) in [("written on the master", toSlave), ("written on the slave", toMaster)] where b.count > Self.maxQueued {
            return "\(b.count) queued bytes \(what), over \(Self.maxQueued)"
        }
        if slaveMode & ~0o7777 != 0 { return "slave mode 0o\(String(slaveMode, radix: 8)) is not a permission mode" }
        return nil
    }
}

/// struct termios2 (Linux, x86-64): flags, line discipline, the 19 control
/// characters (c_cc) and the speeds.
public struct Termios: Codable, Equatable, Sendable {
    public static let controlCount = 19
    public var iflag: UInt32, oflag: UInt32, cflag: UInt32, lflag: UInt32
    public var line: UInt8
    public var cc: [UInt8]
    public var ispeed: UInt32, ospeed: UInt32
    public init(iflag: UInt32, oflag: UInt32, cflag: UInt32, lflag: UInt32, line: UInt8 = 0, cc: [UInt8], ispeed: UInt32 = 38400, ospeed: UInt32 = 38400) {
        self.iflag = iflag; self.oflag = oflag; self.cflag = cflag; self.lflag = lflag; self.line = line; self.cc = cc
        self.ispeed = ispeed; self.ospeed = ospeed
    }
}

/// A lock held through an open file (fdinfo "lock:" line).
public struct FileLock: Codable, Equatable, Sendable {
    /// `lease`: a lease (F_SETLEASE) on the open file, start 0 and no end.
    public enum Kind: String, Codable, Sendable { case posix, flock, ofd, lease }
    public var kind: Kind
    /// A write (exclusive) lock or lease; otherwise read (shared).
    public var write: Bool
    /// First byte (0 for flock).
    public var start: UInt64
    /// Last byte, inclusive; nil: to the end of the file (and flock).
    public var end: UInt64?
    public init(kind: Kind, write: Bool, start: UInt64 = 0, end: UInt64? = nil) {
        self.kind = kind; self.write = write; self.start = start; self.end = end
    }
}

public struct IntervalTimer: Codable, Equatable, Sendable {
    /// 0 ITIMER_REAL, 1 ITIMER_VIRTUAL, 2 ITIMER_PROF.
    public var which: Int32
    public var intervalNs: UInt64
    public var valueNs: UInt64
    public init(which: Int32, intervalNs: UInt64, valueNs: UInt64) { self.which = which; self.intervalNs = intervalNs; self.valueNs = valueNs }
}

/// A POSIX timer (timer_create) of a process: its id, clock, how it
/// notifies, and its time left and period when checkpointed.
public struct PosixTimer: Codable, Equatable, Sendable {
    /// The timer id the program holds (timer_t).
    public var id: Int32
    /// CLOCK_REALTIME 0, MONOTONIC 1, BOOTTIME 7, REALTIME_ALARM 8,
    /// BOOTTIME_ALARM 9, TAI 11, or -6: the CPU time of the whole process
    /// (CLOCK_PROCESS_CPUTIME_ID as the kernel shows it).
    public var clock: Int32
    /// sigev_notify: SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD 2, or
    /// SIGEV_SIGNAL|SIGEV_THREAD_ID 4.
    public var notify: Int32
    /// sigev_signo.
    public var signal: Int32
    /// sigev_value (the pointer or integer the signal carries).
    public var value: UInt64
    /// For SIGEV_THREAD_ID: the `tid` of the thread of this image it signals.
    public var thread: Int32?
    /// Time left before the next expiry (0: disarmed) and the period (0: one-shot), in ns.
    public var valueNs: UInt64
    public var intervalNs: UInt64
    /// timer_getoverrun at checkpoint (the overrun of the last delivered expiry).
    public var overrun: Int32
    public init(id: Int32, clock: Int32, notify: Int32, signal: Int32, value: UInt64 = 0, thread: Int32? = nil,
                valueNs: UInt64 = 0, intervalNs: UInt64 = 0, overrun: Int32 = 0) {
        self.id = id; self.clock = clock; self.notify = notify; self.signal = signal; self.value = value
        self.thread = thread; self.valueNs = valueNs; self.intervalNs = intervalNs; self.overrun = overrun
    }
}

/// A session's controlling terminal: /dev/pts/`index`, whose foreground
/// process group is `foregroundGroup` (a group of the tree, as the image numbers it).
public struct ControllingTerminal: Codable, Equatable, Sendable {
    public var index: Int32
    public var foregroundGroup: Int32
    public init(index: Int32, foregroundGroup: Int32) { self.index = index; self.foregroundGroup = foregroundGroup }
}

public struct ProcessImage: Codable, Equatable, Sendable {
    public var pid: Int32
    /// The pid in each pid namespace, outermost first.
    public var nsPids: [Int32]
    public var ppid: Int32
    public var pgid: Int32
    public var sid: Int32
    public var comm: String
    public var credentials: Credentials
    public var exe: FileIdentity?
    public var cwd: String
    public var root: String
    public var umask: UInt32
    public var rlimits: [ResourceLimit]
    public var layout: LayoutFields
    public var mappings: [Mapping]
    public var threads: [ThreadImage]
    public var signalActions: [SignalAction]
    /// Signals pending for the whole process (shared pending queue).
    public var sharedPendingSignals: [PendingSignal]
    public var files: [FileDescriptorImage]
    public var timers: [IntervalTimer]
    /// Which kernel personality the process runs under.
    public var personality: UInt32
    /// The XSAVE components the process may use (arch_prctl
    /// ARCH_GET_XCOMP_PERM): a dynamic component such as AMX tile data is
    /// in it only when the process asked for it (ARCH_REQ_XCOMP_PERM).
    /// Absent where the kernel has no such call, and in older images.
    public var xcompPermitted: UInt64?
    /// OOM score, THP, subreaper, no_new_privs, loginuid. Absent from older images.
    public var attributes: ProcessAttributes?
    /// The cgroup of the process in each hierarchy (/proc/PID/cgroup). Absent from older images.
    public var cgroups: [CgroupMembership]?
    /// POSIX timers (timer_create). Absent from older images and where the process has none.
    public var posixTimers: [PosixTimer]?
    /// On a session leader whose session has a controlling terminal that is
    /// a pty of the tree: its index and the foreground process group.
    public var controllingTerminal: ControllingTerminal?
    /// Pages this process still shared copy-on-write with its parent at the
    /// checkpoint (the same physical page at the same address, in a private
    /// mapping the parent has identically). They are not stored for this
    /// process: the restore forks it from its filled parent and keeps them.
    /// In address order, disjoint, each inside one of its mappings. Absent
    /// when none (and in older images).
    public var inheritedPages: [PageRange]?
    /// The working directory was removed while the process kept it (the
    /// kernel shows it as "PATH (deleted)"; `cwd` is PATH). The restore
    /// creates PATH, lets the process enter it, and removes it again.
    /// Absent when the directory exists (and in older images).
    public var cwdDeleted: DeletedDirectory?
    /// The process was stopped (a group stop: SIGSTOP, SIGTSTP, SIGTTIN or
    /// SIGTTOU) by this signal; the restore leaves it stopped. Absent when
    /// it was running (and in older images).
    public var stopSignal: Int32?
    /// The process shares its parent's descriptor table (clone with
    /// CLONE_FILES): the restore forks it with CLONE_FILES and restores the
    /// table once, in the first process of the group. Absent when not.
    public var sharesFilesWithParent: Bool?

    public init(pid: Int32, nsPids: [Int32] = [], ppid: Int32 = 0, pgid: Int32 = 0, sid: Int32 = 0, comm: String = "",
                credentials: Credentials = Credentials(), exe: FileIdentity? = nil, cwd: String = "/", root: String = "/",
                umask: UInt32 = 0o22, rlimits: [ResourceLimit] = [], layout: LayoutFields = LayoutFields(),
                mappings: [Mapping] = [], threads: [ThreadImage] = [], signalActions: [SignalAction] = [],
                sharedPendingSignals: [PendingSignal] = [], files: [FileDescriptorImage] = [], timers: [IntervalTimer] = [],
                personality: UInt32 = 0) {
        self.pid = pid; self.nsPids = nsPids; self.ppid = ppid; self.pgid = pgid; self.sid = sid; self.comm = comm
        self.credentials = credentials; self.exe = exe; self.cwd = cwd; self.root = root; self.umask = umask
        self.rlimits = rlimits; self.layout = layout; self.mappings = mappings; self.threads = threads
        self.signalActions = signalActions; self.sharedPendingSignals = sharedPendingSignals; self.files = files
        self.timers = timers; self.personality = personality
    }
}

/// A directory removed while a process still had it as its working directory.
public struct DeletedDirectory: Codable, Equatable, Sendable {
    /// Permission bits (07777).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public init(mode: UInt32, uid: UInt32, gid: UInt32) { self.mode = mode; self.uid = uid; self.gid = gid }
}

/// Whole pages [start, end) of an address space.
public struct PageRange: Codable, Equatable, Hashable, Sendable {
    public var start: UInt64
    public var end: UInt64
    public init(start: UInt64, end: UInt64) { self.start = start; self.end = end }
    public var pageCount: Int { Int((end - start) / UInt64(ImageFormat.pageSize)) }
}

/// Data kept in the kernel rather than in the process's memory, stored once
/// per image and referred to by id: the bytes in flight in a pipe.
public struct PipeData: Codable, Equatable, Sendable {
    public var pipeID: UInt64
    public var bytes: Bytes
    public init(pipeID: UInt64, bytes: [UInt8]) { self.pipeID = pipeID; self.bytes = Bytes(bytes) }
}

/// A file whose contents live only in memory and are stored in the image:
/// a memfd, or a regular file unlinked while a process held it open. One
/// record per file (by inode), whatever number of fds and mappings reach it.
public struct FileContents: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable { case memfd, deleted }
    /// Its inode at checkpoint: the `contentsID` of its fds and, for a
    /// memfd, the `sharedObject` of its shared mappings.
    public var id: UInt64
    public var kind: Kind
    /// A memfd's name (without "memfd:"), or the path the deleted file had.
    public var name: String
    /// Permission bits (st_mode & 07777), owner and group.
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// A memfd's seals (F_GET_SEALS; F_SEAL_SEAL alone for one made without
    /// MFD_ALLOW_SEALING), added once the contents are written; 0 for a deleted file.
    public var seals: Int32
    /// The file's size (st_size).
    public var size: UInt64
    /// Where the file holds data ([start, end) byte ranges, in order, as
    /// SEEK_DATA/SEEK_HOLE found them); the rest are holes, left unwritten
    /// on restore. Absent: one range, the whole file.
    public var extents: [[UInt64]]?
    /// The bytes of `extents`, one after the other.
    public var bytes: Bytes
    /// Access and modification times (ns since the epoch), set after the
    /// contents are written. Absent in older images.
    public var atimeNs: Int64?
    public var mtimeNs: Int64?

    public init(id: UInt64, kind: Kind, name: String, mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0, seals: Int32 = 0,
                size: UInt64? = nil, extents: [[UInt64]]? = nil, bytes: [UInt8]) {
        self.id = id; self.kind = kind; self.name = name; self.mode = mode; self.uid = uid; self.gid = gid
        self.seals = seals; self.size = size ?? UInt64(bytes.count); self.extents = extents; self.bytes = Bytes(bytes)
    }

    /// The data ranges: `extents`, or the whole file.
    public var dataRanges: [Range<UInt64>] {
        guard let extents else { return size > 0 ? [0..<size] : [] }
        return extents.compactMap { $0.count == 2 && $0[0] <= $0[1] ? $0[0]..<$0[1] : nil }
    }
}

/// The header of a CONTENTS record: the file (its `bytes` empty) and where
/// in it the record's bytes go. A file's records follow each other, from
/// offset 0, each ending where the next begins.
public struct FileContentsChunk: Codable, Equatable, Sendable {
    public var file: FileContents
    public var offset: UInt64
    public init(file: FileContents, offset: UInt64) { self.file = file; self.offset = offset }
}

/// The metadata of a whole image (everything but page contents).
public struct ImageMetadata: Codable, Equatable, Sendable {
    public var source: SourceHost
    public var processes: [ProcessImage]
    public var pipes: [PipeData]
    /// memfds and deleted files held by the tree (absent when none).
    public var fileContents: [FileContents]?
    /// Container spec as JSON (FerryContainer's neutral spec), when the processes ran in a container.
    public var container: Bytes?

    public init(source: SourceHost, processes: [ProcessImage], pipes: [PipeData] = [], container: [UInt8]? = nil,
                fileContents: [FileContents] = []) {
        self.source = source; self.processes = processes; self.pipes = pipes; self.container = container.map(Bytes.init)
        self.fileContents = fileContents.isEmpty ? nil : fileContents
    }

    /// `fileContents`, none when absent.
    public var contents: [FileContents] { fileContents ?? [] }
}

/// Raw bytes that encode as base64 in JSON (XSAVE areas, siginfo, pipe data).
public struct Bytes: Codable, Equatable, Sendable {
    public var value: [UInt8]
    public init(_ value: [UInt8]) { self.value = value }
    public var count: Int { value.count }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let decoded = Base64.decode(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "invalid base64"))
        }
        value = decoded
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(Base64.encode(value))
    }
}

/// The owner of an open file for signal-driven I/O: a process of the tree
/// (F_OWNER_PID), given by its pid in its own namespace, or none (pid 0);
/// the signal sent (F_SETSIG; 0: SIGIO).
public struct FileOwner: Codable, Equatable, Sendable {
    public var pid: Int32
    public var signal: Int32
    public init(pid: Int32, signal: Int32) { self.pid = pid; self.signal = signal }
}
