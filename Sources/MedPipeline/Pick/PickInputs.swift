import Foundation
import MedData
import MedFormats
import MedNN

/// `medselect pick`'s inputs, checked before anything is written: the target folders read as plain image trees (no
/// label opened), the labeled source cases, the ids labeled in earlier rounds, and a given model or encoder checked
/// against the images' channels. Every refusal is one line naming the file or folder.
public enum PickInputs {
    public struct Targets: Sendable {
        public var samples: [Sample]
        /// What the reader should know: masks and other files skipped, sites renamed.
        public var notes: [String]
    }

    /// Every image under each folder (``ImageTreeAdapter``): sites from sub-folders, masks skipped and never read; a
    /// folder of DICOM files is read as a DICOM tree instead (``DICOMTreeAdapter``: a case per series, scanners as sites).
    /// A target site named like a source site is renamed "<name> (target)"; ids repeated across folders get their
    /// folder's name in front.
    public static func targets(_ folders: [String], sourceSites: Set<String>) throws -> Targets {
        var samples: [Sample] = [], notes: [String] = []
        for folder in folders {
            // A DICOM tree: a case per series, its scanner as its site; otherwise an image per file, sub-folders as sites.
            let d = DICOMTreeAdapter.detect(folder) ? try DICOMTreeAdapter.load(folder) : try ImageTreeAdapter.load(folder)
            guard !d.samples.isEmpty else {
                throw DataError.badDataset(path: folder, reason: "no images found (formats: PNG, NIfTI, MetaImage, NRRD, NPY, DICOM; masks are skipped)")
            }
            let masks = d.report.problems.filter { $0.reason.hasPrefix("looks like a mask") }
            if !masks.isEmpty { notes.append("\(folder): \(masks.count) file(s) that look like masks were skipped unread (e.g. \(masks[0].path)); target labels are never used") }
            let others = d.report.problems.count - masks.count
            if others > 0 {
                let first = d.report.problems.first { !$0.reason.hasPrefix("looks like a mask") }!
                notes.append("\(folder): \(others) other file(s) not used (e.g. \(first.path): \(first.reason))")
            }
            let taken = Set(samples.map(\.id))
            let name = ((folder as NSString).standardizingPath as NSString).lastPathComponent
            for var s in d.samples {
                if taken.contains(s.id) { s.id = name + "__" + s.id }
                if sourceSites.contains(s.site) { s.site += " (target)" }
                samples.append(s)
            }
        }
        let renamed = Set(samples.map(\.site)).filter { $0.hasSuffix(" (target)") }.sorted()
        if !renamed.isEmpty { notes.append("target site(s) named like a source site were renamed: \(renamed.joined(separator: ", "))") }
        return Targets(samples: samples, notes: notes)
    }

    /// The labeled cases of a source dataset (any adapter), restricted to `sites` when given.
    public static func source(_ folder: String, benchmark: String?, sites: [String]) throws -> Dataset {
        var d = try DatasetAdapters.load(folder, benchmark: benchmark)
        if !sites.isEmpty {
            let known = Set(d.samples.map(\.site))
            if let unknown = sites.first(where: { !known.contains($0) }) {
                throw DataError.badDataset(path: folder, reason: "no source site \(unknown) (sites: \(known.sorted().joined(separator: ", ")))")
            }
            d = d.filtered(sites: Set(sites))
        }
        d = d.filtered(labeled: true)
        let labeled = d.samples
        guard labeled.count >= 5 else {
            throw DataError.badDataset(path: folder, reason: labeled.isEmpty ? "has no labeled cases (the source must be a labeled dataset; give --model for a ready model)"
                                       : "has \(labeled.count) labeled cases; a source model needs at least 5")
        }
        return d
    }

    /// Ids labeled in earlier rounds: a selection JSON (its labeled and selected ids) or a list of ids (CSV or text).
    public static func labeled(_ path: String, targets: [Sample]) throws -> [String] {
        let ids: [String]
        if path.hasSuffix(".json") { ids = try Selection.read(path).labeledAndSelected } else { ids = try CaseList.read(path) }
        let known = Set(targets.map(\.id))
        if let unknown = ids.first(where: { !known.contains($0) }) {
            throw DataError.badConfiguration(path: path, reason: "'\(unknown)' is not an image of the target (\(ids.count) ids listed)")
        }
        return ids
    }

    /// A given U-Net checkpoint or encoder must take the images' channels (checked on the first image of each site).
    public static func checkChannels(_ path: String, of targets: [Sample]) throws {
        let (_, description, _) = try ModelFile.read(path)
        guard let theirs = description.unet?.inChannels ?? description.mae?.channels else { return }
        var seen = Set<String>()
        for sample in targets where seen.insert(sample.site).inserted {
            let image = try sample.loadImage()
            let channels = image.info.components == .color ? image.shape.t : 1
            if theirs != channels && !(description.architecture == "hssl-unet" && theirs == 1) {
                throw DataError.badConfiguration(path: path, reason: "takes \(theirs)-channel images; the target's are \(channels)-channel (\(sample.images[0]))")
            }
        }
    }
}
