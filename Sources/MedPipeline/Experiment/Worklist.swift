import Foundation
import MedData
import MedFormats
import MedImage
import MedFoundation

/// Annotation hand-off: a selection's cases put in a folder an annotator opens directly (3D Slicer, ITK-SNAP, or
/// nnU-Net's conventions), with worklist.csv saying in which order and why each case was picked; and the finished
/// label maps brought back into an index, each checked against its image.
///
/// Layout: `images/<rank>_<id>_0000.<ext>` (copies, or links), `labels/` where the annotator saves `<id>.<ext>` (the
/// image's format), and `worklist.csv`: `rank,id,site,image,label,strategy,score,why`. DICOM series are written as
/// NIfTI (`.nii.gz`), so that no patient identifier in the files reaches the worklist.
public enum Worklist {
    public struct Entry: Sendable { public var rank: Int, id: String, site: String, image: String, label: String }

    /// How the folder is laid out for the annotators.
    public enum Format: String, CaseIterable, Sendable {
        /// The images in their own format (copies or links), labels saved in the same format.
        case files
        /// 3D Slicer: each image as NRRD with an empty segmentation beside it in labels/ (`<id>.seg.nrrd`, one segment
        /// of label 1 on the image's grid), and SLICER.md saying how to open, draw and save: open-draw-save.
        case slicer
    }

