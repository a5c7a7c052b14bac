import Foundation
import MedFormats
import MedImage

/// A reader of one public benchmark's folder layout.
public protocol DatasetAdapter: Sendable {
    /// The name users pass to `--benchmark` (e.g. "montgomery").
    static var name: String { get }
    /// One line: the layout this adapter reads.
    static var layout: String { get }
    /// True when `root` looks like this benchmark (cheap: directory listings only).
    static func detect(_ root: String) -> Bool
    /// Finds every sample; reports what it could not use instead of stopping.
    static func load(_ root: String) throws -> Dataset
}

/// The adapters, most specific first (the order detection tries them).
public enum DatasetAdapters {
    public static let all: [any DatasetAdapter.Type] = [
        NNUNetRawAdapter.self, RIGAPlusAdapter.self, MontgomeryAdapter.self, ShenzhenAdapter.self, JSRTAdapter.self,
        PROMISE12Adapter.self, ProstateMultiSiteAdapter.self, CheXmaskAdapter.self, DICOMTreeAdapter.self, GenericFolderAdapter.self, ImageTreeAdapter.self,
    ]

    public static func named(_ name: String) throws -> any DatasetAdapter.Type {
        guard let a = all.first(where: { $0.name == name.lowercased() }) else {
            throw DataError.badDataset(path: name, reason: "unknown benchmark (available: \(all.map { $0.name }.joined(separator: ", ")))")
        }
        return a
    }

    /// The first adapter whose layout matches `root`.
    public static func detect(_ root: String) throws -> any DatasetAdapter.Type {
        guard isDirectory(root) else { throw DataError.badDataset(path: root, reason: "not a folder") }
        guard let a = all.first(where: { $0.detect(root) }) else {
            throw DataError.badDataset(path: root, reason: "no known benchmark layout here (name one with --benchmark: \(all.map { $0.name }.joined(separator: ", ")))")
        }
        return a
    }

    /// Loads `root` with the named adapter, or the detected one.
    public static func load(_ root: String, benchmark: String? = nil) throws -> Dataset {
        let adapter = try benchmark.map(named) ?? detect(root)
        return try adapter.load(root)
    }
}

// MARK: - Shared helpers

func isDirectory(_ path: String) -> Bool {
    var dir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &dir) && dir.boolValue
}

func fileExists(_ path: String) -> Bool {
    var dir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &dir) && !dir.boolValue
}

/// Entries of a folder, sorted; empty when it cannot be listed.
func listing(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
}

/// Every file under `root` (relative paths, sorted), hidden files skipped.
func walk(_ root: String) -> [String] {
    guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
    var out: [String] = []
    while let p = e.nextObject() as? String {
        if p.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
        if fileExists(root + "/" + p) { out.append(p) }
    }
    return out.sorted()
}

/// Whether a file name is one of the image formats the readers take (a MetaImage or Analyze data file, .raw or
/// .img, travels with its header and is not an image by itself): `readme.txt`, `Thumbs.db` and the like are not.
func isImageFileName(_ file: String) -> Bool {
    let name = file.lowercased()
    return [".nii.gz", ".nii", ".png", ".mha", ".mhd", ".nrrd", ".nhdr", ".npy", ".hdr", ".hdr.gz"].contains { name.hasSuffix($0) }
}

func stem(_ file: String) -> String {
    let name = (file as NSString).lastPathComponent
    for ext in [".seg.nrrd", ".nii.gz", ".nii", ".png", ".mhd", ".mha", ".nrrd", ".nhdr", ".tif", ".tiff", ".IMG", ".img", ".gif", ".npy"] where name.hasSuffix(ext) {
        return String(name.dropLast(ext.count))
    }
    return (name as NSString).deletingPathExtension
}

/// A small CSV reader: header row, comma-separated, double-quoted fields with "" escapes.
public func readCSV(_ path: String) throws -> [[String: String]] {
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
        throw DataError.badDataset(path: path, reason: "cannot read the CSV file as UTF-8 text")
    }
    var rows: [[String]] = []
    var field = "", row: [String] = [], quoted = false
    var it = text.unicodeScalars.makeIterator()
    var pending: Unicode.Scalar? = nil
    while let c = pending ?? it.next() {
        pending = nil
        if quoted {
            if c == "\"" {
                if let n = it.next() { if n == "\"" { field.unicodeScalars.append("\"") } else { quoted = false; pending = n } } else { quoted = false }
            } else { field.unicodeScalars.append(c) }
        } else if c == "\"" { quoted = true }
        else if c == "," { row.append(field); field = "" }
        else if c == "\n" || c == "\r" {
            if c == "\r", let n = it.next(), n != "\n" { pending = n }
            row.append(field); field = ""
            if !(row.count == 1 && row[0].isEmpty) { rows.append(row) }
            row = []
        } else { field.unicodeScalars.append(c) }
    }
    if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
    guard let header = rows.first else { return [] }
    return rows.dropFirst().map { r in
        var d: [String: String] = [:]
        for (i, h) in header.enumerated() { d[h.trimmingCharacters(in: .whitespaces)] = i < r.count ? r[i] : "" }
        return d
    }
}

/// Checks that a label file holds only the expected values; returns a problem description otherwise.
func unexpectedLabelValues(_ path: String, allowed: Set<Float>) -> String? {
    guard let image = try? ImageIO.read(path) else { return "unreadable mask" }
    let extra = Set(image.voxels).subtracting(allowed)
    return extra.isEmpty ? nil : "unexpected label values \(extra.sorted().prefix(5).map { Int($0) }) (kept as foreground > 0)"
}

/// An image format one adapter reads itself rather than through ImageIO (JSRT's raw .IMG): a sample names its reader
/// in `tags["reader"]`, the index asks by file name. The adapter owns every special case of its format here: how
/// the pixels are read, the geometry without the pixels, and how its masks are brought onto the image grid.
public protocol RawImageReader {
    /// The reader's name in a sample's `tags["reader"]`.
    static var name: String { get }
    static func handles(_ path: String) -> Bool
    static func readImage(_ path: String) throws -> MedicalImage
    static func geometry(_ path: String) -> ImageGeometry
    /// A label map read from `path` on this format's image grid.
    static func conformLabel(_ label: MedicalImage, path: String) throws -> MedicalImage
}

/// The adapters' own readers.
public enum RawImageReaders {
    public static var all: [RawImageReader.Type] { [JSRTAdapter.self] }
    public static func named(_ name: String?) -> RawImageReader.Type? { name.flatMap { n in all.first { $0.name == n } } }
    public static func forFile(_ path: String) -> RawImageReader.Type? { all.first { $0.handles(path) } }
}
