import Foundation

/// FreeBSD RCTL rules, `subject:subject-id:resource:action=amount[/per]`
/// (rctl(8); the resource table is freebsd-facts.md §7.1, verified), and the
/// translation of the spec's limits to and from rules with the `jail`
/// subject (§7.5).
///
/// Conversions (Linux → FreeBSD):
/// - CPU: pcpu = 100 × quota / period, **rounded up** so the container never
///   gets less CPU than on Linux; an inexact result or a period other than
///   100 ms is reported with the exact value. No quota = no rule.
/// - memory limit → memoryuse:deny (same bytes; FreeBSD's RSS cap is soft:
///   reported), swap → swapuse:deny.
/// - pids.max → nthr:deny=N (Linux counts threads, so this is exact) and
///   maxproc:deny=N (processes; implied, written for clarity).
/// - I/O rates → readbps/writebps/readiops/writeiops:throttle. RCTL has one
///   limit for the whole jail: several devices are collapsed to the **sum**
///   of their rates (the container can still do in total what it could on
///   Linux), and every collapse is reported.
/// And back: pcpu P → quota P × 1000 µs per 100 000 µs; nthr (else maxproc)
/// → pids.max; per-process (`/process`) rules for datasize, stacksize,
/// coredumpsize, memorylocked, vmemoryuse, openfiles and cputime → rlimits.
public struct RctlRule: Equatable, Sendable, CustomStringConvertible {
    public enum Subject: String, Sendable, CaseIterable { case process, user, loginclass, jail }

    public var subject: Subject
    public var subjectID: String
    public var resource: RctlResource
    public var action: RctlAction
    public var amount: UInt64
    public var per: Subject?

    public init(subject: Subject = .jail, subjectID: String, resource: RctlResource, action: RctlAction,
                amount: UInt64, per: Subject? = nil) {
        self.subject = subject
        self.subjectID = subjectID
        self.resource = resource
        self.action = action
        self.amount = amount
        self.per = per
    }

    /// The rule as rctl(8) takes it; byte amounts use the largest exact
    /// suffix (512m), counts and percentages are plain.
    public var description: String {
        let amountText = resource.isBytes ? Self.formatBytes(amount) : String(amount)
        return "\(subject.rawValue):\(subjectID):\(resource.rawValue):\(action)=\(amountText)" + (per.map { "/\($0.rawValue)" } ?? "")
    }

    /// Parses one rule; unknown subjects, resources and actions, actions a
    /// resource does not support, and bad amounts are one-line errors.
    public init(parsing line: String) throws {
        let text = line.trimmingCharacters(in: .whitespaces)
        func bad(_ field: String, _ why: String) -> ContainerError { .invalid(field: "rctl rule \"\(text)\": \(field)", reason: why) }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4 else { throw bad("syntax", "expected subject:id:resource:action=amount") }
        guard let subject = Subject(rawValue: String(parts[0])) else {
            throw bad("subject", "unknown subject \"\(parts[0])\" (process, user, loginclass or jail)")
        }
        guard !parts[1].isEmpty else { throw bad("subject id", "empty") }
        guard let resource = RctlResource(rawValue: String(parts[2])) else {
            throw bad("resource", "unknown resource \"\(parts[2])\"")
        }
        let actionAmount = parts[3].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard actionAmount.count == 2 else { throw bad("action", "expected action=amount") }
        guard let action = RctlAction(rawValue: String(actionAmount[0])) else {
            throw bad("action", "unknown action \"\(actionAmount[0])\"")
        }
        if action == .deny, !resource.deniable { throw bad("action", "\(resource.rawValue) cannot be denied") }
        if action == .throttle, !resource.throttleable { throw bad("action", "\(resource.rawValue) cannot be throttled") }
        let amountPer = actionAmount[1].split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(amountPer.count) else { throw bad("amount", "expected amount[/per]") }
        guard let amount = Self.parseAmount(amountPer[0]) else {
            throw bad("amount", "\"\(amountPer[0])\" is not a non-negative number with an optional k/m/g/t/p/e suffix")
        }
        var per: Subject?
        if amountPer.count == 2 {
            guard let p = Subject(rawValue: String(amountPer[1])) else { throw bad("per", "unknown \"\(amountPer[1])\"") }
            if p == .process, !resource.perProcess { throw bad("per", "\(resource.rawValue) cannot be counted per process") }
            per = p
        }
        self.init(subject: subject, subjectID: String(parts[1]), resource: resource, action: action, amount: amount, per: per)
    }

