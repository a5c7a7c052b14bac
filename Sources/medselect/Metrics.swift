import ArgumentParser
import Foundation
import MedFoundation
import MedFormats
import MedImage
import MedData
import MedMetrics
import MedPipeline

/// Options shared by `metrics` and `evaluate`.
struct MetricOptions: ParsableArguments {
    @Option(help: "Label values to evaluate, e.g. 1,2 (default: every non-zero value present).")
    var labels: String?

    @Option(name: .customLong("hd95"), help: "How HD95 pools the two directed distance sets: max (MONAI, default) or pooled (MedPy).")
    var hd95 = HD95Pooling.maxOfDirected

    @Option(name: .customLong("both-empty"), help: "Dice when prediction and reference are both empty: nan (MONAI, default) or 1.")
    var bothEmpty = BothEmptyDice.nan

    @Option(name: .customLong("one-empty"), help: "Distances when exactly one mask is empty: inf (default) or nan.")
    var oneEmpty = OneEmptyDistance.inf

    @Option(help: "Relabel the reference before scoring, e.g. 255:1 for masks stored as 0/255.")
    var remap: String?

    func validate() throws {
        _ = try labelList()
        _ = try remapping()
    }

    func remapping() throws -> [Float: Float]? {
        guard let r = remap else { return nil }
        var out: [Float: Float] = [:]
        for pair in r.split(separator: ",") {
            let kv = pair.split(separator: ":").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard kv.count == 2, let k = kv[0], let v = kv[1], k >= 0, v >= 0, k == k.rounded(), v == v.rounded() else {
                throw ValidationError("--remap takes label pairs like 255:1 or 128:1,255:2")
            }
            out[k] = v
        }
        return out
    }

    func labelList() throws -> [Int]? {
        guard let l = labels else { return nil }
        let parts = l.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap { Int($0) }
        guard values.count == parts.count, !values.isEmpty, values.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--labels must be positive integers separated by commas, e.g. 1,2")
        }
        return values
    }

    var policy: EmptyMaskPolicy {
        EmptyMaskPolicy(bothEmptyOverlap: bothEmpty == .one ? 1 : .nan, bothEmptyDistance: .nan,
                        oneEmptyDistance: oneEmpty == .nan ? .nan : .infinity)
    }

    /// The scoring rules these options give (valid after `validate()`).
    var rules: Evaluation.Rules {
        var r = Evaluation.Rules()
        r.labels = try? labelList(); r.remap = try? remapping(); r.hd95 = hd95; r.empty = policy
        return r
    }
}

/// JSON numbers cannot be NaN or infinite: those become null (the tables and CSVs write nan and inf, as pandas reads
/// them; JSON outputs carry the voxel counts or terms that explain an undefined value).
func jsonNumber(_ v: Double) -> Any {
    v.isFinite ? v : NSNull()
}

func formatMetric(_ v: Double) -> String {
    if v.isNaN { return "nan" }
    if v.isInfinite { return v > 0 ? "inf" : "-inf" }
    return String(format: "%.4f", v)
}

struct Metrics: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Dice, IoU, precision, sensitivity, Hausdorff, HD95 and ASSD (mm) of one prediction against a reference.",
        discussion: "Distances use the reference image's spacing. Example: medselect metrics pred.nii.gz ref.nii.gz --labels 1 --json"
    )

    @Argument(help: "Predicted label map.") var prediction: String
    @Argument(help: "Reference label map.") var reference: String
    @Flag(help: "Print one JSON object: {\"labels\": {\"1\": {\"dice\": ..., \"hausdorff95_mm\": ...}}, ...}; undefined values are null.") var json = false
    @OptionGroup var metricOptions: MetricOptions
    @OptionGroup var limits: ReadLimitOptions

    func run() throws {
        let result = try Evaluation.score(prediction: prediction, reference: reference, rules: metricOptions.rules, options: limits.readOptions)
        if json {
            var labels: [String: Any] = [:]
            for (label, m) in result {
                var o: [String: Any] = [:]
                for (k, v) in m.values { o[k] = jsonNumber(v) }
                o["predicted_voxels"] = m.predictedVoxels
                o["reference_voxels"] = m.referenceVoxels
                labels[String(label)] = o
            }
            let obj: [String: Any] = ["prediction": prediction, "reference": reference, "labels": labels,
                                      "hd95": metricOptions.hd95.rawValue, "units": "mm"]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        if result.isEmpty {
            print("no foreground label in the prediction or the reference: nothing to score (--labels 1 scores label 1 anyway: "
                  + "Dice \(metricOptions.bothEmpty == .one ? "1" : "nan (or 1 with --both-empty 1)") when both are empty)")
            return
        }
        print("label  dice    iou     precision  sensitivity  hausdorff_mm  hausdorff95_mm  assd_mm")
        for label in result.keys.sorted() {
            let m = result[label]!
            print([String(label).padding(toLength: 6, withPad: " ", startingAt: 0), formatMetric(m.dice), formatMetric(m.iou),
                   formatMetric(m.precision).padding(toLength: 9, withPad: " ", startingAt: 0),
                   formatMetric(m.sensitivity).padding(toLength: 11, withPad: " ", startingAt: 0),
                   formatMetric(m.hausdorff).padding(toLength: 12, withPad: " ", startingAt: 0),
                   formatMetric(m.hausdorff95).padding(toLength: 14, withPad: " ", startingAt: 0), formatMetric(m.assd)].joined(separator: "  "))
        }
    }
}

