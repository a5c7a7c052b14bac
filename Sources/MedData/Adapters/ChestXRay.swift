import Foundation
import MedFormats
import MedImage

/// The Montgomery County set: `CXR_png/MCUCXR_NNNN_T.png`, masks `ManualMask/leftMask/` and `rightMask/` (same file
/// names) merged into one lung label; the suffix T (0 normal, 1 tuberculosis) is kept as the tag `tb`.
/// A root holding several such folders (phantom sites) gives one site per folder.
public enum MontgomeryAdapter: DatasetAdapter {
    public static let name = "montgomery"
    public static let layout = "[SITE/]CXR_png/*.png + ManualMask/leftMask/*.png + ManualMask/rightMask/*.png"

    static func isSite(_ dir: String) -> Bool { isDirectory(dir + "/CXR_png") && isDirectory(dir + "/ManualMask") }

    /// The root is a Montgomery folder, or every site folder under it is (a mix is read by ``ShenzhenAdapter``).
    public static func detect(_ root: String) -> Bool {
        if isSite(root) { return true }
        let sites = listing(root).filter { isDirectory(root + "/" + $0 + "/CXR_png") }
        return !sites.isEmpty && sites.allSatisfy { isSite(root + "/" + $0) }
    }

    public static func load(_ root: String) throws -> Dataset {
        let dirs = isSite(root) ? [(root, "Montgomery")] : listing(root).filter { isSite(root + "/" + $0) }.map { (root + "/" + $0, $0) }
        var samples: [Sample] = [], problems: [AdapterReport.Problem] = []
        for (dir, site) in dirs {
            let left = Set(listing(dir + "/ManualMask/leftMask")), right = Set(listing(dir + "/ManualMask/rightMask"))
            for f in listing(dir + "/CXR_png") where f.lowercased().hasSuffix(".png") {
                var s = Sample(id: stem(f), images: ["\(dir)/CXR_png/\(f)"], labelRule: .union, site: site, tags: tbTag(f))
                if left.contains(f) && right.contains(f) {
                    s.labels = ["\(dir)/ManualMask/leftMask/\(f)", "\(dir)/ManualMask/rightMask/\(f)"]
                } else {
                    problems.append(.init(path: s.images[0], reason: left.contains(f) || right.contains(f)
                        ? "only one lung mask (\(left.contains(f) ? "left" : "right")); kept as unlabeled" : "no lung masks; kept as unlabeled"))
                }
                samples.append(s)
            }
        }
        let report = AdapterReport(adapter: name, samples: samples.count, labeled: samples.filter(\.isLabeled).count, problems: problems, notes: [])
        return Dataset(name: name, root: root, samples: samples, sites: dirs.map { Site(name: $0.1, modality: "CR") }, report: report)
    }
}

/// `..._0.png` / `..._1.png`: the tuberculosis label of the Montgomery and Shenzhen sets.
func tbTag(_ file: String) -> [String: String] {
    let s = stem(file)
    if s.hasSuffix("_0") { return ["tb": "0"] }
    if s.hasSuffix("_1") { return ["tb": "1"] }
    return [:]
}

/// The Shenzhen set: `CXR_png/CHNCXR_NNNN_T.png` with lung masks `*_mask.png` anywhere under the site (usually
/// `mask/`); images without a mask are unlabeled samples. Several site folders give one site each.
public enum ShenzhenAdapter: DatasetAdapter {
    public static let name = "shenzhen"
    public static let layout = "[SITE/]CXR_png/*.png + mask/*_mask.png (some images without masks)"

    static func isSite(_ dir: String) -> Bool { isDirectory(dir + "/CXR_png") && !isDirectory(dir + "/ManualMask") }

    public static func detect(_ root: String) -> Bool {
        isSite(root) || listing(root).contains { isSite(root + "/" + $0) }
    }

    public static func load(_ root: String) throws -> Dataset {
        // A root mixing Montgomery-layout and Shenzhen-layout sites (as the phantom presets do) is read whole.
        let dirs = isSite(root) ? [(root, "Shenzhen")] : listing(root).filter { isDirectory(root + "/" + $0 + "/CXR_png") }.map { (root + "/" + $0, $0) }
        var samples: [Sample] = [], problems: [AdapterReport.Problem] = []
        for (dir, site) in dirs {
            if MontgomeryAdapter.isSite(dir) {
                let part = try MontgomeryAdapter.load(dir)
                samples += part.samples.map { var s = $0; s.site = site; return s }
                problems += part.report.problems
                continue
            }
            var masks: [String: String] = [:]
            for rel in walk(dir) where rel.hasSuffix("_mask.png") { masks[String(stem(rel).dropLast(5))] = dir + "/" + rel }
            for f in listing(dir + "/CXR_png") where f.lowercased().hasSuffix(".png") {
                var s = Sample(id: stem(f), images: ["\(dir)/CXR_png/\(f)"], labelRule: .binarize, site: site, tags: tbTag(f))
                if let m = masks[stem(f)] { s.labels = [m] }
                samples.append(s)
            }
            let images = Set(listing(dir + "/CXR_png").map(stem))
            for (k, m) in masks where !images.contains(k) { problems.append(.init(path: m, reason: "mask without an image; ignored")) }
        }
        let unlabeled = samples.filter { !$0.isLabeled }.count
        let report = AdapterReport(adapter: name, samples: samples.count, labeled: samples.count - unlabeled, problems: problems,
                                   notes: unlabeled > 0 ? ["\(unlabeled) images have no mask (unlabeled samples)"] : [])
        return Dataset(name: name, root: root, samples: samples, sites: dirs.map { Site(name: $0.1, modality: "CR") }, report: report)
    }
}

