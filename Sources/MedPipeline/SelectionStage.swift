import Foundation
import MedFormats
import MedSelection

/// The selection stage: one strategy run over an embedding pool, with every pick's score and terms and the
/// parameters used, as `medselect select` writes them to its JSON and the experiment runner stores them.
public struct SelectionStage {
    public var strategy: String
    public var budget: Int
    public var seed: UInt64 = 0
    /// Rows already labeled (later rounds).
    public var labeled: [Int] = []
    /// Source-domain rows (XSSR's novelty term).
    public var source: Embeddings? = nil
    /// XSSR: neighbours for density and novelty, and the terms used (ablations).
    public var k = 10
    public var terms = "density,novelty,diversity"
    /// XSSR: a fixed alpha instead of the coverage sweep over 0, 0.1, ..., 1 (the experiment runs the ablations at
    /// the full method's alpha, so that dropping a term is the only difference).
    public var xssrAlpha: Double? = nil
    /// Cold start: t-SNE perplexity and the numbers of clusters tried (nil: 2...min(budget, 50)).
    public var perplexity: Double = 30
    public var clusters: ClosedRange<Int>? = nil
    /// ProbCover's ball radius (nil: chosen by purity).
    public var delta: Float? = nil
    /// Acquisition: per-row uncertainty, where it came from, and its weight against diversity.
    public var uncertainty: [Double]? = nil
    public var uncertaintySource = ""
    public var alpha = 0.5
    /// Random: per-row group (site) for proportional quotas, and where they came from.
    public var groups: [String]? = nil
    public var groupsSource = ""

    public init(strategy: String, budget: Int) { self.strategy = strategy.lowercased(); self.budget = budget }

    public struct Outcome {
        /// In pick order: index, id, score, terms (JSON-ready values).
        public var picks: [[String: Any]] = []
        /// Strategy-specific results (chosen k, alpha, coverage, ...).
        public var extra: [String: Any] = [:]
        public var parameters: [String: Any] = [:]
        /// Cold start's 2-D map (N x 2), when computed.
        public var map: [Float]? = nil
        public var selectedIDs: [String] { picks.map { $0["id"] as! String } }
    }

    /// JSON has no NaN or infinity: those become null.
    static func jsonNumber(_ v: Double) -> Any { v.isFinite ? v : NSNull() }

