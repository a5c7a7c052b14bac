import ArgumentParser
import Foundation
import MedPipeline
import MedAnalysis
import MedData
import MedFormats
import MedImage
import MedNN
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
        histogram after z-scoring, and the embeddings: thumbnails as medselect embed makes them, or with --model that \
        model's encoder features. Every \
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
    @Option(help: "What the embedding measures compare: 'thumbnails' (32 x 32, PCA; the default without --model), 'model' (the --model U-Net's own encoder features, its bottleneck averaged over positions and slices; the default with --model), or an .npy file (one row per case; ids from --ids or the .ids.csv beside it).") var embeddings: String?
    @Option(help: "Ids of the embedding rows (CSV whose first column is the id).") var ids: String?
    @Option(help: "Source site(s), comma-separated: what the model was trained on.") var source: String
    @Option(help: "Per-case results (CSV with a case or id column, dice and hausdorff95_mm): shift against segmentation quality.") var results: String?
    @Option(help: "With --results from an experiment's cases.csv: the strategy whose rows to use (default none: the unadapted source model).") var strategy: RunName?
    @Option(help: "With --results from an experiment's cases.csv: the budget whose rows to use (as the file writes it, e.g. 5% or 13).") var budget: String?
    @Option(help: "The source model (a medselect train checkpoint): its predictions on every case (entropy, structure sizes and pieces, empty predictions) are compared per site, without labels. Its view of the cases it was trained on is optimistic: restrict the source to held-out cases (e.g. --sites) for a fair reference.") var model: String?
    @Option(help: "Permutations of the MMD tests.") var permutations = 1000
    @Option(help: "At most this many cases per site enter the embedding measures (drawn with the seed).") var maxPerSite = 2000
    @Option(help: "Thumbnail side for the on-the-fly embeddings (as medselect embed --size).") var size = 32
    @Option(help: "Seed of every random choice (subsamples, permutations, folds, bootstrap).") var seed: UInt64 = 0
    @Option(help: "Output folder: sites.json, sites.csv, cases.csv, report.html.") var out: String

    func validate() throws {
        guard permutations >= 19 else { throw ValidationError("--permutations must be at least 19 (a p-value below 0.05 needs them)") }
        guard maxPerSite >= 2 else { throw ValidationError("--max-per-site must be at least 2") }
        guard size >= 8 && size <= 256 else { throw ValidationError("--size must lie in 8...256") }
        if results == nil && (strategy != nil || budget != nil) { throw ValidationError("--strategy and --budget choose rows of --results; give --results") }
        if embeddings == "model" && model == nil { throw ValidationError("--embeddings model uses the source model's encoder; give --model") }
        if embeddings == "thumbnails" && (ids != nil) { throw ValidationError("--ids names the rows of an --embeddings file") }
    }

    func run() throws {
        let sourceSites = source.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let samples = try dataset.load().flatMap(\.samples)
        guard !samples.isEmpty else { throw DataError.badDataset(path: dataset.origin, reason: "no cases (check --sites)") }
        let siteNames = Array(Set(samples.map(\.site))).sorted()
        for s in sourceSites where !siteNames.contains(s) {
            throw CommandError(subject: dataset.origin, reason: "the source site \(s) is not in the data (sites: \(siteNames.joined(separator: ", ")))")
        }
        var stage = SiteAnalysisStage(samples: samples, source: sourceSites)
        stage.permutations = permutations; stage.seed = seed; stage.maxPerSite = maxPerSite; stage.thumbnailSize = size
        stage.readOptions = limits.readOptions; stage.origin = dataset.origin
        if let model {
            let (unet, configuration) = try Trainer.loadModel(checkpoint: model)
            stage.model = (unet, configuration.imageSize ?? 128)
        }

        // With a model, its encoder's features are the default embeddings: on phantom sites that differ only in
        // population they detected the shift at smaller differences than thumbnails (Docs/analysis.md).
        if embeddings == "model" || (embeddings == nil && stage.model != nil), let model = stage.model {
            let progress = ProgressLine("sites")
            let embedder = CaseEmbedder(method: .unet(model.unet, size: model.size, maxSlices: 16), pca: 0)
            let (rows, dims) = try embedder.embed(samples, origin: dataset.origin) { done, total, what in progress.update(done, of: total, unit: what) }
            progress.finish("embedded \(samples.count) cases with the source model's encoder")
            stage.embeddings = (rows, dims, "the source model's encoder features (its U-Net bottleneck averaged over positions and slices, \(dims) dimensions)")
        } else if let embeddings, embeddings != "thumbnails" {
            // Embeddings given: checked against the cases before any image is read.
            let m = try NPYReader.readMatrix(embeddings)
            let idsPath = ids ?? CaseEmbedder.idsPath(embeddings)
            guard FileManager.default.fileExists(atPath: idsPath) else {
                throw CommandError(subject: embeddings, reason: "no ids: give --ids (embed writes \(idsPath) beside the embeddings)")
            }
            let idList = try CaseList.read(idsPath)
            guard idList.count == m.rows else { throw CommandError(subject: idsPath, reason: "\(idList.count) ids for \(m.rows) embedding rows in \(embeddings)") }
            let row = Dictionary(idList.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            let missing = samples.filter { row[$0.id] == nil }
            guard missing.count < samples.count else {
                throw CommandError(subject: idsPath, reason: "none of its ids is a case of \(dataset.origin) (first id: \(idList.first ?? "none"), first case: \(samples[0].id))")
            }
            if !missing.isEmpty {
                throw CommandError(subject: idsPath, reason: "\(missing.count) cases have no embedding row (first: \(missing[0].id)); embed all the cases, or restrict with --sites")
            }
            let values = samples.flatMap { s in m.values[(row[s.id]! * m.columns)..<((row[s.id]! + 1) * m.columns)] }
            stage.embeddings = (values, m.columns, "embeddings from \(embeddings) (\(m.columns) dimensions)")
        }
        stage.outcomes = try results.map { try Self.readResults($0, cases: Set(samples.map(\.id)), strategy: strategy, budget: budget) } ?? [:]
        let progress = ProgressLine("sites"), steps = ProgressLine("sites")
        let report = try stage.run(out: out, reading: { done, total in progress.update(done, of: total, unit: "cases read") }, step: { steps($0) })
        steps.finish("compared \(report.sites.count) sites")
        let targets = report.sites.filter { !$0.isSource }.count
        print("compared \(targets) site\(targets == 1 ? "" : "s") with the source \(sourceSites.joined(separator: ", ")) (\(counted(samples.count, "case")) in all): \(out)/report.html, sites.json, sites.csv, cases.csv")
        for line in report.findings { print("  " + line) }
    }

    /// Per-case Dice and HD95 from a results CSV (a case or id column; dice; hausdorff95_mm, hausdorff95 or hd95),
    /// averaged over labels and rows of the same case. A file with several models per case (an experiment's
    /// cases.csv: strategy, budget, seed and round columns) is read for one model: the rows of `strategy` (default
    /// "none", the unadapted source model) and `budget`, averaged over seeds; a choice that still leaves several
    /// budgets or rounds per case is refused, naming them, rather than blended into one Dice.
    static func readResults(_ path: String, cases: Set<String>, strategy: RunName? = nil, budget: String? = nil) throws -> [String: SiteAnalysis.Outcome] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CommandError(subject: path, reason: "cannot read the file") }
        let separator: Character = text.split(separator: "\n").first?.contains("\t") == true ? "\t" : ","
        let rows = text.split(whereSeparator: \.isNewline).map { $0.split(separator: separator, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) } }
        guard let header = rows.first?.map({ $0.lowercased() }) else { throw CommandError(subject: path, reason: "the file is empty") }
        guard let idColumn = header.firstIndex(of: "case") ?? header.firstIndex(of: "id"), let diceColumn = header.firstIndex(of: "dice") else {
            throw CommandError(subject: path, reason: "needs a header with a 'case' (or 'id') and a 'dice' column, as medselect evaluate --csv writes")
        }
        let hdColumn = header.firstIndex(of: "hausdorff95_mm") ?? header.firstIndex(of: "hausdorff95") ?? header.firstIndex(of: "hd95")
        let strategyColumn = header.firstIndex(of: "strategy"), budgetColumn = header.firstIndex(of: "budget"), roundColumn = header.firstIndex(of: "round")
        if strategyColumn == nil && (strategy != nil || budget != nil) {
            throw CommandError(subject: path, reason: "--strategy and --budget choose rows of an experiment's cases.csv; this file has no strategy column")
        }
        var body = Array(rows.dropFirst().enumerated())
        if let sc = strategyColumn {
            let present = Set(body.compactMap { $0.1.count > sc ? $0.1[sc] : nil })
            let wanted = (strategy ?? .none).description
            guard present.contains(wanted) else {
                throw CommandError(subject: path, reason: "no rows of strategy \(wanted)" + (strategy == nil ? " (the unadapted source model)" : "")
                    + "; give --strategy (strategies: \(present.sorted().joined(separator: ", ")))")
            }
            body = body.filter { $0.1.count > sc && $0.1[sc] == wanted }
            if let budget, let bc = budgetColumn {
                let budgets = Set(body.compactMap { $0.1.count > bc ? $0.1[bc] : nil })
                guard budgets.contains(budget) else {
                    throw CommandError(subject: path, reason: "no rows of strategy \(wanted) at budget \(budget) (budgets: \(budgets.sorted().joined(separator: ", ")))")
                }
                body = body.filter { $0.1.count > bc && $0.1[bc] == budget }
            }
            // One model per case: a single budget and round remain (seeds of one model are averaged).
            var models: Set<String> = []
            for (_, r) in body {
                models.insert([budgetColumn, roundColumn].map { c in c.flatMap { r.count > $0 ? r[$0] : nil } ?? "" }.joined(separator: " round "))
            }
            guard models.count <= 1 else {
                throw CommandError(subject: path, reason: "strategy \(wanted) has \(models.count) models per case (budget round: \(models.sorted().prefix(6).joined(separator: ", "))); choose one with --budget")
            }
        }
        var dice: [String: [Double]] = [:], hd: [String: [Double]] = [:]
        for (line, r) in body {
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

}
