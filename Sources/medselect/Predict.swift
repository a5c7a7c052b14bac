import ArgumentParser
import Foundation
import MedData
import MedFormats
import MedImage
import MedNN
import MedPipeline
import MedTensor

/// `medselect predict`: label maps from a trained checkpoint, written in each input's own geometry.
struct Predict: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Segment images with a trained U-Net checkpoint; labels are written on each input's own grid.",
        discussion: """
        By default each image (each axial slice of a volume) is resampled to the training size, z-scored and \
        predicted; --native predicts at the image's own resolution with a sliding window of the training size \
        (Gaussian-weighted, 50 % overlap). --tta averages the image and its two mirror images.
        The output folder also gets predictions.csv (prediction,image), the image each label map was made from, so that \
        medselect evaluate --ref-data pairs predictions with their cases even where file names repeat across sites. \
        A folder that already holds predictions is refused unless --overwrite. A folder of DICOM files is segmented \
        series by series, each written as <case id>.nii.gz (the ids medselect index gives).
        Example: medselect predict --checkpoint runs/mcu/checkpoint.safetensors --input images/ --out predictions/
        """
    )
    @OptionGroup var limits: ReadLimitOptions
    @Option(help: "checkpoint.safetensors written by medselect train.") var checkpoint: String
    @Option(help: "An image file or a folder of images.") var input: String
    @Option(help: "Output folder (same file names).") var out: String
    @Flag(help: "Flip test-time augmentation.") var tta = false
    @Flag(help: "Sliding window at native resolution instead of resampling to the training size.") var native = false
    @Flag(name: .customLong("include-masks"), help: "Also predict files named like label maps (CASE_mask, CASE_seg[mentation], CASE_label, RIGA's imageN-K).")
    var includeMasks = false
    @Flag(help: "Write into an output folder that already holds predictions (files of the same name are replaced).") var overwrite = false

    /// Whether a file name looks like a label map beside its image: CASE_mask, CASE_seg, CASE_segmentation,
    /// CASE_label (any case), or RIGA+'s imageN-K when imageN is among `names`.
    static func looksLikeMask(_ name: String, among names: Set<String>) -> Bool {
        guard Evaluation.caseID(name) != nil else { return false }   // not an image file name
        let stem = (name as NSString).deletingPathExtension.replacingOccurrences(of: ".nii", with: "")
        let lower = stem.lowercased()
        if ["_mask", "_seg", "_segmentation", "_label", "_labels"].contains(where: { lower.hasSuffix($0) }) { return true }
        if let dash = stem.lastIndex(of: "-"), stem[stem.index(after: dash)...].allSatisfy(\.isNumber), !stem[stem.index(after: dash)...].isEmpty {
            let image = String(stem[..<dash])
            return names.contains { ($0 as NSString).deletingPathExtension == image }
        }
        return false
    }

    func run() throws {
        let (model, config) = try Trainer.loadModel(checkpoint: checkpoint)
        guard let size = config.imageSize else {
            throw CommandError(subject: checkpoint, reason: "the checkpoint does not record its training image size")
        }
        var dir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &dir) else { throw CommandError(subject: input, reason: "no such file or folder") }
        var files = [input], skipped: [String] = []
        if dir.boolValue {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: input)) ?? []).sorted().filter { !$0.hasPrefix(".") }
            let nameSet = Set(names)
            files = []
            for name in names {
                if !includeMasks && Self.looksLikeMask(name, among: nameSet) { skipped.append(name) } else { files.append(input + "/" + name) }
            }
        }
        // What to segment: each image file as it is, or, for a folder of DICOM files, each series (read by its UID,
        // written as <case id>.nii.gz with the case ids `index` gives).
        var images: [(path: String, series: String?, name: String)] = []
        if dir.boolValue && DICOMTreeAdapter.detect(input) {
            for sample in try DICOMTreeAdapter.load(input).samples {
                images.append((sample.images[0], sample.tags["series_uid"], sample.id + ".nii.gz"))
            }
        } else {
            images = files.compactMap { f in
                guard let format = try? ImageIO.detect(f) else { return nil }
                let name = (f as NSString).lastPathComponent
                // A single DICOM file's label map is NIfTI (DICOM is not written).
                return (f, nil, format == .dicom ? ((name as NSString).deletingPathExtension.isEmpty ? name : (name as NSString).deletingPathExtension) + ".nii.gz" : name)
            }
        }
        guard !images.isEmpty else {
            throw CommandError(subject: input, reason: "no image to segment"
                + (skipped.isEmpty ? "" : " (\(skipped.count) files named like label maps skipped, e.g. \(skipped[0]); --include-masks takes them)"))
        }
        if !skipped.isEmpty {
            FileHandle.standardError.write(Data("note: skipped \(skipped.count) files named like label maps (e.g. \(skipped[0])); --include-masks takes them\n".utf8))
        }
        // Earlier predictions are not replaced silently, and one process at a time writes into the folder.
        let earlier = ((try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []).filter {
            $0 == PredictionManifest.fileName || (!$0.hasPrefix(".") && Evaluation.caseID($0) != nil)
        }
        if !earlier.isEmpty && !overwrite {
            throw CommandError(subject: out, reason: "already holds predictions (\(earlier.count) files, e.g. \(earlier.sorted()[0])); give --overwrite to replace them, or another --out")
        }
        let lock = try FolderLock(folder: out, command: "medselect predict")
        defer { withExtendedLifetime(lock) {} }
        var written = 0
        var made: [(prediction: String, image: String)] = []
        if overwrite, let previous = try PredictionManifest.read(folder: out) {
            made = previous.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }
        }
        let progress = ProgressLine("predict")
        for (file, series, name) in images {
            progress.update(written, of: images.count, unit: "images", item: name)
            var options = limits.readOptions
            if series != nil { options.dicomSeries = series }
            let image = try ImageIO.read(file, options: options)
            let channels = image.info.components == .color ? image.shape.t : 1
            guard channels == model.inChannels else {
                throw CommandError(subject: file, reason: "\(channels) channels; the model takes \(model.inChannels)")
            }
            let label = try Segmentation.predictImage(image, model: model, size: size, channels: channels, native: native, tta: tta)
            try ImageIO.write(label, to: out + "/" + name, options: .init(storedType: .uint8, pngBitDepth: 8))
            made.removeAll { $0.prediction == name }
            made.append((name, file))
            written += 1
        }
        try PredictionManifest.write(made, folder: out)
        progress.finish("\(written) images")
        print("wrote \(written) label map\(written == 1 ? "" : "s") to \(out) (\(PredictionManifest.fileName) names each one's image)")
    }
}