    public func run(pool: Embeddings) throws -> Outcome {
        let n = pool.count, count = budget, seed = self.seed, labeledRows = labeled
        var picks: [[String: Any]] = []
        var extra: [String: Any] = [:]
        var parameters: [String: Any] = [:]
        var map: [Float]? = nil
        switch strategy {
        case "random":
            if let groups {
                parameters["stratify_by"] = groupsSource
                var sizes: [String: Int] = [:]
                for g in groups { sizes[g, default: 0] += 1 }
                parameters["strata"] = sizes
            }
            let labeledSet = Set(labeledRows)
            let candidates = (0..<n).filter { !labeledSet.contains($0) }
            let chosen = try RandomSelection.select(count: candidates.count, budget: count, seed: seed, groups: groups.map { g in candidates.map { g[$0] } })
            picks = chosen.map { ["index": candidates[$0], "id": pool.ids[candidates[$0]]] }
        case "coreset":
            let r = try CoreSet.select(pool, budget: count, labeled: labeledRows, first: .random(seed: seed))
            picks = r.map { ["index": $0.index, "id": pool.ids[$0.index], "score": Self.jsonNumber(Double($0.distance)),
                             "terms": ["distance_to_nearest_centre": Self.jsonNumber(Double($0.distance))]] }
            parameters["first_centre"] = labeledRows.isEmpty ? "random(seed)" : "warm start from labeled"
        case "coldstart":
            var options = TSNE.Options()
            options.perplexity = perplexity
            let range = clusters ?? ColdStart.defaultClusterRange(budget: count)
            let r = try ColdStart.select(pool, budget: count, clusterRange: range, tsne: options, seed: seed)
            // Cold start selects before any label exists: labeled rows are ignored (the command warns).
            picks = zip(r.picks, r.clusters).map { ["index": $0.0, "id": pool.ids[$0.0], "score": NSNull(),
                                                    "terms": ["cluster": $0.1, "x": Double(r.map[2 * $0.0]), "y": Double(r.map[2 * $0.0 + 1])]] }
            extra["k"] = r.k
            extra["silhouettes"] = r.silhouettes.map { ["k": $0.k, "score": $0.score] }
            extra["mode_picks"] = r.modePicks.map { pool.ids[$0] }
            parameters["perplexity"] = perplexity
            parameters["cluster_range"] = [range.lowerBound, range.upperBound]
            map = r.map
        case "typiclust":
            let r = try TypiClust.select(pool, budget: count, labeled: labeledRows, seed: seed)
            picks = r.map { ["index": $0.index, "id": pool.ids[$0.index], "score": Double($0.typicality),
                             "terms": ["typicality": Double($0.typicality), "cluster": $0.cluster]] }
            parameters["neighbours"] = 20
            parameters["clusters"] = "min(labeled + budget, 500)"
        case "acquisition":
            guard let scores = uncertainty else { throw SelectionError.invalidInput("acquisition needs per-row uncertainty") }
            let r = try Acquisition.select(uncertainty: scores, pool: pool, labeled: labeledRows, budget: count, alpha: alpha)
            picks = r.map { ["index": $0.index, "id": pool.ids[$0.index], "score": Double($0.score),
                             "terms": ["uncertainty": Double($0.uncertainty), "diversity": Double($0.diversity)]] }
            parameters["alpha"] = alpha
            parameters["uncertainty"] = uncertaintySource
            parameters["combination"] = "alpha * uncertainty + (1 - alpha) * diversity, uncertainty min-max normalised, diversity / its max"
        case "probcover":
            let r = try ProbCover.select(pool, budget: count, labeled: labeledRows, delta: delta, seed: seed)
            picks = zip(r.picks, r.gains).map { ["index": $0.0, "id": pool.ids[$0.0], "score": Double($0.1),
                                                 "terms": ["newly_covered": $0.1]] }
            extra["delta"] = Double(r.delta)
            extra["coverage"] = r.coverage
            parameters["delta"] = delta.map { Double($0) as Any } ?? "auto (purity 0.95)"
        case "xssr":
            let termSet = try XSSR.Terms(parsing: terms)
            let r = try XSSR.select(pool: pool, source: source, labeled: labeledRows, budget: count, k: k, terms: termSet,
                                    alphaGrid: xssrAlpha.map { [$0] } ?? XSSR.defaultAlphaGrid)
            if let xssrAlpha { parameters["alpha_fixed"] = xssrAlpha }
            picks = r.picks.map { ["index": $0.index, "id": pool.ids[$0.index], "score": Double($0.score),
                                   "terms": ["density": Double($0.density), "novelty": Double($0.novelty), "diversity": Double($0.diversity)]] }
            extra["alpha"] = r.alpha
            extra["coverage_curve"] = r.coverageCurve.map { ["alpha": $0.alpha, "mean_radius": $0.meanRadius, "max_radius": $0.maxRadius] }
            extra["coverage_criterion"] = "mean distance from each pool row to its nearest selected-or-labeled row (ties: max radius, then smaller alpha)"
            parameters["k"] = k
            parameters["terms"] = terms
            parameters["combination"] = "[alpha*novelty + (1-alpha)*diversity] * (1 + density)/2, each term min-max normalised"
        default:
            throw SelectionError.invalidInput("unknown strategy '\(strategy)' (random, coreset, xssr, coldstart, typiclust, probcover, acquisition)")
        }
        return Outcome(picks: picks, extra: extra, parameters: parameters, map: map)
    }
}
