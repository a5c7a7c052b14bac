import Foundation

/// The result of ``SiteAnalysis``: `sites.json` as written by `medselect sites` (snake_case keys; undefined values
/// null).
public struct SiteReport: Sendable, Codable {
    /// The distances to the source, in the order the report lists them.
    public static let measureNames = ["mmd", "frechet", "knn", "classifier_auc", "intensity_w1", "intensity_js"]

    public struct GeometrySummary: Sendable, Codable, Equatable {
        public var spacingMedian: [Double]
        public var shapes: [String: Int]
        public var orientations: [String]
        public var datatypes: [String]
        public var fieldOfViewMedian: [Double]
        public var valueRange: [Double]
        enum CodingKeys: String, CodingKey {
            case spacingMedian = "spacing_median_mm", shapes, orientations, datatypes, fieldOfViewMedian = "field_of_view_median_mm"
            case valueRange = "value_range"
        }
    }

    public struct Site: Sendable, Codable {
        public var name: String
        public var cases: Int
        public var isSource: Bool
        /// Measure name -> distance (null where it could not be computed, e.g. no intensity histograms).
        public var distanceToSource: [String: Double?] = [:]
        public var mmdPValue: Double?
        /// Holm-adjusted over the site-versus-source tests.
        public var mmdPValueHolm: Double?
        public var mmdMethod: String?
        public var frechetShrunk: Bool?
        /// Medians over the site's cases of the MRQy measures.
        public var quality: [String: Double] = [:]
        /// Per measure, the Mann-Whitney p-value of the site's cases against the source's, Holm-adjusted over all
        /// (site, measure) pairs.
        public var qualityPValueHolm: [String: Double] = [:]
        public var geometry: GeometrySummary?
        /// With a source model (`sites --model`): medians over the site's cases of the model's view (mean predictive
        /// entropy, per label the predicted structure's size in mm² or mm³ and its pieces, the share of empty
        /// predictions), and per measure the Mann-Whitney p-value against the source's cases, Holm-adjusted over all
        /// (site, measure) pairs. Nil without a model.
        public var modelView: [String: Double]?
        public var modelViewPValueHolm: [String: Double]?
        /// Differences from the source a pipeline must handle: resampling, reorientation, data type.
        public var flags: [String] = []
        public var meanDice: Double?
        public var meanHausdorff95: Double?
        /// With a source model: the site's Dice estimated without labels by the default method
        /// (``DiceEstimator/defaultMethod``), and by every candidate method.
        public var estimatedDice: EstimatedDice?
        public var estimatedDiceCandidates: [String: EstimatedDice]?
        /// A sentence on how the site differs.
        public var finding: String = ""

        init(name: String, cases: Int, isSource: Bool) { self.name = name; self.cases = cases; self.isSource = isSource }

        enum CodingKeys: String, CodingKey {
            case name, cases, isSource = "is_source", distanceToSource = "distance_to_source", mmdPValue = "mmd_p_value"
            case mmdPValueHolm = "mmd_p_value_holm", mmdMethod = "mmd_method", frechetShrunk = "frechet_shrunk", quality, geometry, flags
            case qualityPValueHolm = "quality_p_value_holm", modelView = "model_view", modelViewPValueHolm = "model_view_p_value_holm"
            case meanDice = "mean_dice", meanHausdorff95 = "mean_hausdorff95_mm", finding
            case estimatedDice = "estimated_dice", estimatedDiceCandidates = "estimated_dice_candidates"
        }
    }

    /// A site's mean Dice estimated without labels: the mean of its cases' estimates and a percentile bootstrap 95 %
    /// interval over its cases, by `method` (a ``DiceEstimator/Method`` raw value).
    public struct EstimatedDice: Sendable, Codable, Equatable {
        public var mean: Double, low: Double, high: Double
        public var method: String
        public init(mean: Double, low: Double, high: Double, method: String) { self.mean = mean; self.low = low; self.high = high; self.method = method }
    }

    /// How the Dice estimate was made, and with known Dice (`--results`) how well each method did.
    public struct Estimator: Sendable, Codable {
        public var method: String
        /// Labeled source cases the calibration used, and their rows with the synthetic versions.
        public var calibrationCases: Int, calibrationRows: Int
        /// Per method, the mean absolute error on the calibration rows (5-fold cross-validated by case for the fitted ones).
        public var calibrationError: [String: Double]
        /// Per method, against the known Dice (nil without --results).
        public var check: [String: Check]?
        enum CodingKeys: String, CodingKey {
            case method, calibrationCases = "calibration_cases", calibrationRows = "calibration_rows", calibrationError = "calibration_mae", check
        }
    }

