import FerryCore
import Testing

struct ChrootPlanTests {
    @Test func aRootOtherThanSlashIsEnteredAgainOutsideAContainer() {
        #expect(ChrootPlan.target(root: "/", container: false) == nil)
        #expect(ChrootPlan.target(root: "/srv/jail", container: false) == "/srv/jail")
        // A container's processes get the container's root with it.
        #expect(ChrootPlan.target(root: "/var/lib/ct/rootfs", container: true) == nil)
    }

    @Test func aDeletedRootIsRefusedByName() {
        #expect(ChrootPlan.refusal(pid: 5, comm: "a", root: "/srv/jail") == nil)
        let why = ChrootPlan.refusal(pid: 5, comm: "a", root: "/tmp/j (deleted)")
        #expect(why?.hasPrefix("cannot checkpoint process 5 (a): its root directory /tmp/j (chroot) was deleted") == true)
    }
}
