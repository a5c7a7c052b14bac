import Foundation

/// 64-bit FNV-1a of strings: a short fingerprint of inputs (run folders, stage items), not a security hash.
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    public init() {}
    public mutating func add(_ text: String) {
        for b in text.utf8 { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        value = (value ^ 0xff) &* 0x0000_0100_0000_01b3
    }
    /// Hexadecimal, without leading zeros (as run folders have recorded it).
    public var hex: String { String(value, radix: 16) }

    /// FNV-1a of a file's bytes as "fnv1a64:<16 hex digits>" ("unreadable" when it cannot be read).
    /// Read in 4 MB pieces, so that hashing a large embedding matrix does not hold it in memory.
    public static func file(_ path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "unreadable" }
        defer { try? handle.close() }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        while let piece = try? handle.read(upToCount: 4 << 20), !piece.isEmpty {
            piece.withUnsafeBytes { raw in for b in raw { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 } }
        }
        return String(format: "fnv1a64:%016llx", h)
    }
}

extension FNV1a {
    /// FNV-1a of a string's UTF-8 bytes alone (no terminator): a hash that is the same in every run and on every
    /// platform (Swift's Hasher is not), for seeding per-item random streams and stable shuffles.
    public static func hash(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return h
    }
}
