import FerryCore
import FerryImage
import Testing

/// fdinfo "lock:" lines → the locks ferry takes again, or the refusal naming them.
struct FileLocksTests {
    func parse(_ line: String) -> Result<FileLock, LockRefusal> { FileLocks.parse(Substring(line), who: "fd 3") }

    @Test func posixFlockAndOFDLocksAreCarried() throws {
        #expect(try parse("lock:\t1: FLOCK  ADVISORY  WRITE 26248 fe:00:16221424 0 EOF").get() == FileLock(kind: .flock, write: true))
        #expect(try parse("lock:\t1: POSIX  ADVISORY  READ 26248 fe:00:16221817 5 14").get()
                == FileLock(kind: .posix, write: false, start: 5, end: 14))
        #expect(try parse("lock:\t2: OFDLCK ADVISORY  WRITE -1 fe:00:16221893 100 EOF").get()
                == FileLock(kind: .ofd, write: true, start: 100))
    }

    @Test func activeLeasesAreCarried() throws {
        #expect(try parse("lock:\t1: LEASE  ACTIVE    READ 26248 fe:00:16221424 0 EOF").get() == FileLock(kind: .lease, write: false))
        #expect(try parse("lock:\t1: LEASE  ACTIVE    WRITE 26248 fe:00:16221424 0 EOF").get() == FileLock(kind: .lease, write: true))
    }

    @Test func brokenLeasesDelegationsWaitersAndDamagedLinesAreRefused() {
        for (line, why) in [
            ("lock:\t1: LEASE  BREAKING  READ 1234 fe:00:1 0 EOF", "a lease being broken"),
            ("lock:\t1: LEASE  BREAKER   WRITE 1234 fe:00:1 0 EOF", "a lease being broken"),
            ("lock:\t1: LEASE  ACTIVE    UNLCK 1234 fe:00:1 0 EOF", "a lease being broken"),
            ("lock:\t1: DELEG  ACTIVE    READ 1234 fe:00:1 0 EOF", "a delegation"),
            ("lock:\t1: -> POSIX  ADVISORY  WRITE 1234 fe:00:1 0 EOF", "waiting"),
            ("lock:\t1: POSIX  MANDATORY WRITE 1234 fe:00:1 0 EOF", "a mandatory lock"),
            ("lock:\t1: POSIX  ADVISORY  WRITE 1234 fe:00:1 9 3", "cannot read"),
            ("lock:\t1: POSIX  ADVISORY", "cannot read"),
        ] {
            guard case .failure(let r) = parse(line) else { Issue.record("\(line) was accepted"); continue }
            #expect(r.message.hasPrefix("fd 3 holds "), "\(r.message)")
            #expect(r.message.contains(why), "\(line): \(r.message)")
        }
    }

    @Test func everyLineOfAFdinfo() throws {
        let text = "pos:\t0\nflags:\t02\nlock:\t1: POSIX  ADVISORY  READ 9 fe:00:1 0 0\nlock:\t2: POSIX  ADVISORY  WRITE 9 fe:00:1 8 EOF\n"
        #expect(try FileLocks.locks(fdinfo: text, who: "x").get().count == 2)
        #expect(try FileLocks.locks(fdinfo: "pos:\t0\n", who: "x").get().isEmpty)
    }

    @Test func leasesOfTheHostAndTheOpensThatWouldBreakThem() {
        let text = """
        1: POSIX  ADVISORY  WRITE 26248 fe:00:16221817 0 EOF
        2: LEASE  ACTIVE    WRITE 14778 fe:00:16224627 0 EOF
        3: LEASE  ACTIVE    READ  14779 103:02:77 0 EOF
        4: LEASE  BREAKING  UNLCK 14780 fe:00:5 0 EOF
        """
        let held = FileLocks.heldLeases(procLocks: text)
        #expect(held == [HeldLease(pid: 14778, write: true, device: 0xfe00, inode: 16224627),
                         HeldLease(pid: 14779, write: false, device: 0x10302, inode: 77)])
        #expect(FileLocks.wouldBreak(held, device: 0xfe00, inode: 16224627, accessMode: 0)?.pid == 14778)
        #expect(FileLocks.wouldBreak(held, device: 0x10302, inode: 77, accessMode: 0) == nil)
        #expect(FileLocks.wouldBreak(held, device: 0x10302, inode: 77, accessMode: 2)?.pid == 14779)
        #expect(FileLocks.wouldBreak(held, device: 0xfe00, inode: 1, accessMode: 2) == nil)
    }

    @Test func rangesForStructFlock() {
        #expect(FileLocks.range(FileLock(kind: .posix, write: true, start: 5, end: 14))! == (5, 10))
        #expect(FileLocks.range(FileLock(kind: .posix, write: true, start: 100))! == (100, 0))
        #expect(FileLocks.range(FileLock(kind: .posix, write: true, start: 9, end: 3)) == nil)
        #expect(FileLocks.range(FileLock(kind: .posix, write: true, start: UInt64.max)) == nil)
        #expect(FileLocks.range(FileLock(kind: .posix, write: true, start: 0, end: UInt64.max)) == nil)
    }
}
