import ArgumentParser
import Foundation
import MedPipeline
import MedAnalysis
import MedData
import MedFormats
import MedImage
import MedReport
import MedSelection
import Synchronization

/// `medselect sites`: how each site differs from the source sites, from an index or a folder alone, and whether the
/// shift relates to segmentation quality; JSON, CSV and a self-contained HTML report.
struct Sites: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Per-site domain shift against the source sites: geometry, image quality, intensities, embeddings; an HTML report.",
        discussion: """
        Reads every case once: geometry, MRQy image-quality measures on an Otsu foreground mask, the intensity \
        histogram after z-scoring, and (without --embeddings) thumbnail embeddings as medselect embed makes them. Every \
        site is compared with the pooled source sites and with every other site: MMD (RBF kernel, median-heuristic \
        bandwidth, unbiased estimator, permutation p-value (b+1)/(n+1), Holm-corrected), Fréchet distance of Gaussian \
        fits, mean distance to the k nearest source cases, a cross-validated domain classifier (AUC) and a site \
        confusion matrix, Wasserstein-1 and Jensen-Shannon distances of the intensity histograms. With --results (the \
        CSV of medselect evaluate or the experiment runner's cases.csv), per-site Dice and HD95 against each distance, \
        with Spearman and Pearson correlations and bootstrap 95 % intervals. Docs/analysis.md defines every measure.
        Example: medselect sites --data Samples/cxr --source MCU --out reports/sites
        """
    )
    @OptionGroup var limits: ReadLimitOptions
    @OptionGroup var dataset: DatasetOptions
    @Option(help: "Embeddings (.npy, one row per case) instead of thumbnails; ids from --ids or the .ids.csv beside it.") var embeddings: String?
    @Option(help: "Ids of the embedding rows (CSV whose first column is the id).") var ids: String?
    @Option(help: "Source site(s), comma-separated: what the model was trained on.") var source: String
    @Option(help: "Per-case results (CSV with a case or id column, dice and hausdorff95_mm): shift against segmentation quality.") var results: String?
    @Option(help: "Permutations of the MMD tests.") var permutations = 1000
    @Option(help: "At most this many cases per site enter the embedding measures (drawn with the seed).") var maxPerSite = 2000
    @Option(help: "Thumbnail side for the on-the-fly embeddings (as medselect embed --size).") var size = 32
    @Option(help: "Seed of every random choice (subsamples, permutations, folds, bootstrap).") var seed: UInt64 = 0
    @Option(help: "Output folder: sites.json, sites.csv, cases.csv, report.html.") var out: String

    func validate() throws {
        guard permutations >= 19 else { throw ValidationError("--permutations must be at least 19 (a p-value below 0.05 needs them)") }
        guard maxPerSite >= 2 else { throw ValidationError("--max-per-site must be at least 2") }
        guard size >= 8 && size <= 256 else { throw ValidationError("--size must lie in 8...256") }
    }

    /// What one case's image gives.
    struct CaseFacts: Sendable {
        var geometry: SiteAnalysis.Geometry
        var quality: [String: Double]?
        var histogram: Histogram
        var thumbnail: [Float]?
    }

    func run() throws {
        let sourceSites = source.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let samples = try dataset.load().flatMap(\.samples)
        guard !samples.isEmpty else { throw DataError.badDataset(path: dataset.origin, reason: "no cases (check --sites)") }
        let siteNames = Array(Set(samples.map(\.site))).sorted()
        for s in sourceSites where !siteNames.contains(s) {
            throw CommandError(subject: dataset.origin, reason: "the source site \(s) is not in the data (sites: \(siteNames.joined(separator: ", ")))")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

        // Embeddings given: checked against the cases before any image is read.
        var given: (values: [Float], dimensions: Int, row: [String: Int])? = nil
        if let embeddings {
            let m = try Select.loadMatrix(embeddings)
            let idsPath = ids ?? CaseEmbedder.idsPath(embeddings)
            guard FileManager.default.fileExists(atPath: idsPath) else {
                throw CommandError(subject: embeddings, reason: "no ids: give --ids (embed writes \(idsPath) beside the embeddings)")
            }
            let idList = try Select.readLines(idsPath)
            guard idList.count == m.rows else { throw CommandError(subject: idsPath, reason: "\(idList.count) ids for \(m.rows) embedding rows in \(embeddings)") }
            let row = Dictionary(idList.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            let missing = samples.filter { row[$0.id] == nil }
            guard missing.count < samples.count else {
                throw CommandError(subject: idsPath, reason: "none of its ids is a case of \(dataset.origin) (first id: \(idList.first ?? "none"), first case: \(samples[0].id))")
            }
            if !missing.isEmpty {
                throw CommandError(subject: idsPath, reason: "\(missing.count) cases have no embedding row (first: \(missing[0].id)); embed all the cases, or restrict with --sites")
            }
            given = (m.values, m.cols, row)
        }
        let outcomes = try results.map { try Self.readResults($0, cases: Set(samples.map(\.id))) } ?? [:]

        // One pass over the images.
        let facts = Mutex([Int: Result<CaseFacts, Error>]())
        let done = Atomic(0)
        let progress = ProgressLine("sites")
        let needThumbnails = given == nil, size = self.size, readOptions = limits.readOptions
        DispatchQueue.concurrentPerform(iterations: samples.count) { i in
            let r = Result { try Self.facts(samples[i], size: size, thumbnail: needThumbnails, options: readOptions) }
            facts.withLock { $0[i] = r }
            progress.update(done.add(1, ordering: .relaxed).newValue, of: samples.count, unit: "cases read")
        }
        progress.finish("\(samples.count) cases read")
        let all = try facts.withLock { f in try (0..<samples.count).map { try f[$0]!.get() } }

        // Embeddings: given rows, or thumbnails reduced by PCA (as medselect embed).
        var values: [Float], dims: Int
        var embeddingNote: String
        if let given {
            values = samples.flatMap { s in given.values[(given.row[s.id]! * given.dimensions)..<((given.row[s.id]! + 1) * given.dimensions)] }
            dims = given.dimensions
            embeddingNote = "embeddings from \(embeddings!) (\(dims) dimensions)"
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
                                    outcomes: outcomes, source: sourceSites)
        analysis.permutations = permutations; analysis.seed = seed; analysis.maxPerSite = maxPerSite
        let steps = ProgressLine("sites")
        let report: SiteReport
        do { report = try analysis.run { steps($0) } } catch let e as AnalysisError { throw CommandError(subject: dataset.origin, reason: e.description) }
        steps.finish("compared \(report.sites.count) sites")
        let distances = try analysis.caseDistances()

        // Outputs.
        var described = report
        described.embeddingsDescription = embeddingNote
        try AtomicFile.write(try Self.json(described), to: out + "/sites.json")
        try AtomicFile.write(Self.sitesCSV(report), to: out + "/sites.csv")
        try AtomicFile.write(Self.casesCSV(samples, all, distances, outcomes), to: out + "/cases.csv")
        let examples = try Self.examples(samples, distances: distances, sites: report.sites.map(\.name), options: limits.readOptions)
        let map2D = try CaseThumbnail.map(values, dimensions: dims, count: samples.count, seed: seed)
        let html = SiteReportPage.render(described, caseSites: samples.map(\.site), map: map2D, histograms: all.map(\.histogram),
                                         examples: examples, origin: dataset.origin)
        try AtomicFile.write(html, to: out + "/report.html")
        let targets = report.sites.filter { !$0.isSource }.count
        print("compared \(targets) site\(targets == 1 ? "" : "s") with the source \(sourceSites.joined(separator: ", ")) (\(samples.count) cases in all): \(out)/report.html, sites.json, sites.csv, cases.csv")
        for line in report.findings { print("  " + line) }
    }

    /// Geometry, quality, intensity histogram (values z-scored over the image, in [−4, 4], 64 bins; at most 20,000
    /// voxels drawn evenly) and thumbnail features of one case.
    static func facts(_ s: Sample, size: Int, thumbnail: Bool, options: ReadOptions) throws -> CaseFacts {
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

    /// Per-case Dice and HD95 from a results CSV (a case or id column; dice; hausdorff95_mm, hausdorff95 or hd95),
    /// averaged over labels and rows of the same case.
    static func readResults(_ path: String, cases: Set<String>) throws -> [String: SiteAnalysis.Outcome] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CommandError(subject: path, reason: "cannot read the file") }
        let separator: Character = text.split(separator: "\n").first?.contains("\t") == true ? "\t" : ","
        let rows = text.split(whereSeparator: \.isNewline).map { $0.split(separator: separator, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) } }
        guard let header = rows.first?.map({ $0.lowercased() }) else { throw CommandError(subject: path, reason: "the file is empty") }
        guard let idColumn = header.firstIndex(of: "case") ?? header.firstIndex(of: "id"), let diceColumn = header.firstIndex(of: "dice") else {
            throw CommandError(subject: path, reason: "needs a header with a 'case' (or 'id') and a 'dice' column, as medselect evaluate --csv writes")
        }
        let hdColumn = header.firstIndex(of: "hausdorff95_mm") ?? header.firstIndex(of: "hausdorff95") ?? header.firstIndex(of: "hd95")
        var dice: [String: [Double]] = [:], hd: [String: [Double]] = [:]
        for (line, r) in rows.dropFirst().enumerated() {
            guard r.count > max(idColumn, diceColumn) else { throw CommandError(subject: path, reason: "line \(line + 2) has too few columns") }
            let id = r[idColumn]
            if let v = Double(r[diceColumn]) { dice[id, default: []].append(v) }
            if let c = hdColumn, r.count > c, let v = Double(r[c]) { hd[id, default: []].append(v) }
        }
        let unknown = dice.keys.filter { !cases.contains($0) }.sorted()
        guard unknown.count < dice.count else {
            throw CommandError(subject: path, reason: "none of its case ids is a case of the data (first: \(unknown.first ?? "none"))")
        }
        if !unknown.isEmpty {
            throw CommandError(subject: path, reason: "\(unknown.count) case ids are not cases of the data (first: \(unknown[0]))")
        }
        return dice.mapValues { _ in SiteAnalysis.Outcome(dice: 0, hausdorff95: .nan) }.reduce(into: [:]) { out, kv in
            let h = (hd[kv.key] ?? []).filter { $0.isFinite }
            out[kv.key] = SiteAnalysis.Outcome(dice: Stats.mean(dice[kv.key]!), hausdorff95: h.isEmpty ? .nan : Stats.mean(h))
        }
    }

    /// sites.json: sorted keys, and null for the undefined values JSON cannot hold.
    static func json(_ report: SiteReport) throws -> String {
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

    static func casesCSV(_ samples: [Sample], _ facts: [CaseFacts], _ distances: [Double], _ outcomes: [String: SiteAnalysis.Outcome]) -> String {
        func n(_ v: Double?) -> String { guard let v, v.isFinite else { return "" }; return String(format: "%.6g", v) }
        var s = (["id", "site", "distance_to_source"] + ImageQuality.measures + ["dice", "hausdorff95_mm"]).joined(separator: ",") + "\n"
        for (i, c) in samples.enumerated() {
            s += ([c.id, c.site, n(distances[i])] + ImageQuality.measures.map { n(facts[i].quality?[$0]) }
                  + [n(outcomes[c.id]?.dice), n(outcomes[c.id]?.hausdorff95)]).joined(separator: ",") + "\n"
        }
        return s
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
