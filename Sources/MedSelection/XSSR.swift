import Foundation
import Synchronization
import MedFoundation

/// XSSR: greedy selection by density, novelty and diversity, with the novelty-diversity trade-off calibrated
/// automatically.
///
/// For every candidate i of the target pool T (N x D), with optional source embeddings S and labeled rows L:
/// - density  d(i) = 1 / (mean distance to its k nearest pool neighbours, self excluded + 1e-12): how typical i is of
///   the pool (TypiClust's typicality, Hacohen et al. 2022);
/// - novelty  n(i) = mean distance to its k nearest source embeddings: how far i is from what the model already saw;
/// - diversity v(i) = distance to the nearest row of L ∪ (rows picked so far), recomputed after each pick.
/// Density and novelty are min-max normalised over the candidates (once); diversity is divided by its largest value
/// among the remaining candidates after every pick (its natural minimum is 0, a chosen row), so none dominates by
/// scale: d̂, n̂, v̂ in [0, 1]. The score is
///
///     score(i) = [α n̂(i) + (1 − α) v̂(i)] · (1 + d̂(i)) / 2
///
/// Novelty and diversity decide *where* to look (α trades them); density decides *which* point there, by a factor
/// between 1/2 and 1. (An additive rule d̂ + α n̂ + (1 − α) v̂ was tried first and fails: a small, sparse cluster has
/// d̂ ≈ 0 and loses to points of an already covered dense cluster, so rare modes are never selected.)
/// Each step picks the highest score (ties: lowest row). Before anything is labeled or picked, v̂ = 1 for all.
/// Switched-off terms (ablation, `terms`): without density the factor is 1; without novelty the bracket is v̂;
/// without diversity it is n̂; with density alone the score is d̂. Without source embeddings novelty is off.
///
/// Automatic α: the selection is run for every α in `alphaGrid` (default 0, 0.1, ..., 1); the kept α minimises the
/// coverage criterion C(α) = mean over pool rows of the distance to the nearest selected-or-labeled row (the mean
/// coverage radius); ties go to the smaller maximum radius, then to the smaller α.
public enum XSSR {
    public struct Terms: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let density = Terms(rawValue: 1)
        public static let novelty = Terms(rawValue: 2)
        public static let diversity = Terms(rawValue: 4)
        public static let all: Terms = [.density, .novelty, .diversity]

