import Testing
import FerryCore
import FerryImage

struct FifoPlanTests {
    let d = DescriptorFacts(pid: 42, fd: 5, path: "/run/app.fifo")

    @Test func aFifosIDNeverMeetsAPipesAndKeepsDeviceAndInodeApart() throws {
        let a = try #require(FifoPlan.id(device: 0x803, inode: 12))
        #expect(a & FileDescriptorImage.fifoIDBit != 0)
        #expect(a != FifoPlan.id(device: 0x803, inode: 13))
        #expect(a != FifoPlan.id(device: 0x804, inode: 12))
        // The largest pipe id (a 32-bit pipefs inode) is below every FIFO id.
        #expect(try #require(FifoPlan.id(device: 0, inode: 0)) > UInt64(UInt32.max))
        #expect(FifoPlan.id(device: (1 << 31) - 1, inode: (1 << 32) - 1) == UInt64.max)
    }

    @Test func numbersTooLargeForTheIDAreRefusedByName() {
        #expect(FifoPlan.id(device: 1 << 31, inode: 1) == nil)
        #expect(FifoPlan.id(device: 1, inode: 1 << 32) == nil)
        #expect(FifoPlan.refusal(d, device: 1, inode: 2) == nil)
        let why = FifoPlan.refusal(d, device: 1, inode: 1 << 40)
        #expect(why?.hasPrefix("cannot checkpoint 42: fd 5 (/run/app.fifo) is a FIFO") == true)
    }

    @Test func eachFifoIsHeldOnceByItsFirstPathAndOldImagesNot() {
        func fifo(_ fd: Int32, _ id: UInt64, _ path: String, sharedWith: Int32? = nil) -> FileDescriptorImage {
            FileDescriptorImage(fd: fd, kind: .fifo, flags: 0, path: path, pipeID: id, sharedWith: sharedWith)
        }
        let bit = FileDescriptorImage.fifoIDBit
        var a = ProcessImage(pid: 10, ppid: 1, threads: [])
        a.files = [fifo(3, bit | 1, "/a"), fifo(4, bit | 1, "/a", sharedWith: 3), fifo(5, 0, "/old"),
                   FileDescriptorImage(fd: 6, kind: .pipe, flags: 0, pipeID: 9)]
        var b = ProcessImage(pid: 11, ppid: 10, threads: [])
        b.files = [fifo(3, bit | 2, "/b"), fifo(4, bit | 1, "/a")]
        let held = FifoPlan.held([a, b])
        #expect(held.map(\.id) == [bit | 1, bit | 2])
        #expect(held.map(\.path) == ["/a", "/b"])
    }
}
