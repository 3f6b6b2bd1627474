// PAGES and ZERO records built in place, written by a second thread.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import CFerryFile

/// Writes the page records of a file (`pages.img`, or a stream into a file or
/// pipe) without copying the pages again: the caller reads each run of pages
/// straight into the record being built (`reserve`, read, `commit`), the
/// records are checksummed there, and whole buffers go to a writer thread,
/// which writes one while the next is filled. Memory stays bounded: a few
/// buffers of 512 KiB.
///
/// With `RecordWriter.directIO`, on a regular file ferry opened whose offset
/// is block-aligned, the buffers are written with O_DIRECT: the kernel does
/// not copy them into the page cache (docs/performance.md has the measured
/// share of a checkpoint's CPU); but a restore on this machine then reads
/// the image from the disk.
/// Where the file refuses O_DIRECT, it is written as usual. The unaligned end
/// of the record stream goes back into the FileSink, which writes it (and
/// what follows) once O_DIRECT is off again.
///
/// Through the page cache, on a file ferry created, the writer reserves the
/// file's blocks ahead of its writes (`preallocationStep` at a time, without
/// changing the file's size) and gives back what it did not use when it
/// stops: ext4 then does not reserve and track each 4 KiB block as a
/// delayed allocation inside every `write()`. In a hand-run test here
/// (900 MiB in 128 KiB writes to /tmp, ext4) that cut the writes' CPU from
/// 0.23–0.44 s to 0.17–0.19 s.
///
/// The records are the same bytes `RecordWriter.writePages`/`writeZeroPages`
/// would write for the same pages, except that pages reading as zero become
/// ZERO records (as checkpoints have always written them).
public final class PageRecordStream {
    /// Pages per reservation (longer runs take several): 256 KiB, so runs
    /// are read, checked and checksummed while they are still in the cache.
    public static let maxPages = 64
    /// Buffers in rotation: one being filled, the others queued or being written.
    static let bufferCount = 4
    /// Eight of the longest reservations, plus one block carried over.
    static let bufferBytes = 8 * (recordOverhead + maxPages * ImageFormat.pageSize) + blockSize
    static let blockSize = 4096
    /// Bytes of the file reserved at a time ahead of the writes.
    static let preallocationStep: UInt64 = 32 << 20
    /// type, length, pid, page count, address before the pages; crc after.
    static let headerBytes = 24
    static let recordOverhead = headerBytes + 4

    private unowned let records: RecordWriter
    private let file: FileSink
    private let shared: Shared
    private var current: Int
    private var used = 0
    private var reserved: (pid: Int32, address: UInt64, count: Int)?
    private var closed = false
    /// Whether the buffers go out with O_DIRECT.
    public let direct: Bool

    init(records: RecordWriter, file: FileSink, directIO: Bool) throws {
        self.records = records
        self.file = file
        shared = Shared(fd: file.fd, name: file.name)
        current = shared.free.removeLast()
        used = try file.movePending(to: shared.buffers[current], capacity: Self.bufferBytes / 2)
        // Only a descriptor ferry opened: O_DIRECT is a flag of the open file, which an inherited one shares.
        direct = directIO && file.ownsDescriptor && file.bytesWritten % UInt64(Self.blockSize) == 0 && Self.enableDirect(file.fd)
        // Only a file ferry created: blocks are reserved past its end, which another writer of the file would not expect.
        shared.start(offset: file.bytesWritten, direct: direct, preallocate: !direct && file.ownsDescriptor && Self.isRegularFile(file.fd))
    }

    deinit { abort() }

    /// Room for `count` pages at `address` (at most `maxPages`):
    /// returns where their contents go. `commit` or `discard` must follow.
    public func reserve(pid: Int32, address: UInt64, count: Int) throws -> UnsafeMutableRawPointer {
        precondition(!closed && reserved == nil && count > 0 && count <= Self.maxPages)
        if used + Self.recordOverhead + count * ImageFormat.pageSize > Self.bufferBytes { try rotate() }
        reserved = (pid, address, count)
        return shared.buffers[current] + used + Self.headerBytes
    }

