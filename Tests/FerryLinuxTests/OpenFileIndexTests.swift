import Foundation
import Glibc
import Testing
@testable import FerryLinux

/// Dup detection: every descriptor is matched with the first one holding its
/// open file, with O(n log n) kcmp calls (it was one per pair).
struct OpenFileIndexTests {
    /// 300 opens of /dev/null (one inode, so one bucket), every third one dup'ed.
    @Test func dupsOfOneInodeAreFoundWithFewComparisons() throws {
        let me = getpid()
        var opens: [Int32] = [], dups: [(dup: Int32, of: Int32)] = []
        defer { for fd in opens + dups.map(\.dup) { close(fd) } }
        for i in 0..<300 {
            let fd = open("/dev/null", O_RDONLY)
            try #require(fd >= 0)
            opens.append(fd)
            if i % 3 == 0 { dups.append((dup(fd), fd)) }
        }
        var calls = 0
        var index = OpenFileIndex<Int>(compare: { calls += 1; return ProcessFD.kcmpFile($0, $1) })
        for fd in opens { #expect(index.twin(of: ProcessFD(pid: me, fd: fd), key: 0) == nil, "fd \(fd) is its own open file") }
        for d in dups { #expect(index.twin(of: ProcessFD(pid: me, fd: d.dup), key: 0) == ProcessFD(pid: me, fd: d.of)) }
        // log2(300) ≈ 8.2: at most 10 comparisons per descriptor.
        #expect(calls <= 10 * (opens.count + dups.count), "\(calls) kcmp calls")
    }

    /// Without an order (kcmp missing or failing), files are compared one by
    /// one and never taken for one another.
    @Test func withoutAnOrderEachFileIsDistinct() {
        var index = OpenFileIndex<Int>(compare: { _, _ in nil })
        for fd in Int32(0)..<20 { #expect(index.twin(of: ProcessFD(pid: 1, fd: fd), key: 0) == nil) }
        var byValue = OpenFileIndex<Int>(compare: { a, b in a.fd % 5 == b.fd % 5 ? 0 : nil })
        for fd in Int32(0)..<5 { #expect(byValue.twin(of: ProcessFD(pid: 1, fd: fd), key: 0) == nil) }
        #expect(byValue.twin(of: ProcessFD(pid: 1, fd: 7), key: 0) == ProcessFD(pid: 1, fd: 2))
    }

    /// Different keys never meet, whatever the order says.
    @Test func keysSeparateBuckets() {
        var index = OpenFileIndex<String>(compare: { _, _ in 0 })
        #expect(index.twin(of: ProcessFD(pid: 1, fd: 3), key: "a") == nil)
        #expect(index.twin(of: ProcessFD(pid: 1, fd: 4), key: "b") == nil)
        #expect(index.twin(of: ProcessFD(pid: 1, fd: 5), key: "a") == ProcessFD(pid: 1, fd: 3))
    }
}
