import Foundation
import MedFoundation

/// # MedAnalysis
///
/// Per-site domain-shift statistics on plain arrays: distances between samples of embeddings (maximum mean
/// discrepancy with a permutation test, Fréchet distance between Gaussian fits, nearest-neighbour distance, a
/// cross-validated domain classifier), between intensity distributions (Wasserstein-1, Jensen-Shannon), image-quality
/// measures on a foreground mask (MRQy's), the source model's view of each case and its Dice estimated without labels
/// (``ModelView``, ``ShapeReferences``, ``DiceEstimator``), and correlations of shift with segmentation quality with
/// bootstrap intervals. The command (`medselect sites`) gathers the inputs and hands the results to MedReport.
public enum MedAnalysisModule {}

/// Errors of the analyses: inputs a caller can fix.
public enum AnalysisError: MedError, Sendable, Equatable {
    case invalidInput(String)
    public var path: String { "" }
    public var reason: String { switch self { case .invalidInput(let s): return s } }
}

/// Rank correlation, linear correlation, intervals and multiple-testing corrections.
public enum Stats {
    public static func mean(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count) }

    public static func standardDeviation(_ v: [Double]) -> Double {
        guard v.count > 1 else { return .nan }
        let m = mean(v)
        return (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count - 1)).squareRoot()
    }

    public static func median(_ v: [Double]) -> Double { quantile(v, 0.5) }

    /// Linear interpolation between order statistics (NumPy's default).
    public static func quantile(_ v: [Double], _ q: Double) -> Double {
        let s = v.filter { !$0.isNaN }.sorted()
        guard !s.isEmpty else { return .nan }
        let pos = q * Double(s.count - 1), lo = Int(pos.rounded(.down)), hi = min(s.count - 1, lo + 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
    }

    /// Pearson's r (NaN when either side is constant or fewer than 2 pairs).
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        guard x.count == y.count, x.count >= 2 else { return .nan }
        let mx = mean(x), my = mean(y)
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in 0..<x.count { let a = x[i] - mx, b = y[i] - my; sxy += a * b; sxx += a * a; syy += b * b }
        return sxx > 0 && syy > 0 ? sxy / (sxx * syy).squareRoot() : .nan
    }

    /// Ranks 1...n, ties sharing their mean rank.
    public static func ranks(_ v: [Double]) -> [Double] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var r = [Double](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
            let shared = Double(i + j) / 2 + 1
            for k in i...j { r[order[k]] = shared }
            i = j + 1
        }
        return r
    }

    /// Spearman's rank correlation (Pearson's r of the ranks).
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double { pearson(ranks(x), ranks(y)) }

    /// Two-sided permutation p-value of Spearman's correlation: the share of orderings of y whose |ρ| reaches the
    /// observed one. Exact (all n! orderings, the observed one included) for n ≤ 8; otherwise `resamples` random
    /// orderings, (b + 1)/(resamples + 1). With n points the smallest possible p is 2/n! (n = 4: 0.083), which is
    /// what a handful of sites can show. NaN below 3 points or when ρ is undefined.
    public static func spearmanPermutationP(_ x: [Double], _ y: [Double], resamples: Int = 10_000, seed: UInt64 = 0) -> Double {
        guard x.count == y.count, x.count >= 3 else { return .nan }
        let rx = ranks(x), ry = ranks(y)
        let observed = abs(pearson(rx, ry))
        guard observed.isFinite else { return .nan }
        let tolerance = 1e-12
        if x.count <= 8 {
            var perm = ry, count = 0, total = 0
            // Heap's algorithm over every ordering.
            func visit(_ k: Int) {
                if k == 1 {
                    total += 1
                    if abs(pearson(rx, perm)) >= observed - tolerance { count += 1 }
                    return
                }
                visit(k - 1)
                for i in 0..<(k - 1) {
                    perm.swapAt(k % 2 == 0 ? i : 0, k - 1)
                    visit(k - 1)
                }
            }
            visit(perm.count)
            return Double(count) / Double(total)
        }
        var g = SplitMix64(seed: seed)
        var perm = ry, exceed = 0
        for _ in 0..<resamples {
            perm.shuffle(using: &g)
            if abs(pearson(rx, perm)) >= observed - tolerance { exceed += 1 }
        }
        return Double(exceed + 1) / Double(resamples + 1)
    }

    /// Percentile bootstrap interval (level 0.95: 2.5th and 97.5th percentiles) of a statistic of paired samples,
    /// resampling the pairs with replacement; resamples where the statistic is undefined are skipped.
    public static func bootstrapInterval(_ x: [Double], _ y: [Double], resamples: Int = 2000, level: Double = 0.95, seed: UInt64 = 0,
                                         _ statistic: ([Double], [Double]) -> Double) -> (low: Double, high: Double) {
        guard x.count == y.count, x.count >= 2 else { return (.nan, .nan) }
        var g = SplitMix64(seed: seed)
        var values: [Double] = []
        values.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var bx = [Double](), by = [Double]()
            for _ in 0..<x.count { let i = Int.random(in: 0..<x.count, using: &g); bx.append(x[i]); by.append(y[i]) }
            let v = statistic(bx, by)
            if v.isFinite { values.append(v) }
        }
        guard values.count >= resamples / 2 else { return (.nan, .nan) }
        return (quantile(values, (1 - level) / 2), quantile(values, 1 - (1 - level) / 2))
    }

    /// The regularized incomplete beta function I_x(a, b) by its continued fraction (Lentz's method; Numerical
    /// Recipes' betacf), using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where the fraction converges slowly.
    public static func incompleteBeta(_ x: Double, _ a: Double, _ b: Double) -> Double {
        guard x > 0 else { return 0 }
        guard x < 1 else { return 1 }
        let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let front: Double = exp(logGammas + a * log(x) + b * log(1 - x))
        func fraction(_ x: Double, _ a: Double, _ b: Double) -> Double {
            let tiny = 1e-300
            var c = 1.0, d = 1 - (a + b) * x / (a + 1)
            d = 1 / (abs(d) < tiny ? tiny : d)
            var h = d
            for m in 1...300 {
                let m = Double(m)
                let even: Double = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
                d = 1 + even * d; d = 1 / (abs(d) < tiny ? tiny : d); c = 1 + even / c; if abs(c) < tiny { c = tiny }
                h *= d * c
                let odd: Double = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                d = 1 + odd * d; d = 1 / (abs(d) < tiny ? tiny : d); c = 1 + odd / c; if abs(c) < tiny { c = tiny }
                let step = d * c
                h *= step
                if abs(step - 1) < 1e-14 { break }
            }
            return h
        }
        return x < (a + 1) / (a + b + 2) ? front * fraction(x, a, b) / a : 1 - front * fraction(1 - x, b, a) / b
    }

    /// Student's t distribution function with `df` degrees of freedom.
    public static func studentTCDF(_ t: Double, df: Double) -> Double {
        let tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// The `p` quantile of Student's t with `df` degrees of freedom (bisection on the distribution function, to
    /// 1e-12; SciPy's `t.ppf`).
    public static func studentTQuantile(_ p: Double, df: Double) -> Double {
        guard p > 0 && p < 1 && df > 0 else { return .nan }
        var (lo, hi) = (-1e3, 1e3)
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if studentTCDF(mid, df: df) < p { lo = mid } else { hi = mid }
            if hi - lo < 1e-12 { break }
        }
        return (lo + hi) / 2
    }

    /// The smallest mean paired difference a two-sided paired t-test at level `alpha` would detect with probability
    /// `power`, given paired differences `d` like these: (t_{1−α/2, n−1} + t_{power, n−1}) · sd(d) / √n. "Not
    /// distinguishable" means little unless this is small; nan below 3 pairs and when every difference is the same
    /// (no spread: the t-test is undefined, e.g. two strategies that gave identical results).
    public static func minimumDetectableDifference(_ d: [Double], alpha: Double = 0.05, power: Double = 0.8) -> Double {
        let f = d.filter(\.isFinite)
        guard f.count >= 3, standardDeviation(f) > 0 else { return .nan }
        let df = Double(f.count - 1)
        return (studentTQuantile(1 - alpha / 2, df: df) + studentTQuantile(power, df: df)) * standardDeviation(f) / Double(f.count).squareRoot()
    }

    /// Holm's step-down adjustment of p-values (family-wise error rate), in the input order.
    public static func holm(_ p: [Double]) -> [Double] {
        let m = p.count
        let order = p.indices.sorted { p[$0] < p[$1] }
        var adjusted = [Double](repeating: 1, count: m)
        var running = 0.0
        for (rank, i) in order.enumerated() {
            running = max(running, min(1, Double(m - rank) * p[i]))
            adjusted[i] = running
        }
        return adjusted
    }

    /// Two-sided p-value of the Mann-Whitney U test (normal approximation with tie correction and continuity
    /// correction): do the values of `a` tend to differ from those of `b`?
    public static func mannWhitneyP(_ a: [Double], _ b: [Double]) -> Double {
        let (n1, n2) = (Double(a.count), Double(b.count))
        guard n1 >= 1, n2 >= 1 else { return .nan }
        let all = a + b, r = ranks(all)
        let u = r[0..<a.count].reduce(0, +) - n1 * (n1 + 1) / 2
        let mean = n1 * n2 / 2
        var tieTerm = 0.0
        for (_, group) in Dictionary(grouping: all, by: { $0 }) where group.count > 1 { let t = Double(group.count); tieTerm += t * t * t - t }
        let n = n1 + n2
        let variance = n1 * n2 / 12 * ((n + 1) - tieTerm / (n * (n - 1)))
        guard variance > 0 else { return 1 }
        let z = (abs(u - mean) - 0.5) / variance.squareRoot()
        return min(1, erfc(max(0, z) / 2.0.squareRoot()))
    }

    /// Two-sided p-value of the Wilcoxon signed-rank test of paired differences `d` (zeros dropped, as SciPy's
    /// default): exact (every assignment of signs to the ranks counted) for up to 25 non-zero differences without
    /// ties, otherwise the normal approximation with tie correction. Returns the p-value and the number of pairs
    /// used; nan when no difference is non-zero.
    public static func wilcoxonSignedRankP(_ d: [Double]) -> (p: Double, pairs: Int) {
        let nonzero = d.filter { $0 != 0 && $0.isFinite }
        let n = nonzero.count
        guard n >= 1 else { return (.nan, 0) }
        let r = ranks(nonzero.map(abs))
        let wPlus = zip(nonzero, r).filter { $0.0 > 0 }.reduce(0) { $0 + $1.1 }
        let total = Double(n * (n + 1)) / 2
        let tied = Set(nonzero.map(abs)).count < n
        if n <= 25 && !tied {
            // counts[s] = number of subsets of {1..n} with rank sum s.
            var counts = [Double](repeating: 0, count: n * (n + 1) / 2 + 1)
            counts[0] = 1
            for k in 1...n { for s in stride(from: counts.count - 1, through: k, by: -1) { counts[s] += counts[s - k] } }
            let all = Foundation.pow(2.0, Double(n))
            let w = Int(wPlus.rounded())
            let low = counts[0...w].reduce(0, +) / all, high = counts[w...].reduce(0, +) / all
            return (min(1, 2 * min(low, high)), n)
        }
        var tieTerm = 0.0
        for (_, group) in Dictionary(grouping: nonzero.map(abs), by: { $0 }) where group.count > 1 { let t = Double(group.count); tieTerm += t * t * t - t }
        let mean = total / 2
        let variance = Double(n * (n + 1) * (2 * n + 1)) / 24 - tieTerm / 48
        guard variance > 0 else { return (1, n) }
        let z = abs(wPlus - mean) / variance.squareRoot()
        return (min(1, erfc(z / 2.0.squareRoot())), n)
    }

    /// Area under the ROC curve of scores for positives against negatives (Mann-Whitney U / (n_pos · n_neg), ties
    /// counting half).
    public static func auc(positive: [Double], negative: [Double]) -> Double {
        guard !positive.isEmpty, !negative.isEmpty else { return .nan }
        let all = positive + negative
        let r = ranks(all)
        let rankSum = r[0..<positive.count].reduce(0, +)
        let u = rankSum - Double(positive.count * (positive.count + 1)) / 2
        return u / Double(positive.count * negative.count)
    }
}

