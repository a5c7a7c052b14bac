import Foundation
import MedAnalysis
import MedData
import MedFoundation

/// How many labels are enough: learning curves fitted to an experiment's Dice against the number of labeled cases,
/// per strategy, and the smallest budget expected to reach a target share of the full-data Dice, with a bootstrap
/// interval over seeds.
///
/// Two curves, each by weighted least squares (weights 1 / variance over seeds at each budget, floored):
/// - inverse power law  D(n) = a − b·n^(−c)  (a, b, c > 0; c on a grid, a and b linear given c);
/// - exponential approach to the full-data Dice  D(n) = F − (F − d₀)·e^(−n/τ)  (F measured; τ on a grid).
/// The curve with the lower AIC (n·ln(SSE/n) + 2k) is used; both are reported.
public enum BudgetAdvisor {
    public struct Curve: Sendable {
        public var model: String
        public var parameters: [String: Double]
        public var aic: Double
        let f: @Sendable (Double) -> Double
        public func callAsFunction(_ n: Double) -> Double { f(n) }
    }

    public struct Advice: Sendable {
        public var strategy: String
        public var budgets: [Int]
        public var curve: Curve?
        public var other: Curve?
        public var fullDice: Double
        public var target: Double
        /// Smallest number of labeled cases whose predicted Dice reaches target x full (nil: not within `limit`).
        public var budget: Int?
        public var interval: (low: Int?, high: Int?)
        public var reason: String?
        /// Why there is no interval (too few seeds to resample), or nil.
        public var intervalNote: String?
    }

    /// Seeds needed for a bootstrap interval over seeds: with two, every resample is one of three curves and the
    /// interval says little (it came out zero-width).
    public static let minimumSeedsForInterval = 3

    /// Per-seed curves of a strategy: seed -> [(labeled, mean Dice over sites)], first round only.
    static func curves(_ rows: [Experiment.ResultRow], strategy: RunName) -> [UInt64: [(Double, Double)]] {
        var out: [UInt64: [(Double, Double)]] = [:]
        let members = rows.filter { $0.strategy == strategy && $0.round == 1 }
        for seed in Set(members.map(\.seed)) {
            let bySize = Dictionary(grouping: members.filter { $0.seed == seed }, by: \.labeled)
            out[seed] = bySize.keys.sorted().map { n in (Double(n), Stats.mean(bySize[n]!.map(\.dice).filter(\.isFinite))) }.filter { $0.1.isFinite }
        }
        return out
    }

    /// Fits both curves to points (n, Dice) pooled over seeds.
    public static func fit(_ points: [(Double, Double)], full: Double) -> (best: Curve, other: Curve)? {
        let sizes = Set(points.map(\.0)).sorted()
        guard sizes.count >= 3 else { return nil }
        // Weights per budget: 1 / variance over seeds (floored so that a budget with identical seeds cannot dominate).
        var weight: [Double: Double] = [:]
        for n in sizes {
            let v = points.filter { $0.0 == n }.map(\.1)
            weight[n] = 1 / max(v.count > 1 ? Stats.standardDeviation(v) * Stats.standardDeviation(v) : 0, 1e-4)
        }
        let w = points.map { weight[$0.0]! }, x = points.map(\.0), y = points.map(\.1)
        let m = Double(points.count)
        func aic(_ sse: Double, _ k: Double) -> Double { m * log(max(sse, 1e-300) / m) + 2 * k }
        // Power law: for each c, weighted linear regression of y on t = n^(-c): y = a − b·t.
        var power: (sse: Double, a: Double, b: Double, c: Double) = (.infinity, 0, 0, 0)
        for step in 1...300 {
            let c = Double(step) * 0.01
            let t = x.map { pow($0, -c) }
            let sw = w.reduce(0, +), st = zip(w, t).map(*).reduce(0, +) / sw, sy = zip(w, y).map(*).reduce(0, +) / sw
            let stt = zip(w, t).map { $0 * ($1 - st) * ($1 - st) }.reduce(0, +)
            guard stt > 0 else { continue }
            let slope = zip(zip(w, t), y).map { $0.0 * ($0.1 - st) * ($1 - sy) }.reduce(0, +) / stt
            let (a, b) = (sy - slope * st, -slope)
            guard b > 0 else { continue }
            let sse = zip(zip(w, t), y).map { $0.0 * pow($1 - (a - b * $0.1), 2) }.reduce(0, +)
            if sse < power.sse { power = (sse, a, b, c) }
        }
        // Exponential approach to F: for each tau, (F − y) = k·e^(−n/τ), k by weighted least squares.
        var expo: (sse: Double, k: Double, tau: Double) = (.infinity, 0, 0)
        let maxN = x.max() ?? 1
        for step in 1...400 {
            let tau = maxN * Double(step) / 100
            let e = x.map { exp(-$0 / tau) }
            let k = zip(zip(w, e), y).map { $0.0 * $0.1 * (full - $1) }.reduce(0, +) / max(1e-300, zip(w, e).map { $0 * $1 * $1 }.reduce(0, +))
            let sse = zip(zip(w, e), y).map { $0.0 * pow((full - $1) - k * $0.1, 2) }.reduce(0, +)
            if sse < expo.sse { expo = (sse, k, tau) }
        }
        var curves: [Curve] = []
        if power.sse.isFinite {
            let (a, b, c) = (power.a, power.b, power.c)
            curves.append(Curve(model: "inverse power law", parameters: ["a": a, "b": b, "c": c], aic: aic(power.sse, 3)) { a - b * pow($0, -c) })
        }
        if expo.sse.isFinite && full.isFinite {
            let (k, tau) = (expo.k, expo.tau)
            curves.append(Curve(model: "exponential approach to the full-data Dice", parameters: ["F": full, "d0": full - k, "tau": tau],
                                aic: aic(expo.sse, 2)) { full - k * exp(-$0 / tau) })
        }
        guard !curves.isEmpty else { return nil }
        curves.sort { $0.aic < $1.aic }
        return (curves[0], curves.count > 1 ? curves[1] : curves[0])
    }

