import Foundation
import MedData
import MedFormats
import MedFoundation
import MedImage
import MedMetrics

/// The evaluation stage: predicted label maps scored against references (Dice, IoU, precision, sensitivity,
/// Hausdorff, HD95, ASSD in mm), one file against another (`medselect metrics`) or a folder of predictions against a
/// folder of references or a benchmark's labels (`medselect evaluate`), each prediction paired with its case.
public enum Evaluation {
    /// Why a prediction cannot be scored: the file and the reason.
    public struct Problem: MedError {
        public var path: String
        public var reason: String
    }

    /// How labels are scored: which labels, a relabelling of the reference, HD95's pooling and the empty-mask rules.
    public struct Rules: Sendable {
        public var labels: [Int]? = nil
        public var remap: [Float: Float]? = nil
        public var hd95 = HD95Pooling.maxOfDirected
        public var empty = EmptyMaskPolicy()
        /// Refuse label sets that share no foreground value (an encoding mismatch such as 0/1 against 0/255). Off when
        /// the reference's labels come from a benchmark's label rule: there, a prediction of only the cup where the
        /// reference has only the disc is a wrong prediction (Dice 0), not a mismatch.
        public var refuseDisjointLabels = true
        public init() {}
    }

    /// Metrics of the prediction file against a reference image (read from `referencePath`, or a benchmark case's
    /// label after its label rule). Refuses label sets that share no foreground value: scoring 0/1 predictions
    /// against 0/255 masks gives Dice 0 for every case, silently.
    public static func score(prediction: String, reference reference0: MedicalImage, referencePath: String, rules: Rules,
                             options: ReadOptions) throws -> [Int: LabelMetrics] {
        var ref = reference0
        var pred = try ImageIO.read(prediction, options: options)
        guard ref.shape.spatialCount == pred.shape.spatialCount, ref.shape.x == pred.shape.x, ref.shape.y == pred.shape.y else {
            throw Problem(path: prediction, reason: "shape \(pred.shape) differs from the reference \(ref.shape) (\(referencePath))")
        }
        pred.kind = .labelMap
        if let m = rules.remap { ref = ref.remapped(m) }
        if let problem = pred.labelMapProblem { throw Problem(path: prediction, reason: "not a label map: \(problem)") }
        if let problem = ref.labelMapProblem { throw Problem(path: referencePath, reason: "not a label map: \(problem)") }
        if rules.labels == nil && rules.refuseDisjointLabels {
            let n = ref.shape.spatialCount
            let p = Set(pred.voxels[0..<n].lazy.filter { $0 != 0 }), r = Set(ref.voxels[0..<n].lazy.filter { $0 != 0 })
            if !p.isEmpty && !r.isEmpty && p.isDisjoint(with: r) {
                func list(_ s: Set<Float>) -> String { s.sorted().prefix(6).map { String(Int($0)) }.joined(separator: ", ") }
                throw Problem(path: prediction, reason: "its labels (\(list(p))) and the reference's (\(list(r)), \(referencePath)) share no "
                    + "foreground value, so every score would be 0: relabel the reference (--remap \(Int(r.min()!)):\(Int(p.min()!))) or, "
                    + "for a benchmark folder, give evaluate --ref-data DIR so that its label rule applies")
            }
        }
        return try SegmentationMetrics.compute(prediction: pred, reference: ref, labels: rules.labels, hd95: rules.hd95, empty: rules.empty)
    }

    public static func score(prediction: String, reference: String, rules: Rules, options: ReadOptions) throws -> [Int: LabelMetrics] {
        try score(prediction: prediction, reference: try ImageIO.read(reference, options: options), referencePath: reference, rules: rules, options: options)
    }

    /// Image file name endings a prediction or reference may have.
    public static let extensions = [".seg.nrrd", ".nii.gz", ".nii", ".png", ".mha", ".mhd", ".nrrd", ".nhdr", ".npy", ".hdr"]

    /// A file's case id: its name without the image extension and a `_segmentation`, `_seg`, `_mask` or `_label`
    /// suffix; nil when it is not an image file name.
    public static func caseID(_ name: String) -> String? {
        guard let ext = extensions.first(where: { name.lowercased().hasSuffix($0) }) else { return nil }
        var id = String(name.dropLast(ext.count))
        for suffix in ["_segmentation", "_Segmentation", "_seg", "_mask", "_label"] where id.hasSuffix(suffix) {
            id = String(id.dropLast(suffix.count))
        }
        return id
    }

