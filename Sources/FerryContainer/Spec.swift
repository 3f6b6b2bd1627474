import Foundation

/// The neutral container spec: what isolates a container and what limits it,
/// independent of Linux (namespaces + cgroups) and FreeBSD (jail + RCTL +
/// cpuset). Readers turn a native configuration into a `ContainerSpec` plus a
/// list of what they could not carry (`Untranslated`); writers do the reverse.
///
/// Units are fixed here so conversions happen exactly once, at the edges:
/// CPU time in microseconds, memory in bytes, I/O in bytes/s and ops/s.
/// `nil` always means "not limited" / "not set"; negative values cannot be
/// represented (readers reject them, except the -1 / "max" spellings of
/// "unlimited", which become `nil`).
public struct ContainerSpec: Codable, Equatable, Sendable {
    /// Identity used by the FreeBSD side (jail name, RCTL subject). Linux
    /// configurations have no name.
    public var name: String?
    public var isolation: Isolation
    public var limits: Limits

    public init(name: String? = nil, isolation: Isolation = Isolation(), limits: Limits = Limits()) {
        self.name = name
        self.isolation = isolation
        self.limits = limits
    }
}

// MARK: - Isolation

public enum NamespaceKind: String, Codable, CaseIterable, Sendable, Comparable {
    case pid, mount, uts, ipc, network, user, cgroup, time

    /// The name in OCI `linux.namespaces[].type`.
    public var ociName: String { rawValue }
    /// The name of the link in /proc/PID/ns/.
    public var procName: String {
        switch self {
        case .mount: "mnt"
        case .network: "net"
        default: rawValue
        }
    }

    public init?(ociName: String) { self.init(rawValue: ociName) }

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

public struct Namespace: Codable, Equatable, Sendable {
    public var kind: NamespaceKind
    /// Join this existing namespace (OCI `path`) instead of creating one.
    public var path: String?

    public init(_ kind: NamespaceKind, path: String? = nil) {
        self.kind = kind
        self.path = path
    }
}

/// One line of a user-namespace id map: `containerID hostID size`.
public struct IDMapping: Codable, Equatable, Sendable {
    public var containerID: UInt32
    public var hostID: UInt32
    public var size: UInt32

    public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
        self.containerID = containerID
        self.hostID = hostID
        self.size = size
    }
}

public struct Isolation: Codable, Equatable, Sendable {
    /// Sorted by kind, at most one entry per kind.
    public var namespaces: [Namespace]
    /// Only meaningful with a uts namespace.
    public var hostname: String?
    public var domainname: String?
    /// Root filesystem of the container (OCI `root.path`, jail `path`).
    public var rootPath: String?
    public var rootReadonly: Bool
    public var uidMappings: [IDMapping]
    public var gidMappings: [IDMapping]

    public init(namespaces: [Namespace] = [], hostname: String? = nil, domainname: String? = nil,
                rootPath: String? = nil, rootReadonly: Bool = false,
                uidMappings: [IDMapping] = [], gidMappings: [IDMapping] = []) {
        self.namespaces = namespaces.sorted { $0.kind < $1.kind }
        self.hostname = hostname
        self.domainname = domainname
        self.rootPath = rootPath
        self.rootReadonly = rootReadonly
        self.uidMappings = uidMappings
        self.gidMappings = gidMappings
    }

    public func has(_ kind: NamespaceKind) -> Bool { namespaces.contains { $0.kind == kind } }

    /// Adds a namespace, keeping the list sorted; a second entry of the same
    /// kind is an error (one line naming the kind).
    public mutating func add(_ ns: Namespace, field: String) throws {
        guard !has(ns.kind) else {
            throw ContainerError.invalid(field: field, reason: "namespace \(ns.kind.ociName) given twice")
        }
        namespaces.append(ns)
        namespaces.sort { $0.kind < $1.kind }
    }
}

// MARK: - Limits

