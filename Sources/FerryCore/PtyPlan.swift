import FerryImage

/// Decisions about pseudo-terminals: which end a character device is, and
/// how the bytes queued in a pty are put back so that the program reads
/// what it would have read. Pure: the Linux side (FerryLinux/Terminals.swift)
/// reads and writes.
public enum PtyPlan {
    // termios bits (Linux values).
    public static let ISIG: UInt32 = 0o1, ICANON: UInt32 = 0o2, ECHO: UInt32 = 0o10, ECHOE: UInt32 = 0o20,
                      ECHOK: UInt32 = 0o40, ECHONL: UInt32 = 0o100, IEXTEN: UInt32 = 0o100000
    public static let ISTRIP: UInt32 = 0o40, INLCR: UInt32 = 0o100, IGNCR: UInt32 = 0o200, ICRNL: UInt32 = 0o400,
                      IUCLC: UInt32 = 0o1000, IXON: UInt32 = 0o2000, PARMRK: UInt32 = 0o10
    public static let OPOST: UInt32 = 0o1
    // c_cc indices.
    public static let VERASE = 2, VKILL = 3, VEOF = 4, VEOL = 11, VREPRINT = 12, VWERASE = 14, VLNEXT = 15, VEOL2 = 16

    /// The end of a pty a character device (major, minor) is: the master
    /// (/dev/ptmx, 5:2; its index comes from TIOCGPTN) or slave number N
    /// (UNIX98 slaves, majors 136–143); nil for other devices.
    public enum End: Equatable, Sendable { case master, slave(Int32) }

    public static func end(major: UInt32, minor: UInt32) -> End? {
        if major == 5 && minor == 2 { return .master }
        guard (136...143).contains(major) else { return nil }
        let index = Int64(major - 136) * 256 + Int64(minor)
        return index <= Int64(Int32.max) ? .slave(Int32(index)) : nil
    }

    /// The termios held while the bytes written on the master are written
    /// again: no echo, no signals, no input translation or flow control,
    /// canonical mode as it was (so that complete and partial lines come
    /// back as they were). Without canonical mode IEXTEN is off too.
    public static func inputWindow(_ t: Termios) -> Termios {
        var w = t
        w.lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL | ISIG)
        if t.lflag & ICANON == 0 { w.lflag &= ~IEXTEN }
        w.iflag &= ~(ISTRIP | INLCR | IGNCR | ICRNL | IUCLC | IXON | PARMRK)
        return w
    }

    /// The termios held while the bytes written on the slave are written
    /// again: no output processing (they were processed when first written).
    public static func outputWindow(_ t: Termios) -> Termios {
        var w = t
        w.oflag &= ~OPOST
        return w
    }

    /// The characters canonical mode would act on when `bytes` are written
    /// again under `inputWindow(t)`: erase, kill, end of file, and with
    /// IEXTEN word erase, reprint and literal next; a 0 byte is how the
    /// kernel keeps an end-of-file mark. A byte among them in the queue was
    /// typed as a literal (after literal next) or is such a mark: it cannot
    /// be put back as it was.
    public static func canonicalSpecials(_ t: Termios) -> Set<UInt8> {
        guard t.cc.count == Termios.controlCount else { return [] }
        var idx = [VERASE, VKILL, VEOF]
        if t.lflag & IEXTEN != 0 { idx += [VWERASE, VREPRINT, VLNEXT] }
        return Set(idx.map { t.cc[$0] }.filter { $0 != 0 } + [0])
    }

    /// Why the bytes written on the master of pty `index` and not yet read
    /// from its slave cannot be put back as they were (nil: they can, or
    /// there are none). `who` names the fd.
    public static func queuedInput(who: String, index: Int32, termios t: Termios, bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty, t.lflag & ICANON != 0 else { return nil }
        let specials = canonicalSpecials(t)
        guard let b = bytes.first(where: specials.contains) else { return nil }
        return "\(who) is the master of pty \(index), whose slave has \(bytes.count) unread bytes in canonical mode among them 0x\(String(b, radix: 16)) (a character typed literally or an end-of-file mark), which writing them again would not reproduce; ferry carries such input only without those characters: let the program read its input first"
    }

    /// Bytes written on the slave are read from a master in packet mode
    /// behind a status byte: not carried, so refused when there are any.
    public static func queuedOutput(who: String, index: Int32, packet: Bool, count: Int) -> String? {
        guard packet, count > 0 else { return nil }
        return "\(who) is the master of pty \(index) in packet mode (TIOCPKT) with \(count) unread bytes; ferry does not carry packet-mode output yet: let the program read it first"
    }

    /// Queues over `PtyState.maxQueued` are refused.
    public static func oversized(who: String, index: Int32, count: Int) -> String? {
        guard count > PtyState.maxQueued else { return nil }
        return "\(who) is the master of pty \(index), with \(count) bytes queued in one direction, over the \(PtyState.maxQueued) ferry carries: let the program read them first"
    }

    /// Where a restored pty cannot get its index back: the slave's path is
    /// state the program holds (ttyname, a saved path), so another index
    /// would not be the same terminal.
    public static func indexTaken(_ index: Int32, got: Int32?) -> String {
        "cannot restore: pty \(index) (/dev/pts/\(index)) is in use on this host\(got.map { " (a new pty got index \($0))" } ?? ""); the program knows its terminal by that path: close the pty that holds it, or restore where it is free"
    }
}
