import Foundation
import MedFoundation

/// k-means with k-means++ seeding (Arthur & Vassilvitskii 2007) and Lloyd iterations, best of several seeded
/// restarts (lowest inertia), as scikit-learn's `KMeans(init="k-means++", n_init=restarts)`.
public enum KMeans {
    public struct Model: Sendable {
        /// k x D, row-major.
        public var centroids: [Float]
        public var labels: [Int]
        /// Sum of squared distances of rows to their centroid.
        public var inertia: Double
        public var iterations: Int
        public var k: Int
    }

    /// - tolerance: stop when the summed squared centroid shift falls below `tolerance` x the mean per-feature variance.
    public static func fit(_ x: Embeddings, k: Int, restarts: Int = 10, maxIterations: Int = 300, tolerance: Double = 1e-4,
                           seed: UInt64 = 0) throws -> Model {
        guard k >= 1, k <= x.count else {
            throw SelectionError.invalidInput("\(k) clusters were asked for, but there are only \(x.count) rows; choose a number of clusters between 1 and \(x.count)")
        }
        guard restarts >= 1 else { throw SelectionError.invalidInput("k-means needs at least one restart") }
        let d = x.dimensions, n = x.count
        // Mean per-feature variance, for a scale-free tolerance.
        var mean = [Double](repeating: 0, count: d), sq = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { let v = Double(x.values[i * d + j]); mean[j] += v; sq[j] += v * v } }
        let variance = (0..<d).map { sq[$0] / Double(n) - (mean[$0] / Double(n)) * (mean[$0] / Double(n)) }.reduce(0, +) / Double(d)
        let tol = tolerance * variance
        var g = SplitMix64(seed: seed)
        var best: Model? = nil
        for _ in 0..<restarts {
            var centroids = plusPlus(x, k: k, generator: &g)
            var labels = [Int](repeating: 0, count: n)
            var inertia = 0.0
            var iterations = 0
            for it in 1...maxIterations {
                iterations = it
                inertia = assign(x, centroids: centroids, k: k, labels: &labels)
                var next = [Float](repeating: 0, count: k * d)
                var counts = [Int](repeating: 0, count: k)
                for i in 0..<n {
                    let c = labels[i]
                    counts[c] += 1
                    for j in 0..<d { next[c * d + j] += x.values[i * d + j] }
                }
                for c in 0..<k {
                    if counts[c] == 0 {   // empty cluster: restart it at the row farthest from its centroid
                        var far = 0, farD: Float = -1
                        for i in 0..<n {
                            var s: Float = 0
                            for j in 0..<d { let t = x.values[i * d + j] - centroids[labels[i] * d + j]; s += t * t }
                            if s > farD { farD = s; far = i }
                        }
                        for j in 0..<d { next[c * d + j] = x.values[far * d + j] }
                    } else {
                        for j in 0..<d { next[c * d + j] /= Float(counts[c]) }
                    }
                }
                var shift = 0.0
                for t in 0..<(k * d) { let v = Double(next[t] - centroids[t]); shift += v * v }
                centroids = next
                if shift <= tol { break }
            }
            inertia = assign(x, centroids: centroids, k: k, labels: &labels)
            if best == nil || inertia < best!.inertia {
                best = Model(centroids: centroids, labels: labels, inertia: inertia, iterations: iterations, k: k)
            }
        }
        return best!
    }

    /// k-means++: first centre uniform, each next one drawn with probability proportional to D(x)^2, greedily best of
    /// 2 + ln k candidates (scikit-learn's variant).
    static func plusPlus(_ x: Embeddings, k: Int, generator g: inout SplitMix64) -> [Float] {
        let n = x.count, d = x.dimensions
        var centroids = [Float](repeating: 0, count: k * d)
        let first = Int.random(in: 0..<n, using: &g)
        for j in 0..<d { centroids[j] = x.values[first * d + j] }
        var closest = (0..<n).map { i -> Double in
            var s: Double = 0
            for j in 0..<d { let t = Double(x.values[i * d + j] - centroids[j]); s += t * t }
            return s
        }
        let trials = 2 + Int(log(Double(k)))
        for c in 1..<max(1, k) where c < k {
            let total = closest.reduce(0, +)
            var bestCandidate = 0, bestPotential = Double.infinity
            var bestClosest = closest
            for _ in 0..<trials {
                var r = Double.random(in: 0..<max(total, .leastNormalMagnitude), using: &g)
                var cand = n - 1
                for i in 0..<n { r -= closest[i]; if r < 0 { cand = i; break } }
                var newClosest = closest
                for i in 0..<n {
                    var s: Double = 0
                    for j in 0..<d { let t = Double(x.values[i * d + j] - x.values[cand * d + j]); s += t * t }
                    if s < newClosest[i] { newClosest[i] = s }
                }
                let potential = newClosest.reduce(0, +)
                if potential < bestPotential { bestPotential = potential; bestCandidate = cand; bestClosest = newClosest }
            }
            closest = bestClosest
            for j in 0..<d { centroids[c * d + j] = x.values[bestCandidate * d + j] }
        }
        return centroids
    }

    /// Assigns each row to its nearest centroid (one SGEMM per block); returns the inertia.
    @discardableResult
    static func assign(_ x: Embeddings, centroids: [Float], k: Int, labels: inout [Int]) -> Double {
        let c = try! Embeddings(values: centroids, count: k, dimensions: x.dimensions)
        var inertia = 0.0
        BlockedDistances.forEachBlock(queries: x, targets: c) { first, block in
            let rows = block.count / k
            for r in 0..<rows {
                var best = 0
                var bd = Float.infinity
                for t in 0..<k where block[r * k + t] < bd { bd = block[r * k + t]; best = t }
                labels[first + r] = best
                inertia += Double(bd)
            }
        }
        return inertia
    }
}

