import Foundation

/// Reads the container around a running Linux process from /proc and the
/// cgroup filesystems. Only files are read (no syscalls beyond open/read/
/// readlink), so the module stays Foundation-only; `root` lets tests point it
/// at a fake tree.
///
/// - Namespaces: a namespace counts as the container's own when the link in
///   /proc/PID/ns/ differs from the reference process's (pid 1 by default;
///   ferry's own process, with a note, when pid 1's links are unreadable).
/// - Hostname: from PID's root at /etc/hostname (another uts namespace's
///   hostname cannot be read without setns); domainname is not read.
/// - Root: the target of /proc/PID/root when it is not "/".
/// - cgroups: /proc/PID/cgroup, with v1 hierarchies under `cgroupRoot/<controllers>`
///   and the v2 hierarchy at `cgroupRoot/unified` (hybrid) or `cgroupRoot` itself.
///   Where a controller is in both, v1 wins (the kernel binds a controller to one).
/// - rlimits: /proc/PID/limits, those with a finite soft or hard value.
public struct LinuxLive: Sendable {
    public var root: String
    public var referencePID: Int32

    public init(root: String = "/", referencePID: Int32 = 1) {
        self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
        self.referencePID = referencePID
    }

    private func path(_ p: String) -> String { root + p }
    private func readText(_ p: String) -> String? { try? String(contentsOfFile: path(p), encoding: .utf8) }
    private func link(_ p: String) -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: path(p)) }
    private var cgroupRoot: String { path("/sys/fs/cgroup") }

    public func read(pid: Int32) throws -> Translated<ContainerSpec> {
        guard FileManager.default.fileExists(atPath: path("/proc/\(pid)")) else {
            throw ContainerError.unreadable(path: path("/proc/\(pid)"), reason: "no such process")
        }
        var spec = ContainerSpec()
        var notes = NoteList()
        let reference = try referenceNamespaces(notes: &notes)
        for kind in NamespaceKind.allCases {
            // A kernel without this namespace kind has no link.
            guard let mine = link("/proc/\(pid)/ns/\(kind.procName)") else { continue }
            if mine != reference[kind] { try spec.isolation.add(Namespace(kind), field: "/proc/\(pid)/ns/\(kind.procName)") }
        }
        if spec.isolation.has(.user) {
            spec.isolation.uidMappings = try Self.idMap(readText("/proc/\(pid)/uid_map"), field: "/proc/\(pid)/uid_map")
            spec.isolation.gidMappings = try Self.idMap(readText("/proc/\(pid)/gid_map"), field: "/proc/\(pid)/gid_map")
        }
        if spec.isolation.has(.uts) {
            if let name = readText("/proc/\(pid)/root/etc/hostname")?.trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty {
                spec.isolation.hostname = name
            } else {
                notes.drop("/proc/\(pid)/root/etc/hostname", "?", "the uts namespace's hostname could not be read")
            }
        }
        if let rootLink = link("/proc/\(pid)/root"), rootLink != "/" { spec.isolation.rootPath = rootLink }

        let cgroups = try readCgroups(pid: pid)
        spec.limits = cgroups.output
        notes.append(contentsOf: cgroups.notes)
        if let limitsText = readText("/proc/\(pid)/limits") {
            spec.limits.rlimits = try Self.rlimits(limitsText, field: "/proc/\(pid)/limits")
        }
        try spec.validate()
        return Translated(spec, notes: notes.items)
    }

    /// The reference process's namespace links: pid 1's, or, where those
    /// cannot be read (no CAP_SYS_PTRACE over pid 1, as in some sandboxes),
    /// this process's own, with a note.
    private func referenceNamespaces(notes: inout NoteList) throws -> [NamespaceKind: String] {
        func links(_ proc: String) -> [NamespaceKind: String] {
            var result: [NamespaceKind: String] = [:]
            for kind in NamespaceKind.allCases { result[kind] = link("/proc/\(proc)/ns/\(kind.procName)") }
            return result
        }
        let primary = links(String(referencePID))
        if !primary.isEmpty { return primary }
        let own = links("self")
        guard !own.isEmpty else {
            throw ContainerError.unreadable(path: path("/proc/\(referencePID)/ns/"),
                                            reason: "the reference process's namespaces are needed to tell the container's apart")
        }
        notes.approximate("/proc/\(referencePID)/ns", "unreadable",
                          "namespaces were compared with ferry's own, not pid \(referencePID)'s: run ferry in the host's namespaces")
        return own
    }

    func readCgroups(pid: Int32) throws -> Translated<Limits> {
        let file = "/proc/\(pid)/cgroup"
        guard let text = readText(file) else {
            throw ContainerError.unreadable(path: path(file), reason: "cannot read the process's cgroups")
        }
        var v1: [String: CgroupFiles] = [:]
        var v2: CgroupFiles?
        for line in CgroupValue.lines(text) {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else {
                throw ContainerError.invalid(field: file, reason: "expected \"ID:CONTROLLERS:PATH\", got \"\(line)\"")
            }
            let controllers = parts[1].split(separator: ",").map(String.init).filter { !$0.hasPrefix("name=") }
            let cgPath = String(parts[2])
            if parts[0] == "0" && parts[1].isEmpty {
                let unified = cgroupRoot + "/unified"
                let base = FileManager.default.fileExists(atPath: unified + "/cgroup.controllers") ? unified : cgroupRoot
                v2 = .directory(URL(fileURLWithPath: base + cgPath))
                continue
            }
            guard !controllers.isEmpty else { continue }
            let joined = cgroupRoot + "/" + controllers.joined(separator: ",")
            for c in controllers {
                let single = cgroupRoot + "/" + c
                let base = FileManager.default.fileExists(atPath: single) ? single : joined
                v1[c] = .directory(URL(fileURLWithPath: base + cgPath))
            }
        }
        var result = try CgroupV1.read(v1)
        if let v2 {
            let fromV2 = try CgroupV2.read(v2)
            result.output.fillUnset(from: fromV2.output)
            result.notes += fromV2.notes
            if v1["devices"] == nil {
                result.notes.append(Untranslated(field: "cgroup v2 devices", value: "?",
                                                 reason: "v2 device control is an eBPF program and cannot be read from files"))
            }
        }
        return result
    }

    static func idMap(_ text: String?, field: String) throws -> [IDMapping] {
        try CgroupValue.lines(text).map { line in
            let n = line.split(separator: " ").compactMap { UInt32($0) }
            guard n.count == 3 else {
                throw ContainerError.invalid(field: field, reason: "expected \"INSIDE OUTSIDE SIZE\", got \"\(line)\"")
            }
            return IDMapping(containerID: n[0], hostID: n[1], size: n[2])
        }
    }

    private static let limitNames: [(String, String)] = [
        ("Max cpu time", "RLIMIT_CPU"), ("Max file size", "RLIMIT_FSIZE"), ("Max data size", "RLIMIT_DATA"),
        ("Max stack size", "RLIMIT_STACK"), ("Max core file size", "RLIMIT_CORE"), ("Max resident set", "RLIMIT_RSS"),
        ("Max processes", "RLIMIT_NPROC"), ("Max open files", "RLIMIT_NOFILE"), ("Max locked memory", "RLIMIT_MEMLOCK"),
        ("Max address space", "RLIMIT_AS"), ("Max file locks", "RLIMIT_LOCKS"), ("Max pending signals", "RLIMIT_SIGPENDING"),
        ("Max msgqueue size", "RLIMIT_MSGQUEUE"), ("Max nice priority", "RLIMIT_NICE"),
        ("Max realtime priority", "RLIMIT_RTPRIO"), ("Max realtime timeout", "RLIMIT_RTTIME"),
    ]

    /// /proc/PID/limits: a header, then "NAME  SOFT  HARD  [UNITS]" in fixed columns.
    static func rlimits(_ text: String, field: String) throws -> [RLimit] {
        var result: [RLimit] = []
        for line in text.split(separator: "\n").dropFirst() {
            guard let (name, type) = limitNames.first(where: { line.hasPrefix($0.0 + " ") }) else { continue }
            let values = line.dropFirst(name.count).split(separator: " ")
            guard values.count >= 2 else {
                throw ContainerError.invalid(field: field, reason: "expected soft and hard values in \"\(line)\"")
            }
            func value(_ s: Substring) throws -> UInt64 {
                if s == "unlimited" { return RLimit.infinity }
                guard let v = UInt64(s) else {
                    throw ContainerError.invalid(field: field, reason: "bad limit \"\(s)\" for \(name)")
                }
                return v
            }
            let limit = RLimit(type: type, soft: try value(values[0]), hard: try value(values[1]))
            if limit.soft != RLimit.infinity || limit.hard != RLimit.infinity { result.append(limit) }
        }
        return result
    }
}

extension Limits {
    /// Takes from `other` every limit that is unset here.
    mutating func fillUnset(from other: Limits) {
        cpu.quota = cpu.quota ?? other.cpu.quota
        cpu.period = cpu.period ?? other.cpu.period
        cpu.shares = cpu.shares ?? other.cpu.shares
        cpuset.cpus = cpuset.cpus ?? other.cpuset.cpus
        cpuset.mems = cpuset.mems ?? other.cpuset.mems
        memory.limit = memory.limit ?? other.memory.limit
        memory.swap = memory.swap ?? other.memory.swap
        memory.reservation = memory.reservation ?? other.memory.reservation
        pidsMax = pidsMax ?? other.pidsMax
        for kind in BlockIOLimits.Kind.allCases where blockIO[kind].isEmpty {
            blockIO[kind] = other.blockIO[kind]
        }
        blockIO.weight = blockIO.weight ?? other.blockIO.weight
        if devices.isEmpty { devices = other.devices }
        if rlimits.isEmpty { rlimits = other.rlimits }
    }
}
