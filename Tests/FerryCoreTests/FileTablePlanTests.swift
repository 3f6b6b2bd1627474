import Testing
@testable import FerryCore

@Suite struct FileTablePlanTests {
    /// zdtm fdt_shared's tree: 1 shares with its children 2 and 3, 2 with its child 4; 5 (a child of 2) has its own.
    @Test func sharersHangTogetherByParentLinks() throws {
        let tree: [(pid: Int32, ppid: Int32)] = [(1, 0), (2, 1), (3, 1), (4, 2), (5, 2)]
        let got = try FileTablePlan.sharers(tree, group: [1: 0, 2: 0, 3: 0, 4: 0]).get()
        #expect(got == [2, 3, 4])
        #expect(try FileTablePlan.sharers(tree, group: [:]).get().isEmpty)
    }

    /// Two siblings sharing a table their parent does not: no fork order gives it back.
    @Test func siblingsSharingAloneAreRefused() {
        let tree: [(pid: Int32, ppid: Int32)] = [(1, 0), (2, 1), (3, 1)]
        guard case .failure(let r) = FileTablePlan.sharers(tree, group: [2: 7, 3: 7]) else {
            Issue.record("siblings sharing a table were accepted"); return
        }
        #expect(r.message.contains("processes 2 and 3 share one descriptor table (CLONE_FILES)"), "\(r.message)")
    }
}