    /// Forgets the last reservation (its read failed).
    public func discard() { reserved = nil }

    /// Turns the reserved pages, now filled in, into records: runs of pages
    /// reading as zero become ZERO records, the others PAGES records, each
    /// written where the pages already are (later runs move down over the
    /// space a zero page leaves). Returns the number of data and zero pages.
    public func commit() -> (data: Int, zero: Int) {
        guard let r = reserved else { preconditionFailure("commit without reserve") }
        let (pid, address, count) = (r.pid, r.address, r.count)
        reserved = nil
        let page = ImageFormat.pageSize
        let pages = shared.buffers[current] + used + Self.headerBytes
        var out = shared.buffers[current] + used
        var result = (data: 0, zero: 0)
        // `out` never passes the pages not yet turned into records: a record
        // of pages ends 4 bytes into the zero page after it (tested already),
        // a ZERO record takes 28 of the pages it stands for.
        forEachZeroStretch(UnsafeRawPointer(pages), pages: count) { i, n, zero in
            let at = address + UInt64(i * page)
            if zero {
                out += header(out, .zero, pid: pid, count: n, address: at, bytes: 0)
                result.zero += n
            } else {
                let data = out + Self.headerBytes
                if data != pages + i * page { memmove(data, pages + i * page, n * page) }
                out += header(out, .pages, pid: pid, count: n, address: at, bytes: n * page)
                records.pageBytes += UInt64(n * page)
                result.data += n
            }
            records.recordCount += 1
        }
        used = shared.buffers[current].distance(to: out)
        return result
    }

    /// Writes a record's header at `p`, and its checksum after the `bytes` of pages that follow it. Returns the record's size.
    private func header(_ p: UnsafeMutableRawPointer, _ type: RecordType, pid: Int32, count: Int, address: UInt64, bytes: Int) -> Int {
        p.storeBytes(of: type.rawValue.littleEndian, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: UInt32(16 + bytes).littleEndian, toByteOffset: 4, as: UInt32.self)
        p.storeBytes(of: UInt32(bitPattern: pid).littleEndian, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: UInt32(count).littleEndian, toByteOffset: 12, as: UInt32.self)
        p.storeBytes(of: address.littleEndian, toByteOffset: 16, as: UInt64.self)
        let size = Self.headerBytes + bytes
        let crc = crc32c(UnsafeRawBufferPointer(start: p, count: size))
        (p + size).storeBytes(of: crc.littleEndian, as: UInt32.self)
        return size + 4
    }

    /// ZERO records for `count` pages at `address`.
    public func writeZeroPages(pid: Int32, address: UInt64, count: Int) throws {
        precondition(!closed && reserved == nil)
        var left = count, at = address
        while left > 0 {
            let n = min(left, PageRecord.maxZeroPages)
            if used + Self.recordOverhead > Self.bufferBytes { try rotate() }
            used += header(shared.buffers[current] + used, .zero, pid: pid, count: n, address: at, bytes: 0)
            records.recordCount += 1
            left -= n
            at += UInt64(n * ImageFormat.pageSize)
        }
    }

    /// Hands the filled buffer to the writer (with O_DIRECT only its whole
    /// blocks; the rest starts the next buffer) and takes a free one.
    private func rotate() throws {
        let next = try shared.take()
        let whole = direct ? used / Self.blockSize * Self.blockSize : used
        memcpy(shared.buffers[next], shared.buffers[current] + whole, used - whole)
        shared.submit(current, count: whole)
        current = next
        used -= whole
    }

    /// Writes everything out; the unaligned rest goes back to the FileSink,
    /// with O_DIRECT off again, and the RecordWriter writes through the
    /// FileSink from then on.
    func close() throws {
        guard !closed else { return }
        closed = true
        let whole = direct ? used / Self.blockSize * Self.blockSize : used
        let rest = UnsafeRawBufferPointer(start: shared.buffers[current] + whole, count: used - whole)
        shared.submit(current, count: whole)
        let written = shared.stop()
        if direct { Self.disableDirect(file.fd) }
        file.noteWritten(written)
        if let error = shared.error { throw error }
        try file.write(rest)
    }

