import Foundation
import MedCompute

/// Principal component analysis by subspace iteration on the D x D covariance (one SGEMM for X^T X): enough for the
/// few leading components that t-SNE initialisation and plots need.
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
        var cov = [Float](repeating: 0, count: d * d)
        centred.withUnsafeBufferPointer { c in
            cov.withUnsafeMutableBufferPointer { out in
                Compute.sgemm(transA: true, m: d, n: d, k: n, alpha: 1 / Float(max(1, n - 1)), a: c.baseAddress!, lda: d,
                              b: c.baseAddress!, ldb: d, c: out.baseAddress!, ldc: d)
            }
        }
        for r in 0..<d { for c in 0..<r { cov[r * d + c] = cov[c * d + r] } }   // exactly symmetric
        // Subspace iteration in Float64: Q (D x m) <- orth(C Q).
        let c64 = cov.map(Double.init)
        var g = SeededGenerator(seed: seed)
        var q = (0..<(d * m)).map { _ in Double.random(in: -1...1, using: &g) }
        orthonormalise(&q, rows: d, cols: m)
        for _ in 0..<iterations {
            var next = [Double](repeating: 0, count: d * m)
            for r in 0..<d { for k in 0..<d {
                let a = c64[r * d + k]
                if a == 0 { continue }
                for j in 0..<m { next[r * m + j] += a * q[k * m + j] }
            } }
            q = next
            orthonormalise(&q, rows: d, cols: m)
        }
        // Rayleigh quotients give the variances; sort by them.
        var variances = [Double](repeating: 0, count: m)
        for j in 0..<m {
            var s = 0.0
            for r in 0..<d { var cq = 0.0; for k in 0..<d { cq += c64[r * d + k] * q[k * m + j] }; s += q[r * m + j] * cq }
            variances[j] = s
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
        return Model(mean: mean, components: comps, explainedVariance: order.map { variances[$0] }, count: m)
    }

    /// Projects rows onto the components: N x m, row-major.
    public static func transform(_ x: Embeddings, _ model: Model) -> [Float] {
        let n = x.count, d = x.dimensions, m = model.count
        var out = [Float](repeating: 0, count: n * m)
        for i in 0..<n {
            for j in 0..<m {
                var s: Float = 0
                for k in 0..<d { s += (x.values[i * d + k] - model.mean[k]) * model.components[j * d + k] }
                out[i * m + j] = s
            }
        }
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
