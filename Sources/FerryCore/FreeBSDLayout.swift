import FerryImage

// The FreeBSD vmspace layout fields a restore gives a Linux process, from
// the Linux mm fields in its image (kernel/ferry_layout.h names the
// FreeBSD homes):
//
//   text  [trunc_page(start_code), round_page(end_code))  vm_taddr, vm_tsize
//   data  [round_page(start_brk), round_page(brk))         vm_daddr, vm_dsize
//
// The data range is the heap only. FreeBSD's break is vm_daddr +
// ctob(vm_dsize) and kern_break refuses a break below vm_daddr, so
// vm_daddr must be Linux's start_brk, never start_data: Linux randomises
// start_brk past the bss (by up to 32 MiB for 32-bit tasks, up to 1 GiB
// for 64-bit ones on x86-64) and leaves the gap unmapped. Linux's brk is
// byte exact and FreeBSD's page granular, so brk is rounded up, as Linux's
// own heap mapping ends at PAGE_ALIGN(brk).

/// The text and data (break) fields of a FreeBSD vmspace, page-aligned.
public struct FreeBSDVMLayout: Equatable, Sendable, CustomStringConvertible {
    public var textStart: UInt64, textEnd: UInt64
    public var dataStart: UInt64, brk: UInt64

    public init(textStart: UInt64, textEnd: UInt64, dataStart: UInt64, brk: UInt64) {
        self.textStart = textStart; self.textEnd = textEnd; self.dataStart = dataStart; self.brk = brk
    }

    public var description: String {
        "text \(AddressRange(textStart, textEnd)), data \(AddressRange(dataStart, brk))"
    }
}

/// A Linux layout that has no FreeBSD equivalent, in one line.
public struct FreeBSDLayoutError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
}

public enum FreeBSDLayoutPlan {
    /// The FreeBSD text/data fields for a Linux process's `fields`.
    public static func fromLinux(_ f: LayoutFields, pageSize: UInt64 = 4096) throws -> FreeBSDVMLayout {
        guard pageSize > 0, pageSize & (pageSize - 1) == 0 else {
            throw FreeBSDLayoutError(description: "cannot lay out for FreeBSD: page size \(pageSize) is not a power of two")
        }
        func down(_ v: UInt64) -> UInt64 { v & ~(pageSize - 1) }
        func up(_ v: UInt64) throws -> UInt64 {
            guard v <= UInt64.max - (pageSize - 1) else {
                throw FreeBSDLayoutError(description: "cannot lay out for FreeBSD: address \(hex(v)) cannot be rounded to a page")
            }
            return down(v + pageSize - 1)
        }
        guard f.startCode < f.endCode else {
            throw FreeBSDLayoutError(description: "cannot lay out for FreeBSD: the image's code range \(hex(f.startCode))–\(hex(f.endCode)) is empty or reversed")
        }
        guard f.startBrk <= f.brk else {
            throw FreeBSDLayoutError(description: "cannot lay out for FreeBSD: the image's break \(hex(f.brk)) is below its start \(hex(f.startBrk))")
        }
        let l = FreeBSDVMLayout(textStart: down(f.startCode), textEnd: try up(f.endCode),
                                dataStart: try up(f.startBrk), brk: try up(f.brk))
        if l.dataStart < l.brk, AddressRange(l.textStart, l.textEnd).overlaps(AddressRange(l.dataStart, l.brk)) {
            throw FreeBSDLayoutError(description: "cannot lay out for FreeBSD: the image's heap \(AddressRange(l.dataStart, l.brk)) overlaps its code \(AddressRange(l.textStart, l.textEnd))")
        }
        return l
    }
}
