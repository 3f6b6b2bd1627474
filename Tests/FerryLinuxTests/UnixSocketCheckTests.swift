import Foundation
import Testing
import FerryTestSupport

/// `ferry check PID` lists each socket of a tree and whether a checkpoint carries it. Needs root (pidfd_getfd).
@Suite(.serialized, .enabled(if: getuid() == 0, "reading another process's sockets needs root"))
struct UnixSocketCheckTests {
    @Test func checkListsEachSocketWithItsVerdict() throws {
        let h = try RefusalTests.Helper("""
        import os,socket,time
        os.closerange(3, 1 << 16)
        os.setsid()
        a,b=socket.socketpair()
        t=socket.socket()
        t.bind(("127.0.0.1",0))
        if os.fork()==0:
            a.close(); time.sleep(30); os._exit(0)
        print(os.getpid(),flush=True)
        time.sleep(30)
        """)
        let pid = h.firstLine()
        try #require(Int32(pid) != nil, "the helper did not start")
        let whole = try RefusalTests.ferry(["check", pid])
        #expect(whole.0 == 0, "\(whole.2)")
        let lines = whole.1.split(separator: "\n")
        #expect(lines.filter { $0.contains("carried (unix stream pair") }.count == 3, "\(whole.1)")
        // The TCP socket (bound, shared with the child) is InetSocket's: listed once per process.
        #expect(lines.filter { $0.contains("TCP IPv4 socket") && $0.contains(": carried") }.count == 2, "\(whole.1)")
        // The child alone: its end's peer is in the parent, outside that tree.
        let child = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8))?
            .split(separator: " ").first.map(String.init) ?? ""
        try #require(Int32(child) != nil, "no child")
        let alone = try RefusalTests.ferry(["check", child])
        #expect(alone.1.contains("is outside the tree"), "\(alone.1)")
    }
}
