/// A process's descriptor numbers as the kernel hands them out: `take`
/// returns the lowest free number, as open(2) would, in amortised constant
/// time for the ascending fills a restore does.
public struct FreeDescriptors: Sendable {
    private var used: Set<Int32>
    /// No number below it is free.
    private var low: Int32 = 0

    public init(occupied: [Int32]) {
        used = Set(occupied)
        advance()
    }

    private mutating func advance() {
        while used.contains(low) { low += 1 }
    }

    /// The lowest free number, now occupied.
    public mutating func take() -> Int32 {
        let n = low
        used.insert(n)
        advance()
        return n
    }

    public mutating func occupy(_ n: Int32) {
        used.insert(n)
        if n == low { advance() }
    }

    public mutating func release(_ n: Int32) {
        used.remove(n)
        low = min(low, n)
    }

    public func isFree(_ n: Int32) -> Bool { !used.contains(n) }
}
