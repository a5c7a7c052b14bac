import Foundation
import MedCompute
import MedFoundation

/// Maximum mean discrepancy (Gretton et al. 2012) between two samples of row vectors with a Gaussian (RBF) kernel
/// k(x, y) = exp(−‖x − y‖² / (2σ²)), and its permutation test.
///
/// - Bandwidth σ: the median heuristic, the median Euclidean distance between distinct rows of the pooled sample
///   (up to 1,000 rows drawn with the seed), as alibi-detect does.
/// - Statistic: the unbiased estimator MMD²_u = Σ_{i≠j} k(xᵢ,xⱼ)/(n(n−1)) + Σ_{i≠j} k(yᵢ,yⱼ)/(m(m−1)) − 2 Σ k(xᵢ,yⱼ)/(nm)
///   (it can be slightly negative when the samples agree).
/// - p-value: (b + 1)/(P + 1), b the number of the P random relabellings of the pooled rows whose statistic reaches
///   the observed one, so p is never 0 (alibi-detect's b/P can be).
/// - Up to ``exactLimit`` pooled rows the kernel matrix is computed once and all permutations are evaluated at once
///   with one SGEMM (K times the matrix of relabellings). Above it no N x N matrix is held: both the statistic and
///   the permutations use D random Fourier features φ(x) = √(2/D) cos(ωᵀx + u), ω ~ N(0, σ⁻²I) (Rahimi & Recht
///   2007), whose mean embeddings give MMD² ≈ ‖φ̄(X) − φ̄(Y)‖²; the result says which was used.
public enum MMD {
    /// Pooled sample size up to which the exact kernel matrix is used (6,000 rows: 144 MB).
    public static let exactLimit = 6000

    public struct Result: Sendable, Equatable, Codable {
        /// MMD² (unbiased exact estimate, or the random-feature estimate).
        public var statistic: Double
        public var pValue: Double
        public var permutations: Int
        public var bandwidth: Double
        /// "exact" or "random features (D)".
        public var method: String
    }

    /// The median heuristic on the pooled rows of `x` (n x d) and `y` (m x d).
    public static func medianBandwidth(_ x: [Float], _ y: [Float], dimensions d: Int, seed: UInt64 = 0) -> Double {
        let pooled = x + y, n = pooled.count / d
        var rows = Array(0..<n)
        if n > 1000 { var g = SplitMix64(seed: seed ^ 0x6d6d64); rows.shuffle(using: &g); rows = Array(rows.prefix(1000)) }
        var distances: [Double] = []
        distances.reserveCapacity(rows.count * (rows.count - 1) / 2)
        pooled.withUnsafeBufferPointer { p in
            for a in 0..<rows.count { for b in (a + 1)..<rows.count {
                var s: Float = 0
                let (pa, pb) = (p.baseAddress! + rows[a] * d, p.baseAddress! + rows[b] * d)
                for j in 0..<d { let t = pa[j] - pb[j]; s += t * t }
                distances.append(Double(s).squareRoot())
            } }
        }
        let med = Stats.median(distances)
        return med > 0 ? med : 1
    }

    /// The unbiased MMD² of `x` (n x d) and `y` (m x d), from blocked kernel sums (no N x N matrix).
    public static func unbiased(_ x: [Float], _ y: [Float], dimensions d: Int, bandwidth sigma: Double) throws -> Double {
        let n = x.count / d, m = y.count / d
        guard n >= 2, m >= 2 else { throw AnalysisError.invalidInput("MMD needs at least 2 rows on each side; got \(n) and \(m)") }
        let sxx = kernelSum(x, x, d: d, sigma: sigma) - Double(n), syy = kernelSum(y, y, d: d, sigma: sigma) - Double(m)
        let sxy = kernelSum(x, y, d: d, sigma: sigma)
        return sxx / Double(n * (n - 1)) + syy / Double(m * (m - 1)) - 2 * sxy / Double(n * m)
    }