    /// The image files of a folder by case id.
    public static func files(in folder: String) throws -> [String: String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw Problem(path: folder, reason: "not a folder")
        }
        var out: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder).sorted() where !name.hasPrefix(".") {
            if let id = caseID(name) { out[id] = (folder as NSString).appendingPathComponent(name) }
        }
        return out
    }

    /// Case id -> site from a CSV of `case,site` lines (a header line is optional).
    public static func readSites(_ path: String) throws -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Problem(path: path, reason: "cannot read the sites CSV")
        }
        var out: [String: String] = [:]
        for (n, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            let cols = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            if n == 0 && cols.first?.lowercased() == "case" { continue }
            guard cols.count >= 2, !cols[0].isEmpty else {
                throw Problem(path: path, reason: "line \(n + 1) is not 'case,site': \(line.prefix(60))")
            }
            out[cols[0]] = cols[1]
        }
        return out
    }

    /// Where a prediction's reference comes from: a file, or a benchmark case's label.
    public enum Reference { case file(String), sample(Sample) }

    /// The references of a benchmark folder's labeled cases (of `sites` when given) for the predictions of
    /// `predictionFolder`: by the image each prediction was made from when the folder has predict's
    /// predictions.csv, else by case id or image file name; a name that several sites share (the six-site prostate
    /// layout has Case00 in every site) is refused with its candidates rather than scored against whichever site
    /// comes first.
    public static func references(for predictions: [String: String], predictionFolder: String, dataset: Dataset, origin: String,
                                  sites: Set<String>?) throws -> [String: Reference] {
        var samples = dataset.samples.filter(\.isLabeled)
        if let sites {
            let known = Set(dataset.samples.map(\.site))
            if let unknown = sites.subtracting(known).sorted().first {
                throw Problem(path: origin, reason: "--ref-sites: no site \(unknown) (sites: \(known.sorted().joined(separator: ", ")))")
            }
            samples = samples.filter { sites.contains($0.site) }
        }
        guard !samples.isEmpty else { throw Problem(path: origin, reason: "the benchmark folder has no labeled case") }
        if let made = try PredictionManifest.read(folder: predictionFolder) {
            let byImage = Dictionary(samples.compactMap { s in s.images.first.map { (PredictionManifest.canonical($0), s) } }, uniquingKeysWith: { a, _ in a })
            var out: [String: Reference] = [:]
            for (id, file) in predictions {
                if let image = made[(file as NSString).lastPathComponent], let s = byImage[PredictionManifest.canonical(image)] { out[id] = .sample(s) }
            }
            return out
        }
        var candidates: [String: [Sample]] = [:]
        for s in samples {
            var keys: Set<String> = [s.id]
            if let image = s.images.first, let id = caseID((image as NSString).lastPathComponent) { keys.insert(id) }
            for k in keys { candidates[k, default: []].append(s) }
        }
        var out: [String: Reference] = [:]
        for id in predictions.keys.sorted() {
            guard let c = candidates[id] else { continue }
            guard c.count == 1 else {
                let shown: String = c.prefix(6).map { "\($0.id) in \($0.site)" }.joined(separator: ", ") + (c.count > 6 ? ", ..." : "")
                throw Problem(path: predictions[id]!, reason: "the case id \(id) matches \(c.count) labeled cases of \(origin) (\(shown)): give "
                    + "--ref-sites SITE, or predict with medselect predict, whose predictions.csv names each prediction's image")
            }
            out[id] = .sample(c[0])
        }
        return out
    }

    /// One scored prediction: the case's name (the benchmark's id with --ref-data), its site, and its metrics per label.
    public struct Scored {
        public var caseName: String, site: String?
        public var metrics: [Int: LabelMetrics]
    }

    /// Scores every prediction that has a reference, in case id order (`progress`: done, total, case id).
    public static func score(_ predictions: [String: String], references: [String: Reference], sites: [String: String], rules: Rules,
                             options: ReadOptions, progress: (Int, Int, String) -> Void = { _, _, _ in }) throws -> [Scored] {
        let ids = predictions.keys.filter { references[$0] != nil }.sorted()
        return try ids.enumerated().map { n, id in
            progress(n, ids.count, id)
            switch references[id]! {
            case .file(let path):
                return Scored(caseName: id, site: sites[id], metrics: try score(prediction: predictions[id]!, reference: path, rules: rules, options: options))
            case .sample(let sample):
                guard let label = try sample.loadLabel(options: options) else {
                    throw Problem(path: sample.images.first ?? sample.id, reason: "case \(sample.id) has no label to score against")
                }
                // The table names the benchmark's case (HK_Case00), which file names may not (Case00). Its labels are
                // the benchmark's by its label rule, so disjoint label sets are a wrong prediction, scored as such.
                var benchmarkRules = rules
                benchmarkRules.refuseDisjointLabels = false
                return Scored(caseName: sample.id, site: sites[id],
                              metrics: try score(prediction: predictions[id]!, reference: label, referencePath: sample.labels.first ?? sample.id,
                                                 rules: benchmarkRules, options: options))
            }
        }
    }
}
