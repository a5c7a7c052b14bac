import ArgumentParser
import Foundation
import MedFormats
import MedPipeline
import MedSelection
import MedFoundation

struct Select: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Choose which samples to annotate from an N x D embedding matrix (.npy).",
        discussion: """
        Strategies so far: random (seeded; --stratify-by for per-site quotas), coreset (k-center greedy), xssr \
        (density-weighted novelty/diversity with automatic alpha), coldstart (t-SNE, silhouette k-means over \
        --clusters, medoids, farthest points; the chosen k and the silhouette of every k tried are in the JSON), typiclust, probcover (Docs/selection.md). Output: JSON with the ordered `selected` ids, per-pick \
        scores and terms, parameters, seed, input hashes and timings; a CSV beside it.
        Example: medselect select --embeddings target.npy --ids ids.csv --source source.npy --strategy xssr --budget 5% --seed 0 --out selection.json
        """
    )

    @OptionGroup var limits: ReadLimitOptions

    @Option(help: "Target pool embeddings: .npy of shape (N, D), float32 or float64.") var embeddings: String
    @Option(help: "Ids, one per row (text or CSV whose first column is the id; an 'id' header is skipped). Default: the .ids.csv that embed wrote beside the embeddings, when present.") var ids: String?
    @Option(help: "Source-domain embeddings (.npy, same D) for the novelty term.") var source: String?
    @Option(help: "Already labeled samples: comma-separated ids, or a file with one id per line.") var labeled: String?
    @Option(help: "The strategy (acquisition, for later rounds, needs --uncertainty).") var strategy: Strategy
    @Option(help: "coldstart: t-SNE perplexity.") var perplexity: Double = 30
    @Option(name: .customLong("map-out"), help: "coldstart: also write the t-SNE map (N x 2) to this .npy.") var mapOut: String?
    @Option(help: "coldstart: the numbers of clusters to try, K or A-B (default 2-min(budget, 50); the silhouette chooses).")
    var clusters: String?
    @Option(help: "probcover: ball radius delta (default: chosen by 95% purity of k-means pseudo-labels).") var delta: Float?
    @Option(parsing: .unconditional, help: "How many to pick: a count (22) or a share of the pool (5%; 100% with --labeled: every case not labeled yet).") var budget: Budget
    @Option(help: "Seed for every random choice.") var seed: UInt64 = 0
    @Option(help: "Output JSON path (a .csv is written beside it).") var out: String
    @Option(help: "Neighbours for density and novelty (xssr).") var k: Int = 10
    @Option(help: "XSSR terms to use, e.g. density,diversity (ablations).") var terms: String = "density,novelty,diversity"
    @Option(name: .customLong("xssr-alpha"), help: "xssr: a fixed alpha (novelty against diversity) instead of the coverage sweep over 0, 0.1, ..., 1; e.g. an ablation at the full method's alpha.")
    var xssrAlpha: Double?
    @Option(name: .customLong("stratify-by"), help: "random: proportional quotas per site: a CSV with id and site columns (embed's .ids.csv), or one group per row.")
    var stratifyBy: String?
    @Option(help: "acquisition: CSV of per-case uncertainty (columns id and uncertainty, as medselect uncertainty writes).")
    var uncertainty: String?
    @Option(help: "acquisition: weight of uncertainty against diversity (1 = uncertainty only, 0 = k-center).") var alpha: Double = 0.5
    @Option(help: "xssr: nearest neighbours and the alpha sweep exact, approximate (an inverted file with its recall measured and reported, the sweep on a 50,000-row subsample, one full run) or auto (approximate from 200,000 pool rows).") var knn = XSSRScale.auto

    func validate() throws {
        guard k >= 1 else { throw ValidationError("--k must be at least 1") }
        if strategy == .acquisition && uncertainty == nil { throw ValidationError("--strategy acquisition needs --uncertainty") }
        guard (0...1).contains(alpha) else { throw ValidationError("--alpha must be in [0, 1]") }
        if let xssrAlpha {
            guard strategy == .xssr else { throw ValidationError("--xssr-alpha goes with --strategy xssr") }
            guard (0...1).contains(xssrAlpha) else { throw ValidationError("--xssr-alpha must be in [0, 1]") }
        }
        _ = try XSSR.Terms(parsing: terms)
        if let clusters { _ = try Self.parseClusterRange(clusters) }
        if stratifyBy != nil && strategy != .random {
            throw ValidationError("--stratify-by applies to --strategy random only (the other strategies spread their picks by their own criteria)")
        }
    }

    /// The group (site) of every pool row from `path`: a CSV with a header naming `id` and `site` (or `group`)
    /// columns, matched by id (the `id,site` file embed writes), or one group per line in the pool's row order.
    static func readGroups(_ path: String, ids: [String]) throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CommandError(subject: path, reason: "cannot read the file") }
        let rows = text.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) } }
        guard let header = rows.first else { throw CommandError(subject: path, reason: "the file is empty") }
        let lower = header.map { $0.lowercased() }
        if let idColumn = lower.firstIndex(of: "id"), let groupColumn = lower.firstIndex(of: "site") ?? lower.firstIndex(of: "group") {
            var byId: [String: String] = [:]
            for (line, row) in rows.dropFirst().enumerated() {
                guard row.count > max(idColumn, groupColumn) else { throw CommandError(subject: path, reason: "line \(line + 2) has too few columns") }
                byId[row[idColumn]] = row[groupColumn]
            }
            return try ids.map { id in
                guard let g = byId[id] else { throw CommandError(subject: path, reason: "no \(header[groupColumn]) for pool id '\(id)'") }
                return g
            }
        }
        let groups = try CaseList.read(path)
        guard groups.count == ids.count else {
            throw CommandError(subject: path, reason: "\(groups.count) groups for \(ids.count) rows (give one group per row, or a CSV with id and site columns)")
        }
        return groups
    }

    /// "K" or "A-B" (2 <= A <= B) as a range of cluster counts.
    static func parseClusterRange(_ text: String) throws -> ClosedRange<Int> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...2).contains(parts.count), parts.allSatisfy({ $0 != nil }), let lo = parts.first!, let hi = parts.last!, lo >= 2, lo <= hi else {
            throw ValidationError("--clusters must be a count K >= 2 or a range A-B with 2 <= A <= B, e.g. 2-24; got '\(text)'")
        }
        return lo...hi
    }

    /// Per-row uncertainty from a CSV with `id` and `uncertainty` columns (header required), in the pool's row order.
    static func readUncertainty(_ path: String, ids: [String]) throws -> [Double] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CommandError(subject: path, reason: "cannot read the file") }
        let rows = text.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) } }
        guard let header = rows.first, let idColumn = header.firstIndex(of: "id"), let uColumn = header.firstIndex(of: "uncertainty") else {
            throw CommandError(subject: path, reason: "needs a header with 'id' and 'uncertainty' columns")
        }
        var byId: [String: Double] = [:]
        for (line, row) in rows.dropFirst().enumerated() {
            guard row.count > max(idColumn, uColumn), let u = Double(row[uColumn]), u.isFinite else {
                throw CommandError(subject: path, reason: "line \(line + 2): no finite uncertainty")
            }
            byId[row[idColumn]] = u
        }
        return try ids.map { id in
            guard let u = byId[id] else { throw CommandError(subject: path, reason: "no uncertainty for pool id '\(id)'") }
            return u
        }
    }

    /// FNV-1a 64-bit of a file's bytes: identifies the exact inputs of a run (not a security hash).
    func run() throws {
        let t0 = Date()
        try checkOutputFolder(out)
        let m = try NPYReader.readMatrix(embeddings)
        var idList: [String]? = nil
        // The ids file `medselect embed` writes beside the embeddings is used when --ids is not given.
        let besideEmbeddings = CaseEmbedder.idsPath(embeddings)
        let ids = self.ids ?? (FileManager.default.fileExists(atPath: besideEmbeddings) ? besideEmbeddings : nil)
        if self.ids == nil, let ids { FileHandle.standardError.write(Data("note: ids from \(ids)\n".utf8)) }
        if let ids {
            let l = try CaseList.read(ids)
            guard l.count == m.rows else { throw CommandError(subject: ids, reason: "\(l.count) ids for \(m.rows) embedding rows") }
            guard Set(l).count == l.count else { throw CommandError(subject: ids, reason: "ids are not unique") }
            idList = l
        }
        let pool = try Embeddings(values: m.values, count: m.rows, dimensions: m.columns, ids: idList)
        var sourceMatrix: Embeddings? = nil
        if let source {
            let s = try NPYReader.readMatrix(source)
            guard s.columns == m.columns else { throw CommandError(subject: source, reason: "\(s.columns) dimensions, the pool has \(m.columns)") }
            sourceMatrix = try Embeddings(values: s.values, count: s.rows, dimensions: s.columns)
        }
        var labeledRows: [Int] = []
        if let labeled {
            let names = FileManager.default.fileExists(atPath: labeled) ? try CaseList.read(labeled)
                : labeled.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let index = Dictionary(uniqueKeysWithValues: pool.ids.enumerated().map { ($1, $0) })
            for name in names {
                guard let i = index[name] else { throw CommandError(subject: labeled, reason: "labeled id '\(name)' is not in the pool") }
                labeledRows.append(i)
            }
        }
        let n = pool.count, remaining = n - Set(labeledRows).count
        let count = budget.isWholePool ? remaining : budget.count(pool: n)
        guard count >= 1 else { throw CommandError(subject: labeled ?? embeddings, reason: "every case of the pool of \(n) is labeled already: nothing left to select") }
        if [.coldstart, .typiclust, .probcover].contains(strategy), n > 1,
           (1..<n).allSatisfy({ r in (0..<m.columns).allSatisfy { m.values[r * m.columns + $0] == m.values[$0] } }) {
            throw CommandError(subject: embeddings, reason: "all \(n) rows are identical, so the embedding tells no case from another and \(strategy.rawValue) has nothing to cluster "
                + "(a constant image set, or an encoder that maps everything to one point)")
        }
        var notes: [String] = []
        if strategy == .xssr && source == nil && terms.contains("novelty") {
            notes.append("xssr ran without --source: the novelty term (distance to the source domain) is 0 for every case, so only density and diversity chose; give --source with the source sites' embeddings (medselect embed --source-sites S --source-out S.npy)")
        }
        for note in notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
        guard count + Set(labeledRows).count <= n else {
            throw CommandError(subject: embeddings, reason: "budget \(count) plus \(labeledRows.count) labeled exceeds the pool of \(n)")
        }
        let t1 = Date()
        var stage = SelectionStage(strategy: strategy, budget: count)
        stage.seed = seed; stage.labeled = labeledRows; stage.source = sourceMatrix; stage.k = k; stage.terms = terms; stage.xssrAlpha = xssrAlpha; stage.xssrScale = knn.scale
        stage.perplexity = perplexity; stage.clusters = try clusters.map(Self.parseClusterRange); stage.delta = delta; stage.alpha = alpha
        if let stratifyBy { stage.groups = try Self.readGroups(stratifyBy, ids: pool.ids); stage.groupsSource = stratifyBy }
        if let uncertainty, strategy == .acquisition {
            stage.uncertainty = try Self.readUncertainty(uncertainty, ids: pool.ids); stage.uncertaintySource = uncertainty
        }
        if stage.strategy == .coldstart && !labeledRows.isEmpty {
            FileHandle.standardError.write(Data("warning: coldstart ignores --labeled (it selects before any label exists)\n".utf8))
        }
        let outcome = try stage.run(pool: pool)
        if let mapOut, let map = outcome.map { try NPYWriter.write(NDArray(float32: map, shape: [n, 2], fortranOrder: false), to: mapOut) }
        let t2 = Date()
        func input(_ path: String, shape: [Int]? = nil) -> JSONValue {
            .object(["path": .string(path), "hash": .string(FNV1a.file(path))].merging(shape.map { ["shape": .array($0.map(JSONValue.int))] } ?? [:]) { a, _ in a })
        }
        var inputs: [String: JSONValue] = ["embeddings": input(embeddings, shape: [n, m.columns])]
        if let ids = self.ids ?? (FileManager.default.fileExists(atPath: CaseEmbedder.idsPath(embeddings)) ? CaseEmbedder.idsPath(embeddings) : nil) {
            inputs["ids"] = input(ids)
        }
        if let source { inputs["source"] = input(source) }
        if let uncertainty, strategy == .acquisition { inputs["uncertainty"] = input(uncertainty) }
        var record = outcome.selection(strategy: strategy.rawValue, budget: count, seed: seed, labeled: labeledRows.map { pool.ids[$0] })
        record.inputs = inputs
        record.timingsSeconds = ["load": t1.timeIntervalSince(t0), "select": t2.timeIntervalSince(t1)]
        record.medselectVersion = MedSelect.configuration.version
        record.notes = notes.isEmpty ? nil : notes
        try record.write(to: out)
        var csv = "rank,id,index,score,density,novelty,diversity,uncertainty\n"
        for (rank, p) in record.picks.enumerated() {
            let t = p.terms ?? [:]
            func f(_ v: JSONValue?) -> String { v?.double.map { String(format: "%.6g", $0) } ?? v?.string ?? "" }
            csv += "\(rank + 1),\(p.id),\(p.index),\(p.score.map { String(format: "%.6g", $0) } ?? ""),\(f(t["density"])),\(f(t["novelty"])),\(f(t["diversity"])),\(f(t["uncertainty"]))\n"
        }
        let csvPath = out.hasSuffix(".json") ? String(out.dropLast(5)) + ".csv" : out + ".csv"
        try AtomicFile.write(csv, to: csvPath)
        FileHandle.standardError.write(Data("selected \(count) of \(n) with \(strategy.rawValue) -> \(out), \(csvPath)\n".utf8))
    }
}