public struct Limits: Codable, Equatable, Sendable {
    public var cpu: CPULimits
    public var cpuset: CPUSetLimits
    public var memory: MemoryLimits
    /// Linux pids.max: counts tasks (threads).
    public var pidsMax: UInt64?
    public var blockIO: BlockIOLimits
    /// Device access rules, in order (later rules win, as in cgroup v1).
    public var devices: [DeviceRule]
    public var rlimits: [RLimit]

    public init(cpu: CPULimits = CPULimits(), cpuset: CPUSetLimits = CPUSetLimits(),
                memory: MemoryLimits = MemoryLimits(), pidsMax: UInt64? = nil,
                blockIO: BlockIOLimits = BlockIOLimits(), devices: [DeviceRule] = [],
                rlimits: [RLimit] = []) {
        self.cpu = cpu
        self.cpuset = cpuset
        self.memory = memory
        self.pidsMax = pidsMax
        self.blockIO = blockIO
        self.devices = devices
        self.rlimits = rlimits
    }
}

public struct CPULimits: Codable, Equatable, Sendable {
    /// CFS bandwidth: `quota` µs of CPU time every `period` µs. nil quota = unlimited.
    public var quota: UInt64?
    public var period: UInt64?
    /// Relative weight in cgroup v1 units (2...262144, default 1024); v2
    /// `cpu.weight` is converted with `CPUWeight`.
    public var shares: UInt64?

    public init(quota: UInt64? = nil, period: UInt64? = nil, shares: UInt64? = nil) {
        self.quota = quota
        self.period = period
        self.shares = shares
    }

    /// Linux's default CFS period, used when a quota comes without one from
    /// FreeBSD (which has no period).
    public static let defaultPeriod: UInt64 = 100_000
    /// Linux accepts periods from 1 ms to 1 s.
    public static let periodRange: ClosedRange<UInt64> = 1_000...1_000_000
}

public struct CPUSetLimits: Codable, Equatable, Sendable {
    public var cpus: CPUList?
    /// NUMA memory nodes (FreeBSD: memory domains).
    public var mems: CPUList?

    public init(cpus: CPUList? = nil, mems: CPUList? = nil) {
        self.cpus = cpus
        self.mems = mems
    }
}

public struct MemoryLimits: Codable, Equatable, Sendable {
    /// Hard limit on memory use, bytes.
    public var limit: UInt64?
    /// Swap alone (v2 `memory.swap.max` semantics), bytes. OCI and cgroup v1
    /// count memory + swap; their readers subtract `limit`.
    public var swap: UInt64?
    /// Soft limit / protection (v1 soft_limit_in_bytes, v2 memory.low, OCI reservation).
    public var reservation: UInt64?

    public init(limit: UInt64? = nil, swap: UInt64? = nil, reservation: UInt64? = nil) {
        self.limit = limit
        self.swap = swap
        self.reservation = reservation
    }
}

/// A block device number, `MAJ:MIN`.
public struct DeviceNumber: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32

    public init(_ major: UInt32, _ minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    public var description: String { "\(major):\(minor)" }

    /// Parses `MAJ:MIN`.
    public init(parsing text: Substring, field: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let maj = UInt32(parts[0]), let min = UInt32(parts[1]) else {
            throw ContainerError.invalid(field: field, reason: "expected a device MAJ:MIN, got \"\(text)\"")
        }
        self.init(maj, min)
    }
}

/// A rate limit on one device; `device == nil` means the limit applies to
/// the whole container across all devices (FreeBSD's RCTL semantics).
public struct DeviceRate: Codable, Equatable, Sendable {
    public var device: DeviceNumber?
    public var rate: UInt64

    public init(device: DeviceNumber?, rate: UInt64) {
        self.device = device
        self.rate = rate
    }
}

public struct BlockIOLimits: Codable, Equatable, Sendable {
    public var readBps: [DeviceRate]
    public var writeBps: [DeviceRate]
    public var readIops: [DeviceRate]
    public var writeIops: [DeviceRate]
    /// Proportional weight (v1 blkio.weight 10...1000; v2 io.weight 1...10000).
    public var weight: UInt64?

