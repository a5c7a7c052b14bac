import Foundation
import MedCompute
import MedFoundation

/// L2-regularised multinomial logistic regression on standardised features (binary when there are two classes),
/// fitted by full-batch gradient descent with Nesterov momentum: small, deterministic, and enough to ask "can these
/// sites be told apart from their embeddings?" with cross-validation.
public struct LogisticRegression: Sendable {
    public var classes: Int
    public var dimensions: Int
    /// (d + 1) x C, the last row the intercepts.
    public var weights: [Float]
    var mean: [Float], scale: [Float]

    /// Fits rows of `x` (n x d) to `labels` in 0..<classes.
    public init(x: [Float], labels: [Int], classes: Int, dimensions d: Int, lambda: Float = 1e-3, iterations: Int = 300) {
        let n = labels.count
        self.classes = classes; dimensions = d
        mean = [Float](repeating: 0, count: d); scale = [Float](repeating: 1, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += x[i * d + j] } }
        for j in 0..<d { mean[j] /= Float(n) }
        var sq = [Float](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { let t = x[i * d + j] - mean[j]; sq[j] += t * t } }
        for j in 0..<d { let s = (sq[j] / Float(max(1, n - 1))).squareRoot(); scale[j] = s > 1e-12 ? 1 / s : 1 }
        let xs = Self.standardised(x, n: n, d: d, mean: mean, scale: scale)   // n x (d + 1), last column 1
        let c = classes, d1 = d + 1
        var w = [Float](repeating: 0, count: d1 * c), velocity = w
        // Step 1/L with L = (largest squared row norm)/... : for standardised data ‖x‖² ≈ d + 1, softmax curvature ≤ 1/2.
        let step = Float(1) / (0.5 * Float(d1) + lambda)
        var logits = [Float](repeating: 0, count: n * c), grad = [Float](repeating: 0, count: d1 * c)
        for it in 0..<iterations {
            let momentum = Float(it) / Float(it + 3)
            let look = zip(w, velocity).map { $0 + momentum * $1 }
            Self.logits(xs, look, n: n, d1: d1, c: c, into: &logits)
            // P − Y, row by row.
            Self.softmaxRows(&logits, n: n, c: c)
            for i in 0..<n { logits[i * c + labels[i]] -= 1 }
            xs.withUnsafeBufferPointer { xp in logits.withUnsafeBufferPointer { rp in grad.withUnsafeMutableBufferPointer { gp in
                Compute.sgemm(transA: true, m: d1, n: c, k: n, alpha: 1 / Float(n), a: xp.baseAddress!, lda: d1, b: rp.baseAddress!, ldb: c,
                              c: gp.baseAddress!, ldc: c)
            } } }
            for t in 0..<(d1 * c) {
                let g = grad[t] + (t < d * c ? lambda * look[t] : 0)   // no penalty on the intercepts
                let next = look[t] - step * g
                velocity[t] = next - w[t]
                w[t] = next
            }
        }
        weights = w
    }

    static func standardised(_ x: [Float], n: Int, d: Int, mean: [Float], scale: [Float]) -> [Float] {
        var out = [Float](repeating: 1, count: n * (d + 1))
        for i in 0..<n { for j in 0..<d { out[i * (d + 1) + j] = (x[i * d + j] - mean[j]) * scale[j] } }
        return out
    }

    static func logits(_ xs: [Float], _ w: [Float], n: Int, d1: Int, c: Int, into out: inout [Float]) {
        xs.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer { op in
            Compute.sgemm(m: n, n: c, k: d1, a: xp.baseAddress!, lda: d1, b: wp.baseAddress!, ldb: c, c: op.baseAddress!, ldc: c)
        } } }
    }

    /// Class probabilities of rows (n x C).
    public func probabilities(_ x: [Float]) -> [Float] {
        let n = x.count / dimensions, c = classes, d1 = dimensions + 1
        let xs = Self.standardised(x, n: n, d: dimensions, mean: mean, scale: scale)
        var out = [Float](repeating: 0, count: n * c)
        Self.logits(xs, weights, n: n, d1: d1, c: c, into: &out)
        Self.softmaxRows(&out, n: n, c: c)
        return out
    }

    /// Softmax over the classes of each row of an n x C matrix, in place (the row maximum subtracted first).
    static func softmaxRows(_ v: inout [Float], n: Int, c: Int) {
        for i in 0..<n {
            var mx = -Float.infinity
            for k in 0..<c { mx = max(mx, v[i * c + k]) }
            var s: Float = 0
            for k in 0..<c { let e = exp(v[i * c + k] - mx); v[i * c + k] = e; s += e }
            for k in 0..<c { v[i * c + k] /= s }
        }
    }
}

