import Foundation
import MedFoundation
import MedImage

/// Why a file could not be read or written. Every case carries the file path and a reason a person can act on;
/// `description` is the one line the CLI prints after `error: `.
public enum FormatError: MedError, Sendable, Equatable {
    /// The file does not exist.
    case notFound(path: String)
    /// The file exists but could not be opened or read (permissions, a folder, an I/O error).
    case unreadable(path: String, reason: String)
    /// The content is not a format MedSelect reads, or a feature of the format it does not support.
    case unsupported(path: String, reason: String)
    /// The header is malformed or inconsistent (bad magic, dimensions, offsets, types).
    case invalidHeader(path: String, reason: String)
    /// The file ends before all the data the header announces.
    case truncated(path: String, reason: String)
    /// Compressed data or image data is damaged.
    case corrupt(path: String, reason: String)
    /// Reading would need more memory than the configured limit.
    case tooLarge(path: String, bytes: Int64, limit: Int64)
    /// The image cannot be stored in the requested format as it is (value range, dimensions, types).
    case cannotRepresent(path: String, reason: String)
    /// Writing failed; nothing was left at the destination.
    case writeFailed(path: String, reason: String)

    public var path: String {
        switch self {
        case .notFound(let p), .unreadable(let p, _), .unsupported(let p, _), .invalidHeader(let p, _),
             .truncated(let p, _), .corrupt(let p, _), .tooLarge(let p, _, _), .cannotRepresent(let p, _),
             .writeFailed(let p, _):
            return p
        }
    }

    public var reason: String {
        switch self {
        case .notFound: return "no such file"
        case .unreadable(_, let r), .unsupported(_, let r), .invalidHeader(_, let r), .truncated(_, let r),
             .corrupt(_, let r), .cannotRepresent(_, let r), .writeFailed(_, let r):
            return r
        case .tooLarge(_, let bytes, let limit):
            return "image needs \(FormatError.formatBytes(bytes)), more than the limit of \(FormatError.formatBytes(limit))"
                + " (raise it with --max-memory or MEDSELECT_MAX_BYTES)"
        }
    }

    static func formatBytes(_ b: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = Double(b)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(b) B" : String(format: "%.1f %@", v, units[u])
    }
}

/// Limits applied while reading.
public struct ReadOptions: Sendable {
    /// Largest decoded image (bytes of the on-disk element type, and of the Float32 working copy) a reader may allocate.
    public var maxBytes: Int64
    /// For a DICOM folder holding several series: the SeriesInstanceUID to read (`--series`).
    public var dicomSeries: String? = nil

    /// Default limit: the process's ``MedImage/MemoryLimit`` when one is set (the command line sets it from
    /// `--max-memory`), else `MEDSELECT_MAX_BYTES` from the environment when it is a positive number, else 4 GiB.
    public static var defaultMaxBytes: Int64 {
        if MemoryLimit.maxBytes != .max { return MemoryLimit.maxBytes }
        if let s = ProcessInfo.processInfo.environment["MEDSELECT_MAX_BYTES"], let v = Int64(s), v > 0 { return v }
        return 4 << 30
    }

    public init(maxBytes: Int64 = ReadOptions.defaultMaxBytes) {
        self.maxBytes = maxBytes
    }

    public static var `default`: ReadOptions { ReadOptions() }

    /// Checks `count` elements of `bytesPerElement` bytes (and their Float32 copy) against the limit,
    /// with overflow treated as too large.
    func check(elements count: Int64, bytesPerElement: Int, path: String) throws {
        let per = Int64(max(bytesPerElement, 4))
        let (total, overflow) = count.multipliedReportingOverflow(by: per)
        if overflow || total > maxBytes {
            throw FormatError.tooLarge(path: path, bytes: overflow ? Int64.max : total, limit: maxBytes)
        }
    }
}

/// Product of dimensions with overflow detection.
func checkedProduct(_ dims: [Int64]) -> Int64? {
    var p: Int64 = 1
    for d in dims {
        let (r, o) = p.multipliedReportingOverflow(by: d)
        if o { return nil }
        p = r
    }
    return p
}
