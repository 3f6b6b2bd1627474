/// The decisions of the TCP repair guard, pure. Before ferry puts an
/// established connection into TCP_REPAIR mode it hands a copy of the
/// socket to a guard process over a SOCK_SEQPACKET channel; when ferry
/// dies or is done, the guard does what `action` says for each socket. The
/// messages are 8 bytes: a tag (UInt32) and a value (Int32), little-endian.
public enum RepairGuardPlan {
    /// TCP_REPAIR values: off without a window probe (since Linux 4.18), plain off.
    public static let repairOffNoWindowProbe: Int32 = -1, repairOff: Int32 = 0
    /// How many times, 1 ms apart, the guard looks whether the owner of a socket is dying.
    public static let dyingLooks = 3

    public enum Message: Equatable, Sendable {
        /// With two descriptors: the socket, about to go into repair mode, and
        /// a pidfd of the process it belongs to. `reuseAddr` is its
        /// SO_REUSEADDR, which repair mode overrides.
        case socket(reuseAddr: Int32)
        /// ferry is about to SIGKILL the processes (the checkpoint or migration is complete).
        case killing
        /// ferry has settled every socket itself (taken out of repair mode,
        /// or closed in repair mode with their killed owner): nothing is left to do.
        case done
        /// With one descriptor, a pidfd of process `pid`: ferry is about to
        /// queue a SIGSTOP to it, which holds it group-stopped should ferry
        /// die; the guard sends it SIGCONT once it has settled the sockets.
        case hold(pid: Int32)
        /// ferry has taken its SIGSTOP back from process `pid`: no SIGCONT for it.
        case unhold(pid: Int32)
        /// Sent before `done` once the processes are killed: keep the copies
        /// (in repair mode, locked) for up to `seconds`, until a restore on
        /// this host or `ferry release` asks for them (`holds`).
        case keep(seconds: Int32)
    }

    public struct Invalid: Error, CustomStringConvertible, Equatable, Sendable {
        public var description: String
    }

    public static let messageSize = 8
    /// What the guard sends once it is set to wait: ferry puts no
    /// socket into repair mode before.
    public static let ready: [UInt8] = [0x52]
    /// How long ferry waits for `ready`.
    public static let readyTimeoutMilliseconds: Int32 = 10_000
    /// The guard's SCHED_FIFO priority: woken by ferry's death, it runs
    /// before the process ferry worked on (woken a little later, when the
    /// kernel detaches it) can reach the socket.
    public static let schedPriority: Int32 = 10

    public static func encode(_ m: Message) -> [UInt8] {
        let (tag, value): (UInt32, Int32)
        switch m {
        case .socket(let reuse): (tag, value) = (1, reuse)
        case .killing: (tag, value) = (2, 0)
        case .done: (tag, value) = (3, 0)
        case .hold(let pid): (tag, value) = (4, pid)
        case .unhold(let pid): (tag, value) = (5, pid)
        case .keep(let seconds): (tag, value) = (6, seconds)
        }
        return withUnsafeBytes(of: tag.littleEndian, Array.init) + withUnsafeBytes(of: value.littleEndian, Array.init)
    }

    /// One message as received with `descriptors` descriptors attached.
    public static func decode(_ bytes: [UInt8], descriptors: Int) throws -> Message {
        guard bytes.count == messageSize else { throw Invalid(description: "repair guard: a message of \(bytes.count) bytes, not \(messageSize)") }
        let tag = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        let value = Int32(bitPattern: UInt32(bytes[4]) | UInt32(bytes[5]) << 8 | UInt32(bytes[6]) << 16 | UInt32(bytes[7]) << 24)
        let want = tag == 1 ? 2 : tag == 4 ? 1 : 0
        guard descriptors == want else {
            throw Invalid(description: "repair guard: message \(tag) came with \(descriptors) descriptors, not \(want)")
        }
        switch tag {
        case 1:
            guard value == 0 || value == 1 else { throw Invalid(description: "repair guard: SO_REUSEADDR value \(value)") }
            return .socket(reuseAddr: value)
        case 2: return .killing
        case 3: return .done
        case 4, 5:
            guard value > 0 else { throw Invalid(description: "repair guard: pid \(value)") }
            return tag == 4 ? .hold(pid: value) : .unhold(pid: value)
        case 6:
            guard (1...maxHoldSeconds).contains(value) else { throw Invalid(description: "repair guard: hold of \(value) s") }
            return .keep(seconds: value)
        default: throw Invalid(description: "repair guard: unknown message \(tag)")
        }
    }