/// Histograms of values on shared bins and the distances between them.
public struct Histogram: Sendable, Equatable, Codable {
    public var lower: Double
    public var upper: Double
    /// Normalised to sum 1 (values outside [lower, upper] go to the edge bins).
    public var probabilities: [Double]
    public var count: Int

    public init(_ values: [Float], lower: Double, upper: Double, bins: Int) {
        self.lower = lower; self.upper = upper
        var counts = [Double](repeating: 0, count: bins)
        var n = 0
        let scale = Double(bins) / (upper - lower)
        for v in values where v.isFinite {
            let b = min(bins - 1, max(0, Int((Double(v) - lower) * scale)))
            counts[b] += 1; n += 1
        }
        count = n
        probabilities = n > 0 ? counts.map { $0 / Double(n) } : counts
    }

    public var binWidth: Double { (upper - lower) / Double(probabilities.count) }

    /// Wasserstein-1 (earth mover's) distance: the integral of |F1 − F2| over the bins' range, in the values' units.
    public func wasserstein1(_ other: Histogram) -> Double {
        precondition(probabilities.count == other.probabilities.count, "histograms on different bins")
        var c1 = 0.0, c2 = 0.0, total = 0.0
        for i in 0..<probabilities.count { c1 += probabilities[i]; c2 += other.probabilities[i]; total += abs(c1 - c2) }
        return total * binWidth
    }

    /// Jensen-Shannon divergence in bits (0 for equal histograms, 1 for disjoint ones).
    public func jensenShannon(_ other: Histogram) -> Double {
        precondition(probabilities.count == other.probabilities.count, "histograms on different bins")
        var d = 0.0
        for i in 0..<probabilities.count {
            let p = probabilities[i], q = other.probabilities[i], m = (p + q) / 2
            if p > 0 { d += 0.5 * p * log2(p / m) }
            if q > 0 { d += 0.5 * q * log2(q / m) }
        }
        return max(0, d)
    }
}
