import Foundation
import MedCompute
import Synchronization
import MedAnalysis
import MedData
import MedFormats
import MedImage
import MedSelection
import MedNN
import MedFoundation

/// The site-analysis stage: every case read once (geometry, MRQy image quality, intensity histogram, thumbnail
/// features unless embeddings are given), each site compared with the source sites (``SiteAnalysis``), and the
/// outputs written: sites.json, sites.csv, cases.csv and the self-contained report.html. `medselect sites` and the
/// experiment runner both call it.
public struct SiteAnalysisStage {
    public var samples: [Sample]
    public var source: [String]
    /// Ready embeddings (row per case of `samples`, in order) instead of thumbnails + PCA, with what they are.
    public var embeddings: (values: [Float], dimensions: Int, description: String)? = nil
    public var outcomes: [String: SiteAnalysis.Outcome] = [:]
    public var permutations = 1000
    public var maxPerSite = 2000
    public var thumbnailSize = 32
    public var seed: UInt64 = 0
    public var readOptions: ReadOptions = .default
    /// Where the cases come from, for the report and errors.
    public var origin = ""
    /// The source model (a U-Net and its training size): its view of every case joins the comparison (`sites --model`).
    public var model: (unet: UNet, size: Int)? = nil
    /// Ids of the labeled source cases that calibrate the Dice estimate and give the reference shapes (default: every
    /// labeled case of the source sites; give the ones the model was not trained on when they are known).
    public var calibration: Set<String>? = nil
    /// Rows of the model's view already computed (`pick`'s view item), instead of running the model again.
    public var views: [CaseView]? = nil

    public init(samples: [Sample], source: [String]) { self.samples = samples; self.source = source }

    /// What one case's image gives.
    public struct CaseFacts: Sendable {
        var geometry: SiteAnalysis.Geometry
        var quality: [String: Double]?
        var histogram: Histogram
        var thumbnail: [Float]?
    }

    /// Runs the analysis and writes its files into `out`; `progress` receives reading counts and analysis steps.
    public func run(out: String, reading: @escaping @Sendable (Int, Int) -> Void = { _, _ in }, step: @escaping (String) -> Void = { _ in }) throws -> SiteReport {
        guard !samples.isEmpty else { throw DataError.badDataset(path: origin, reason: "no cases (check --sites)") }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let samples = self.samples
        let facts = Mutex([Int: Result<CaseFacts, Error>]())
        let done = Atomic(0)
        let needThumbnails = embeddings == nil, size = thumbnailSize, options = readOptions
        parallelFor(samples.count) { i in
            let r = Result { try Self.facts(samples[i], size: size, thumbnail: needThumbnails, options: options) }
            facts.withLock { $0[i] = r }
            reading(done.add(1, ordering: .relaxed).newValue, samples.count)
        }
        let all = try facts.withLock { f in try (0..<samples.count).map { try f[$0]!.get() } }

        // Embeddings: given rows, or thumbnails reduced by PCA (as medselect embed).
        var values: [Float], dims: Int
        var embeddingNote: String
        if let embeddings {
            (values, dims, embeddingNote) = embeddings
        } else {
            let width = all[0].thumbnail!.count
            for (i, f) in all.enumerated() where f.thumbnail!.count != width {
                throw DataError.badDataset(path: samples[i].images[0], reason: "gives \(f.thumbnail!.count) thumbnail values; earlier cases gave \(width) (mixed 2-D/3-D or channel counts)")
            }
            let e = try Embeddings(values: all.flatMap { $0.thumbnail! }, count: samples.count, dimensions: width)
            let components = min(32, samples.count - 1, width)
            let model = try PCA.fit(e, components: components, seed: seed)
            values = PCA.transform(e, model); dims = components
            embeddingNote = "thumbnail embeddings (\(size) x \(size) pixels, z-scored, PCA to \(dims) dimensions, as medselect embed)"
        }

        var analysis = SiteAnalysis(ids: samples.map(\.id), sites: samples.map(\.site), embeddings: values, dimensions: dims,
                                    quality: all.map(\.quality), histograms: all.map(\.histogram), geometry: all.map(\.geometry),
                                    outcomes: outcomes, source: source)
        analysis.permutations = permutations; analysis.seed = seed; analysis.maxPerSite = maxPerSite
        var viewRows = views
        if let model, views == nil {
            // The labeled source cases are the references' shapes and the calibration of the Dice estimate.
            let labeled = samples.filter { source.contains($0.site) && $0.isLabeled && (calibration?.contains($0.id) ?? true) }
            step("the source model's view of \(samples.count) cases (\(labeled.count) labeled source cases calibrate the Dice estimate)")
            let references = try CaseView.references(labeled, labels: model.unet.classes - 1, size: model.size)
            viewRows = try CaseView.compute(samples, model: model.unet, size: model.size, references: references.count > 0 ? references : nil,
                                            calibrate: Set(labeled.map(\.id))) { done, total in reading(done, total) }
        }
        if let viewRows {
            let (measures, estimator, calibrationCases) = try Self.viewMeasures(viewRows, samples: samples, seed: seed)
            analysis.modelView = measures
            if let estimator {
                analysis.estimator = estimator; analysis.calibrationCases = calibrationCases
                for method in DiceEstimator.Method.allCases {
                    analysis.estimates[method] = measures.map { $0.map { estimator.estimate($0, method: method) } ?? .nan }
                }
            }
        }
        let report: SiteReport
        do { report = try analysis.run(progress: step) } catch let e as AnalysisError { throw DataError.badDataset(path: origin, reason: e.reason) }
        let distances = try analysis.caseDistances()

        var described = report
        described.embeddingsDescription = embeddingNote
        try AtomicFile.write(try Self.json(described), to: out + "/sites.json")
        try AtomicFile.write(Self.sitesCSV(report), to: out + "/sites.csv")
        try AtomicFile.write(Self.casesCSV(samples, all, distances, outcomes, views: analysis.modelView, estimates: analysis.estimates), to: out + "/cases.csv")
        let examples = try Self.examples(samples, distances: distances, sites: report.sites.map(\.name), options: readOptions)
        let map2D = try CaseThumbnail.map(values, dimensions: dims, count: samples.count, seed: seed)
        let worst = try Self.worstEstimated(samples, estimates: analysis.estimates[DiceEstimator.defaultMethod] ?? [], sites: report.sites.filter { !$0.isSource }.map(\.name),
                                            model: model, options: readOptions)
        let html = SiteReportPage.render(described, caseSites: samples.map(\.site), map: map2D, histograms: all.map(\.histogram),
                                         examples: examples, worst: worst, origin: origin)
        try AtomicFile.write(html, to: out + "/report.html")
        return report
    }

