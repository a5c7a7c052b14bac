import Foundation
import MedCompute
import MedFoundation

/// Principal component analysis by subspace iteration: on the D x D covariance (one SGEMM for Xᵀ X) when there are
/// more rows than dimensions, on the N x N Gram matrix (one SGEMM for X Xᵀ; the components are then Xᵀ u / ‖Xᵀ u‖)
/// when there are fewer, e.g. 40 thumbnails of 64 x 64 pixels; enough for the few leading components that t-SNE
/// initialisation, thumbnail embeddings and plots need.
public enum PCA {
    public struct Model: Sendable {
        public var mean: [Float]
        /// components x D, row-major, unit rows, by decreasing variance.
        public var components: [Float]
        public var explainedVariance: [Double]
        public var count: Int
    }

    public static func fit(_ x: Embeddings, components m: Int, iterations: Int = 60, seed: UInt64 = 0) throws -> Model {
        let n = x.count, d = x.dimensions
        guard m >= 1, m <= d else { throw SelectionError.invalidInput("PCA components must be in 1...\(d), got \(m)") }
        var mean = [Float](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += x.values[i * d + j] } }
        for j in 0..<d { mean[j] /= Float(n) }
        var centred = x.values
        for i in 0..<n { for j in 0..<d { centred[i * d + j] -= mean[j] } }
        let gram = n < d
        guard !gram || m <= n else { throw SelectionError.invalidInput("PCA of \(n) rows gives at most \(n) components, not \(m)") }
        let p = gram ? n : d
        var scatter = [Float](repeating: 0, count: p * p)
        centred.withUnsafeBufferPointer { c in
            scatter.withUnsafeMutableBufferPointer { out in
                Compute.sgemm(transA: !gram, transB: gram, m: p, n: p, k: gram ? d : n, alpha: 1 / Float(max(1, n - 1)), a: c.baseAddress!, lda: d,
                              b: c.baseAddress!, ldb: d, c: out.baseAddress!, ldc: p)
            }
        }
        for r in 0..<p { for c in 0..<r { scatter[r * p + c] = scatter[c * p + r] } }   // exactly symmetric
        // Small eigen-problems are cheap: iterate longer there, so that components with close variances separate.
        var (q, variances) = topEigenvectors(scatter.map(Double.init), size: p, count: m, iterations: p <= 1024 ? max(iterations, 300) : iterations,
                                             seed: seed)
        if gram {
            // Principal axes from the Gram matrix's eigenvectors: v = Xcᵀ u, normalised (same non-zero spectrum).
            var v = [Double](repeating: 0, count: d * m)
            for i in 0..<n { for j in 0..<m { let u = q[i * m + j]; if u == 0 { continue }; for r in 0..<d { v[r * m + j] += Double(centred[i * d + r]) * u } } }
            for j in 0..<m {
                var norm = 0.0
                for r in 0..<d { norm += v[r * m + j] * v[r * m + j] }
                norm = max(norm.squareRoot(), 1e-300)
                for r in 0..<d { v[r * m + j] /= norm }
            }
            q = v
        }
        let order = (0..<m).sorted { variances[$0] > variances[$1] }
        var comps = [Float](repeating: 0, count: m * d)
        for (row, j) in order.enumerated() {
            // Sign convention: the largest-magnitude loading is positive (as scikit-learn's svd_flip).
            var big = 0
            for r in 0..<d where abs(q[r * m + j]) > abs(q[big * m + j]) { big = r }
            let sign: Double = q[big * m + j] < 0 ? -1 : 1
            for r in 0..<d { comps[row * d + r] = Float(sign * q[r * m + j]) }
        }
        variances = order.map { variances[$0] }
        return Model(mean: mean, components: comps, explainedVariance: variances, count: m)
    }

    /// The `count` leading eigenvectors (size x count, column j the j-th) and eigenvalues of a symmetric matrix, by
    /// subspace iteration in Float64 (Q <- orth(S Q)) from a seeded random start; eigenvalues as Rayleigh quotients.
    static func topEigenvectors(_ s: [Double], size p: Int, count m: Int, iterations: Int, seed: UInt64) -> ([Double], [Double]) {
        var g = SplitMix64(seed: seed)
        var q = (0..<(p * m)).map { _ in Double.random(in: -1...1, using: &g) }
        orthonormalise(&q, rows: p, cols: m)
        for _ in 0..<iterations {
            var next = [Double](repeating: 0, count: p * m)
            for r in 0..<p { for k in 0..<p {
                let a = s[r * p + k]
                if a == 0 { continue }
                for j in 0..<m { next[r * m + j] += a * q[k * m + j] }
            } }
            q = next
            orthonormalise(&q, rows: p, cols: m)
        }
        var values = [Double](repeating: 0, count: m)
        for j in 0..<m {
            var total = 0.0
            for r in 0..<p { var sq = 0.0; for k in 0..<p { sq += s[r * p + k] * q[k * m + j] }; total += q[r * m + j] * sq }
            values[j] = total
        }
        return (q, values)
    }

    /// Projects rows onto the components: N x m, row-major (one SGEMM).
    public static func transform(_ x: Embeddings, _ model: Model) -> [Float] {
        let n = x.count, d = x.dimensions, m = model.count
        var centred = x.values
        for i in 0..<n { for k in 0..<d { centred[i * d + k] -= model.mean[k] } }
        var out = [Float](repeating: 0, count: n * m)
        centred.withUnsafeBufferPointer { c in model.components.withUnsafeBufferPointer { w in out.withUnsafeMutableBufferPointer { o in
            Compute.sgemm(transB: true, m: n, n: m, k: d, a: c.baseAddress!, lda: d, b: w.baseAddress!, ldb: d, c: o.baseAddress!, ldc: m)
        } } }
        return out
    }

    /// Modified Gram-Schmidt on the columns of a rows x cols matrix.
    static func orthonormalise(_ a: inout [Double], rows: Int, cols: Int) {
        for j in 0..<cols {
            for p in 0..<j {
                var dot = 0.0
                for r in 0..<rows { dot += a[r * cols + j] * a[r * cols + p] }
                for r in 0..<rows { a[r * cols + j] -= dot * a[r * cols + p] }
            }
            var norm = 0.0
            for r in 0..<rows { norm += a[r * cols + j] * a[r * cols + j] }
            norm = norm.squareRoot()
            if norm < 1e-300 { for r in 0..<rows { a[r * cols + j] = r == j ? 1 : 0 }; continue }
            for r in 0..<rows { a[r * cols + j] /= norm }
        }
    }
}