    public init(readBps: [DeviceRate] = [], writeBps: [DeviceRate] = [], readIops: [DeviceRate] = [],
                writeIops: [DeviceRate] = [], weight: UInt64? = nil) {
        self.readBps = readBps
        self.writeBps = writeBps
        self.readIops = readIops
        self.writeIops = writeIops
        self.weight = weight
    }

    /// The four throttle kinds with their neutral field name, in a fixed order.
    public enum Kind: String, CaseIterable, Sendable {
        case readBps, writeBps, readIops, writeIops
    }

    public subscript(kind: Kind) -> [DeviceRate] {
        get {
            switch kind {
            case .readBps: readBps
            case .writeBps: writeBps
            case .readIops: readIops
            case .writeIops: writeIops
            }
        }
        set {
            switch kind {
            case .readBps: readBps = newValue
            case .writeBps: writeBps = newValue
            case .readIops: readIops = newValue
            case .writeIops: writeIops = newValue
            }
        }
    }
}

/// One device access rule (OCI `linux.resources.devices[]`, cgroup v1 devices.allow/deny).
public struct DeviceRule: Codable, Equatable, Sendable {
    public enum DeviceType: String, Codable, Sendable { case all = "a", char = "c", block = "b" }
    public var allow: Bool
    public var type: DeviceType
    /// nil = any (`*`).
    public var major: UInt32?
    public var minor: UInt32?
    /// Some of "rwm".
    public var access: String

    public init(allow: Bool, type: DeviceType, major: UInt32? = nil, minor: UInt32? = nil, access: String = "rwm") {
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access
    }

    /// The cgroup v1 spelling: `c 1:3 rwm`, `a *:* rwm`.
    public var cgroupLine: String {
        "\(type.rawValue) \(major.map(String.init) ?? "*"):\(minor.map(String.init) ?? "*") \(access)"
    }
}

/// A process resource limit (OCI `process.rlimits[]`); `UInt64.max` is RLIM_INFINITY.
public struct RLimit: Codable, Equatable, Sendable {
    /// `RLIMIT_NOFILE` etc.
    public var type: String
    public var soft: UInt64
    public var hard: UInt64

    public init(type: String, soft: UInt64, hard: UInt64) {
        self.type = type
        self.soft = soft
        self.hard = hard
    }

    public static let infinity = UInt64.max
    public static let knownTypes: Set<String> = [
        "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
        "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
        "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
    ]
}

// MARK: - Validation

extension ContainerSpec {
    /// Checks the cross-field rules every reader must uphold. Throws the
    /// first violation as a one-line error naming the field.
    public func validate() throws {
        let cpu = limits.cpu
        if cpu.quota != nil, cpu.period == nil {
            throw ContainerError.invalid(field: "cpu.quota", reason: "a quota needs a period")
        }
        if let period = cpu.period, !CPULimits.periodRange.contains(period) {
            throw ContainerError.invalid(field: "cpu.period",
                                         reason: "\(period) µs is outside \(CPULimits.periodRange.lowerBound)...\(CPULimits.periodRange.upperBound)")
        }
        if let quota = cpu.quota, quota < 1_000 {
            throw ContainerError.invalid(field: "cpu.quota", reason: "\(quota) µs is below the 1000 µs minimum")
        }
        if let shares = cpu.shares, !(2...262_144).contains(shares) {
            throw ContainerError.invalid(field: "cpu.shares", reason: "\(shares) is outside 2...262144")
        }
        for mapping in isolation.uidMappings + isolation.gidMappings where mapping.size == 0 {
            throw ContainerError.invalid(field: "linux.uidMappings", reason: "an id mapping of size 0")
        }
        if isolation.hostname != nil, !isolation.has(.uts) {
            throw ContainerError.invalid(field: "hostname", reason: "a hostname needs a uts namespace")
        }
    }
}
