import ArgumentParser
import Foundation
import MedData
import MedPipeline

/// `medselect worklist`: a selection's cases in a folder for the annotators, in selection order, with the reasons.
struct WorklistCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worklist",
        abstract: "Put a selection's cases in a folder for annotation (selection order, reasons in worklist.csv).",
        discussion: """
        Writes OUT/images/<rank>_<id>_0000.<ext> (copies, or links with --link; nnU-Net's channel suffix, opened \
        directly by 3D Slicer and ITK-SNAP), an empty OUT/labels/ where each finished label map goes as <id>.<ext> \
        (the image's format; .mha for MetaImage headers), and OUT/worklist.csv (rank, id, site, image, label, \
        strategy, score, why: the strategy's score terms). medselect import-labels brings the finished labels back.
        With --format slicer: OUT/images/<rank>_<id>.nrrd, an empty 3D Slicer segmentation OUT/labels/<id>.seg.nrrd on \
        each image's grid (open both, draw in the Segment Editor, save), and OUT/SLICER.md with the steps.
        Example: medselect worklist selection.json --data Samples/cxr --out to-annotate
        Example: medselect worklist selection.json --db index.sqlite --format slicer --out to-annotate
        """
    )
    @Argument(help: "Selection JSON (medselect select, or an experiment's items/select/<key>/selection.json).") var selection: String
    @OptionGroup var dataset: DatasetOptions
    @Flag(help: "Symbolic links instead of copies (--format files).") var link = false
    @Option(help: "Folder layout: files (the images as they are) or slicer (NRRD images with empty .seg.nrrd segmentations).") var format = Worklist.Format.files
    @Option(help: "Output folder (new or empty).") var out: String

    func validate() throws {
        if link && format == .slicer { throw ValidationError("--link goes with --format files (the slicer layout writes NRRD copies)") }
    }

    func run() throws {
        let samples = try dataset.load().flatMap(\.samples)
        let entries = try Worklist.write(selection: selection, samples: samples, to: out, link: link, format: format)
        switch format {
        case .files:
            print("\(counted(entries.count, "case")) to annotate in \(out)/images (\(link ? "linked" : "copied")); labels go to \(out)/labels as <id>.<ext>; order and reasons in \(out)/worklist.csv")
        case .slicer:
            print("\(counted(entries.count, "case")) to annotate in 3D Slicer: \(out)/images/*.nrrd with empty segmentations \(out)/labels/<id>.seg.nrrd; steps in \(out)/SLICER.md, order and reasons in \(out)/worklist.csv")
        }
    }
}

/// `medselect import-labels`: finished label maps from a worklist folder into an index, each checked against its image.
struct ImportLabels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-labels",
        abstract: "Attach the label maps annotated in a worklist folder to the cases of an index.",
        discussion: """
        For each row of FOLDER/worklist.csv whose label file exists: the label must lie on its image's grid (shape; \
        spacing, orientation and position within 0.01 mm) and hold integer labels 0...255; a mismatch stops with the \
        file and the reason. Imported labels complete cases the dataset leaves unlabeled and survive re-indexing. Cases \
        not annotated yet are listed.
        Example: medselect import-labels to-annotate --db index.sqlite
        """
    )
    @Argument(help: "Worklist folder (medselect worklist).") var folder: String
    @Option(help: "SQLite index holding the cases.") var db: String

    func run() throws {
        let index = try DatasetIndex(path: db)
        let (imported, waiting) = try Worklist.importLabels(from: folder, into: index)
        print("imported \(imported.count) label map(s) into \(db)" + (waiting.isEmpty ? "" : "; \(waiting.count) case(s) not annotated yet: \(waiting.prefix(5).joined(separator: ", "))\(waiting.count > 5 ? ", ..." : "")"))
    }
}