/// Cross-validated domain classification: how well a classifier tells sites apart from embeddings.
public enum DomainClassifier {
    /// Folds stratified by label: rows of each class dealt round-robin after a seeded shuffle.
    static func folds(_ labels: [Int], count k: Int, seed: UInt64) -> [Int] {
        var g = SplitMix64(seed: seed)
        var fold = [Int](repeating: 0, count: labels.count)
        for c in Set(labels).sorted() {
            var rows = labels.indices.filter { labels[$0] == c }
            rows.shuffle(using: &g)
            for (t, i) in rows.enumerated() { fold[i] = t % k }
        }
        return fold
    }

    /// AUC of "site" against "source" from out-of-fold probabilities (`folds`-fold cross-validation); 0.5 means the
    /// two cannot be told apart, 1 that they separate perfectly.
    public static func auc(source: [Float], site: [Float], dimensions d: Int, folds k: Int = 5, seed: UInt64 = 0) throws -> Double {
        let ns = source.count / d, nt = site.count / d
        guard ns >= 2, nt >= 2 else { throw AnalysisError.invalidInput("the domain classifier needs at least 2 cases on each side; got \(ns) and \(nt)") }
        let labels = [Int](repeating: 0, count: ns) + [Int](repeating: 1, count: nt)
        let scores = try outOfFold(source + site, labels: labels, classes: 2, dimensions: d, folds: min(k, ns, nt), seed: seed)
        let p = (0..<labels.count).map { Double(scores[$0 * 2 + 1]) }
        return Stats.auc(positive: Array(p[ns...]), negative: Array(p[..<ns]))
    }

    /// Confusion matrix (true site x predicted site, counts) of a multinomial classifier over all sites, from
    /// out-of-fold predictions.
    public static func confusion(_ x: [Float], labels: [Int], classes: Int, dimensions d: Int, folds k: Int = 5, seed: UInt64 = 0) throws -> [[Int]] {
        let smallest = (0..<classes).map { c in labels.filter { $0 == c }.count }.min() ?? 0
        guard smallest >= 2 else { throw AnalysisError.invalidInput("every site needs at least 2 cases for the site classifier") }
        let p = try outOfFold(x, labels: labels, classes: classes, dimensions: d, folds: min(k, smallest), seed: seed)
        var matrix = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        for i in 0..<labels.count {
            var best = 0
            for c in 1..<classes where p[i * classes + c] > p[i * classes + best] { best = c }
            matrix[labels[i]][best] += 1
        }
        return matrix
    }

    /// Class probabilities of every row from a model fitted without its fold.
    static func outOfFold(_ x: [Float], labels: [Int], classes: Int, dimensions d: Int, folds k: Int, seed: UInt64) throws -> [Float] {
        let fold = folds(labels, count: max(2, k), seed: seed)
        var out = [Float](repeating: 0, count: labels.count * classes)
        for f in 0..<max(2, k) {
            let train = labels.indices.filter { fold[$0] != f }, test = labels.indices.filter { fold[$0] == f }
            guard !test.isEmpty else { continue }
            let model = LogisticRegression(x: train.flatMap { x[($0 * d)..<(($0 + 1) * d)] }, labels: train.map { labels[$0] }, classes: classes,
                                           dimensions: d)
            let p = model.probabilities(test.flatMap { x[($0 * d)..<(($0 + 1) * d)] })
            for (t, i) in test.enumerated() { for c in 0..<classes { out[i * classes + c] = p[t * classes + c] } }
        }
        return out
    }
}
