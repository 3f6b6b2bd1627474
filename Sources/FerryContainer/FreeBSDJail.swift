import Foundation

/// A FreeBSD jail with its limits: jail(8) parameters, RCTL rules and a
/// cpuset. Renders as jail.conf text (rules and cpuset as `exec.created`
/// commands, so the file alone re-creates everything), as `jail -c`
/// arguments, as rctl rule lines and as cpuset argument vectors.
///
/// Namespace mapping (freebsd-facts.md §7.3–7.4):
/// - uts ⇄ `host = new` + `host.hostname`/`host.domainname`; none ⇄ `host = inherit`.
/// - network ⇄ `vnet = new` (needs VIMAGE); none ⇄ `ip4 = inherit; ip6 = inherit`.
///   Reading an address-restricted jail (ip4/ip6 new or disable) gives a
///   network namespace, with the addresses reported as not translated.
/// - ipc ⇄ `sysvmsg`/`sysvsem`/`sysvshm = new`.
/// - mount ⇄ `enforce_statfs = 2` (the default; mounts are hidden, not
///   private); none ⇄ `enforce_statfs = 0`.
/// - pid, user (with id maps), cgroup, time: no counterpart, reported.
/// - root path ⇄ `path` ("/" when the spec has none).
public struct FreeBSDJailConfig: Equatable, Sendable {
    public struct Parameter: Equatable, Sendable {
        public var key: String
        /// nil for a bare boolean (`persist;`).
        public var value: String?
        /// `+=` in jail.conf (exec.* lists).
        public var append: Bool

        public init(_ key: String, _ value: String? = nil, append: Bool = false) {
            self.key = key
            self.value = value
            self.append = append
        }
    }

    public var name: String
    /// In order, without `name` and without the exec.* lines that carry rules and cpuset.
    public var parameters: [Parameter]
    public var rules: [RctlRule]
    public var cpuset: FreeBSDCpuset

    public init(name: String, parameters: [Parameter] = [], rules: [RctlRule] = [], cpuset: FreeBSDCpuset = FreeBSDCpuset()) {
        self.name = name
        self.parameters = parameters
        self.rules = rules
        self.cpuset = cpuset
    }

    public func value(_ key: String) -> String? { parameters.last { $0.key == key }?.value }

    // MARK: Rendering

    public var rctlLines: [String] { rules.map(\.description) }
    public var cpusetArguments: [[String]] { cpuset.arguments(jail: name) }

    /// Arguments for `jail`: `-c name=N key=value … persist`.
    public var jailCreateArguments: [String] {
        ["-c", "name=\(name)"] + parameters.map { p in p.value.map { "\(p.key)=\($0)" } ?? p.key }
    }