struct Evaluate: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Metrics for every prediction in a folder against the reference with the same case id; per-case table and summary.",
        discussion: """
        Case ids are file names without their image extension (.nii.gz, .nii, .png, .mha, .mhd, .npy); a reference named \
        CASE_segmentation or CASE_seg also matches the prediction CASE. Summary: mean, std, median over cases with finite \
        values; NaN and infinite values are counted, not hidden. \
        With --ref-data, the references are a benchmark folder's labels after its label rule, so predictions of \
        medselect predict score directly against Shenzhen's 0/255 masks or Montgomery's left + right lungs, each \
        prediction paired with its case through the predictions.csv predict writes (the table then names the \
        benchmark's case id, e.g. HK_Case00; --ref-sites narrows the references when that file is absent). Prediction \
        and reference labels that share no foreground value are refused (use --remap, e.g. 255:1).
        Example: medselect evaluate --pred runs/pred --ref data/labelsTs --csv metrics.csv
        Example: medselect evaluate --pred pred --ref-data Samples/cxr --csv metrics.csv (per-site summaries from the benchmark)
        """
    )

    @Option(help: "Folder of predicted label maps.") var pred: String
    @Option(help: "Folder of reference label maps.") var ref: String?
    @Option(name: .customLong("ref-data"),
            help: "A benchmark folder instead of --ref: each case's reference is its label after the benchmark's label rule (masks stored as 0/255, left + right lungs, disc/cup), matched by case id or image file name.")
    var refData: String?
    @Option(help: "Benchmark adapter for --ref-data (detected when omitted).") var benchmark: String?
    @Option(name: .customLong("ref-sites"),
            help: "With --ref-data: only these sites' labels are references (comma-separated), so a file name such as Case00 that every site has matches one case.")
    var refSites: String?
    @Option(help: "Write the per-case table to this CSV file.") var csv: String?
    @Option(help: "CSV mapping case ids to sites (columns case,site; a header line is optional): summaries per site too.")
    var sites: String?
    @OptionGroup var metricOptions: MetricOptions
    @OptionGroup var limits: ReadLimitOptions

    func validate() throws {
        guard (ref == nil) != (refData == nil) else { throw ValidationError("give --ref DIR or --ref-data DIR (one of them)") }
        if refSites != nil && refData == nil { throw ValidationError("--ref-sites needs --ref-data") }
    }

    /// The reference of every prediction, keyed by the prediction's case id: with --ref by file name, with
    /// --ref-data through ``Evaluation/references(for:predictionFolder:dataset:sites:)``.
    func references(for predictions: [String: String]) throws -> [String: Evaluation.Reference] {
        if let ref { return try Evaluation.files(in: ref).mapValues { .file($0) } }
        let dataset = try DatasetAdapters.load(refData!, benchmark: benchmark)
        let wanted = refSites.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
        return try Evaluation.references(for: predictions, predictionFolder: pred, dataset: dataset, origin: refData!, sites: wanted)
    }

    func run() throws {
        var siteOf = try sites.map(Evaluation.readSites) ?? [:]
        let preds = try Evaluation.files(in: pred)
        guard !preds.isEmpty else { throw CommandError(subject: pred, reason: "the folder holds no prediction (no image file)") }
        let refs = try references(for: preds)
        if refData != nil && sites == nil {
            for (id, r) in refs { if case .sample(let s) = r { siteOf[id] = s.site } }
        }
        let bySites = sites != nil || refData != nil
        let refOrigin = ref ?? refData!
        let ids = preds.keys.filter { refs[$0] != nil }.sorted()
        guard !ids.isEmpty else { throw CommandError(subject: pred, reason: "none of its \(preds.count) predictions has a reference with the same case id in \(refOrigin)") }
        let unmatched = preds.keys.filter { refs[$0] == nil }.sorted()
        if !unmatched.isEmpty {
            FileHandle.standardError.write(Data("warning: \(unmatched.count) of \(preds.count) predictions have no reference in \(refOrigin) and are not scored: \(unmatched.prefix(5).joined(separator: ", "))\(unmatched.count > 5 ? ", ..." : "")\n".utf8))
        }
        if ref != nil {
            let missing = refs.keys.filter { preds[$0] == nil }.sorted()
            if !missing.isEmpty {
                FileHandle.standardError.write(Data("warning: \(missing.count) reference case(s) have no prediction: \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? ", ..." : "")\n".utf8))
            }
        }
        if let csv { try checkOutputFolder(csv) }
        let names = ["dice", "iou", "precision", "sensitivity", "hausdorff_mm", "hausdorff95_mm", "assd_mm"]
        var rows: [[String]] = []
        var byLabel: [Int: [String: [Double]]] = [:]
        var bySite: [String: [Int: [String: [Double]]]] = [:]
        let progress = ProgressLine("evaluate")
        let scored = try Evaluation.score(preds, references: refs, sites: siteOf, rules: metricOptions.rules, options: limits.readOptions) { n, total, id in
            progress.update(n, of: total, unit: "cases", item: id)
        }
        for result in scored {
            for label in result.metrics.keys.sorted() {
                let m = result.metrics[label]!
                let site = result.site ?? ""
                rows.append([result.caseName] + (bySites ? [site] : []) + [String(label)] + m.values.map { formatMetric($0.1) })
                for (k, v) in m.values {
                    byLabel[label, default: [:]][k, default: []].append(v)
                    if bySites { bySite[site.isEmpty ? "(no site)" : site, default: [:]][label, default: [:]][k, default: []].append(v) }
                }
            }
        }
        progress.finish("\(ids.count) case\(ids.count == 1 ? "" : "s")")
        let header = ["case"] + (bySites ? ["site"] : []) + ["label"] + names
        print(header.joined(separator: "\t"))
        for r in rows { print(r.joined(separator: "\t")) }
        print("\nsummary (finite values; nan and inf counted): \(ids.count) of \(preds.count) predictions scored"
              + (unmatched.isEmpty ? "" : ", \(unmatched.count) without a reference skipped"))
        print(["label", "metric", "mean", "std", "median", "n", "nan", "inf"].joined(separator: "\t"))
        for label in byLabel.keys.sorted() {
            for k in names {
                let s = MetricSummary(byLabel[label]![k] ?? [])
                print([String(label), k, formatMetric(s.mean), formatMetric(s.std), formatMetric(s.median),
                       String(s.count), String(s.nanCount), String(s.infiniteCount)].joined(separator: "\t"))
            }
        }
        if !bySite.isEmpty {
            print("\nper-site summary")
            print(["site", "label", "metric", "mean", "std", "median", "n", "nan", "inf"].joined(separator: "\t"))
            for site in bySite.keys.sorted() {
                for label in bySite[site]!.keys.sorted() {
                    for k in names {
                        let s = MetricSummary(bySite[site]![label]![k] ?? [])
                        print([site, String(label), k, formatMetric(s.mean), formatMetric(s.std), formatMetric(s.median),
                               String(s.count), String(s.nanCount), String(s.infiniteCount)].joined(separator: "\t"))
                    }
                }
            }
        }
        if let csv {
            let text = ([header] + rows).map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n"
            try AtomicFile.write(text, to: csv)
            FileHandle.standardError.write(Data("wrote \(csv)\n".utf8))
        }
    }
}

/// Refuses an output path whose folder does not exist, before any work is done.
func checkOutputFolder(_ path: String) throws {
    let folder = (path as NSString).deletingLastPathComponent
    var isDir: ObjCBool = false
    guard folder.isEmpty || (FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) && isDir.boolValue) else {
        throw CommandError(subject: path, reason: "the folder \(folder) does not exist; create it first")
    }
}

