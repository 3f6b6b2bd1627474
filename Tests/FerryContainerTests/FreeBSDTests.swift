import Foundation
import Testing
@testable import FerryContainer

@Test(arguments: [
    "jail:web:pcpu:deny=50", "jail:web:memoryuse:deny=512m", "jail:web:readbps:throttle=10m",
    "jail:7:maxproc:sigterm=100", "user:www:openfiles:log=1000", "jail:web:openfiles:deny=1024/process",
    "process:123:wallclock:sigkill=60", "loginclass:daemon:nthr:devctl=10",
])
func rctlRuleRoundTrips(line: String) throws {
    #expect(try RctlRule(parsing: line).description == line)
}

/// Bad rules: the error names the part of the rule that is wrong.
@Test(arguments: [
    ("jail:web:pcpu", "syntax"),
    ("cell:web:pcpu:deny=50", "subject"),
    ("jail::pcpu:deny=50", "subject id"),
    ("jail:web:cpuhours:deny=50", "resource"),
    ("jail:web:pcpu:explode=50", "action"),
    ("jail:web:pcpu:sigfoo=50", "action"),
    ("jail:web:pcpu:deny", "action"),
    ("jail:web:pcpu:throttle=50", "action"),
    ("jail:web:readbps:deny=1m", "action"),
    ("jail:web:wallclock:deny=60", "action"),
    ("jail:web:pcpu:deny=-5", "amount"),
    ("jail:web:memoryuse:deny=99999999999999999999", "amount"),
    ("jail:web:memoryuse:deny=16e", "amount"),
    ("jail:web:swapuse:deny=1g/process", "per"),
    ("jail:web:nthr:deny=5/galaxy", "per"),
])
func rctlRuleRejects(line: String, part: String) {
    #expect { try RctlRule(parsing: line) } throws: { error in
        let message = "\(error)"
        return message.hasPrefix("rctl rule \"\(line)\": \(part):") && !message.contains("\n")
    }
}

@Test func jailWriteProducesJailConfRulesAndCpuset() throws {
    let t = try FreeBSDJail.write(translatableSpec, name: "web")
    let c = t.output
    #expect(c.rctlLines == [
        "jail:web:pcpu:deny=50", "jail:web:memoryuse:deny=512m", "jail:web:swapuse:deny=256m",
        "jail:web:nthr:deny=100", "jail:web:maxproc:deny=100", "jail:web:readbps:throttle=10m",
        "jail:web:writebps:throttle=5m", "jail:web:readiops:throttle=1000", "jail:web:writeiops:throttle=500",
    ])
    #expect(c.cpusetArguments == [["-l", "0-3,6", "-j", "web"], ["-n", "first-touch:0", "-j", "web"]])
    #expect(c.jailCreateArguments == [
        "-c", "name=web", "path=/srv/web", "host=new", "host.hostname=web", "host.domainname=example.org", "vnet=new",
        "sysvmsg=new", "sysvsem=new", "sysvshm=new", "enforce_statfs=2", "persist",
    ])
    #expect(c.jailConf.hasPrefix("web {\n    path = /srv/web;\n    host = new;\n"))
    #expect(c.jailConf.contains("    exec.created += \"rctl -a jail:web:pcpu:deny=50\";\n"))
    #expect(c.jailConf.contains("    exec.created += \"cpuset -l 0-3,6 -j web\";\n"))
    #expect(c.jailConf.hasSuffix("    exec.poststop += \"rctl -r jail:web\";\n}\n"))
    // Only approximations: everything in this spec has a FreeBSD counterpart.
    #expect(t.notes.allSatisfy { $0.kind == .approximated })
}

/// Every Linux-only field, Linux → FreeBSD: listed as not translated, with its value.
@Test(arguments: [
    ("namespace pid", "new"), ("namespace user", "uid 0 100000 65536, gid 0 100000 65536"),
    ("namespace cgroup", "new"), ("namespace time", "new"), ("root.readonly", "true"), ("cpu.shares", "512"),
    ("memory.reservation", "134217728"), ("blockIO.weight", "300"), ("devices", "a *:* rwm; c 1:3 rw"),
    ("RLIMIT_NOFILE", "1024/4096"),
])
func linuxOnlyFieldsAreNotTranslatedToFreeBSD(field: String, value: String) throws {
    let notes = try FreeBSDJail.write(linuxOnlySpec).notes
    let note = try #require(notes.first { $0.field == field })
    #expect(note.kind == .notTranslated)
    #expect(note.value == value)
    #expect(!note.reason.isEmpty)
}

@Test func namespaceWithoutCounterpartsWritesInheritance() throws {
    let c = try FreeBSDJail.write(ContainerSpec()).output
    #expect(c.name == "ferry")
    #expect(c.jailCreateArguments == ["-c", "name=ferry", "path=/", "host=inherit", "ip4=inherit", "ip6=inherit",
                                      "enforce_statfs=0", "persist"])
    #expect(c.rules.isEmpty && c.cpuset.isEmpty)
    #expect(try FreeBSDJail.read(c).output == ContainerSpec(name: "ferry", isolation: Isolation(rootPath: "/")))
}

