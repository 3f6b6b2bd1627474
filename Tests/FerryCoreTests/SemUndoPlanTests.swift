import Testing
@testable import FerryCore

@Suite struct SemUndoPlanTests {
    @Test func singleThreadedWithoutAListIsCarried() {
        #expect(SemUndoPlan.refusal(.init(pid: 7, comm: "db", threads: 1, hasUndoList: false, lastOperated: [3])) == nil)
        #expect(!SemUndoPlan.needsSemaphores(threads: 1, hasUndoList: false))
    }

    @Test func singleThreadedWithAListIsRefused() throws {
        let why = try #require(SemUndoPlan.refusal(.init(pid: 7, comm: "db", threads: 1, hasUndoList: true, lastOperated: [])))
        #expect(why.hasPrefix("cannot checkpoint process 7 (db): it has a System V semaphore undo list (semop with SEM_UNDO)"), "\(why)")
    }

    /// Threads always have a list (CLONE_SYSVSEM): refused only when the process changed a semaphore last.
    @Test func threadedIsRefusedWhenItOperatedLast() throws {
        #expect(SemUndoPlan.refusal(.init(pid: 7, comm: "db", threads: 3, hasUndoList: true, lastOperated: [])) == nil)
        let why = try #require(SemUndoPlan.refusal(.init(pid: 7, comm: "db", threads: 3, hasUndoList: true, lastOperated: [4])))
        #expect(why.contains("last to change System V semaphore set 4"), "\(why)")
        // No task to compare with: the same rule for any process.
        #expect(SemUndoPlan.refusal(.init(pid: 7, comm: "db", threads: 1, hasUndoList: nil, lastOperated: [4])) != nil)
        #expect(SemUndoPlan.refusal(.init(pid: 7, comm: "db", threads: 1, hasUndoList: nil, lastOperated: [])) == nil)
    }

    /// No semaphore set in the namespace: no undo entry can exist, even with a list (a process that once had threads).
    @Test func noSetsMeansNoEntries() {
        #expect(SemUndoPlan.refusal(.init(pid: 7, comm: "python3", threads: 1, hasUndoList: true, lastOperated: [], setsExist: false)) == nil)
        #expect(SemUndoPlan.refusal(.init(pid: 7, comm: "python3", threads: 1, hasUndoList: true, lastOperated: [], setsExist: true)) != nil)
        #expect(SemUndoPlan.refusal(.init(pid: 7, comm: "python3", threads: 1, hasUndoList: true, lastOperated: [], setsExist: nil)) != nil)
    }
}