    /// An estimate against the known Dice: per site (the mean estimate against the mean Dice, target sites and source)
    /// and per case, Spearman's correlation and the mean absolute error; and how many sites' intervals hold their
    /// known Dice.
    public struct Check: Sendable, Codable, Equatable {
        public var sites: Int, siteSpearman: Double, siteMAE: Double, intervalsHolding: Int
        public var cases: Int, caseSpearman: Double, caseMAE: Double
        enum CodingKeys: String, CodingKey {
            case sites, siteSpearman = "site_spearman", siteMAE = "site_mae", intervalsHolding = "intervals_holding", cases
            case caseSpearman = "case_spearman", caseMAE = "case_mae"
        }
    }

    public struct Pairwise: Sendable, Codable {
        public var sites: [String]
        public var mmd: [[Double]]
        public var mmdPValueHolm: [[Double]]
        public var frechet: [[Double]]
        public var knn: [[Double]]
        public var classifierAUC: [[Double]]
        public var intensityW1: [[Double]]
        public var intensityJS: [[Double]]
        enum CodingKeys: String, CodingKey {
            case sites, mmd, mmdPValueHolm = "mmd_p_value_holm", frechet, knn, classifierAUC = "classifier_auc"
            case intensityW1 = "intensity_w1", intensityJS = "intensity_js"
        }
    }

    public struct Confusion: Sendable, Codable {
        public var sites: [String]
        /// counts[true site][predicted site], out-of-fold.
        public var counts: [[Int]]
        public var accuracy: Double
    }

    public struct Correlation: Sendable, Codable {
        public var measure: String
        /// "dice" or "hausdorff95_mm".
        public var outcome: String
        public var sites: Int
        public var spearman: Double
        public var spearmanInterval: (low: Double, high: Double)
        /// Two-sided permutation p-value of the Spearman correlation (exact up to 8 sites).
        public var spearmanP: Double
        public var pearson: Double
        public var pearsonInterval: (low: Double, high: Double)

        enum CodingKeys: String, CodingKey { case measure, outcome, sites, spearman, spearmanInterval = "spearman_95", spearmanP = "spearman_p", pearson, pearsonInterval = "pearson_95" }

        public init(measure: String, outcome: String, sites: Int, spearman: Double, spearmanInterval: (low: Double, high: Double), spearmanP: Double,
                    pearson: Double, pearsonInterval: (low: Double, high: Double)) {
            self.measure = measure; self.outcome = outcome; self.sites = sites; self.spearman = spearman; self.spearmanInterval = spearmanInterval
            self.spearmanP = spearmanP
            self.pearson = pearson; self.pearsonInterval = pearsonInterval
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            measure = try c.decode(String.self, forKey: .measure); outcome = try c.decode(String.self, forKey: .outcome)
            sites = try c.decode(Int.self, forKey: .sites)
            spearman = try c.decodeIfPresent(Double.self, forKey: .spearman) ?? .nan
            spearmanP = try c.decodeIfPresent(Double.self, forKey: .spearmanP) ?? .nan
            pearson = try c.decodeIfPresent(Double.self, forKey: .pearson) ?? .nan
            let s = try c.decode([Double?].self, forKey: .spearmanInterval), p = try c.decode([Double?].self, forKey: .pearsonInterval)
            spearmanInterval = (s[0] ?? .nan, s[1] ?? .nan); pearsonInterval = (p[0] ?? .nan, p[1] ?? .nan)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            func n(_ v: Double) -> Double? { v.isFinite ? v : nil }
            try c.encode(measure, forKey: .measure); try c.encode(outcome, forKey: .outcome); try c.encode(sites, forKey: .sites)
            try c.encode(n(spearman), forKey: .spearman); try c.encode(n(spearmanP), forKey: .spearmanP); try c.encode(n(pearson), forKey: .pearson)
            try c.encode([n(spearmanInterval.low), n(spearmanInterval.high)], forKey: .spearmanInterval)
            try c.encode([n(pearsonInterval.low), n(pearsonInterval.high)], forKey: .pearsonInterval)
        }
    }

    public struct Performance: Sendable, Codable {
        public var sourceDice: Double?
        public var correlations: [Correlation]
        enum CodingKeys: String, CodingKey { case sourceDice = "source_mean_dice", correlations }
    }

    public var source: [String]
    public var measures: [String]
    public var sites: [Site]
    public var pairwise: Pairwise
    public var confusion: Confusion
    public var performance: Performance?
    public var permutations: Int
    public var seed: UInt64
    public var maxPerSite: Int
    public var neighbours: Int
    public var embeddingDimensions: Int
    public var frechetDimensions: Int
    /// Plain-language lines, strongest shift first.
    public var findings: [String] = []
    /// What the embeddings were (thumbnails, an encoder's file).
    public var embeddingsDescription: String?
    /// With a source model: how its Dice was estimated without labels, and how well.
    public var estimator: Estimator?

