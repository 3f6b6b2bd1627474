import Foundation

/// cpuset(1) settings for a jail (freebsd-facts.md §7.2, general knowledge
/// [K], not re-read in source): `cpuset -l LIST -j JAIL` restricts the CPUs,
/// `cpuset -n POLICY:DOMAINS -j JAIL` the memory domains. Linux cpuset.mems
/// restricts allocation to the nodes and allocates locally first, so it
/// becomes the `first-touch` policy; other policies read back with a note.
public struct FreeBSDCpuset: Equatable, Sendable {
    public var cpus: CPUList?
    public var domains: CPUList?
    public var policy: String

    public static let policies: Set<String> = ["first-touch", "round-robin", "prefer", "interleave"]

    public init(cpus: CPUList? = nil, domains: CPUList? = nil, policy: String = "first-touch") {
        self.cpus = cpus
        self.domains = domains
        self.policy = policy
    }

    public var isEmpty: Bool { cpus == nil && domains == nil }

    /// One argument vector per cpuset(1) call, without the program name.
    public func arguments(jail: String) -> [[String]] {
        var calls: [[String]] = []
        if let cpus { calls.append(["-l", cpus.description, "-j", jail]) }
        if let domains { calls.append(["-n", "\(policy):\(domains)", "-j", jail]) }
        return calls
    }

    /// Merges one `cpuset …` call (arguments after the program name) into
    /// this setting; returns the jail it names.
    mutating func apply(arguments args: [String], source: String) throws -> String? {
        var jail: String?
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < args.count else { throw ContainerError.invalid(field: source, reason: "\(args[i - 1]) needs a value") }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "-l": cpus = try CPUList(parsing: try value(), field: "\(source) -l")
            case "-j": jail = try value()
            case "-n":
                let spec = try value()
                let parts = spec.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, Self.policies.contains(String(parts[0])) else {
                    throw ContainerError.invalid(field: "\(source) -n", reason: "expected POLICY:DOMAINS with a known policy, got \"\(spec)\"")
                }
                policy = String(parts[0])
                domains = try CPUList(parsing: String(parts[1]), field: "\(source) -n")
            default:
                throw ContainerError.invalid(field: source, reason: "unsupported cpuset option \"\(args[i])\"")
            }
            i += 1
        }
        return jail
    }

    static func from(_ limits: CPUSetLimits) -> FreeBSDCpuset {
        FreeBSDCpuset(cpus: limits.cpus, domains: limits.mems)
    }

    func limits(notes: inout NoteList) -> CPUSetLimits {
        if domains != nil, policy != "first-touch" {
            notes.approximate("cpuset -n", "\(policy):\(domains!)",
                              "Linux cpuset.mems restricts nodes and allocates locally; the \(policy) policy is not kept")
        }
        return CPUSetLimits(cpus: cpus, mems: domains)
    }
}