    /// Stops the writer after a failure elsewhere; what was queued is dropped.
    func abort() {
        guard !closed else { return }
        closed = true
        shared.cancel()
        file.noteWritten(shared.stop())
        if direct { Self.disableDirect(file.fd) }
    }

    private static func isRegularFile(_ fd: Int32) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFREG
    }

    private static func enableDirect(_ fd: Int32) -> Bool {
        guard isRegularFile(fd) else { return false }
        let flags = fcntl(fd, F_GETFL)
        return oDirect != 0 && flags >= 0 && fcntl(fd, F_SETFL, flags | oDirect) == 0
    }

    private static func disableDirect(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~oDirect) }
    }

    /// The buffers and the queue between the caller and the writer thread.
    private final class Shared: @unchecked Sendable {
        let buffers: [UnsafeMutableRawPointer]
        var free: [Int]
        private var queue: [(index: Int, count: Int)] = []
        private let lock = NSCondition()
        private var stopping = false, cancelled = false, exited = false
        private(set) var error: Error?
        private let fd: Int32, name: String
        private var offset: UInt64 = 0
        private var direct = false
        private var written: UInt64 = 0
        /// Whether blocks are reserved ahead of the writes, and up to which file offset they are.
        private var preallocate = false
        private var reservedEnd: UInt64 = 0

        init(fd: Int32, name: String) {
            self.fd = fd; self.name = name
            buffers = (0..<PageRecordStream.bufferCount).map { _ in
                UnsafeMutableRawPointer.allocate(byteCount: PageRecordStream.bufferBytes, alignment: PageRecordStream.blockSize)
            }
            free = Array(buffers.indices)
        }

        deinit { for b in buffers { b.deallocate() } }

        /// Starts the writer thread; `offset` is the file offset it starts at (for error messages).
        func start(offset: UInt64, direct: Bool, preallocate: Bool) {
            self.offset = offset
            self.direct = direct
            self.preallocate = preallocate
            let thread = Thread { [self] in run() }
            thread.name = "ferry page writer"
            thread.start()
        }

        /// A free buffer; waits for the writer. Throws the writer's error.
        func take() throws -> Int {
            lock.lock()
            defer { lock.unlock() }
            while free.isEmpty && error == nil { lock.wait() }
            if let error { throw error }
            return free.removeLast()
        }

        func submit(_ index: Int, count: Int) {
            lock.lock()
            if count > 0 { queue.append((index, count)) } else { free.append(index) }
            lock.broadcast()
            lock.unlock()
        }

        func cancel() {
            lock.lock()
            cancelled = true
            lock.broadcast()
            lock.unlock()
        }

        /// Waits until the writer has written (or, cancelled, dropped) the queue and exited. Returns the bytes it wrote.
        func stop() -> UInt64 {
            lock.lock()
            defer { lock.unlock() }
            stopping = true
            lock.broadcast()
            while !exited { lock.wait() }
            return written
        }

        func run() {
            lock.lock()
            while true {
                while queue.isEmpty && !stopping && !cancelled { lock.wait() }
                if cancelled || error != nil { free += queue.map(\.index); queue.removeAll() }
                guard !queue.isEmpty else {
                    if stopping || cancelled { break }
                    continue
                }
                let job = queue.removeFirst()
                lock.unlock()
                let failure = write(UnsafeRawBufferPointer(start: buffers[job.index], count: job.count))
                lock.lock()
                if let failure, error == nil { error = failure }
                free.append(job.index)
                lock.broadcast()
            }
            if let failure = releaseReserved(), error == nil { error = failure }
            exited = true
            lock.broadcast()
            lock.unlock()
        }

        /// Reserves the next `preallocationStep` bytes of the file once the
        /// writes reach the end of what is reserved. A refusal (a file system
        /// without fallocate, no space) only stops the reserving: the writes
        /// themselves report what matters.
        private func reserve(through end: UInt64) {
            guard preallocate, end > reservedEnd else { return }
            let from = max(reservedEnd, offset)
            if ferry_preallocate(fd, Int64(from), Int64(PageRecordStream.preallocationStep)) == 0 {
                reservedEnd = from + PageRecordStream.preallocationStep
            } else {
                preallocate = false
            }
        }

        /// Frees the blocks reserved past the end of the file: truncating a
        /// file to its own size drops them (checked on ext4 here: `du` of the
        /// file fell back to its size).
        private func releaseReserved() -> Error? {
            guard reservedEnd > 0 else { return nil }
            reservedEnd = 0
            var st = stat()
            guard fstat(fd, &st) == 0 else { return ImageError(file: name, "fstat failed: \(String(cString: strerror(errno)))") }
            guard ftruncate(fd, st.st_size) == 0 else {
                return ImageError(file: name, "ftruncate to \(st.st_size) bytes (freeing blocks reserved past its end) failed: \(String(cString: strerror(errno)))")
            }
            return nil
        }

        /// Writes all of `data`; with O_DIRECT refused at write time (EINVAL), goes on without it.
        /// Through the page cache, 128 KiB per call: in a hand-run test on this
        /// 6.18 VM, larger calls made ext4 writes 3–7× costlier in CPU (896 MiB:
        /// 0.31–0.42 s in 64–256 KiB calls, 1.3 s in 512 KiB, 2.2–3.2 s in
        /// 4 MiB); larger page-cache folios are the guessed cause, unconfirmed.
        private func write(_ data: UnsafeRawBufferPointer) -> Error? {
            reserve(through: offset + UInt64(data.count))
            var done = 0
            while done < data.count {
                let n = Glibc.write(fd, data.baseAddress! + done, direct ? data.count - done : min(data.count - done, 128 << 10))
                if n < 0 {
                    let e = errno
                    if e == EINTR { continue }
                    if e == EINVAL && direct {
                        direct = false
                        PageRecordStream.disableDirect(fd)
                        continue
                    }
                    return ImageError(file: name, offset: Int64(offset), "write failed: \(String(cString: strerror(e)))")
                }
                done += n
                offset += UInt64(n)
                written += UInt64(n)
            }
            return nil
        }
    }
}

