import Foundation
import MedFormats
import MedSelection
import MedFoundation

/// The selection stage: one strategy run over an embedding pool, with every pick's score and terms and the
/// parameters used, as `medselect select` writes them to its JSON and the experiment runner stores them.
public struct SelectionStage {
    public var strategy: Strategy
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
    /// XSSR on large pools: exact, approximate (inverted-file kNN, the α sweep on a subsample), or auto (approximate
    /// from 200,000 rows on; below that exactly the method as defined).
    public var xssrScale = XSSR.Scale.auto
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

    public init(strategy: Strategy, budget: Int) { self.strategy = strategy; self.budget = budget }

    public struct Outcome {
        /// In pick order: index, id, score, terms.
        public var picks: [Selection.Pick] = []
        /// Strategy-specific results (chosen k, alpha, coverage, ...).
        public var results: [String: JSONValue] = [:]
        public var parameters: [String: JSONValue] = [:]
        /// Cold start's 2-D map (N x 2), when computed.
        public var map: [Float]? = nil

        /// The selection record of this outcome (`labeled`: ids labeled before it).
        public func selection(strategy: String, budget: Int, seed: UInt64, round: Int? = nil, labeled: [String]) -> Selection {
            Selection(strategy: strategy, budget: budget, seed: seed, round: round, picks: picks, labeled: labeled, parameters: parameters, results: results)
        }
    }

    public func run(pool: Embeddings) throws -> Outcome {
        let n = pool.count, count = budget, seed = self.seed, labeledRows = labeled
        var picks: [Selection.Pick] = []
        var extra: [String: JSONValue] = [:]
        var parameters: [String: JSONValue] = [:]
        var map: [Float]? = nil
        switch strategy {
        case .random:
            if let groups {
                parameters["stratify_by"] = .string(groupsSource)
                var sizes: [String: Int] = [:]
                for g in groups { sizes[g, default: 0] += 1 }
                parameters["strata"] = .object(sizes.mapValues { .int($0) })
            }
            let labeledSet = Set(labeledRows)
            let candidates = (0..<n).filter { !labeledSet.contains($0) }
            let chosen = try RandomSelection.select(count: candidates.count, budget: count, seed: seed, groups: groups.map { g in candidates.map { g[$0] } })
            picks = chosen.map { Selection.Pick(index: candidates[$0], id: pool.ids[candidates[$0]]) }
        case .coreset:
            let r = try CoreSet.select(pool, budget: count, labeled: labeledRows, first: .random(seed: seed))
            picks = r.map { Selection.Pick(index: $0.index, id: pool.ids[$0.index], score: Double($0.distance),
                                           terms: ["distance_to_nearest_centre": .number($0.distance)]) }
            parameters["first_centre"] = labeledRows.isEmpty ? "random(seed)" : "warm start from labeled"
        case .coldstart:
            var options = TSNE.Options()
            options.perplexity = perplexity
            let range = clusters ?? ColdStart.defaultClusterRange(budget: count)
            let r = try ColdStart.select(pool, budget: count, clusterRange: range, tsne: options, seed: seed)
            // Cold start selects before any label exists: labeled rows are ignored (the command warns).
            picks = zip(r.picks, r.clusters).map { Selection.Pick(index: $0.0, id: pool.ids[$0.0],
                                                                  terms: ["cluster": .int($0.1), "x": .number(r.map[2 * $0.0]), "y": .number(r.map[2 * $0.0 + 1])]) }
            extra["k"] = .int(r.k)
            extra["silhouettes"] = .array(r.silhouettes.map { ["k": .int($0.k), "score": .number($0.score)] })
            extra["mode_picks"] = .array(r.modePicks.map { .string(pool.ids[$0]) })
            parameters["perplexity"] = .number(perplexity)
            parameters["cluster_range"] = [.int(range.lowerBound), .int(range.upperBound)]
            map = r.map
        case .typiclust:
            let r = try TypiClust.select(pool, budget: count, labeled: labeledRows, seed: seed)
            picks = r.map { Selection.Pick(index: $0.index, id: pool.ids[$0.index], score: Double($0.typicality),
                                           terms: ["typicality": .number($0.typicality), "cluster": .int($0.cluster)]) }
            parameters["neighbours"] = 20
            parameters["clusters"] = "min(labeled + budget, 500)"
        case .acquisition:
            guard let scores = uncertainty else { throw SelectionError.invalidInput("acquisition needs per-row uncertainty") }
            let r = try Acquisition.select(uncertainty: scores, pool: pool, labeled: labeledRows, budget: count, alpha: alpha)
            picks = r.map { Selection.Pick(index: $0.index, id: pool.ids[$0.index], score: Double($0.score),
                                           terms: ["uncertainty": .number($0.uncertainty), "diversity": .number($0.diversity)]) }
            parameters["alpha"] = .number(alpha)
            parameters["uncertainty"] = .string(uncertaintySource)
            parameters["combination"] = "alpha * uncertainty + (1 - alpha) * diversity, uncertainty min-max normalised, diversity / its max"
        case .probcover:
            let r = try ProbCover.select(pool, budget: count, labeled: labeledRows, delta: delta, seed: seed)
            picks = zip(r.picks, r.gains).map { Selection.Pick(index: $0.0, id: pool.ids[$0.0], score: Double($0.1), terms: ["newly_covered": .int($0.1)]) }
            extra["delta"] = .number(r.delta)
            extra["coverage"] = .number(r.coverage)
            parameters["delta"] = delta.map { .number($0) } ?? "auto (purity 0.95)"
        case .xssr:
            let termSet = try XSSR.Terms(parsing: terms)
            let r = try XSSR.select(pool: pool, source: source, labeled: labeledRows, budget: count, k: k, terms: termSet,
                                    alphaGrid: xssrAlpha.map { [$0] } ?? XSSR.defaultAlphaGrid, scale: xssrScale)
            if let xssrAlpha { parameters["alpha_fixed"] = .number(xssrAlpha) }
            for (term, search) in r.neighbourSearch.sorted(by: { $0.key < $1.key }) {
                extra["\(term)_knn"] = ["method": "inverted file", "lists": .int(search.lists), "probes": .int(search.probes),
                                        "recall": .number(search.recall), "recall_sample": .int(search.sampled)]
            }
            if let rows = r.sweepRows { extra["alpha_sweep_rows"] = .int(rows) }
            picks = r.picks.map { Selection.Pick(index: $0.index, id: pool.ids[$0.index], score: Double($0.score),
                                                 terms: ["density": .number($0.density), "novelty": .number($0.novelty), "diversity": .number($0.diversity)]) }
            extra["alpha"] = .number(r.alpha)
            extra["coverage_curve"] = .array(r.coverageCurve.map { ["alpha": .number($0.alpha), "mean_radius": .number($0.meanRadius), "max_radius": .number($0.maxRadius)] })
            extra["coverage_criterion"] = "mean distance from each pool row to its nearest selected-or-labeled row (ties: max radius, then smaller alpha)"
            parameters["k"] = .int(k)
            parameters["terms"] = .string(terms)
            parameters["combination"] = "[alpha*novelty + (1-alpha)*diversity] * (1 + density)/2, each term min-max normalised"
        }
        return Outcome(picks: picks, results: extra, parameters: parameters, map: map)
    }
}