    /// Geometry, quality, intensity histogram (values z-scored over the image, in [−4, 4], 64 bins; at most 20,000
    /// voxels drawn evenly) and thumbnail features of one case.
    public static func facts(_ s: Sample, size: Int, thumbnail: Bool, options: ReadOptions) throws -> CaseFacts {
        let image = try s.loadImage(options: options)
        let stats = image.statistics
        let geometry = SiteAnalysis.Geometry(spacing: image.spacing, shape: image.shape.dimensions, orientation: image.orientationCodes,
                                             datatype: image.info.storedType.rawValue, minimum: Double(stats?.min ?? .nan), maximum: Double(stats?.max ?? .nan))
        let plane = image.shape.spatialCount
        let gray = image.shape.t > 1
            ? MedicalImage(shape: ImageShape(image.shape.x, image.shape.y, image.shape.z), voxels: Array(image.voxels[0..<plane]), affine: image.affine)
            : image
        let z = try gray.zScored()
        let step = max(1, z.voxels.count / 20_000)
        let sample = stride(from: 0, to: z.voxels.count, by: step).map { z.voxels[$0] }
        return CaseFacts(geometry: geometry, quality: ImageQuality.measure(gray), histogram: Histogram(sample, lower: -4, upper: 4, bins: 64),
                         thumbnail: thumbnail ? try CaseEmbedder.thumbnail(of: image, size: size) : nil)
    }

    /// The model's view of each case of `samples` as named measures (``CaseView/measures(_:)``; nil for a case
    /// without rows), and the Dice estimator fitted on the calibration rows (those with a known Dice) when there are
    /// at least 10, with the number of calibration cases.
    static func viewMeasures(_ rows: [CaseView], samples: [Sample], seed: UInt64) throws -> ([[String: Double]?], DiceEstimator?, Int) {
        let grouped = CaseView.measures(rows)
        let plain = Dictionary(grouped.filter { $0.severity == 0 }.map { ($0.site + "\u{0}" + $0.id, $0.measures) }, uniquingKeysWith: { a, _ in a })
        let calibration = grouped.filter { $0.dice.isFinite }.map {
            DiceEstimator.Calibration(view: $0.measures, dice: $0.dice, group: $0.site + "\u{0}" + $0.id, perturbed: $0.severity > 0)
        }
        let estimator = calibration.count >= 10 ? try DiceEstimator(calibration: calibration, seed: seed) : nil
        return (samples.map { plain[$0.site + "\u{0}" + $0.id] }, estimator, Set(calibration.map(\.group)).count)
    }

