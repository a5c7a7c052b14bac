import Foundation

/// The plainest layout a hospital has: a folder of images, or one sub-folder of images per scanner (at any depth
/// below it), no labels. Every image file under the root is a case; its site is the first sub-folder it lies in
/// (the root's own name for files directly in the root). Files that look like masks (in a folder named like
/// `labels`, `masks`, `segmentations` or `gt`, or named `*_mask`, `*_seg`, `*_label`, `*.seg.nrrd`) are listed as
/// not used and never opened: this reader is how `medselect pick` reads a target, whose labels it must not see.
/// When sub-folders hold images, files lying directly in the root (a contact sheet, a README figure) are not cases.
public enum ImageTreeAdapter: DatasetAdapter {
    public static let name = "images"
    public static let layout = "any tree of image files, one sub-folder per site (or none); masks skipped, never read"

    /// Last in detection order: any folder with an image file somewhere below it.
    public static func detect(_ root: String) -> Bool {
        guard let e = FileManager.default.enumerator(atPath: root) else { return false }
        while let p = e.nextObject() as? String {
            if isImageFileName(p) && !isMaskPath(p) { return true }
        }
        return false
    }

    /// Folder names that hold masks rather than images (compared lower-cased, whole path components).
    static let maskFolders: Set<String> = ["labels", "label", "labelstr", "labelsts", "mask", "masks", "manualmask", "manualmasks",
                                           "seg", "segs", "segmentation", "segmentations", "gt", "groundtruth", "ground_truth",
                                           "annotations", "annotation", "reference", "references"]

    /// Whether a relative path names a mask: a mask folder on the way, or a mask-like file name.
    public static func isMaskPath(_ relative: String) -> Bool {
        let parts = relative.split(separator: "/").map { $0.lowercased() }
        if parts.dropLast().contains(where: { maskFolders.contains($0) }) { return true }
        let file = parts.last ?? ""
        if file.hasSuffix(".seg.nrrd") || file.hasSuffix(".seg.nhdr") { return true }
        let base = stem(file)
        return ["_mask", "_masks", "_seg", "_segmentation", "_label", "_labels", "_gt", "-mask", "-seg", "-label"].contains { base.hasSuffix($0) }
    }

    public static func load(_ root: String) throws -> Dataset {
        guard isDirectory(root) else { throw DataError.badDataset(path: root, reason: "not a folder") }
        let rootName = ((root as NSString).standardizingPath as NSString).lastPathComponent
        var problems: [AdapterReport.Problem] = []
        var images: [String] = []
        for p in walk(root) {
            if !isImageFileName(p) {
                problems.append(.init(path: root + "/" + p, reason: "not an image file; ignored"))
            } else if isMaskPath(p) {
                problems.append(.init(path: root + "/" + p, reason: "looks like a mask; not read"))
            } else {
                images.append(p)
            }
        }
        let nested = images.contains { $0.contains("/") }
        if nested {
            for p in images where !p.contains("/") {
                problems.append(.init(path: root + "/" + p, reason: "lies beside the site folders; not a case (move it into a site's folder)"))
            }
            images = images.filter { $0.contains("/") }
        }
        // A case is named by its file stem; stems that repeat (two scanners' IM0001.png) are named by their path.
        let stems = images.map(stem)
        var counts: [String: Int] = [:]
        for s in stems { counts[s, default: 0] += 1 }
        let samples = zip(images, stems).map { path, s -> Sample in
            let folder = (path as NSString).deletingLastPathComponent
            let id = counts[s]! > 1 ? (folder + "/" + s).replacingOccurrences(of: "/", with: "__") : s
            let site = nested ? String(path.split(separator: "/")[0]) : rootName
            return Sample(id: id, images: [root + "/" + path], site: site, tags: ["file": path])
        }
        let sites = Array(Set(samples.map(\.site))).sorted().map { Site(name: $0, modality: "") }
        let report = AdapterReport(adapter: name, samples: samples.count, labeled: 0, problems: problems, notes: [])
        return Dataset(name: rootName, root: root, samples: samples, sites: sites, report: report)
    }
}
