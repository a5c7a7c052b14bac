import Foundation

/// Fréchet distance between Gaussian fits of two samples (the 2-Wasserstein distance between the Gaussians, as FID
/// computes it): ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½).
///
/// A covariance estimated from fewer rows than dimensions is singular and its estimate noisy; such a side's
/// covariance is shrunk towards a multiple of the identity with the Ledoit-Wolf weight (Ledoit & Wolf 2004), and the
/// result says so (`shrunk`). The matrix square roots come from symmetric eigen-decompositions (cyclic Jacobi, in
/// Float64).
public enum Frechet {
    public struct Result: Sendable, Equatable, Codable {
        public var distance: Double
        /// Whether either covariance was shrunk (that side had no more rows than dimensions).
        public var shrunk: Bool
    }

    public static func distance(_ x: [Float], _ y: [Float], dimensions d: Int) throws -> Result {
        let n = x.count / d, m = y.count / d
        guard n >= 2, m >= 2 else { throw AnalysisError.invalidInput("the Fréchet distance needs at least 2 rows on each side; got \(n) and \(m)") }
        let (mx, cx, sx) = gaussian(x, d: d), (my, cy, sy) = gaussian(y, d: d)
        return Result(distance: distance(mean1: mx, covariance1: cx, mean2: my, covariance2: cy, dimensions: d), shrunk: sx || sy)
    }

    /// The closed form for given means and covariances (d x d, row-major).
    public static func distance(mean1: [Double], covariance1 c1: [Double], mean2: [Double], covariance2 c2: [Double], dimensions d: Int) -> Double {
        var meanTerm = 0.0
        for j in 0..<d { let t = mean1[j] - mean2[j]; meanTerm += t * t }
        // S = Σ₁^½; M = S Σ₂ S; Tr(M^½) = Σ √λ(M).
        let (values1, vectors1) = symmetricEigen(c1, d)
        var s = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for j in 0..<d {
            var v = 0.0
            for k in 0..<d { v += vectors1[i * d + k] * max(0, values1[k]).squareRoot() * vectors1[j * d + k] }
            s[i * d + j] = v
        } }
        let m = multiply(multiply(s, c2, d), s, d)
        let (values, _) = symmetricEigen(m, d)
        let traceSqrt = values.reduce(0.0) { $0 + max(0, $1).squareRoot() }
        var trace = 0.0
        for j in 0..<d { trace += c1[j * d + j] + c2[j * d + j] }
        return max(0, meanTerm + trace - 2 * traceSqrt)
    }

    /// Mean and covariance (n − 1 denominator) of rows; Ledoit-Wolf shrinkage when n <= d.
    static func gaussian(_ x: [Float], d: Int) -> (mean: [Double], covariance: [Double], shrunk: Bool) {
        let n = x.count / d
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(x[i * d + j]) } }
        for j in 0..<d { mean[j] /= Double(n) }
        var cov = [Double](repeating: 0, count: d * d)
        var centred = [Double](repeating: 0, count: d)
        for i in 0..<n {
            for j in 0..<d { centred[j] = Double(x[i * d + j]) - mean[j] }
            for a in 0..<d { let ca = centred[a]; if ca == 0 { continue }; for b in a..<d { cov[a * d + b] += ca * centred[b] } }
        }
        for a in 0..<d { for b in a..<d { cov[a * d + b] /= Double(n - 1); cov[b * d + a] = cov[a * d + b] } }
        guard n <= d else { return (mean, cov, false) }
        // Ledoit-Wolf on the biased covariance S_b = (n−1)/n · S: δ = min(1, Σₖ‖xₖxₖᵀ − S_b‖²_F / n² / ‖S_b − μI‖²_F).
        let biased = cov.map { $0 * Double(n - 1) / Double(n) }
        let mu = (0..<d).reduce(0.0) { $0 + biased[$1 * d + $1] } / Double(d)
        var frob = 0.0, distanceToTarget = 0.0
        for a in 0..<d { for b in 0..<d { let v = biased[a * d + b]; frob += v * v; let t = v - (a == b ? mu : 0); distanceToTarget += t * t } }
        var spread = 0.0
        for i in 0..<n {
            for j in 0..<d { centred[j] = Double(x[i * d + j]) - mean[j] }
            let norm2 = centred.reduce(0.0) { $0 + $1 * $1 }
            var quad = 0.0
            for a in 0..<d { var row = 0.0; for b in 0..<d { row += biased[a * d + b] * centred[b] }; quad += centred[a] * row }
            spread += norm2 * norm2 - 2 * quad + frob
        }
        let delta = distanceToTarget > 0 ? min(1, spread / Double(n * n) / distanceToTarget) : 1
        var shrunk = biased.map { $0 * (1 - delta) }
        for j in 0..<d { shrunk[j * d + j] += delta * mu }
        return (mean, shrunk, true)
    }

    static func multiply(_ a: [Double], _ b: [Double], _ d: Int) -> [Double] {
        var c = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for k in 0..<d { let v = a[i * d + k]; if v == 0 { continue }; for j in 0..<d { c[i * d + j] += v * b[k * d + j] } } }
        return c
    }

    /// Eigenvalues and eigenvectors (column k of the row-major result) of a symmetric d x d matrix, by cyclic Jacobi
    /// rotations until the off-diagonal part is negligible.
    public static func symmetricEigen(_ matrix: [Double], _ d: Int) -> (values: [Double], vectors: [Double]) {
        var a = matrix
        for i in 0..<d { for j in (i + 1)..<max(i + 1, d) { let s = (a[i * d + j] + a[j * d + i]) / 2; a[i * d + j] = s; a[j * d + i] = s } }
        var v = [Double](repeating: 0, count: d * d)
        for i in 0..<d { v[i * d + i] = 1 }
        let scale = max(1e-300, (0..<d).reduce(0.0) { $0 + abs(a[$1 * d + $1]) })
        for _ in 0..<60 {
            var off = 0.0
            for i in 0..<d { for j in (i + 1)..<max(i + 1, d) { off += a[i * d + j] * a[i * d + j] } }
            if off.squareRoot() <= 1e-14 * scale { break }
            for p in 0..<d { for q in (p + 1)..<max(p + 1, d) {
                let apq = a[p * d + q]
                if abs(apq) <= 1e-300 { continue }
                let theta = (a[q * d + q] - a[p * d + p]) / (2 * apq)
                let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<d {
                    let akp = a[k * d + p], akq = a[k * d + q]
                    a[k * d + p] = c * akp - s * akq; a[k * d + q] = s * akp + c * akq
                }
                for k in 0..<d {
                    let apk = a[p * d + k], aqk = a[q * d + k]
                    a[p * d + k] = c * apk - s * aqk; a[q * d + k] = s * apk + c * aqk
                }
                for k in 0..<d {
                    let vkp = v[k * d + p], vkq = v[k * d + q]
                    v[k * d + p] = c * vkp - s * vkq; v[k * d + q] = s * vkp + c * vkq
                }
            } }
        }
        return ((0..<d).map { a[$0 * d + $0] }, v)
    }
}