    private static let suffixes: [Character] = ["k", "m", "g", "t", "p", "e"]

    /// expand_number(3): digits with an optional 1024-based suffix [K].
    static func parseAmount(_ text: Substring) -> UInt64? {
        guard let last = text.last else { return nil }
        var digits = text
        var shift: UInt64 = 0
        if let index = suffixes.firstIndex(of: Character(last.lowercased())) {
            digits = text.dropLast()
            shift = UInt64(10 * (index + 1))
        }
        guard let n = UInt64(digits) else { return nil }
        let (value, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : value
    }

    static func formatBytes(_ n: UInt64) -> String {
        guard n > 0 else { return "0" }
        for (i, s) in suffixes.enumerated().reversed() {
            let unit: UInt64 = 1 << UInt64(10 * (i + 1))
            if n % unit == 0 { return "\(n / unit)\(s)" }
        }
        return String(n)
    }
}

/// The RCTL resources, with what each allows (freebsd-facts.md §7.1 [V]).
public enum RctlResource: String, Sendable, CaseIterable {
    case cputime, datasize, stacksize, coredumpsize, memoryuse, memorylocked, maxproc, openfiles
    case vmemoryuse, pseudoterminals, swapuse, nthr, msgqqueued, msgqsize, nmsgq, nsem, nsemop
    case nshm, shmsize, wallclock, pcpu, readbps, writebps, readiops, writeiops

    var deniable: Bool { !Self.notDeniable.contains(self) }
    var throttleable: Bool { [.readbps, .writebps, .readiops, .writeiops].contains(self) }
    var perProcess: Bool { ![.pseudoterminals, .swapuse, .msgqqueued, .msgqsize, .nmsgq, .nsem, .nshm, .shmsize].contains(self) }
    var isBytes: Bool {
        [.datasize, .stacksize, .coredumpsize, .memoryuse, .memorylocked, .vmemoryuse, .swapuse, .msgqsize, .shmsize,
         .readbps, .writebps].contains(self)
    }

    private static let notDeniable: Set<RctlResource> = [.cputime, .wallclock, .readbps, .writebps, .readiops, .writeiops]

    /// Per-process rules of these resources behave like the rlimit named.
    var rlimit: String? {
        switch self {
        case .datasize: "RLIMIT_DATA"
        case .stacksize: "RLIMIT_STACK"
        case .coredumpsize: "RLIMIT_CORE"
        case .memorylocked: "RLIMIT_MEMLOCK"
        case .vmemoryuse: "RLIMIT_AS"
        case .openfiles: "RLIMIT_NOFILE"
        case .cputime: "RLIMIT_CPU"
        default: nil
        }
    }
}

public enum RctlAction: Equatable, Sendable, CustomStringConvertible {
    case deny, log, devctl, throttle
    /// `sighup` … `sigthr`: the name without "sig".
    case signal(String)

    static let signals: Set<String> = [
        "hup", "int", "quit", "ill", "trap", "abrt", "emt", "fpe", "kill", "bus", "segv", "sys", "pipe", "alrm",
        "term", "urg", "stop", "tstp", "cont", "chld", "ttin", "ttou", "io", "xcpu", "xfsz", "vtalrm", "prof",
        "winch", "info", "usr1", "usr2", "thr",
    ]