        /// Parses "density,novelty,diversity" (any subset, comma-separated).
        public init(parsing text: String) throws {
            var t: Terms = []
            for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) {
                switch part {
                case "density": t.insert(.density)
                case "novelty": t.insert(.novelty)
                case "diversity": t.insert(.diversity)
                default: throw SelectionError.invalidInput("unknown XSSR term '\(part)' (use density, novelty, diversity)")
                }
            }
            guard !t.isEmpty else { throw SelectionError.invalidInput("at least one XSSR term is needed") }
            self = t
        }
    }

    /// One pick: the row, its score and its three normalised terms at the time of the pick (0 when switched off).
    public struct Pick: Sendable, Equatable {
        public var index: Int
        public var score: Float
        public var density: Float
        public var novelty: Float
        public var diversity: Float
    }

    public struct Result: Sendable {
        public var picks: [Pick]
        public var alpha: Double
        /// (α, mean coverage radius, max coverage radius) for every α tried.
        public var coverageCurve: [(alpha: Double, meanRadius: Double, maxRadius: Double)]
        /// Seconds spent per stage: "density", "novelty", "greedy" (all α runs together).
        public var timings: [String: Double] = [:]
        /// The approximate searches' recall (density, novelty), when ``Scale/approximate`` ran them.
        public var neighbourSearch: [String: NearestNeighbors.ApproximateReport] = [:]
        /// Rows of the pool the α sweep ran on (nil: the whole pool), and the final run's coverage on the whole pool.
        public var sweepRows: Int? = nil
        public var finalCoverage: (meanRadius: Double, maxRadius: Double)? = nil
    }

    /// How XSSR meets a large pool. `exact`: exact kNN and the α sweep on the whole pool (the method as defined).
    /// `approximate`: kNN by an inverted file (recall measured and reported), and the α sweep on a seeded random
    /// subsample of `sweepRows` pool rows with the budget scaled to it (the same normalised terms), then one greedy
    /// run on the whole pool at the α the sweep chose. `auto`: approximate from `autoThreshold` pool rows on.
    public enum Scale: Sendable {
        case exact
        case approximate(NearestNeighbors.ApproximateSettings, sweepRows: Int)
        case auto

        public static let autoThreshold = 200_000
        public static let defaultSweepRows = 50_000
        public static var defaultApproximate: Scale { .approximate(NearestNeighbors.ApproximateSettings(), sweepRows: defaultSweepRows) }

        func resolved(pool: Int) -> Scale {
            if case .auto = self { return pool >= Self.autoThreshold ? Self.defaultApproximate : .exact }
            return self
        }
    }

    public static let defaultAlphaGrid: [Double] = (0...10).map { Double($0) / 10 }

    public static func select(pool: Embeddings, source: Embeddings? = nil, labeled: [Int] = [], budget: Int, k: Int = 10,
                              terms: Terms = .all, alphaGrid: [Double] = defaultAlphaGrid, scale: Scale = .exact,
                              progress: (@Sendable (String) -> Void)? = nil) throws -> Result {
        let n = pool.count
        let labeledSet = Set(labeled)
        guard budget >= 1, budget + labeledSet.count <= n else {
            throw SelectionError.invalidInput("budget \(budget) with \(labeledSet.count) labeled exceeds the pool of \(n)")
        }
        if let bad = labeled.first(where: { $0 < 0 || $0 >= n }) {
            throw SelectionError.invalidInput("labeled row \(bad) is outside 0..<\(n)")
        }
        guard !alphaGrid.isEmpty, alphaGrid.allSatisfy({ (0...1).contains($0) }) else {
            throw SelectionError.invalidInput("alpha values must lie in [0, 1]")
        }
        if let s = source, s.dimensions != pool.dimensions {
            throw SelectionError.invalidInput("source embeddings have \(s.dimensions) dimensions, the pool \(pool.dimensions)")
        }
        let kPool = min(k, n - 1)
        var timings: [String: Double] = [:]
        var clock = Date()
        func lap(_ name: String) { timings[name] = Date().timeIntervalSince(clock); clock = Date() }
        func knnProgress(_ what: String) -> (@Sendable (Double) -> Void)? {
            guard let progress else { return nil }
            let last = Mutex(-1)
            return { fraction in
                let pct = Int(fraction * 100)
                if last.withLock({ let step = pct / 10 > $0 / 10 || $0 < 0; if step { $0 = pct }; return step }) {
                    progress("\(what) kNN \(pct)%")
                }
            }
        }
        let plan = scale.resolved(pool: n)
        var searches: [String: NearestNeighbors.ApproximateReport] = [:]
        var density = [Float](repeating: 0, count: n)
        if terms.contains(.density) && kPool >= 1 {
            let nn: NearestNeighbors
            if case .approximate(let settings, _) = plan {
                let (found, report) = try NearestNeighbors.approximate(queries: pool, targets: pool, k: kPool, excludeSelf: true, settings: settings,
                                                                       progress: knnProgress("density"))
                (nn, searches["density"]) = (found, report)
            } else {
                nn = try NearestNeighbors.exact(queries: pool, targets: pool, k: kPool, excludeSelf: true, progress: knnProgress("density"))
            }
            for i in 0..<n {
                var s: Float = 0
                for t in 0..<kPool { s += nn.distances[i * kPool + t] }
                density[i] = 1 / (s / Float(kPool) + 1e-12)
            }
        }
        var novelty = [Float](repeating: 0, count: n)
        let useNovelty = terms.contains(.novelty) && source != nil
        if useNovelty, let s = source {
            let kS = min(k, s.count)
            lap("density")
            let nn: NearestNeighbors
            if case .approximate(let settings, _) = plan {
                let (found, report) = try NearestNeighbors.approximate(queries: pool, targets: s, k: kS, settings: settings, progress: knnProgress("novelty"))
                (nn, searches["novelty"]) = (found, report)
            } else {
                nn = try NearestNeighbors.exact(queries: pool, targets: s, k: kS, progress: knnProgress("novelty"))
            }
            for i in 0..<n {
                var sum: Float = 0
                for t in 0..<kS { sum += nn.distances[i * kS + t] }
                novelty[i] = sum / Float(kS)
            }
        }
        if timings["density"] == nil { lap("density") } else { lap("novelty") }
        let candidates = (0..<n).filter { !labeledSet.contains($0) }
        let dHat = normalised(density, over: candidates)
        let nHat = normalised(novelty, over: candidates)
        // α only matters when both novelty and diversity are on.
        let grid = useNovelty && terms.contains(.diversity) ? alphaGrid : [alphaGrid[0]]
        // The α sweep: on the whole pool, or (approximate) on a seeded subsample with the budget scaled to it.
        var sweepRows: [Int]? = nil
        if case .approximate(_, let rows) = plan, grid.count > 1, rows < n {
            sweepRows = seededSample(n, count: rows, seed: 0x5eed).sorted()
        }
        let sweepPool = sweepRows.map { pool.rows($0) } ?? pool
        let sweepLabeled = sweepRows.map { r in Set(r.enumerated().filter { labeledSet.contains($0.element) }.map(\.offset)) } ?? labeledSet
        let sweepBudget = sweepRows.map { r in max(1, min(r.count - sweepLabeled.count, Int((Double(budget) * Double(r.count) / Double(n)).rounded()))) } ?? budget
        func slice(_ v: [Float]) -> [Float] { sweepRows.map { $0.map { v[$0] } } ?? v }
        var best: (picks: [Pick], alpha: Double, mean: Double, max: Double)? = nil
        var curve: [(Double, Double, Double)] = []
        for alpha in grid {
            let (picks, minD) = greedy(pool: sweepPool, labeled: sweepLabeled, budget: sweepBudget, dHat: terms.contains(.density) ? slice(dHat) : nil,
                                       nHat: useNovelty ? slice(nHat) : nil, diversity: terms.contains(.diversity), alpha: alpha)
            let radii = minD.map { Double($0.squareRoot()) }
            let mean = radii.reduce(0, +) / Double(sweepPool.count), mx = radii.max() ?? 0
            curve.append((alpha, mean, mx))
            progress?(String(format: "alpha %.2f: mean coverage radius %.4f, max %.4f", alpha, mean, mx) + (sweepRows == nil ? "" : " (on \(sweepPool.count) rows)"))
            if best == nil || mean < best!.mean - 1e-12 || (abs(mean - best!.mean) <= 1e-12 && mx < best!.max) {
                best = (picks, alpha, mean, mx)
            }
        }
        var finalCoverage: (meanRadius: Double, maxRadius: Double)? = nil
        if sweepRows != nil {
            lap("sweep")
            let (picks, minD) = greedy(pool: pool, labeled: labeledSet, budget: budget, dHat: terms.contains(.density) ? dHat : nil,
                                       nHat: useNovelty ? nHat : nil, diversity: terms.contains(.diversity), alpha: best!.alpha)
            let radii = minD.map { Double($0.squareRoot()) }
            finalCoverage = (radii.reduce(0, +) / Double(n), radii.max() ?? 0)
            best = (picks, best!.alpha, finalCoverage!.meanRadius, finalCoverage!.maxRadius)
            progress?(String(format: "alpha %.2f on the whole pool: mean coverage radius %.4f, max %.4f", best!.alpha, finalCoverage!.meanRadius, finalCoverage!.maxRadius))
        }
        lap("greedy")
        var result = Result(picks: best!.picks, alpha: best!.alpha, coverageCurve: curve.map { (alpha: $0.0, meanRadius: $0.1, maxRadius: $0.2) },
                            timings: timings)
        result.neighbourSearch = searches
        result.sweepRows = sweepRows?.count
        result.finalCoverage = finalCoverage
        return result
    }

    /// Min-max normalisation over `rows` (others unchanged); a constant term becomes 0.
    static func normalised(_ v: [Float], over rows: [Int]) -> [Float] {
        guard let lo = rows.map({ v[$0] }).min(), let hi = rows.map({ v[$0] }).max(), hi > lo else {
            return [Float](repeating: 0, count: v.count)
        }
        return v.map { ($0 - lo) / (hi - lo) }
    }

    /// One greedy run; returns the picks and every row's final squared distance to the nearest selected-or-labeled row.
    /// The score is written a[i] + b[i] · v̂(i), with v̂(i) = distance to the nearest centre / largest such distance
    /// among the candidates, so that the lazy distance bookkeeping (``LazyCentres``) can find the best row exactly.
    static func greedy(pool: Embeddings, labeled: Set<Int>, budget: Int, dHat: [Float]?, nHat: [Float]?, diversity: Bool,
                       alpha: Double) -> ([Pick], [Float]) {
        let n = pool.count
        var state = LazyCentres(pool)
        state.add(labeled.sorted())
        let al = Float(alpha)
        var a = [Float](repeating: 0, count: n), b = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let w: Float = dHat.map { (1 + $0[i]) / 2 } ?? 1
            switch (nHat, diversity) {
            case (let nh?, true): a[i] = w * al * nh[i]; b[i] = w * (1 - al)
            case (let nh?, false): a[i] = w * nh[i]
            case (nil, true): b[i] = w
            case (nil, false): a[i] = dHat?[i] ?? 1
            }
        }
        var picks: [Pick] = []
        func record(_ i: Int, _ score: Float, _ v: Float) {
            picks.append(Pick(index: i, score: score, density: dHat?[i] ?? 0, novelty: nHat?[i] ?? 0, diversity: diversity ? v : 0))
            state.add(i)
        }
        if !diversity {
            // Static scores: the order is fixed once.
            let order = (0..<n).filter { !labeled.contains($0) }.sorted { a[$0] > a[$1] || (a[$0] == a[$1] && $0 < $1) }
            for i in order.prefix(budget) { record(i, a[i], 0) }
            return (picks, state.distances())
        }
        while picks.count < budget {
            if !state.hasCentre {
                let i = staticBest(a, b, vhat: 1, taken: state.taken)
                record(i, a[i] + b[i], 1)
                continue
            }
            let scale = state.farthest().squared.squareRoot()
            if scale > 0 {
                let (i, score, dist) = state.best(a: a, b: b, scale: scale)
                record(i, score, dist / scale)
            } else {
                let i = staticBest(a, b, vhat: 0, taken: state.taken)
                record(i, a[i], 0)
            }
        }
        return (picks, state.distances())
    }

    /// argmax over untaken rows of a[i] + b[i] · vhat (ties: the lower row).
    static func staticBest(_ a: [Float], _ b: [Float], vhat: Float, taken: [Bool]) -> Int {
        var best = -1, bestScore = -Float.infinity
        for i in 0..<a.count where !taken[i] {
            let s = a[i] + b[i] * vhat
            if s > bestScore { bestScore = s; best = i }
        }
        return best
    }
}
