import FerryCore
import Testing

struct ProcFilePlanTests {
    @Test func pathsOfAProcessUnderProc() {
        #expect(ProcFilePlan.parse("/proc/77/maps")! == (77, "maps"))
        #expect(ProcFilePlan.parse("/proc/77")! == (77, ""))
        #expect(ProcFilePlan.parse("/proc/77/task/78/stat")! == (77, "task/78/stat"))
        #expect(ProcFilePlan.parse("/proc/meminfo") == nil)
        #expect(ProcFilePlan.parse("/procx/1") == nil)
        #expect(ProcFilePlan.parse("/proc/0/maps") == nil)
        #expect(ProcFilePlan.parse("/proc/99999999999/maps") == nil)
    }

    @Test func filesOfTheTreeAreCarriedOthersRefusedByName() {
        let d = DescriptorFacts(pid: 5, fd: 3, path: "/proc/5/maps")
        #expect(ProcFilePlan.refusal(d, procPid: 5, tree: [5, 6], sharedAcrossProcesses: false) == nil)
        let outside = DescriptorFacts(pid: 5, fd: 3, path: "/proc/77/status")
        #expect(ProcFilePlan.refusal(outside, procPid: 77, tree: [5], sharedAcrossProcesses: false)?
            .contains("fd 3 (/proc/77/status) is a file of process 77 under /proc, outside the tree") == true)
        let task = DescriptorFacts(pid: 5, fd: 3, path: "/proc/5/task/6/stat")
        #expect(ProcFilePlan.refusal(task, procPid: 5, tree: [5], sharedAcrossProcesses: false)?.contains("of a thread") == true)
        #expect(ProcFilePlan.refusal(d, procPid: 5, tree: [5, 6], sharedAcrossProcesses: true)?.contains("several processes") == true)
    }

    @Test func theRestoredProcessesPidReplacesTheOld() {
        #expect(ProcFilePlan.livePath("/proc/5/maps", procPid: 5, live: 4242) == "/proc/4242/maps")
        #expect(ProcFilePlan.livePath("/proc/5", procPid: 5, live: 4242) == "/proc/4242")
        #expect(ProcFilePlan.livePath("/proc/6/maps", procPid: 5, live: 4242) == nil)
        #expect(ProcFilePlan.livePath("/etc/passwd", procPid: 5, live: 4242) == nil)
    }
}