    /// Writes the worklist of `selection` (a `medselect select` or experiment selection JSON) for the cases of
    /// `samples`; `link` makes symbolic links instead of copies. The folder must be new or empty.
    @discardableResult
    public static func write(selection path: String, samples: [Sample], to folder: String, link: Bool, format: Format = .files) throws -> [Entry] {
        let record = try Selection.read(path)
        let (selected, strategy) = (record.selected, record.strategy)
        var why: [String: (score: String, terms: String)] = [:]
        for p in record.picks {
            let score = p.score.map { String(format: "%.4g", $0) } ?? ""
            let terms = (p.terms ?? [:]).sorted { $0.key < $1.key }.map { key, value in
                let shown: String
                switch value {
                case .null: shown = "n/a"
                case .string(let s): shown = s
                default: shown = value.double.map { String(format: "%.3g", $0) } ?? "\(value)"
                }
                return "\(key) \(shown)"
            }.joined(separator: "; ")
            why[p.id] = (score, terms)
        }
        let byID = Dictionary(samples.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let missing = selected.filter { byID[$0] == nil }
        guard missing.isEmpty else {
            throw DataError.badConfiguration(path: path, reason: "\(missing.count) selected ids are not cases of the data (first: \(missing[0])); give the dataset the selection was made from")
        }
        let fm = FileManager.default
        if let existing = try? fm.contentsOfDirectory(atPath: folder), !existing.filter({ !$0.hasPrefix(".") }).isEmpty {
            throw DataError.badConfiguration(path: folder, reason: "the folder is not empty; give a new one")
        }
        try fm.createDirectory(atPath: folder + "/images", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: folder + "/labels", withIntermediateDirectories: true)
        var entries: [Entry] = []
        var csv = "rank,id,site,image,label,strategy,score,why\n"
        let digits = max(3, String(selected.count).count)
        for (i, id) in selected.enumerated() {
            let sample = byID[id]!
            guard let source = sample.images.first else { throw DataError.badDataset(path: path, reason: "case '\(id)' has no image") }
            let rank = String(repeating: "0", count: max(0, digits - String(i + 1).count)) + String(i + 1)
            let image: String, label: String
            switch format {
            case .files where (try? ImageIO.detect(source)) == .dicom:
                // DICOM files carry the patient's identifiers: the worklist gets the series' voxels and geometry as
                // NIfTI (what nnU-Net, MONAI and ITK-SNAP open), never a copy of the files.
                image = "images/\(rank)_\(id)_0000.nii.gz"
                label = "labels/\(id).nii.gz"
                try ImageIO.write(try sample.loadImage(), to: folder + "/" + image)
            case .files:
                let ext = extensionOf(source)
                image = "images/\(rank)_\(id)_0000\(ext)"
                try place(source, at: folder + "/" + image, link: link)
                if ext == ".mhd" {   // MetaImage's data file travels with its header, under the name the header gives
                    let dataFile = try metaImageDataFile(source)
                    try place((source as NSString).deletingLastPathComponent + "/" + dataFile, at: folder + "/images/" + dataFile, link: link)
                }
                label = "labels/\(id)\(ext == ".mhd" ? ".mha" : ext)"
            case .slicer:
                image = "images/\(rank)_\(id).nrrd"
                label = "labels/\(id).seg.nrrd"
                let volume = try sample.loadImage()
                try NRRDWriter.write(volume, to: folder + "/" + image)
                try writeEmptySegmentation(like: volume, to: folder + "/" + label)
            }
            entries.append(Entry(rank: i + 1, id: id, site: sample.site, image: image, label: label))
            let w = why[id] ?? ("", "")
            csv += [String(i + 1), id, sample.site, image, label, strategy, w.score, w.terms].map(csvField).joined(separator: ",") + "\n"
        }
        try AtomicFile.write(csv, to: folder + "/worklist.csv")
        if format == .slicer { try AtomicFile.write(slicerInstructions(entries), to: folder + "/SLICER.md") }
        return entries
    }

    /// An empty 3D Slicer segmentation on `image`'s grid: one segment, "label 1", of label value 1 (a label map of
    /// zeros with Slicer's segment fields), ready for the Segment Editor.
    static func writeEmptySegmentation(like image: MedicalImage, to path: String) throws {
        let s = image.shape
        let empty = MedicalImage(shape: ImageShape(s.x, s.y, s.z, 1), voxels: [Float](repeating: 0, count: s.spatialCount), affine: image.affine,
                                 kind: .labelMap)
        var options = NRRDWriter.Options()
        options.storedType = .uint8
        options.keyValues = [("Segment0_ID", "Segment_1"), ("Segment0_Name", "label 1"), ("Segment0_LabelValue", "1"), ("Segment0_Layer", "0"),
                             ("Segment0_Color", "0.5 0.68 0.5"), ("Segment0_Extent", "0 \(s.x - 1) 0 \(s.y - 1) 0 \(s.z - 1)"),
                             ("Segmentation_MasterRepresentation", "Binary labelmap"),
                             ("Segmentation_ContainedRepresentationNames", "Binary labelmap|"),
                             ("Segmentation_ReferenceImageExtentOffset", "0 0 0")]
        try NRRDWriter.write(empty, to: path, options: options)
    }

    /// SLICER.md: how an annotator works through the folder in 3D Slicer.
    static func slicerInstructions(_ entries: [Entry]) -> String {
        """
        # Annotating in 3D Slicer

        Work through the cases in this order (worklist.csv says why each was chosen):

        \(entries.map { "\($0.rank). \($0.id) (\($0.site)): open `\($0.image)` and `\($0.label)`" }.joined(separator: "\n"))

        For each case:
        1. Drag the image (`images/…nrrd`) and its segmentation (`labels/<id>.seg.nrrd`) into 3D Slicer together
           (File > Add Data also works); the segmentation is already on the image's grid, with one segment, "label 1".
        2. Open the Segment Editor and draw the structure into "label 1" (add segments for further labels: their label
           values are kept on import).
        3. Save (File > Save, or Ctrl+S) with the segmentation's file name unchanged: `labels/<id>.seg.nrrd`.

        When some or all are done: `medselect import-labels THIS_FOLDER --db INDEX` brings them into the index (cases not
        annotated yet are listed and can be imported later; a segmentation left empty counts as not annotated yet: for a
        case with nothing to draw, save an empty label map as `labels/<id>.nrrd` instead). Segments must not overlap: a
        label map holds one label per voxel.

        """
    }

    /// The label maps saved in `folder/labels` for the worklist's cases, attached to `index`; cases not annotated yet
    /// are listed, not errors. Returns (imported ids, ids still waiting).
    public static func importLabels(from folder: String, into index: DatasetIndex) throws -> (imported: [String], waiting: [String]) {
        let path = folder + "/worklist.csv"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DataError.badConfiguration(path: path, reason: "no worklist.csv (make the folder with medselect worklist)")
        }
        var imported: [String] = [], waiting: [String] = []
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 5 else { throw DataError.badConfiguration(path: path, reason: "a row has \(f.count) fields, 8 expected: \(line)") }
            let id = f[1]
            // The label as the worklist names it, or a 3D Slicer segmentation saved beside it (`<id>.seg.nrrd`).
            let named = folder + "/" + f[4]
            let candidates = [named, folder + "/labels/" + id + ".seg.nrrd", folder + "/labels/" + id + ".nrrd"]
            guard let label = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else { waiting.append(id); continue }
            // The empty segmentation `worklist --format slicer` put there is not an annotation yet.
            if label.hasSuffix(".seg.nrrd"), try ImageIO.read(label).voxels.allSatisfy({ $0 == 0 }) { waiting.append(id); continue }
            try index.importLabel(sampleID: id, path: (label as NSString).standardizingPath)
            imported.append(id)
        }
        return (imported, waiting)
    }

    static func extensionOf(_ path: String) -> String {
        for e in [".seg.nrrd", ".nii.gz", ".img.gz", ".nii", ".png", ".mha", ".mhd", ".nrrd", ".nhdr", ".npy"] where path.lowercased().hasSuffix(e) { return e }
        return "." + (path as NSString).pathExtension
    }

    static func place(_ source: String, at target: String, link: Bool) throws {
        if link {
            try FileManager.default.createSymbolicLink(atPath: target, withDestinationPath: (source as NSString).standardizingPath.hasPrefix("/")
                                                       ? source : FileManager.default.currentDirectoryPath + "/" + source)
        } else {
            try FileManager.default.copyItem(atPath: source, toPath: target)
        }
    }

    static func metaImageDataFile(_ header: String) throws -> String {
        let text = try String(contentsOfFile: header, encoding: .utf8)
        for line in text.split(separator: "\n") where line.hasPrefix("ElementDataFile") {
            if let eq = line.firstIndex(of: "=") { return line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces) }
        }
        throw DataError.badDataset(path: header, reason: "no ElementDataFile line")
    }

    static func csvField(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
}