@Test func devicesCollapseToTheirSumWithANote() throws {
    var spec = ContainerSpec()
    spec.limits.blockIO.writeBps = [DeviceRate(device: DeviceNumber(8, 0), rate: 100), DeviceRate(device: DeviceNumber(8, 16), rate: 50)]
    let t = try FreeBSDJail.write(spec, name: "w")
    #expect(t.output.rctlLines == ["jail:w:writebps:throttle=150"])
    let note = try #require(t.notes.first { $0.field == "blockIO.writeBps" })
    #expect(note.value == "8:0 100, 8:16 50")
    #expect(note.reason.contains("sum 150"))
}

/// FreeBSD → spec, one RCTL rule at a time.
@Test(arguments: [
    ("jail:j:pcpu:deny=50", Limits(cpu: CPULimits(quota: 50_000, period: 100_000))),
    ("jail:j:pcpu:deny=250", Limits(cpu: CPULimits(quota: 250_000, period: 100_000))),
    ("jail:j:memoryuse:deny=1g", Limits(memory: MemoryLimits(limit: 1 << 30))),
    ("jail:j:swapuse:deny=2g", Limits(memory: MemoryLimits(swap: 2 << 30))),
    ("jail:j:nthr:deny=64", Limits(pidsMax: 64)),
    ("jail:j:maxproc:deny=32", Limits(pidsMax: 32)),
    ("jail:j:readbps:throttle=1m", Limits(blockIO: BlockIOLimits(readBps: [DeviceRate(device: nil, rate: 1 << 20)]))),
    ("jail:j:writebps:throttle=2m", Limits(blockIO: BlockIOLimits(writeBps: [DeviceRate(device: nil, rate: 2 << 20)]))),
    ("jail:j:readiops:throttle=300", Limits(blockIO: BlockIOLimits(readIops: [DeviceRate(device: nil, rate: 300)]))),
    ("jail:j:writeiops:throttle=200", Limits(blockIO: BlockIOLimits(writeIops: [DeviceRate(device: nil, rate: 200)]))),
    ("jail:j:openfiles:deny=512/process", Limits(rlimits: [RLimit(type: "RLIMIT_NOFILE", soft: 512, hard: 512)])),
    ("jail:j:vmemoryuse:deny=4g/process", Limits(rlimits: [RLimit(type: "RLIMIT_AS", soft: 4 << 30, hard: 4 << 30)])),
])
func rctlRuleToLimits(line: String, limits: Limits) throws {
    let t = try FreeBSDJail.read(text: line)
    #expect(t.output.name == "j")
    #expect(t.output.limits == limits)
}

/// FreeBSD-only settings, FreeBSD → Linux: not translated, with the value.
@Test(arguments: [
    ("jail:j:wallclock:sigkill=3600", "jail:j:wallclock:sigkill=3600"),
    ("jail:j:cputime:sigxcpu=60", "jail:j:cputime:sigxcpu=60"),
    ("jail:j:openfiles:deny=1000", "jail:j:openfiles:deny=1000"),
    ("jail:j:pseudoterminals:deny=10", "jail:j:pseudoterminals:deny=10"),
    ("jail:j:nsem:deny=10", "jail:j:nsem:deny=10"),
    ("jail:j:shmsize:deny=1m", "jail:j:shmsize:deny=1m"),
    ("jail:j:memoryuse:log=1g", "jail:j:memoryuse:log=1g"),
    ("jail:other:pcpu:deny=5", "jail:other:pcpu:deny=5"),
    ("jail:j:pcpu:deny=0", "jail:j:pcpu:deny=0"),
    ("j { allow.raw_sockets; }", "allow.raw_sockets"),
    ("j { devfs_ruleset = 4; }", "devfs_ruleset"),
    ("j { ip4.addr = 10.0.0.2, 10.0.0.3; }", "ip4.addr"),
    ("j { exec.start = \"/bin/sh /etc/rc\"; }", "exec.start"),
    ("j { sysvshm = disable; }", "sysvshm"),
])
func freeBSDOnlySettingsAreNotTranslated(text: String, field: String) throws {
    let input = text.hasPrefix("jail:other") ? "jail:j:nthr:deny=1\n" + text : text
    let t = try FreeBSDJail.read(text: input)
    let note = try #require(t.notes.first { $0.field == field })
    #expect(note.kind == .notTranslated)
}