    /// sites.json: sorted keys, and null for the undefined values JSON cannot hold.
    public static func json(_ report: SiteReport) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "\u{1}inf", negativeInfinity: "\u{1}-inf", nan: "\u{1}nan")
        let text = String(decoding: try encoder.encode(report), as: UTF8.self)
        return text.replacingOccurrences(of: "\"\\u0001inf\"", with: "null").replacingOccurrences(of: "\"\\u0001-inf\"", with: "null")
            .replacingOccurrences(of: "\"\\u0001nan\"", with: "null") + "\n"
    }

    static func sitesCSV(_ r: SiteReport) -> String {
        func n(_ v: Double?) -> String { guard let v, v.isFinite else { return "" }; return String(format: "%.6g", v) }
        var header = ["site", "cases", "is_source"] + SiteReport.measureNames + ["mmd_p_value", "mmd_p_value_holm", "mean_dice", "mean_hausdorff95_mm"]
        header += ImageQuality.measures.map { "quality_" + $0 } + ["flags"]
        var s = header.joined(separator: ",") + "\n"
        for site in r.sites {
            var cols = [site.name, String(site.cases), site.isSource ? "1" : "0"]
            cols += SiteReport.measureNames.map { n(site.distanceToSource[$0] ?? nil) }
            cols += [n(site.mmdPValue), n(site.mmdPValueHolm), n(site.meanDice), n(site.meanHausdorff95)]
            cols += ImageQuality.measures.map { n(site.quality[$0]) }
            cols.append("\"" + site.flags.joined(separator: "; ").replacingOccurrences(of: "\"", with: "'") + "\"")
            s += cols.joined(separator: ",") + "\n"
        }
        return s
    }

    /// cases.csv: per case its distance to the source, the quality measures, the model's view (`view_<measure>`
    /// columns, with a model), the Dice estimated without labels (`estimated_dice` by the default method,
    /// `estimated_dice_<method>` by each candidate) and the given Dice and HD95.
    static func casesCSV(_ samples: [Sample], _ facts: [CaseFacts], _ distances: [Double], _ outcomes: [String: SiteAnalysis.Outcome],
                         views: [[String: Double]?] = [], estimates: [DiceEstimator.Method: [Double]] = [:]) -> String {
        func n(_ v: Double?) -> String { guard let v, v.isFinite else { return "" }; return String(format: "%.6g", v) }
        let viewMeasures = Array(Set(views.compactMap { $0 }.flatMap(\.keys))).sorted()
        let methods = estimates.isEmpty ? [] : [DiceEstimator.defaultMethod] + DiceEstimator.Method.allCases
        let estimateColumns = estimates.isEmpty ? [] : ["estimated_dice"] + DiceEstimator.Method.allCases.map { "estimated_dice_" + $0.rawValue }
        var s = (["id", "site", "distance_to_source"] + ImageQuality.measures + viewMeasures.map { "view_" + $0 } + estimateColumns
                 + ["dice", "hausdorff95_mm"]).joined(separator: ",") + "\n"
        for (i, c) in samples.enumerated() {
            let view = views.count == samples.count ? views[i] : nil
            s += ([c.id, c.site, n(distances[i])] + ImageQuality.measures.map { n(facts[i].quality?[$0]) } + viewMeasures.map { n(view?[$0]) }
                  + methods.map { n(estimates[$0]?[i]) }
                  + [n(outcomes[c.id]?.dice), n(outcomes[c.id]?.hausdorff95)]).joined(separator: ",") + "\n"
        }
        return s
    }

    /// Per site, the three cases with the lowest estimated Dice, with the model's predicted contour when the model is
    /// at hand (a thumbnail alone otherwise).
    static func worstEstimated(_ samples: [Sample], estimates: [Double], sites: [String], model: (unet: UNet, size: Int)?,
                               options: ReadOptions) throws -> [SiteReportPage.Examples] {
        guard estimates.count == samples.count else { return [] }
        return try sites.map { site in
            let members = samples.indices.filter { samples[$0].site == site && estimates[$0].isFinite }.sorted { estimates[$0] < estimates[$1] }
            let cells = try members.prefix(3).map { i -> (caption: String, uri: String) in
                var contour: MedicalImage? = nil
                if let model {
                    let image = try samples[i].loadImage(options: options)
                    let channels = image.info.components == .color ? image.shape.t : 1
                    contour = try Segmentation.predictImage(image, model: model.unet, size: model.size, channels: channels, native: false, tta: false)
                }
                return (String(format: "%@ (est. %.2f)", samples[i].id, estimates[i]), try CaseThumbnail.uri(samples[i], options: options, contour: contour))
            }
            return SiteReportPage.Examples(site: site, typical: cells, atypical: [])
        }.filter { !$0.typical.isEmpty }
    }

    /// Per site, the three cases nearest to the source (most typical) and the three farthest, as PNG thumbnails.
    static func examples(_ samples: [Sample], distances: [Double], sites: [String], options: ReadOptions) throws -> [SiteReportPage.Examples] {
        try sites.map { site in
            let members = samples.indices.filter { samples[$0].site == site }.sorted { distances[$0] < distances[$1] }
            func thumbs(_ rows: [Int]) throws -> [(caption: String, uri: String)] {
                try rows.map { i in (String(format: "%@ (%.2f)", samples[i].id, distances[i]), try CaseThumbnail.uri(samples[i], options: options)) }
            }
            return SiteReportPage.Examples(site: site, typical: try thumbs(Array(members.prefix(3))),
                                           atypical: try thumbs(Array(members.suffix(min(3, max(0, members.count - 3))).reversed())))
        }
    }
}
