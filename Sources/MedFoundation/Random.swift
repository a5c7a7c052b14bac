/// SplitMix64 (Steele, Lea and Flood, 2014): a small, fast, seedable generator; the same seed gives the same
/// sequence on every platform. Also the standard way to expand one seed into the state of a larger generator.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 { SplitMix64.step(&state) }

    /// One SplitMix64 step on an explicit state: advances `state` and returns the mixed output.
    @inline(__always)
    public static func step(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
