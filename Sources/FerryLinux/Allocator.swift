#if os(Linux)
import CFerryLinux

/// ferry's own memory allocator settings.
public enum Allocator {
    /// ferry allocates and frees buffers of 0.5–4 MiB at a high rate (page
    /// batches, received frames, image records). Above glibc's mmap threshold
    /// each one is a fresh mmap whose every page faults on first write (0.2–0.35 s
    /// of CPU per GiB migrated, on each side, in a perf profile here). Served
    /// from the heap instead, freed buffers are reused. The peak stays bounded
    /// by the in-flight limits of the transport and the image streams, so the
    /// peak RSS does not grow; freed memory is kept up to the same bound.
    public static func reuseLargeBuffers() {
        _ = ferry_malloc_keep_below(64 << 20)
    }
}
#endif
