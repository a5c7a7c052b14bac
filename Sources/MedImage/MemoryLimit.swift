import Foundation
import Synchronization

/// The largest image an operation may allocate for a result whose size comes from the caller's options (resampling
/// to a spacing or shape, padding, extracting a region, stacking slices), checked before the allocation, as the
/// readers check a header's size before decoding.
///
/// One limit per process: `medselect` sets it from `--max-memory` (or `MEDSELECT_MAX_BYTES`) for every command, so
/// work running on any thread (the loaders' worker threads included) honours it. Libraries using MedImage directly get
/// no limit unless they set one.
public enum MemoryLimit {
    private static let current = Atomic<Int64>(.max)

    /// The limit in bytes (Int64.max: none).
    public static var maxBytes: Int64 {
        get { current.load(ordering: .relaxed) }
        set { current.store(newValue, ordering: .relaxed) }
    }

    /// Throws ``ImageError/tooLarge(what:bytes:limit:)`` when `count` values of `bytesPerValue` bytes would exceed the
    /// limit (overflow counts as too large). `what` says what would be allocated, e.g. "resampling to 20000 x 20000 x 50".
    public static func check(count: Int, bytesPerValue: Int = MemoryLayout<Float>.size, what: @autoclosure () -> String) throws {
        try check(dimensions: [count, bytesPerValue], what: what())
    }

    /// As ``check(count:bytesPerValue:what:)`` for the product of `dimensions` (the last one the bytes per value).
    public static func check(dimensions: [Int], what: @autoclosure () -> String) throws {
        var total: Int64 = 1, overflow = false
        for d in dimensions {
            let (p, o) = total.multipliedReportingOverflow(by: Int64(max(0, d)))
            total = p; overflow = overflow || o
        }
        let limit = maxBytes
        if overflow || total > limit { throw ImageError.tooLarge(what: what(), bytes: overflow ? .max : total, limit: limit) }
    }

    /// A byte count for messages: "29.5 GB", "10.0 MiB".
    public static func describe(_ bytes: Int64) -> String {
        if bytes == .max { return "more than 9 EB" }
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var v = Double(bytes), u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(bytes) B" : String(format: "%.1f %@", v, units[u])
    }
}
