import Foundation
import Testing
import FerryTestSupport
@testable import FerryLinux

/// A container's network namespace across checkpoint → restore: its veth
/// (name, MAC, MTU), IPv4 and IPv6 addresses and default routes are
/// re-created, the host end goes onto the bridge given to `restore
/// --bridge` (or `serve --bridge` for a migration), and a client on this
/// host reaches the container's server at the same addresses again
/// (Tests/Workloads/run_container_net.sh).
/// Part of ContainerTests (serialized with it: its tests check the cgroups
/// the restores leave, and these restore containers too).
extension ContainerTests {
    /// Whether this kernel makes bridges and veth pairs (modules present).
    static let canBridge: Bool = {
        let name = "fbrprobe\(getpid() % 100000)"
        let r = try? WorkloadTests.run(["/bin/sh", "-c", "ip link add \(name) type bridge && ip link add \(name)v type veth peer name \(name)p; s=$?; ip link del \(name) 2>/dev/null; ip link del \(name)v 2>/dev/null; exit $s"])
        return r?.status == 0
    }()

    /// restore: checkpoint, then `restore --bridge`; hook: `restore --net-hook`; migrate: `serve --bridge` and `migrate` on this host (pre-copy).
    @Test("container veth, addresses and routes re-created; a client outside reaches its server again",
          .enabled(if: canBridge, "this kernel cannot make a bridge or a veth pair (modules bridge/veth missing)"),
          arguments: ["restore", "hook", "migrate"])
    func vethOnBridge(_ mode: String) throws {
        try WorkloadTests.buildWorkloads()
        let r = try WorkloadTests.run(["/bin/bash", WorkloadTests.workloads + "/run_container_net.sh", WorkloadTests.ferry, WorkloadTests.out, mode])
        #expect(r.output.hasPrefix("PASS"), "\(r.output)")
        print(r.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// What a migration does at its freeze (`NetworkHold`, LinuxSubject):
    /// the container's host end goes down, so a peer's SYN is dropped (it
    /// times out and retransmits) instead of answered with a reset; released
    /// (rollback), the container answers again. Port 9 has no listener: a
    /// reachable container answers a connect with a reset at once.
    @Test("a migration's hold drops the container's traffic without a reset until released",
          .enabled(if: canBridge, "this kernel cannot make a bridge or a veth pair (modules bridge/veth missing)"))
    func holdDropsWithoutReset() throws {
        let tag = "\(getpid() % 100000)"
        let ns = "fhold\(tag)", br = "fhb\(tag)", vh = "fhv\(tag)"
        let setup = """
            ip netns add \(ns) && ip link add \(br) type bridge && ip addr add 10.198.7.1/24 dev \(br) && ip link set \(br) up &&
            ip link add \(vh) type veth peer name eth0 netns \(ns) && ip link set \(vh) master \(br) up &&
            ip -n \(ns) addr add 10.198.7.2/24 dev eth0 && ip -n \(ns) link set eth0 up && ip -n \(ns) link set lo up &&
            { ip netns exec \(ns) sleep 60 </dev/null >/dev/null 2>&1 & echo $!; }
            """
        defer { _ = try? WorkloadTests.run(["/bin/sh", "-c", "ip netns pids \(ns) | xargs -r kill -9; ip netns del \(ns); ip link del \(br)"]) }
        let r = try WorkloadTests.run(["/bin/sh", "-c", setup])
        let pid = try #require(Int32(r.output.trimmingCharacters(in: .whitespacesAndNewlines)), "set-up: \(r.output)")
        // "refused" (a reset), "timeout" (dropped), or the error; `want` is retried for up to 3 s.
        func connect(want: String) throws -> String {
            let script = """
                import socket, sys, time
                end = time.time() + 3
                while True:
                    s = socket.socket(); s.settimeout(1)
                    try:
                        s.connect(("10.198.7.2", 9)); got = "connected"
                    except ConnectionRefusedError: got = "refused"
                    except socket.timeout: got = "timeout"
                    except OSError as e: got = str(e)
                    if got == sys.argv[1] or time.time() > end: print(got); break
                    time.sleep(0.1)
                """
            return try WorkloadTests.run(["/usr/bin/python3", "-c", script, want]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try connect(want: "refused") == "refused")
        let hold = try #require(try NetworkHold.engage(pid: pid))
        #expect(hold.names == [vh])
        #expect(try connect(want: "timeout") == "timeout")
        hold.release()
        #expect(try connect(want: "refused") == "refused")
        // Not a container: nothing to hold.
        #expect(try NetworkHold.engage(pid: getpid()) == nil)
    }

    /// An interface ferry does not re-create is refused by name at
    /// checkpoint, and the container goes on untouched.
    @Test("a container with a bridge inside is refused at checkpoint and keeps running",
          .enabled(if: canBridge, "this kernel cannot make a bridge or a veth pair (modules bridge/veth missing)"))
    func otherInterfaceRefused() throws {
        let script = """
            d=$(mktemp -d /tmp/ferry_ctnet_ref.XXXXXX); trap 'rm -rf "$d"' EXIT
            python3 "$1/launch.py" /bin/sh -c 'exec unshare --net --fork /bin/sh -c "ip link add ferrybr0 type bridge && exec sleep 30"' & l=$!
            for i in $(seq 100); do c=$(pgrep -P $l) && [ "$(cat /proc/$c/comm)" = sleep ] && break; sleep 0.1; done
            out=$("$2" checkpoint $c -o "$d/image" --shell-job 2>&1); echo "rc $?"
            echo "$out" | grep -o 'interface ferrybr0 of kind bridge' || echo "$out"
            kill -0 $c && echo alive
            kill $c; wait $l
            """
        let r = try WorkloadTests.run(["/bin/bash", "-c", script, "refuse", WorkloadTests.workloads, WorkloadTests.ferry])
        #expect(r.output == "rc 1\ninterface ferrybr0 of kind bridge\nalive\n", "\(r.output)")
    }
}