    public var jailConf: String {
        var lines = ["\(name) {"]
        for p in parameters {
            lines.append("    \(p.key)" + (p.value.map { " \(p.append ? "+=" : "=") \(Self.quote($0))" } ?? "") + ";")
        }
        for rule in rules { lines.append("    exec.created += \(Self.quote("rctl -a \(rule)"));") }
        for args in cpusetArguments { lines.append("    exec.created += \(Self.quote((["cpuset"] + args).joined(separator: " ")));") }
        if !rules.isEmpty { lines.append("    exec.poststop += \(Self.quote("rctl -r jail:\(name)"));") }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    static func quote(_ s: String) -> String {
        let plain = !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || "._/-:=,".contains($0) }
        return plain ? s : "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

public enum FreeBSDJail {
    public static let defaultName = "ferry"

    // MARK: Spec → jail

    public static func write(_ spec: ContainerSpec, name: String? = nil) throws -> Translated<FreeBSDJailConfig> {
        var notes = NoteList()
        let jail = name ?? spec.name ?? defaultName
        guard !jail.isEmpty, jail.allSatisfy({ $0.isLetter || $0.isNumber || "_-".contains($0) }) else {
            throw ContainerError.invalid(field: "name", reason: "\"\(jail)\" is not a usable jail name (letters, digits, _ and -)")
        }
        let iso = spec.isolation
        var params: [FreeBSDJailConfig.Parameter] = [.init("path", iso.rootPath ?? "/")]
        if iso.rootReadonly {
            notes.drop("root.readonly", true, "a jail path has no read-only flag; mount the root read-only (e.g. nullfs -o ro)")
        }
        if iso.has(.uts) {
            params.append(.init("host", "new"))
            if let h = iso.hostname { params.append(.init("host.hostname", h)) }
            if let d = iso.domainname { params.append(.init("host.domainname", d)) }
        } else {
            params.append(.init("host", "inherit"))
        }
        if iso.has(.network) {
            params.append(.init("vnet", "new"))
            notes.approximate("namespace network", "new", "vnet = new needs a VIMAGE kernel; interfaces are not created (vnet.interface)")
        } else {
            params += [.init("ip4", "inherit"), .init("ip6", "inherit")]
        }
        if iso.has(.ipc) {
            params += ["sysvmsg", "sysvsem", "sysvshm"].map { .init($0, "new") }
            notes.approximate("namespace ipc", "new", "SysV IPC is private; jail scoping of POSIX message queues and shm is not established")
        }
        params.append(.init("enforce_statfs", iso.has(.mount) ? "2" : "0"))
        if iso.has(.mount) {
            notes.approximate("namespace mount", "new", "a jail has no private mount table: mounts stay global, hidden by enforce_statfs = 2")
        }
        params.append(.init("persist"))
        for ns in iso.namespaces {
            switch ns.kind {
            case .pid:
                notes.drop("namespace pid", "new", "FreeBSD has no pid namespace: a jail sees only its processes, but PIDs stay global and there is no pid 1 inside")
            case .user:
                let maps = (iso.uidMappings.map { "uid \($0.containerID) \($0.hostID) \($0.size)" }
                    + iso.gidMappings.map { "gid \($0.containerID) \($0.hostID) \($0.size)" }).joined(separator: ", ")
                notes.drop("namespace user", maps.isEmpty ? "new" : maps, "FreeBSD has no user namespace and no id mapping")
            case .cgroup:
                notes.drop("namespace cgroup", "new", "FreeBSD has no cgroup namespace (limits are RCTL rules on the jail)")
            case .time:
                notes.drop("namespace time", "new", "FreeBSD has no time namespace")
            default: break
            }
            if let path = ns.path {
                notes.drop("namespace \(ns.kind.ociName).path", path, "joining an existing Linux namespace has no jail counterpart; a new one is described")
            }
        }
        let rules = try RctlTranslation.rules(for: spec.limits, jail: jail, notes: &notes)
        let config = FreeBSDJailConfig(name: jail, parameters: params, rules: rules, cpuset: .from(spec.limits.cpuset))
        return Translated(config, notes: notes.items)
    }

    // MARK: Jail → spec

    public static func read(_ config: FreeBSDJailConfig) throws -> Translated<ContainerSpec> {
        var notes = NoteList()
        var spec = ContainerSpec(name: config.name)
        let known: Set<String> = ["path", "host", "host.hostname", "host.domainname", "vnet", "ip4", "ip6", "sysvmsg",
                                  "sysvsem", "sysvshm", "enforce_statfs", "persist", "name", "jid"]
        var iso = Isolation(rootPath: config.value("path"))
        iso.hostname = config.value("host.hostname")
        iso.domainname = config.value("host.domainname")
        if config.value("host") == "new" || iso.hostname != nil || iso.domainname != nil { try iso.add(Namespace(.uts), field: "host") }

        let ip4 = config.value("ip4"), ip6 = config.value("ip6")
        if config.value("vnet") == "new" {
            try iso.add(Namespace(.network), field: "vnet")
        } else if !(ip4 == "inherit" && ip6 == "inherit") {
            try iso.add(Namespace(.network), field: "ip4")
            notes.approximate("ip4/ip6", "\(ip4 ?? "default")/\(ip6 ?? "default")",
                              "an address-restricted jail shares the host's network stack; a Linux network namespace is a private stack")
        }
        for key in ["ip4.addr", "ip6.addr"] {
            for p in config.parameters where p.key == key {
                notes.drop(key, p.value ?? "", "addresses belong to the runtime's network setup, not the container spec")
            }
        }
        let sysv = ["sysvmsg", "sysvsem", "sysvshm"].map { ($0, config.value($0)) }
        if sysv.contains(where: { $0.1 == "new" }) {
            try iso.add(Namespace(.ipc), field: "sysvmsg")
            for (key, value) in sysv where value != "new" {
                notes.approximate(key, value ?? "default", "an ipc namespace makes all SysV IPC private")
            }
        } else {
            for (key, value) in sysv where value == "disable" {
                notes.drop(key, "disable", "Linux cannot disable SysV IPC for a container")
            }
        }
        let statfs = config.value("enforce_statfs") ?? "2"
        guard let level = Int(statfs), (0...2).contains(level) else {
            throw ContainerError.invalid(field: "enforce_statfs", reason: "expected 0, 1 or 2, got \"\(statfs)\"")
        }
        if level > 0 { try iso.add(Namespace(.mount), field: "enforce_statfs") }
        if level == 1 { notes.approximate("enforce_statfs", 1, "a mount namespace hides every mount outside the root (level 2)") }
        spec.isolation = iso

        for p in config.parameters where !known.contains(p.key) && !p.key.hasPrefix("ip4.addr") && !p.key.hasPrefix("ip6.addr") {
            let reason = p.key == "devfs_ruleset"
                ? "device visibility ruleset: no Linux device allow-list can be derived from its number"
                : "no Linux container counterpart"
            notes.drop(p.key, p.value ?? "true", reason)
        }
        spec.limits = try RctlTranslation.limits(from: config.rules, jail: config.name, notes: &notes)
        spec.limits.cpuset = config.cpuset.limits(notes: &notes)
        try spec.validate()
        return Translated(spec, notes: notes.items)
    }

    /// Parses a FreeBSD configuration and translates it.
    public static func read(text: String, source: String = "jail.conf") throws -> Translated<ContainerSpec> {
        let parsed = try JailConfParser.parse(text, source: source)
        let t = try read(parsed.output)
        return Translated(t.output, notes: parsed.notes + t.notes)
    }
}
