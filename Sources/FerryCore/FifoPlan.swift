import FerryImage

/// FIFOs (named pipes): their bytes and size are carried like a pipe's,
/// under an id made from the FIFO's device and inode that no pipe id
/// (a pipefs inode number, 32-bit) can take.
public enum FifoPlan {
    /// The FIFO's id: `FileDescriptorImage.fifoIDBit`, the device in bits
    /// 32…62, the inode in bits 0…31; nil when either does not fit.
    public static func id(device: UInt64, inode: UInt64) -> UInt64? {
        guard device < 1 << 31, inode < 1 << 32 else { return nil }
        return FileDescriptorImage.fifoIDBit | device << 32 | inode
    }

    /// A FIFO whose device or inode number does not fit its id: refused.
    public static func refusal(_ d: DescriptorFacts, device: UInt64, inode: UInt64) -> String? {
        guard id(device: device, inode: inode) == nil else { return nil }
        return "\(d.who) is a FIFO on device 0x\(String(device, radix: 16)) with inode \(inode), numbers too large for ferry's FIFO id (device below 2^31, inode below 2^32): move the FIFO to a filesystem with 32-bit inode numbers (e.g. tmpfs without inode64)"
    }

    /// The FIFOs of a tree a restore holds open (O_RDWR, at a pool slot)
    /// while the processes open theirs, so that no open blocks or fails
    /// (a write-only open needs a reader) and the bytes put in stay until
    /// the processes' own fds hold the FIFO: one path per FIFO id, in
    /// the order first seen. Older images' FIFOs (id 0) are not held.
    public static func held(_ processes: [ProcessImage]) -> [(id: UInt64, path: String)] {
        var seen = Set<UInt64>(), out: [(id: UInt64, path: String)] = []
        for p in processes {
            for f in p.files where f.kind == .fifo && f.sharedWith == nil && f.pipeID != 0 && seen.insert(f.pipeID).inserted {
                out.append((f.pipeID, f.path))
            }
        }
        return out
    }
}