    public init?(rawValue: String) {
        switch rawValue {
        case "deny": self = .deny
        case "log": self = .log
        case "devctl": self = .devctl
        case "throttle": self = .throttle
        case _ where rawValue.hasPrefix("sig") && Self.signals.contains(String(rawValue.dropFirst(3))):
            self = .signal(String(rawValue.dropFirst(3)))
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .deny: "deny"
        case .log: "log"
        case .devctl: "devctl"
        case .throttle: "throttle"
        case let .signal(s): "sig\(s)"
        }
    }
}

// MARK: - Limits ⇄ rules

enum RctlTranslation {
    static func rules(for limits: Limits, jail: String, notes: inout NoteList) throws -> [RctlRule] {
        var rules: [RctlRule] = []
        func add(_ r: RctlResource, _ a: RctlAction, _ amount: UInt64) {
            rules.append(RctlRule(subjectID: jail, resource: r, action: a, amount: amount))
        }
        if let quota = limits.cpu.quota, let period = limits.cpu.period {
            let pcpu = try percent(quota: quota, period: period, notes: &notes)
            add(.pcpu, .deny, pcpu)
        } else if let period = limits.cpu.period {
            notes.drop("cpu.period", period, "a period without a quota sets no limit; FreeBSD has no period")
        }
        if let shares = limits.cpu.shares {
            notes.drop("cpu.shares", shares, "FreeBSD has no CPU weight (nice/rtprio are per process, not equivalent)")
        }
        if let mem = limits.memory.limit {
            add(.memoryuse, .deny, mem)
            notes.approximate("memory.limit", mem,
                              "memoryuse:deny caps RSS softly (pages are deactivated) where Linux reclaims then OOM-kills")
        }
        if let swap = limits.memory.swap { add(.swapuse, .deny, swap) }
        if let reservation = limits.memory.reservation {
            notes.drop("memory.reservation", reservation, "FreeBSD has no soft memory limit or protection")
        }
        if let pids = limits.pidsMax {
            add(.nthr, .deny, pids)
            add(.maxproc, .deny, pids)
            notes.approximate("pids.max", pids, "Linux counts threads: nthr:deny=\(pids) is exact, maxproc:deny=\(pids) caps processes too")
        }
        let ioResources: [(BlockIOLimits.Kind, RctlResource)] = [
            (.readBps, .readbps), (.writeBps, .writebps), (.readIops, .readiops), (.writeIops, .writeiops),
        ]
        for (kind, resource) in ioResources {
            let rates = limits.blockIO[kind]
            guard !rates.isEmpty else { continue }
            let (total, overflow) = rates.reduce((UInt64(0), false)) { acc, r in
                let (s, o) = acc.0.addingReportingOverflow(r.rate)
                return (s, acc.1 || o)
            }
            guard !overflow else {
                throw ContainerError.invalid(field: "blockIO.\(kind.rawValue)", reason: "the sum of the device rates overflows 64 bits")
            }
            add(resource, .throttle, total)
            let listed = rates.map { "\($0.device?.description ?? "all") \($0.rate)" }.joined(separator: ", ")
            let why = rates.count > 1
                ? "RCTL has one limit for all devices: \(rates.count) device limits collapsed to their sum \(total)"
                : "RCTL applies the limit across all devices, not only this one"
            if rates.count > 1 || rates[0].device != nil { notes.approximate("blockIO.\(kind.rawValue)", listed, why) }
        }
        if let weight = limits.blockIO.weight {
            notes.drop("blockIO.weight", weight, "FreeBSD has no proportional I/O weight")
        }
        if !limits.devices.isEmpty {
            notes.drop("devices", limits.devices.map(\.cgroupLine).joined(separator: "; "),
                       "FreeBSD controls device visibility with devfs_ruleset, not an access list; write a devfs.rules ruleset")
        }
        for r in limits.rlimits {
            notes.drop(r.type, "\(r.soft)/\(r.hard)", "a per-process limit: restored with the process (setrlimit), not by the jail")
        }
        return rules
    }