/// Mean silhouette coefficient (Rousseeuw 1987): s(i) = (b − a) / max(a, b), a = mean distance to the other members
/// of i's cluster, b = the smallest mean distance to another cluster; s = 0 for singletons. Exact, through blocked
/// distances; above `sampleSize` rows a seeded sample is scored within itself (as scikit-learn's `sample_size`).
public enum Silhouette {
    public static func score(_ x: Embeddings, labels: [Int], sampleSize: Int = 10_000, seed: UInt64 = 0) throws -> Double {
        guard labels.count == x.count else { throw SelectionError.invalidInput("\(labels.count) labels for \(x.count) rows") }
        let k = (labels.max() ?? 0) + 1
        guard Set(labels).count >= 2, Set(labels).count < x.count else {
            throw SelectionError.invalidInput("the silhouette needs 2 to N-1 clusters")
        }
        var rows = Array(0..<x.count)
        if x.count > sampleSize {
            var g = SplitMix64(seed: seed)
            rows.shuffle(using: &g)
            rows = Array(rows.prefix(sampleSize)).sorted()
        }
        let sub = rows.count == x.count ? x : x.rows(rows)
        let lab = rows.map { labels[$0] }
        var sizes = [Int](repeating: 0, count: k)
        for l in lab { sizes[l] += 1 }
        var total = 0.0
        let n = sub.count
        BlockedDistances.forEachBlock(queries: sub, targets: sub, blockRows: 512) { first, block in
            let m = block.count / n
            for r in 0..<m {
                let i = first + r
                var sums = [Double](repeating: 0, count: k)
                for j in 0..<n { sums[lab[j]] += Double(block[r * n + j]).squareRoot() }
                let own = lab[i]
                if sizes[own] <= 1 { continue }   // singleton: s = 0
                let a = sums[own] / Double(sizes[own] - 1)
                var b = Double.infinity
                for c in 0..<k where c != own && sizes[c] > 0 { b = min(b, sums[c] / Double(sizes[c])) }
                total += (b - a) / max(a, b)
            }
        }
        return total / Double(n)
    }
}
