import Glibc
@testable import FerryLinux
import Testing

/// /proc parsers on text as Linux 6.x prints it (no root needed).
struct ProcFSTests {
    @Test func smapsGivesEachMappingItsHeaderAndFlags() throws {
        let smaps = """
        55d0c0000000-55d0c0021000 r--p 00000000 08:01 1234                       /usr/bin/my prog
        Size:                132 kB
        KernelPageSize:        4 kB
        Rss:                 128 kB
        THPeligible:           0
        VmFlags: rd mr mw me dw sd
        7ffd1000-7ffd3000 rw-p 00000000 00:00 0                                  [stack]
        Size:                  8 kB
        Anonymous:             8 kB
        VmFlags: rd wr mr mw me gd ac
        ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
        Size:                  4 kB
        VmFlags: ex

        """
        let (headers, flags) = ProcFS.splitSmaps(Array(smaps.utf8))
        let entries = try ProcFS.parseMaps(headers)
        #expect(entries.count == 3 && flags.count == 3)
        #expect(entries[0].path == "/usr/bin/my prog" && entries[0].inode == 1234 && entries[0].read && !entries[0].write)
        #expect(entries[1].start == 0x7ffd1000 && entries[1].path == "[stack]")
        #expect(flags[0] == ["rd", "mr", "mw", "me", "dw", "sd"])
        #expect(flags[1].contains("gd") && flags[1].count == 7)
        #expect(flags[2] == ["ex"])
        // This process's own smaps: every mapping has its flags.
        let mine = try ProcFS.maps(getpid())
        #expect(!mine.isEmpty && mine.allSatisfy { !$0.vmFlags.isEmpty })
    }

    /// smaps is split as it is read: any cut between pieces gives the same lines.
    @Test func smapsSplitInPiecesMatchesWhole() throws {
        let bytes = try ProcFS.read("/proc/self/smaps") + Array("7f00-7f01 r--p 0 00:00 0\nVmFlags: rd".utf8)
        let whole = ProcFS.splitSmaps(bytes)
        #expect(whole.flags.count == whole.headers.split(separator: "\n").count)
        #expect(whole.flags.last == ["rd"])
        for size in [1, 7, 64, 4096] {
            var s = ProcFS.SmapsSplitter()
            var at = 0
            bytes.withUnsafeBufferPointer { b in
                while at < b.count {
                    let n = min(size, b.count - at)
                    s.feed(UnsafeBufferPointer(rebasing: b[at..<(at + n)]))
                    at += n
                }
            }
            let pieces = s.finish()
            #expect(pieces.headers == whole.headers && pieces.flags == whole.flags, "pieces of \(size) bytes")
        }
    }

    @Test func malformedMapsLinesAreRefused() {
        for line in ["zzz", "1000-2000 r-", "1000-2000 rw-p 0 08:01", "1000 rw-p 0 08:01 1", "1000-2000 rw-p 0 0801 1",
                     "11112222333344445-2000 rw-p 0 08:01 1", "1000-2000 rw-p 0 08:01 12x /a"] {
            #expect(throws: FerryError.self, "\(line)") { try ProcFS.parseMaps(line) }
        }
        #expect((try? ProcFS.parseMaps("1000-2000 rw-s 10 fd:1 7 /dev/zero (deleted)  "))?.first?.path == "/dev/zero (deleted)")
    }

    @Test func statusLinesBecomeKeysAndTrimmedValues() {
        let s = ProcFS.parseStatus("Name:\tmy: prog\nUmask:\t0022\nNSpid:\t812\t1\nCapEff:\t000001fffeffffff \nno colon here\nEmpty:\n")
        #expect(s["Name"] == "my: prog" && s["Umask"] == "0022" && s["NSpid"] == "812\t1")
        #expect(s["CapEff"] == "000001fffeffffff" && s["Empty"] == "" && s.count == 5)
        #expect(ProcFS.parseStatus("").isEmpty)
    }
}