    /// pcpu = ⌈100 × quota / period⌉, with a note when rounding or the period changes anything.
    static func percent(quota: UInt64, period: UInt64, notes: inout NoteList) throws -> UInt64 {
        let (whole, rem) = quota.quotientAndRemainder(dividingBy: period)
        let (scaled, overflow) = whole.multipliedReportingOverflow(by: 100)
        let fraction = 100 * rem  // rem < period <= 1_000_000
        let extra = (fraction + period - 1) / period
        guard !overflow, case let (pcpu, false) = scaled.addingReportingOverflow(extra) else {
            throw ContainerError.invalid(field: "cpu.quota", reason: "\(quota) / \(period) overflows a percentage")
        }
        if fraction % period != 0 {
            let exact = Double(quota) * 100 / Double(period)
            notes.approximate("cpu.quota", "\(quota)/\(period)",
                              "100 × \(quota) / \(period) = \(String(format: "%.4f", exact)) %; rounded up to pcpu \(pcpu) so the container gets no less CPU")
        }
        if period != CPULimits.defaultPeriod {
            notes.approximate("cpu.period", period, "FreeBSD has no CFS period (it averages usage); only the ratio is kept")
        }
        return pcpu
    }

    /// Limits from the rules whose subject is `jail`. Everything else becomes a note.
    static func limits(from rules: [RctlRule], jail: String, notes: inout NoteList) throws -> Limits {
        var limits = Limits()
        var maxproc: UInt64?
        for rule in rules {
            let field = rule.description
            guard rule.subject == .jail, rule.subjectID == jail else {
                notes.drop(field, rule.amount, "not a rule for jail \(jail)")
                continue
            }
            switch rule.action {
            case .deny, .throttle: break
            default:
                notes.drop(field, rule.amount, "Linux cgroups only enforce; they have no \(rule.action) action")
                continue
            }
            if rule.per == .process {
                if let rlimit = rule.resource.rlimit {
                    limits.rlimits.append(RLimit(type: rlimit, soft: rule.amount, hard: rule.amount))
                    notes.approximate(field, rule.amount, "a per-process RCTL limit becomes the rlimit \(rlimit) (soft = hard)")
                } else {
                    notes.drop(field, rule.amount, "no Linux counterpart for a per-process \(rule.resource.rawValue) limit")
                }
                continue
            }
            switch rule.resource {
            case .pcpu:
                guard rule.amount > 0 else {
                    notes.drop(field, 0, "a 0 % CPU limit has no Linux counterpart (minimum quota 1000 µs)")
                    continue
                }
                let (quota, overflow) = rule.amount.multipliedReportingOverflow(by: CPULimits.defaultPeriod / 100)
                guard !overflow else { throw ContainerError.invalid(field: field, reason: "pcpu \(rule.amount) overflows a CPU quota") }
                limits.cpu.quota = quota
                limits.cpu.period = CPULimits.defaultPeriod
            case .memoryuse:
                limits.memory.limit = rule.amount
                notes.approximate(field, rule.amount, "Linux enforces memory limits hard (reclaim, then OOM kill); FreeBSD's RSS cap is soft")
            case .swapuse: limits.memory.swap = rule.amount
            case .nthr: limits.pidsMax = rule.amount
            case .maxproc: maxproc = rule.amount
            case .readbps: limits.blockIO.readBps = [DeviceRate(device: nil, rate: rule.amount)]
            case .writebps: limits.blockIO.writeBps = [DeviceRate(device: nil, rate: rule.amount)]
            case .readiops: limits.blockIO.readIops = [DeviceRate(device: nil, rate: rule.amount)]
            case .writeiops: limits.blockIO.writeIops = [DeviceRate(device: nil, rate: rule.amount)]
            default:
                notes.drop(field, rule.amount, "FreeBSD-only limit: no cgroup counterpart")
            }
        }
        if let maxproc {
            if let nthr = limits.pidsMax {
                if nthr != maxproc { notes.drop("jail:\(jail):maxproc", maxproc, "Linux pids.max counts threads; taken from nthr \(nthr)") }
            } else {
                limits.pidsMax = maxproc
                notes.approximate("jail:\(jail):maxproc", maxproc, "Linux pids.max counts threads, not processes: the limit is tighter")
            }
        }
        return limits
    }
}