/// JSRT (Shiraishi et al., AJR 2000): `*.IMG`, raw 2048 x 2048 big-endian 16-bit (12 bits used), 0.175 mm, no header;
/// SCR lung masks (van Ginneken et al., MedIA 2006) where present as PNG: `<masks>/left lung/JPCLN001.png` and
/// `right lung/...` (1024 x 1024 in the original release; resampled onto the image grid, nearest).
public enum JSRTAdapter: DatasetAdapter, RawImageReader {
    public static let name = "jsrt"
    public static let layout = "*.IMG (2048x2048 big-endian uint16, 0.175 mm) + optional SCR masks '<dir>/left lung/*.png', 'right lung/*.png'"
    public static let size = 2048, spacing = 0.175

    public static func detect(_ root: String) -> Bool {
        walk(root).contains(where: handles)
    }

    public static func handles(_ path: String) -> Bool { path.hasSuffix(".IMG") }

    /// Reads one JSRT image: size checked against the fixed layout, values as stored (higher = more attenuation).
    public static func readImage(_ path: String) throws -> MedicalImage {
        let n = size * size
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError.badDataset(path: path, reason: "cannot read the file") }
        guard data.count == 2 * n else {
            throw DataError.badDataset(path: path, reason: "a JSRT .IMG holds \(2 * n) bytes (2048 x 2048 big-endian uint16); this file has \(data.count)")
        }
        var voxels = [Float](repeating: 0, count: n)
        data.withUnsafeBytes { raw in
            let b = raw.bindMemory(to: UInt8.self)
            for i in 0..<n { voxels[i] = Float(UInt16(b[2 * i]) << 8 | UInt16(b[2 * i + 1])) }
        }
        return MedicalImage(shape: ImageShape(size, size), voxels: voxels, affine: Affine.diagonal(spacing: [spacing, spacing, 1]),
                            info: ImageInfo(storedType: .uint16, format: "jsrt"))
    }

    /// JSRT's geometry without reading the pixels (the layout is fixed).
    public static func geometry(_ path: String) -> ImageGeometry {
        let a = Affine.diagonal(spacing: [spacing, spacing, 1])
        return ImageGeometry(format: "jsrt", shape: [size, size, 1, 1], spacing: [spacing, spacing, 1], affine: (0..<16).map { a[$0 / 4, $0 % 4] },
                             orientation: a.orientationCodes, storedType: "uint16", spacingIsKnown: true)
    }

    /// SCR masks are half the JSRT resolution: nearest-neighbour onto the image grid.
    public static func conformLabel(_ label: MedicalImage, path: String) throws -> MedicalImage {
        label.shape.x == size ? label : try LabelTools.upsampled(label, to: size, spacing: spacing, path: path)
    }

    public static func load(_ root: String) throws -> Dataset {
        let files = walk(root)
        var left: [String: String] = [:], right: [String: String] = [:]
        for f in files where f.lowercased().hasSuffix(".png") {
            let parts = f.split(separator: "/")
            guard parts.count >= 2 else { continue }
            let folder = parts[parts.count - 2].lowercased()
            if folder == "left lung" { left[stem(f)] = root + "/" + f }
            if folder == "right lung" { right[stem(f)] = root + "/" + f }
        }
        var samples: [Sample] = [], problems: [AdapterReport.Problem] = []
        for f in files where f.hasSuffix(".IMG") {
            let s = stem(f)
            var sample = Sample(id: s, images: [root + "/" + f], labelRule: .union, site: "JSRT",
                                tags: ["nodule": s.hasPrefix("JPCLN") ? "1" : s.hasPrefix("JPCNN") ? "0" : "", "reader": name])
            if let l = left[s], let r = right[s] { sample.labels = [l, r] }
            else if left[s] != nil || right[s] != nil { problems.append(.init(path: root + "/" + f, reason: "only one SCR lung mask; kept as unlabeled")) }
            samples.append(sample)
        }
        let report = AdapterReport(adapter: name, samples: samples.count, labeled: samples.filter(\.isLabeled).count, problems: problems,
                                   notes: ["JSRT images are read as raw big-endian uint16 2048x2048 at 0.175 mm"])
        return Dataset(name: name, root: root, samples: samples, sites: [Site(name: "JSRT", modality: "CR")], report: report)
    }
}
