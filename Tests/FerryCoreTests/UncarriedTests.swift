import FerryCore
import FerryImage
import Testing

/// What ferry carries or refuses by name, decided from what the kernel showed.
struct UncarriedTests {
    let d = DescriptorFacts(pid: 42, fd: 7, path: "/tmp/x")

    @Test func fileOwnerAndSignalAreRefusedWhenSet() {
        #expect(Uncarried.fileOwner(d, ownerType: 1, ownerPid: 0, signal: 0) == nil)
        // A process owner and a signal are carried (the tree check refuses an owner outside it).
        #expect(Uncarried.fileOwner(d, ownerType: 1, ownerPid: 42, signal: 0) == nil)
        #expect(Uncarried.fileOwner(d, ownerType: 1, ownerPid: 42, signal: 10) == nil)
        let outside = Uncarried.fileOwnerOutside(d, owner: 99)
        #expect(outside.contains("cannot checkpoint 42: fd 7 (/tmp/x)") && outside.contains("process 99, F_SETOWN") && outside.contains("outside the tree"))
        #expect(Uncarried.fileOwner(d, ownerType: 2, ownerPid: 9, signal: 0)?.contains("process group 9") == true)
        let both = Uncarried.fileOwner(d, ownerType: 0, ownerPid: 43, signal: 10)
        #expect(both?.contains("thread 43, F_SETOWN) and a signal (10, F_SETSIG)") == true)
        #expect(Uncarried.fileOwner(d, ownerType: 0, ownerPid: 0, signal: 34)?.contains("has a signal (34, F_SETSIG)") == true)
    }

    @Test func memfdAndDeletedFileContentsAreCarriedUpToTheLimit() {
        let limit = UInt64(Uncarried.defaultGhostLimit)
        #expect(Uncarried.fileContents(d, kind: .memfd, size: limit, limit: limit, blockSize: 4096, directoryExists: true) == nil)
        #expect(Uncarried.fileContents(d, kind: .deleted, size: 0, limit: limit, blockSize: 4096, directoryExists: true) == nil)
        let big = Uncarried.fileContents(d, kind: .deleted, size: limit + 1, limit: limit, blockSize: 4096, directoryExists: true)
        #expect(big?.hasPrefix("cannot checkpoint 42: fd 7 (/tmp/x) is a deleted file of \(limit + 1) bytes") == true)
        #expect(big?.contains("--ghost-limit") == true)
        #expect(Uncarried.fileContents(d, kind: .memfd, size: 1, limit: limit, blockSize: 2 << 20, directoryExists: true)?.contains("hugetlb memfd") == true)
        #expect(Uncarried.fileContents(d, kind: .deleted, size: 1, limit: limit, blockSize: 4096, directoryExists: false)?.contains("directory is gone") == true)
        #expect(Uncarried.fileContents(d, kind: .deleted, size: 1, limit: limit, blockSize: 4096, directoryExists: true, links: 1)?.contains("still linked under another name") == true)
        let zero = DescriptorFacts(pid: 42, fd: 7, path: "/dev/zero (deleted)")
        #expect(Uncarried.fileContents(zero, kind: .deleted, size: 4096, limit: limit, blockSize: 4096, directoryExists: true)?.contains("shared memory opened as a file") == true)
    }

    @Test func aCarriedFileMappedApartFromItIsRefused() {
        #expect(Uncarried.mappedContents(pid: 5, kind: .memfd, name: "buf", place: "0x1000-0x2000", shared: true) == nil)
        let priv = Uncarried.mappedContents(pid: 5, kind: .memfd, name: "buf", place: "0x1000-0x2000", shared: false)
        #expect(priv?.hasPrefix("cannot checkpoint: process 5 maps the memfd \"buf\" at 0x1000-0x2000 privately") == true)
        #expect(Uncarried.mappedContents(pid: 5, kind: .deleted, name: "/tmp/a", place: "0x1000-0x2000", shared: true)?.contains("deleted file /tmp/a") == true)
    }