    enum CodingKeys: String, CodingKey {
        case embeddingsDescription = "embeddings", estimator = "dice_estimate"
        case source, measures, sites, pairwise, confusion, performance, permutations, seed, maxPerSite = "max_cases_per_site"
        case neighbours = "knn_neighbours", embeddingDimensions = "embedding_dimensions", frechetDimensions = "frechet_dimensions", findings
    }

    /// Target sites ranked by shift: the mean over measures of each site's rank (strongest first).
    public var rankedTargets: [Site] {
        let targets = sites.filter { !$0.isSource }
        var score = [String: Double]()
        for m in Self.measureNames {
            let values = targets.compactMap { t in (t.distanceToSource[m] ?? nil).map { (t.name, $0) } }.filter { $0.1.isFinite }
            guard values.count == targets.count else { continue }
            let ranks = Stats.ranks(values.map(\.1))
            for (i, v) in values.enumerated() { score[v.0, default: 0] += ranks[i] }
        }
        return targets.sorted { (score[$0.name] ?? 0) > (score[$1.name] ?? 0) || ((score[$0.name] ?? 0) == (score[$1.name] ?? 0) && $0.name < $1.name) }
    }

    /// One sentence per target site: significance, strength, the quality measures and intensity that moved most,
    /// and segmentation quality against the source's when known.
    static func findings(_ r: SiteReport) -> [String] {
        let ranked = r.rankedTargets
        guard !ranked.isEmpty else { return [] }
        let sourceQuality = r.sites.filter(\.isSource).map(\.quality)
        func sourceMedian(_ m: String) -> Double? {
            let v = sourceQuality.compactMap { $0[m] }
            return v.isEmpty ? nil : Stats.mean(v)
        }
        var out: [String] = []
        let significant = ranked.filter { ($0.mmdPValueHolm ?? 1) < 0.05 }
        let qualitySignificant = ranked.filter { $0.qualityPValueHolm.values.contains { $0 < 0.05 } }
        if significant.isEmpty && qualitySignificant.isEmpty {
            out.append("No measure finds a significant shift: no site differs from the source in the embeddings (MMD permutation test) or in any quality measure (Mann-Whitney), Holm-corrected p ≥ 0.05 throughout; the differences below are within what random splits of one site show.")
        } else if significant.isEmpty {
            out.append("No site differs significantly from the source in the embeddings (MMD, Holm p ≥ 0.05), but image quality does: " + qualitySignificant.map { s in
                s.name + " (" + s.qualityPValueHolm.filter { $0.value < 0.05 }.keys.sorted().map { $0.uppercased() }.joined(separator: ", ") + ")"
            }.joined(separator: "; ") + ".")
        }
        for (k, site) in ranked.enumerated() {
            var parts: [String] = []
            let p = site.mmdPValueHolm ?? 1
            let strength = k == 0 ? "strongest shift" : (k == ranked.count - 1 ? "closest to the source" : "rank \(k + 1) of \(ranked.count) by shift")
            parts.append("\(site.name): \(strength)")
            if let auc = site.distanceToSource["classifier_auc"] ?? nil {
                parts.append(p < 0.05 ? String(format: "significant (MMD p = %@, Holm); a classifier tells it from the source with AUC %.2f", formatP(p), auc)
                             : String(format: "not significant (MMD p = %@, Holm; classifier AUC %.2f)", formatP(p), auc))
            }
            // The quality measures furthest from the source, relative.
            var moves: [(String, Double)] = []
            for m in ["snr", "cnr", "cv", "efc", "cjv"] {   // scale-free measures (FBER's cut-off and CPP depend on the intensity scale)
                if let a = site.quality[m], let b = sourceMedian(m), b != 0, a.isFinite, b.isFinite { moves.append((m, (a - b) / abs(b))) }
            }
            moves.sort { abs($0.1) > abs($1.1) }
            let named = moves.prefix(2).filter { abs($0.1) >= 0.1 }.map { "\($0.0.uppercased()) \($0.1 > 0 ? "+" : "")\(Int(($0.1 * 100).rounded())) %" }
            if !named.isEmpty { parts.append("quality differs most in " + named.joined(separator: ", ")) }
            if let w = site.distanceToSource["intensity_w1"] ?? nil, w.isFinite { parts.append(String(format: "intensity distribution W1 %.2f", w)) }
            if let view = modelViewChanges(site, r) { parts.append(view) }
            if let e = site.estimatedDice, e.mean.isFinite {
                parts.append(String(format: "estimated Dice %.3f (95 %% interval %.3f to %.3f, %@, without labels)", e.mean, e.low, e.high, e.method))
            }
            if let dice = site.meanDice, let source = r.performance?.sourceDice {
                let gap = source - dice
                parts.append(String(format: "Dice %.3f, %.3f %@ the source", dice, abs(gap), gap >= 0 ? "below" : "above"))
            } else if let dice = site.meanDice {
                parts.append(String(format: "Dice %.3f", dice))
            }
            if !site.flags.isEmpty { parts.append("needs " + site.flags.joined(separator: ", ")) }
            out.append(parts.joined(separator: "; ") + ".")
        }
        // Shift against Dice, on the measure fixed in advance (MMD), not the best-looking one.
        if let c = r.performance?.correlations.first(where: { $0.measure == "mmd" && $0.outcome == "dice" }), c.spearman.isFinite {
            let direction = c.spearman < 0 ? "falls" : (c.spearman > 0 ? "rises" : "does not change")
            var text = String(format: "Across the %d target sites, Dice %@ as MMD grows (Spearman %.2f, permutation p = %@)", c.sites, direction,
                              c.spearman, formatP(c.spearmanP))
            if c.sites <= 4 { text += String(format: "; with %d sites no ranking can reach p < 0.05 (the smallest possible is %.3f)", c.sites,
                                             2 / Double((1...c.sites).reduce(1, *))) }
            out.append(text + ".")
        }
        return out
    }