    /// The longest hold `--hold-seconds` takes, and its default.
    public static let maxHoldSeconds: Int32 = 3600, defaultHoldSeconds: Int32 = 60
    /// What a restore (or `ferry release`) sends the guard over its hold
    /// socket to have it let go of every connection, and the guard's answer
    /// once it has closed them.
    public static let releaseRequest: [UInt8] = [0x4c], released: [UInt8] = [0x47]
    /// How long a restore waits for that answer: the guard answers once the
    /// checkpoint that started it is over (at once unless a streamed
    /// checkpoint is still writing pages).
    public static let releaseTimeoutMilliseconds: Int32 = 30_000
    /// How long the guard, asked to let go, waits for the killed processes
    /// to have exited (their descriptors closed) before it closes its copies.
    public static let ownersExitMilliseconds: Int32 = 5_000

    /// Whether the guard keeps its copies once the channel has ended: only
    /// after ferry said it was done (the processes killed, every copy in
    /// repair mode) and asked for a hold (`keep`), and only if it holds any.
    public static func holds(_ heard: Heard, keepSeconds: Int32, sockets: Int) -> Bool {
        heard == .done && keepSeconds > 0 && sockets > 0
    }

    /// What the guard has heard when ferry dies or lets it go.
    public enum Heard: Equatable, Sendable { case nothing, killing, done }

    public static func heard(after previous: Heard, _ m: Message) -> Heard {
        switch m {
        case .socket, .hold, .unhold, .keep: return previous
        case .killing: return previous == .done ? .done : .killing
        case .done: return .done
        }
    }

    public enum Action: Equatable, Sendable {
        /// Close the copy as it is.
        case leave
        /// Take the socket out of repair mode and restore SO_REUSEADDR, then close the copy.
        case takeOut
        /// Take it out at once, then, if its process is dying, put it back
        /// in repair mode before closing the copy (the last reference: its
        /// close then sends nothing).
        case takeOutUnlessDying
    }

    /// For the sockets once ferry has died or let go. A ferry that died before
    /// it announced the kill left the process running: its sockets must
    /// work again. After the kill was announced the process is dying (its
    /// connections live on in the image or on the target, and must close
    /// silently) unless ferry died before its SIGKILL; the sockets are taken
    /// out first all the same, so that a process that runs on gets them
    /// back as fast as when nothing was announced.
    public static func action(_ heard: Heard) -> Action {
        switch heard {
        case .done: return .leave
        case .nothing: return .takeOut
        case .killing: return .takeOutUnlessDying
        }
    }

    /// The processes the guard sends SIGCONT to once it has taken the
    /// sockets out (ferry died; not after `done`): those ferry said it
    /// would stop (`hold`) and did not say it had let go again (`unhold`).
    public static func held(after previous: Set<Int32>, _ m: Message) -> Set<Int32> {
        switch m {
        case .hold(let pid): return previous.union([pid])
        case .unhold(let pid): return previous.subtracting([pid])
        default: return previous
        }
    }

    /// The signals to block in a thread for the instant it takes ferry's
    /// SIGSTOP back (signal-delivery stop, resumed with no signal): those
    /// pending for it and not blocked, which it would take first (bit
    /// n - 1 for signal n, as in SigPnd/ShdPnd/SigBlk of /proc/PID/status);
    /// SIGKILL and SIGSTOP cannot be blocked and are left out.
    public static func blockedForTakingBack(sigPnd: UInt64, shdPnd: UInt64, mask: UInt64) -> UInt64 {
        let unblockable: UInt64 = 1 << 8 | 1 << 18
        return (sigPnd | shdPnd) & ~mask & ~unblockable
    }

    /// The inodes of the established TCP sockets in a /proc/PID/net/tcp or
    /// tcp6 table (`st` 01); lines that do not parse are skipped.
    public static func establishedInodes(procNetTCP text: String) -> Set<UInt64> {
        var out = Set<UInt64>()
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 9, f[3] == "01", let inode = UInt64(f[9]), inode != 0 else { continue }
            out.insert(inode)
        }
        return out
    }

    /// Whether a process is being killed or is gone, from its /proc/PID/stat
    /// state and flags and the SigPnd/ShdPnd masks of /proc/PID/status (nil:
    /// unreadable, gone). A SIGKILL is pending in every thread (SigPnd)
    /// from the moment it is sent until the thread takes it, which sets
    /// PF_EXITING (0x4) right after; then the thread is a zombie or gone.
    public static func dying(state: Character?, flags: UInt64, sigPnd: String?, shdPnd: String?) -> Bool {
        guard let state, state != "Z", state != "X", state != "x" else { return true }
        if flags & 0x4 != 0 { return true }
        for mask in [sigPnd, shdPnd] {
            if let m = mask, let v = UInt64(m, radix: 16), v & (1 << 8) != 0 { return true }
        }
        return false
    }
}