    /// Σᵢⱼ k(aᵢ, bⱼ), in blocks of 512 rows of a against all of b (one SGEMM per block).
    static func kernelSum(_ a: [Float], _ b: [Float], d: Int, sigma: Double) -> Double {
        let na = a.count / d, nb = b.count / d
        let an = rowNorms(a, d), bn = rowNorms(b, d)
        let gamma = Float(1 / (2 * sigma * sigma))
        var total = 0.0
        var block = [Float](repeating: 0, count: min(512, na) * nb)
        var start = 0
        while start < na {
            let rows = min(512, na - start)
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in block.withUnsafeMutableBufferPointer { cp in
                Compute.sgemm(transB: true, m: rows, n: nb, k: d, alpha: -2, a: ap.baseAddress! + start * d, lda: d, b: bp.baseAddress!, ldb: d,
                              c: cp.baseAddress!, ldc: nb)
            } } }
            let partial = block.withUnsafeBufferPointer { cp -> Double in
                var s = 0.0
                for r in 0..<rows {
                    var rowSum: Float = 0
                    let row = cp.baseAddress! + r * nb, ai = an[start + r]
                    for c in 0..<nb { rowSum += exp(-gamma * max(0, row[c] + ai + bn[c])) }
                    s += Double(rowSum)
                }
                return s
            }
            total += partial
            start += rows
        }
        return total
    }

    static func rowNorms(_ a: [Float], _ d: Int) -> [Float] {
        (0..<(a.count / d)).map { i in var s: Float = 0; for j in 0..<d { s += a[i * d + j] * a[i * d + j] }; return s }
    }

    /// MMD² of `x` and `y` with a permutation p-value (`permutations` relabellings drawn with `seed`); the bandwidth
    /// from the median heuristic unless given.
    public static func test(_ x: [Float], _ y: [Float], dimensions d: Int, permutations: Int = 1000, bandwidth: Double? = nil,
                            seed: UInt64 = 0, features: Int = 512, relabellingBudget: Int = 50_000_000) throws -> Result {
        let n = x.count / d, m = y.count / d
        guard n >= 2, m >= 2 else { throw AnalysisError.invalidInput("MMD needs at least 2 rows on each side; got \(n) and \(m)") }
        guard permutations >= 1 else { throw AnalysisError.invalidInput("the permutation test needs at least one permutation") }
        let sigma = bandwidth ?? medianBandwidth(x, y, dimensions: d, seed: seed)
        let total = n + m
        // Relabellings: 0 the observed split, then `permutations` random ones (n rows marked 1), made in chunks so
        // that large samples never hold all of them (the draws are the same whatever the chunk size).
        var g = SplitMix64(seed: seed)
        var order = Array(0..<total)
        func relabellings(_ count: Int, observed: Bool) -> [[Float]] {
            var out = [[Float]]()
            if observed { out.append((0..<total).map { $0 < n ? 1 : 0 }) }
            for _ in 0..<count {
                order.shuffle(using: &g)
                var a = [Float](repeating: 0, count: total)
                for i in order.prefix(n) { a[i] = 1 }
                out.append(a)
            }
            return out
        }
        var stats: [Double]
        if total <= exactLimit {
            stats = exactStatistics(x + y, d: d, n: n, m: m, sigma: sigma, labels: relabellings(permutations, observed: true))
        } else {
            let phi = randomFeatures(x + y, d: d, sigma: sigma, features: features, seed: seed)
            let chunk = max(8, min(permutations, relabellingBudget / total))   // at most ~200 MB of relabellings at a time
            stats = featureStatistics(phi, n: n, m: m, labels: relabellings(min(chunk, permutations), observed: true), features: features)
            var done = min(chunk, permutations)
            while done < permutations {
                let c = min(chunk, permutations - done)
                stats += featureStatistics(phi, n: n, m: m, labels: relabellings(c, observed: false), features: features)
                done += c
            }
        }
        let observed = stats[0]
        let exceed = stats.dropFirst().filter { $0 >= observed - 1e-12 * abs(observed) }.count
        return Result(statistic: observed, pValue: Double(exceed + 1) / Double(permutations + 1), permutations: permutations, bandwidth: sigma,
                      method: total <= exactLimit ? "exact" : "random features (\(features))")
    }

    /// Unbiased MMD² for every relabelling, from the pooled kernel matrix K: with a the indicator of the first group,
    /// aᵀKa and aᵀK1 give all three kernel sums (the diagonal of an RBF kernel is 1).
    static func exactStatistics(_ pooled: [Float], d: Int, n: Int, m: Int, sigma: Double, labels: [[Float]]) -> [Double] {
        let total = n + m, p = labels.count
        let norms = rowNorms(pooled, d)
        let gamma = Float(1 / (2 * sigma * sigma))
        var k = [Float](repeating: 0, count: total * total)
        pooled.withUnsafeBufferPointer { xp in k.withUnsafeMutableBufferPointer { kp in
            Compute.sgemm(transB: true, m: total, n: total, k: d, alpha: -2, a: xp.baseAddress!, lda: d, b: xp.baseAddress!, ldb: d,
                          c: kp.baseAddress!, ldc: total)
            nonisolated(unsafe) let kb = kp.baseAddress!
            parallelFor(total) { i in
                for j in 0..<total { kb[i * total + j] = exp(-gamma * max(0, kb[i * total + j] + norms[i] + norms[j])) }
            }
        } }
        let rowSums = (0..<total).map { i in k[(i * total)..<((i + 1) * total)].reduce(0.0) { $0 + Double($1) } }
        let grand = rowSums.reduce(0, +)
        // A (total x p), column-major per relabelling as rows of `labels`: KA = K · Aᵀ-stored-as (p x total)ᵀ.
        let a = labels.flatMap { $0 }                     // p x total, row-major
        var ka = [Float](repeating: 0, count: p * total)  // p x total: row q = (K a_q)ᵀ (K is symmetric)
        k.withUnsafeBufferPointer { kp in a.withUnsafeBufferPointer { ap in ka.withUnsafeMutableBufferPointer { cp in
            Compute.sgemm(transB: true, m: p, n: total, k: total, a: ap.baseAddress!, lda: total, b: kp.baseAddress!, ldb: total,
                          c: cp.baseAddress!, ldc: total)
        } } }
        let (dn, dm) = (Double(n), Double(m))
        return (0..<p).map { q in
            var aka = 0.0, ar = 0.0
            for i in 0..<total where labels[q][i] != 0 { aka += Double(ka[q * total + i]); ar += rowSums[i] }
            let sxx = aka - dn, sxy = ar - aka, syy = grand - 2 * ar + aka - dm
            return sxx / (dn * (dn - 1)) + syy / (dm * (dm - 1)) - 2 * sxy / (dn * dm)
        }
    }

    /// Random Fourier features of the pooled rows: φ(x) = √(2/D) cos(ωᵀx + u), total x D.
    static func randomFeatures(_ pooled: [Float], d: Int, sigma: Double, features f: Int, seed: UInt64) -> [Float] {
        let total = pooled.count / d
        var g = SplitMix64(seed: seed ^ 0x7266_6600)
        var omega = [Float](repeating: 0, count: f * d)
        for i in 0..<(f * d) {   // Box-Muller: N(0, 1/σ²)
            let u1 = max(Double.random(in: 0..<1, using: &g), 1e-300), u2 = Double.random(in: 0..<1, using: &g)
            omega[i] = Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2) / sigma)
        }
        let shift = (0..<f).map { _ in Float(Double.random(in: 0..<(2 * .pi), using: &g)) }
        var phi = [Float](repeating: 0, count: total * f)      // total x f
        pooled.withUnsafeBufferPointer { xp in omega.withUnsafeBufferPointer { wp in phi.withUnsafeMutableBufferPointer { pp in
            Compute.sgemm(transB: true, m: total, n: f, k: d, a: xp.baseAddress!, lda: d, b: wp.baseAddress!, ldb: d, c: pp.baseAddress!, ldc: f)
            nonisolated(unsafe) let pb = pp.baseAddress!
            let scale = Float((2 / Double(f)).squareRoot())
            parallelFor(total) { i in for j in 0..<f { pb[i * f + j] = scale * cos(pb[i * f + j] + shift[j]) } }
        } } }
        return phi
    }

    /// ‖φ̄(X) − φ̄(Y)‖² for every relabelling (one SGEMM for all of them).
    static func featureStatistics(_ phi: [Float], n: Int, m: Int, labels: [[Float]], features f: Int) -> [Double] {
        let total = n + m, p = labels.count
        // Weights per relabelling: +1/n for the first group, −1/m for the second; S (p x total) · Φ (total x f).
        let weights = labels.flatMap { row in row.map { $0 != 0 ? 1 / Float(n) : -1 / Float(m) } }
        var diff = [Float](repeating: 0, count: p * f)
        weights.withUnsafeBufferPointer { sp in phi.withUnsafeBufferPointer { pp in diff.withUnsafeMutableBufferPointer { dp in
            Compute.sgemm(m: p, n: f, k: total, a: sp.baseAddress!, lda: total, b: pp.baseAddress!, ldb: f, c: dp.baseAddress!, ldc: f)
        } } }
        return (0..<p).map { q in (0..<f).reduce(0.0) { $0 + Double(diff[q * f + $1]) * Double(diff[q * f + $1]) } }
    }
}