/// O_DIRECT, which Glibc's Swift overlay does not export (it needs _GNU_SOURCE); 0: not tried.
#if os(Linux) && arch(x86_64)
private let oDirect: Int32 = 0o40000
#elseif os(FreeBSD)
private let oDirect: Int32 = 0x10000
#else
private let oDirect: Int32 = 0
#endif

/// Splits the `pages` pages at `base` into stretches that read all zero or
/// all non-zero, in order: `body(first page, page count, zero)`. Each page is
/// tested once, and a stretch is handed on as soon as the page after it has
/// been tested and before any later one is, so `body` may overwrite the start
/// of that next page (`PageRecordStream.commit` writes records in place).
public func forEachZeroStretch(_ base: UnsafeRawPointer, pages: Int, _ body: (Int, Int, Bool) throws -> Void) rethrows {
    guard pages > 0 else { return }
    var i = 0
    var verdict = isZeroPage(base)
    while i < pages {
        var j = i + 1
        var next = false
        while j < pages {
            next = isZeroPage(base + j * ImageFormat.pageSize)
            if next != verdict { break }
            j += 1
        }
        try body(i, j - i, verdict)
        verdict = next
        i = j
    }
}

/// True if the 4096 bytes at `p` are all zero.
public func isZeroPage(_ p: UnsafeRawPointer) -> Bool {
    var acc: UInt64 = 0
    var k = 0
    while k < ImageFormat.pageSize {
        // 512 bytes at a time: the loop vectorizes, and a non-zero page is usually seen in the first block.
        for w in 0..<64 { acc |= p.loadUnaligned(fromByteOffset: k + w * 8, as: UInt64.self) }
        if acc != 0 { return false }
        k += 512
    }
    return true
}
