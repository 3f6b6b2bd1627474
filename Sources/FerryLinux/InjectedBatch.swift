#if os(Linux)
import Glibc
import FerryCore

/// Many system calls run inside a process ferry is building, in one resume
/// instead of one resume each: a table of calls goes into the scratch area
/// and a loop there runs them in order, stopping at the first failure.
///
/// The loop (at `ScratchArea.address + codeOffset`, after `syscall; int3`):
///
///     loop: test r12, r12        ; calls left?
///           jz   done
///           mov  rax, [rbx]      ; number
///           mov  rdi, [rbx+8] … mov r9, [rbx+48]
///           syscall
///           mov  [rbx+56], rax   ; result
///           cmp  rax, -4095      ; a failure stops the loop
///           jae  done
///           add  rbx, 64
///           dec  r12
///           jmp  loop
///     done: int3
///
/// Entered with rbx = the table, r12 = the number of calls; at the int3,
/// r12 = 0 when every call succeeded, else rbx points at the failed entry.
/// Only for processes ferry built (the trap path): the loop's int3 needs
/// ferry as tracer, which a process being built always has (a ferry that
/// dies takes it with it: PTRACE_O_EXITKILL).
struct InjectedBatch {
    struct Call {
        var nr: Int
        var args: [UInt64]
        /// A NUL-terminated string placed in the scratch data, its address
        /// passed as argument `stringArgument`.
        var string: String?
        var stringArgument: Int
        /// What the call is for, in an error; made only when one is thrown
        /// (a restore queues one call or more per mapping and per fd).
        var what: String { describe() }
        private let describe: () -> String

        init(_ nr: Int, _ args: [UInt64], string: String? = nil, at stringArgument: Int = 0, _ what: @autoclosure @escaping () -> String) {
            self.nr = nr; self.args = args; self.string = string; self.stringArgument = stringArgument; self.describe = what
        }
    }

    static let code: [UInt8] = [
        0x4d, 0x85, 0xe4, 0x74, 0x32, 0x48, 0x8b, 0x03, 0x48, 0x8b, 0x7b, 0x08,
        0x48, 0x8b, 0x73, 0x10, 0x48, 0x8b, 0x53, 0x18, 0x4c, 0x8b, 0x53, 0x20,
        0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b, 0x30, 0x0f, 0x05, 0x48, 0x89,
        0x43, 0x38, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x73, 0x09, 0x48, 0x83,
        0xc3, 0x40, 0x49, 0xff, 0xcc, 0xeb, 0xc9, 0xcc,
    ]
    static let codeOffset: UInt64 = 4
    static let entrySize = 64

    private(set) var calls: [Call] = []
    var isEmpty: Bool { calls.isEmpty }

    mutating func add(_ call: Call) { calls.append(call) }

    /// Runs the queued calls in `injector`'s process and empties the queue;
    /// returns each call's result. The first failing call throws a
    /// `SystemError` naming it; the calls after it did not run.
    @discardableResult
    mutating func run(_ injector: Injector, scratch: ScratchArea) throws -> [Int64] {
        defer { calls.removeAll(keepingCapacity: true) }
        guard !calls.isEmpty else { return [] }
        let entry = scratch.address + InjectedBatch.codeOffset
        precondition(InjectedBatch.codeOffset + UInt64(InjectedBatch.code.count) <= scratch.data - scratch.address)
        try injector.memory.write(entry, InjectedBatch.code)
        var results: [Int64] = []
        results.reserveCapacity(calls.count)
        var i = 0
        while i < calls.count {
            // One chunk: as many entries (and their strings after them) as the data area holds.
            var stringBytes = 0, count = 0
            let room = scratch.dataSize
            while i + count < calls.count {
                let c = calls[i + count]
                let extra = c.string.map { $0.utf8.count + 1 } ?? 0
                if (count + 1) * InjectedBatch.entrySize + stringBytes + extra > room {
                    guard count > 0 else {
                        throw FerryError("cannot run \(c.what) in process \(injector.memory.pid): its string of \(extra) bytes does not fit in the scratch area")
                    }
                    break
                }
                count += 1
                stringBytes += extra
            }
            // The table, then the strings after it: one buffer, one write.
            let stringBase = scratch.data + UInt64(count * InjectedBatch.entrySize)
            var out = [UInt8]()
            out.reserveCapacity(count * InjectedBatch.entrySize + stringBytes)
            func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
            var offset: UInt64 = 0
            for c in calls[i..<(i + count)] {
                u64(UInt64(bitPattern: Int64(c.nr)))
                for k in 0..<6 {
                    if c.string != nil && k == c.stringArgument {
                        u64(stringBase + offset)
                    } else {
                        u64(k < c.args.count ? c.args[k] : 0)
                    }
                }
                u64(0)
                if let s = c.string { offset += UInt64(s.utf8.count + 1) }
            }
            for c in calls[i..<(i + count)] {
                if let s = c.string { out.append(contentsOf: s.utf8); out.append(0) }
            }
            try injector.memory.write(scratch.data, out)
            let left = try injector.runLoop(entry: entry, table: scratch.data, count: count)
            let done = try injector.memory.read(scratch.data, count: count * InjectedBatch.entrySize)
            let ran = count - Int(left)
            for k in 0..<count where k < ran || (left > 0 && k == ran) {
                let r = done.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: k * InjectedBatch.entrySize + 56, as: Int64.self) }
                results.append(r)
                if r < 0 && r > -4096 {
                    throw SystemError(calls[i + k].what, errno: Int32(-r), "in process \(injector.memory.pid)")
                }
            }
            guard left == 0 else {
                throw FerryError("the injected loop in process \(injector.memory.pid) stopped at call \(ran + 1) of \(count) without a failure")
            }
            i += count
        }
        return results
    }
}
#endif