@Test func jailConfParsesBlocksGlobalsCommentsAndCommands() throws {
    let text = """
    # global
    exec.clean;
    /* the jail */
    web {
        path = "/usr/jails/web";   // root
        host.hostname = 'web.local';
        vnet = new;
        sysvmsg = new; sysvsem = new; sysvshm = new;
        exec.created += "rctl -a jail:web:pcpu:deny=150";
        exec.created += "cpuset -l 2-3 -j web";
        exec.poststop += "rctl -r jail:web";
    }
    jail:web:memoryuse:deny=256m
    rctl -a jail:web:nthr:deny=20
    cpuset -n prefer:1 -j web
    """
    let t = try FreeBSDJail.read(text: text)
    let expected = ContainerSpec(
        name: "web",
        isolation: Isolation(namespaces: [Namespace(.mount), Namespace(.uts), Namespace(.ipc), Namespace(.network)],
                             hostname: "web.local", rootPath: "/usr/jails/web"),
        limits: Limits(cpu: CPULimits(quota: 150_000, period: 100_000), cpuset: CPUSetLimits(cpus: CPUList([2, 3]), mems: CPUList([1])),
                       memory: MemoryLimits(limit: 256 << 20), pidsMax: 20))
    #expect(t.output == expected)
    #expect(Set(t.notes.map(\.field)) == ["exec.clean", "jail:web:memoryuse:deny=256m", "cpuset -n"])
}

@Test func jailCreateLineIsRead() throws {
    let t = try FreeBSDJail.read(text: "jail -c name=db path=/jails/db host=new host.hostname=db 'ip4=inherit' ip6=inherit persist\n")
    #expect(t.output == ContainerSpec(name: "db", isolation: Isolation(namespaces: [Namespace(.mount), Namespace(.uts)],
                                                                       hostname: "db", rootPath: "/jails/db")))
}

@Test(arguments: [
    ("a { path = /x; } b { path = /y; }", "2 jails"),
    ("a { path = /x; ", "missing }"),
    ("a { path = \"/x; }", "unterminated string"),
    ("a { path /x; }", "expected = or ;"),
    ("", "no jail found"),
    ("a { enforce_statfs = 7; }", "enforce_statfs"),
    ("a { }\ncpuset -l 0 -j b", "cpuset -j"),
    ("a { }\ncpuset -l 9-1 -j a", "cpuset -l"),
    ("a { }\ncpuset -n sometimes:0 -j a", "cpuset -n"),
    ("jail:a:pcpu:deny=50\njail:a:bogus:deny=1", "resource"),
])
func freeBSDBadInput(text: String, fragment: String) {
    #expect { try FreeBSDJail.read(text: text) } throws: { error in
        "\(error)".contains(fragment) && !"\(error)".contains("\n")
    }
}

// MARK: Round trips

/// What survives a trip through FreeBSD: everything translatable, with the
/// jail's name and the I/O limits applying to all devices.
private var translatableAfterFreeBSD: ContainerSpec {
    var s = translatableSpec
    s.name = "ferry"
    for kind in BlockIOLimits.Kind.allCases {
        s.limits.blockIO[kind] = s.limits.blockIO[kind].map { DeviceRate(device: nil, rate: $0.rate) }
    }
    return s
}

@Test func roundTripLinuxFreeBSDLinuxKeepsEverythingTranslatable() throws {
    let linux = try OCIConfig.read(ociData(OCIConfig.write(translatableSpec).output)).output
    let freebsd = try FreeBSDJail.write(linux)
    let back = try FreeBSDJail.read(text: freebsd.output.jailConf)
    #expect(back.output == translatableAfterFreeBSD)
    // And FreeBSD → neutral → FreeBSD is a fixed point.
    #expect(try FreeBSDJail.write(back.output).output == freebsd.output)
    // Back on Linux: only the per-device placement of the I/O limits is missing, and it is reported.
    let oci = OCIConfig.write(back.output)
    let linuxAgain = try OCIConfig.read(ociData(oci.output)).output
    var expected = translatableSpec
    expected.limits.blockIO = BlockIOLimits()
    #expect(linuxAgain == expected)
    #expect(Set(oci.notes.map(\.field)) == ["name", "blockIO.readBps", "blockIO.writeBps", "blockIO.readIops", "blockIO.writeIops"])
}

/// Linux-only settings are reported on the way out and absent on the way back, never silently changed.
@Test func roundTripOfLinuxOnlySpecDropsOnlyWhatWasReported() throws {
    let out = try FreeBSDJail.write(linuxOnlySpec)
    let back = try FreeBSDJail.read(text: out.output.jailConf).output
    #expect(back == translatableAfterFreeBSD)
    #expect(out.notes.filter { $0.kind == .notTranslated }.count == 10)
}

@Test(arguments: [
    (50_000, 100_000, 50_000, 100_000),
    (33_333, 100_000, 34_000, 100_000),
    (25_000, 50_000, 50_000, 100_000),
    (400_000, 100_000, 400_000, 100_000),
] as [(UInt64, UInt64, UInt64, UInt64)])
func cpuRoundTripThroughPcpu(quota: UInt64, period: UInt64, quotaBack: UInt64, periodBack: UInt64) throws {
    let spec = ContainerSpec(limits: Limits(cpu: CPULimits(quota: quota, period: period)))
    let back = try FreeBSDJail.read(FreeBSDJail.write(spec).output).output
    #expect(back.limits.cpu == CPULimits(quota: quotaBack, period: periodBack))
}