    /// The smallest n in 1...limit with curve(n) >= goal.
    static func smallest(_ curve: Curve, goal: Double, limit: Int) -> Int? { (1...max(1, limit)).first { curve(Double($0)) >= goal } }

    /// Advice for every first-round strategy of `rows` (results.csv), against the full-data Dice.
    public static func advise(_ rows: [Experiment.ResultRow], target: Double = 0.95, limit: Int, resamples: Int = 200, seed: UInt64 = 0) -> [Advice] {
        let fullPerSeed = Dictionary(grouping: rows.filter { $0.strategy == "full" }, by: \.seed).mapValues { Stats.mean($0.map(\.dice).filter(\.isFinite)) }
        let full = Stats.mean(Array(fullPerSeed.values))
        let strategies = ExperimentReport.orderedUnique(rows.filter { $0.round == 1 && $0.strategy.strategy != nil }.map(\.strategy))
        return strategies.map { strategy in
            let perSeed = curves(rows, strategy: strategy)
            let budgets = Set(perSeed.values.flatMap { $0.map { Int($0.0) } }).sorted()
            var advice = Advice(strategy: strategy.description, budgets: budgets, curve: nil, other: nil, fullDice: full, target: target, budget: nil, interval: (nil, nil))
            guard full.isFinite else { advice.reason = "no full-data reference in the results (set \"full_data\": true)"; return advice }
            guard let (best, other) = fit(perSeed.values.flatMap { $0 }, full: full) else {
                advice.reason = "\(budgets.count) budget(s); a learning curve needs at least 3"
                return advice
            }
            advice.curve = best; advice.other = other
            advice.budget = smallest(best, goal: target * full, limit: limit)
            // Bootstrap over seeds: resample whole per-seed curves, refit, predict.
            let seeds = perSeed.keys.sorted()
            guard seeds.count >= minimumSeedsForInterval else {
                advice.intervalNote = "\(seeds.count) seed\(seeds.count == 1 ? "" : "s"): an interval over seeds needs at least \(minimumSeedsForInterval)"
                return advice
            }
            var g = SplitMix64(seed: seed)
            var predictions: [Double] = []
            for _ in 0..<resamples {
                let pick = (0..<seeds.count).map { _ in seeds[Int.random(in: 0..<seeds.count, using: &g)] }
                guard let (b, _) = fit(pick.flatMap { perSeed[$0]! }, full: full) else { continue }
                predictions.append(Double(smallest(b, goal: target * full, limit: limit) ?? (limit + 1)))
            }
            if predictions.count >= resamples / 2 {
                let (lo, hi) = (Stats.quantile(predictions, 0.025), Stats.quantile(predictions, 0.975))
                advice.interval = (lo > Double(limit) ? nil : Int(lo.rounded(.up)), hi > Double(limit) ? nil : Int(hi.rounded(.up)))
            }
            return advice
        }
    }

    /// results.csv back into rows (``ResultRow/read(_:)``).
    public static func read(_ path: String) throws -> [ResultRow] { try ResultRow.read(path) }
}
