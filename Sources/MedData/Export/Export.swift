import Foundation
import MedCompute
import MedFormats
import MedImage
import Synchronization
import MedFoundation

/// Writes indexed datasets in the layouts training frameworks read: nnU-Net v2 raw and MONAI/Decathlon datalists.
public enum DatasetExport {
    public struct NNUNetOptions: Sendable {
        /// Three-digit dataset id (DatasetNNN_Name).
        public var id: Int
        public var name: String
        /// Resample to this spacing (mm; images linear, labels nearest) before writing.
        public var spacing: [Double]?
        /// Write each axial slice of 3-D cases as its own 2-D case.
        public var axialSlices: Bool
        /// Also write splits_final.json with one fold per site (validation = that site).
        public var siteSplits: Bool
        public init(id: Int, name: String, spacing: [Double]? = nil, axialSlices: Bool = false, siteSplits: Bool = true) {
            self.id = id; self.name = name; self.spacing = spacing; self.axialSlices = axialSlices; self.siteSplits = siteSplits
        }
        public var folderName: String { String(format: "Dataset%03d_%@", id, name) }
    }

    public struct Result: Sendable {
        public var folder: String
        public var training: Int
        public var test: Int
        /// Original label value -> exported (consecutive) value.
        public var labelMapping: [Int: Int]
        public var fileEnding: String
    }

