import FerryCore
import Testing

/// The lowest-free-number rule open(2) follows, which the batched fd
/// restore predicts its descriptors with.
struct FreeDescriptorsTests {
    @Test func takesTheLowestFreeNumber() {
        var t = FreeDescriptors(occupied: [0, 1, 2, 5, 40])
        #expect(t.take() == 3)
        #expect(t.take() == 4)
        #expect(t.take() == 6)
        t.release(4)
        #expect(t.take() == 4)
        t.occupy(7)
        #expect(t.take() == 8)
        #expect(!t.isFree(40) && t.isFree(39))
    }

    @Test func anOpenMovedToItsNumberFreesItsOwn() {
        // Placing fds 0..<n in order where 0 and 1 are taken by others: each
        // open lands on the lowest free number and is moved to its target.
        var t = FreeDescriptors(occupied: [100, 101])
        for target in Int32(0)..<50 {
            let x = t.take()
            #expect(x == target, "open for fd \(target) returned \(x)")
            if x != target { t.occupy(target); t.release(x) }
        }
        var u = FreeDescriptors(occupied: [])
        let x = u.take()       // 0, to go to fd 9
        u.occupy(9); u.release(x)
        #expect(u.take() == 0)
        #expect(u.take() == 1)
    }
}