    /// The source model's view of a site against the source, in words: the (at most three) measures whose site median
    /// differs significantly (Holm p < 0.05) from the source's by at least 5 %, largest relative change first, e.g. "the source model's
    /// predictions: label 1 18 % smaller, label 1 in 3.1x the source's pieces, entropy +40 %".
    static func modelViewChanges(_ site: Site, _ r: SiteReport) -> String? {
        guard let view = site.modelView, let p = site.modelViewPValueHolm else { return nil }
        let sources = r.sites.filter(\.isSource).compactMap(\.modelView)
        var moves: [(measure: String, change: Double, ratio: Double)] = []
        for (m, value) in view where (p[m] ?? 1) < 0.05 {
            let v = sources.compactMap { $0[m] }
            guard !v.isEmpty else { continue }
            let ref = Stats.mean(v)
            guard ref != 0, ref.isFinite, value.isFinite else { continue }
            moves.append((m, (value - ref) / abs(ref), value / ref))
        }
        // A significant test whose medians hardly differ (e.g. pieces 2 against 2, the spread differing) is not worded.
        moves = moves.filter { abs($0.change) >= 0.05 }
        guard !moves.isEmpty else { return nil }
        moves.sort { abs($0.change) > abs($1.change) || (abs($0.change) == abs($1.change) && $0.measure < $1.measure) }
        let words = moves.prefix(3).map { m -> String in
            if m.measure.hasSuffix("_pieces") {
                return "\(m.measure.replacingOccurrences(of: "_pieces", with: "").replacingOccurrences(of: "label", with: "label ")) in "
                    + String(format: "%.1fx", m.ratio) + " the source's pieces"
            }
            if m.measure.hasSuffix("_size_mm") {
                let label = m.measure.replacingOccurrences(of: "_size_mm", with: "").replacingOccurrences(of: "label", with: "label ")
                return "\(label) \(Int(abs(m.change * 100).rounded())) % \(m.change < 0 ? "smaller" : "larger")"
            }
            if m.measure == "empty" { return String(format: "%.0f %% empty predictions", 100 * (view["empty"] ?? 0)) }
            if m.measure == "fragmented" { return String(format: "%.0f %% fragmented predictions", 100 * (view["fragmented"] ?? 0)) }
            if m.measure.hasSuffix("_boundary_mm") {
                let label = m.measure.replacingOccurrences(of: "_boundary_mm", with: "").replacingOccurrences(of: "label", with: "label ")
                return "\(label) boundary \(Int(abs(m.change * 100).rounded())) % \(m.change < 0 ? "shorter" : "longer")"
            }
            if m.measure == "disagreement" { return String(format: "augmentation disagreement %.1fx the source's", m.ratio) }
            if m.measure == "reference" { return "shapes \(Int(abs(m.change * 100).rounded())) % \(m.change < 0 ? "less" : "more") like the labeled references'" }
            if m.measure.hasSuffix("_compactness") {
                let label = m.measure.replacingOccurrences(of: "_compactness", with: "").replacingOccurrences(of: "label", with: "label ")
                return "\(label) \(Int(abs(m.change * 100).rounded())) % \(m.change < 0 ? "less" : "more") compact"
            }
            return "\(m.measure) \(m.change > 0 ? "+" : "")\(Int((m.change * 100).rounded())) %"
        }
        return "the source model's predictions: " + words.joined(separator: ", ") + " (Holm p < 0.05)"
    }

    static func formatP(_ p: Double) -> String { !p.isFinite ? "–" : p < 0.001 ? "< 0.001" : String(format: "%.3f", p) }
}