    static func caseName(_ s: Sample) -> String {
        let raw = s.id.hasPrefix(s.site + "_") || s.site.isEmpty ? s.id : "\(s.site)_\(s.id)"
        return String(raw.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" })
    }

    /// Names of label values per label rule (background is 0).
    static func labelNames(_ rule: LabelRule, values: [Int]) -> [String] {
        switch rule {
        case .discCup: return values.map { [0: "background", 1: "disc_rim", 2: "cup"][$0] ?? "label\($0)" }
        case .chexmaskRLE: return values.map { [0: "background", 1: "lungs", 2: "heart"][$0] ?? "label\($0)" }
        default: return values.map { $0 == 0 ? "background" : values.count == 2 ? "foreground" : "label\($0)" }
        }
    }

    /// nnU-Net v2 raw layout under `parent/DatasetNNN_Name`: imagesTr (`CASE_0000.ext`), labelsTr (`CASE.ext`),
    /// imagesTs (unlabeled samples), dataset.json; 2-D PNG datasets stay PNG (gray: one channel; RGB: three channels
    /// in one file, as nnU-Net's NaturalImage2DIO reads them), everything else NIfTI.
    public static func nnunet(_ datasets: [Dataset], parent: String, options: NNUNetOptions,
                              progress: (@Sendable (String) -> Void)? = nil) throws -> Result {
        let samples = datasets.flatMap(\.samples)
        guard !samples.isEmpty else { throw DataError.badDataset(path: parent, reason: "nothing to export (no samples in the index)") }
        let folder = parent + "/" + options.folderName
        let fm = FileManager.default
        for sub in ["imagesTr", "labelsTr", "imagesTs"] { try fm.createDirectory(atPath: folder + "/" + sub, withIntermediateDirectories: true) }
        let firstGeometry = try samples.first.map { try ImageIO.readGeometry($0.images[0]) }
        let png = samples.allSatisfy { $0.images.allSatisfy { $0.lowercased().hasSuffix(".png") } } && options.spacing == nil
        let ending = png ? ".png" : ".nii.gz"
        let channels = png ? (firstGeometry?.shape[3] ?? 1) : samples[0].images.count
        // Pass 1: labels after each sample's rule, to find the values and make them consecutive.
        let rules = Set(samples.filter(\.isLabeled).map(\.labelRule))
        var values = Set<Int>([0])
        for s in samples where s.isLabeled {
            if let l = try s.loadLabel() { values.formUnion(Set(l.voxels.map { Int($0) })) }
        }
        let sortedValues = values.sorted()
        let mapping = Dictionary(uniqueKeysWithValues: sortedValues.enumerated().map { ($1, $0) })
        // Pass 2: write cases in parallel.
        let written = Mutex<[(name: String, site: String, labeled: Bool)]>([])
        let failure = Mutex<Error?>(nil)
        let done = Atomic(0)
        let start = Date()
        parallelFor(samples.count) { i in
            let s = samples[i]
            do {
                var image = try s.loadImage()
                var label = try s.loadLabel().map { l -> MedicalImage in
                    var m = l
                    m.voxels = l.voxels.map { Float(mapping[Int($0)]!) }
                    return m
                }
                if let sp = options.spacing {
                    image = try image.resampled(toSpacing: sp)
                    if let l = label { label = try l.resampled(onto: image) }
                }
                var cases: [(String, MedicalImage, MedicalImage?)] = [(caseName(s), image, label)]
                if options.axialSlices && image.shape.z > 1 {
                    cases = try (0..<image.shape.z).map { k in
                        (caseName(s) + String(format: "_s%03d", k), try image.slice(axis: 2, index: k), try label.map { try $0.slice(axis: 2, index: k) })
                    }
                }
                for (name, img, lab) in cases {
                    let labeled = lab != nil
                    let dir = folder + (labeled ? "/imagesTr/" : "/imagesTs/")
                    if png {
                        try ImageIO.write(img, to: dir + name + "_0000.png")
                    } else {
                        // One file per channel.
                        for c in 0..<max(1, img.shape.t) {
                            let n = img.shape.spatialCount
                            let channel = MedicalImage(shape: ImageShape(img.shape.x, img.shape.y, img.shape.z), voxels: Array(img.voxels[(c * n)..<((c + 1) * n)]),
                                                       affine: img.affine, info: ImageInfo(storedType: img.info.storedType == .uint8 && img.info.components == .color ? .uint8 : img.info.storedType))
                            try NIfTIWriter.write(channel, to: dir + name + String(format: "_%04d", c) + ending)
                        }
                    }
                    if let lab {
                        var l = lab
                        l.affine = img.affine      // identical geometry, as nnU-Net checks
                        try ImageIO.write(l, to: folder + "/labelsTr/" + name + ending, options: .init(storedType: .uint8, pngBitDepth: 8))
                    }
                    written.withLock { $0.append((name, s.site, labeled)) }
                }
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
            }
            let n = done.add(1, ordering: .relaxed).newValue
            if let progress {
                let rate = Double(n) / max(1e-9, Date().timeIntervalSince(start))
                progress(String(format: "%d/%d samples (%.1f/s, %.0f s left)", n, samples.count, rate, Double(samples.count - n) / max(rate, 1e-9)))
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        let cases = written.withLock { $0 }.sorted { $0.name < $1.name }
        let training = cases.filter(\.labeled)
        // dataset.json
        let channelNames: [String: String]
        if png && channels == 3 { channelNames = ["0": "R", "1": "G", "2": "B"] }
        else if png && channels == 4 { channelNames = ["0": "R", "1": "G", "2": "B", "3": "A"] }
        else {
            let modality = datasets.first?.sites.first?.modality ?? ""
            channelNames = Dictionary(uniqueKeysWithValues: (0..<max(1, channels)).map { (String($0), modality == "MR" ? (channels == 1 ? "T2" : "MR\($0)") : modality.isEmpty ? "image" : modality) })
        }
        let names = labelNames(rules.first ?? .identity, values: sortedValues)
        var labels: [String: Int] = [:]
        for (i, v) in sortedValues.enumerated() { labels[names[i]] = mapping[v]! }
        let json: [String: Any] = [
            "channel_names": channelNames, "labels": labels, "numTraining": training.count, "file_ending": ending,
            "name": options.name, "description": "Exported by medselect from \(datasets.map(\.root).joined(separator: ", "))",
            "medselect_label_mapping": Dictionary(uniqueKeysWithValues: mapping.map { (String($0.key), $0.value) }),
        ]
        try AtomicFile.write(Array(try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])), to: folder + "/dataset.json")
        let sites = Array(Set(training.map(\.site))).sorted()
        if options.siteSplits && sites.count > 1 {
            let folds = sites.map { site in ["train": training.filter { $0.site != site }.map(\.name), "val": training.filter { $0.site == site }.map(\.name)] }
            try AtomicFile.write(Array(try JSONSerialization.data(withJSONObject: folds, options: [.prettyPrinted, .withoutEscapingSlashes])), to: folder + "/splits_final.json")
        }
        return Result(folder: folder, training: training.count, test: cases.count - training.count, labelMapping: mapping, fileEnding: ending)
    }

    /// A MONAI / Decathlon datalist (`training`, `validation`: lists of {image, label}; `test`: unlabeled images).
    /// Validation: the samples whose split is "test"/"validation", else a seeded fraction per site. Label maps that
    /// need combining (two mask files, 0/255 masks, disc/cup encodings, run-length masks) are written once as
    /// NIfTI/PNG under `labels/` next to the JSON, so every entry is one image path and one label path.
    public static func monai(_ datasets: [Dataset], to path: String, validationFraction: Double = 0.2, seed: UInt64 = 0) throws -> (training: Int, validation: Int, test: Int) {
        let folder = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder + "/labels", withIntermediateDirectories: true)
        var training: [[String: String]] = [], validation: [[String: String]] = [], test: [String] = []
        for d in datasets {
            let hasSplits = d.samples.contains { $0.split == "test" || $0.split == "validation" }
            let chosen = hasSplits ? Set(d.samples.filter { $0.split == "test" || $0.split == "validation" }.map(\.id))
                : Set((d.split(seed: seed, fractions: [("train", 1 - validationFraction), ("validation", validationFraction)])["validation"] ?? []).map(\.id))
            for s in d.samples {
                guard s.isLabeled else { test.append(s.images[0]); continue }
                var labelPath = s.labels.first ?? ""
                if !(s.labelRule == .identity && s.labels.count == 1) {
                    guard let label = try s.loadLabel() else { continue }
                    let ext = s.images[0].lowercased().hasSuffix(".png") ? ".png" : ".nii.gz"
                    labelPath = folder + "/labels/" + caseName(s) + ext
                    try ImageIO.write(label, to: labelPath, options: .init(storedType: .uint8, pngBitDepth: 8))
                }
                let entry = ["image": s.images.count == 1 ? s.images[0] : s.images.joined(separator: ","), "label": labelPath, "site": s.site, "id": s.id]
                if chosen.contains(s.id) { validation.append(entry) } else { training.append(entry) }
            }
        }
        let json: [String: Any] = ["name": datasets.map(\.name).joined(separator: "+"), "training": training, "validation": validation, "test": test]
        try AtomicFile.write(Array(try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])), to: path)
        return (training.count, validation.count, test.count)
    }
}