    @Test func pipeSizes() {
        // Older images (no size): only a size that holds the buffered bytes.
        #expect(Uncarried.pipeSize(saved: nil, buffered: 0) == nil)
        #expect(Uncarried.pipeSize(saved: nil, buffered: 65536) == nil)
        #expect(Uncarried.pipeSize(saved: nil, buffered: 70000) == 70000)
        // Saved sizes come back, grown or shrunk; the default is left alone.
        #expect(Uncarried.pipeSize(saved: 65536, buffered: 10) == nil)
        #expect(Uncarried.pipeSize(saved: 4096, buffered: 0) == 4096)
        #expect(Uncarried.pipeSize(saved: 1 << 20, buffered: 100) == 1 << 20)
        #expect(Uncarried.pipeSize(saved: 4096, buffered: 8192) == 8192)
    }

    @Test func eventfdModeUnseenIsRefusedUnlessCounters() {
        #expect(Uncarried.eventfd(d, modeShown: true, areCounters: false) == nil)
        #expect(Uncarried.eventfd(d, modeShown: false, areCounters: true) == nil)
        #expect(Uncarried.eventfd(d, modeShown: false, areCounters: false)?.contains("--eventfds-are-counters") == true)
    }

    @Test func securebitsTerminals() {
        #expect(Uncarried.securebits(pid: 5, comm: "a", tid: 6, bits: 0) == nil)
        #expect(Uncarried.securebits(pid: 5, comm: "a", tid: 6, bits: 0x11)?.contains("thread 6 has securebits 0x11 (PR_SET_SECUREBITS)") == true)
        #expect(Uncarried.securebits(pid: 5, comm: "a", tid: 6, bits: 0x10)?.contains("0x10 (SECBIT_KEEP_CAPS") == true)
        // tty_nr of /dev/pts/3: major 136, minor 3.
        let pts3 = Int64(136 << 8 | 3)
        #expect(Uncarried.controllingTerminal(pid: 5, comm: "a", ttyNr: 0, sessionInTree: true) == nil)
        #expect(Uncarried.controllingTerminal(pid: 5, comm: "a", ttyNr: pts3, sessionInTree: false) == nil)
        #expect(Uncarried.controllingTerminal(pid: 5, comm: "a", ttyNr: pts3, sessionInTree: true)?.contains("device 136:3") == true)
        // Carried when the tree holds the pty's master.
        #expect(Uncarried.controllingTerminal(pid: 5, comm: "a", ttyNr: pts3, sessionInTree: true, ptysInTree: [3]) == nil)
        #expect(Uncarried.controllingTerminal(pid: 5, comm: "a", ttyNr: pts3, sessionInTree: true, ptysInTree: [4])?.contains("master is not in the tree") == true)
        // A console (4:1) is never carried.
        #expect(Uncarried.controllingTerminal(pid: 5, comm: "a", ttyNr: Int64(4 << 8 | 1), sessionInTree: true, ptysInTree: [1]) != nil)
        #expect(Uncarried.foregroundGroup(pid: 5, comm: "a", index: 3, group: 7, groupsInTree: [5, 7]) == nil)
        #expect(Uncarried.foregroundGroup(pid: 5, comm: "a", index: 3, group: 8, groupsInTree: [5, 7])?.contains("foreground process group (8)") == true)
        #expect(Uncarried.shellTerminal(pid: 5, comm: "a", fd: 0, path: "/dev/pts/1", migrating: false) == nil)
        #expect(Uncarried.shellTerminal(pid: 5, comm: "a", fd: 0, path: "/dev/pts/1", migrating: true)?.contains("fd 0 (/dev/pts/1) is the terminal of its shell (--shell-job)") == true)
        #expect(Uncarried.threadUnshared(pid: 5, comm: "a", tid: 9, what: "descriptor table").contains("thread 9 has its own descriptor table"))
    }
}

struct MembarrierTests {
    @Test func registrationsBecomeRegisterCommands() {
        #expect(Membarrier.registerCommands(0) == [])
        #expect(Membarrier.registerCommands(16 | 256) == [16, 256])
        #expect(Membarrier.registerCommands(4 | 16 | 64 | 256) == [4, 16, 64, 256])
        #expect(Membarrier.registerCommands(16 | 1024) == nil)
        #expect(Membarrier.refusal(pid: 3, registered: 340) == nil)
        #expect(Membarrier.refusal(pid: 3, registered: 1 << 12)?.contains("0x1000") == true)
    }
}
