import Foundation

/// TypiClust (Hacohen, Dekel & Weinshall, "Active Learning on a Budget: Opposite Strategies Suit High and Low
/// Budgets", ICML 2022). The pool is clustered with k-means into min(|L| + B, maxClusters) clusters; each step takes
/// the cluster with the fewest labeled-or-picked members (ties: the largest) and picks its most typical unpicked member,
/// typicality(x) = 1 / mean distance to its min(20, cluster size − 1) nearest neighbours inside the cluster.
public enum TypiClust {
    public struct Pick: Sendable, Equatable {
        public var index: Int
        public var cluster: Int
        public var typicality: Float
    }

    public static func select(_ pool: Embeddings, budget: Int, labeled: [Int] = [], neighbours: Int = 20,
                              maxClusters: Int = 500, seed: UInt64 = 0) throws -> [Pick] {
        let n = pool.count
        let labeledSet = Set(labeled)
        guard budget >= 1, budget + labeledSet.count <= n else {
            throw SelectionError.invalidInput("budget \(budget) with \(labeledSet.count) labeled exceeds the pool of \(n)")
        }
        let k = min(labeledSet.count + budget, maxClusters, n)
        let model = try KMeans.fit(pool, k: k, restarts: 3, seed: seed)
        var members = [[Int]](repeating: [], count: k)
        for (i, c) in model.labels.enumerated() { members[c].append(i) }
        var covered = [Int](repeating: 0, count: k)
        for i in labeledSet { covered[model.labels[i]] += 1 }
        var taken = labeledSet
        var typicality: [Int: [Float]] = [:]
        var picks: [Pick] = []
        while picks.count < budget {
            // Fewest labeled-or-picked members first, then the largest cluster, then the lowest index.
            var chosen = -1
            for c in 0..<k where members[c].contains(where: { !taken.contains($0) }) {
                if chosen < 0 { chosen = c; continue }
                let (a, b) = (covered[c], covered[chosen])
                if a < b || (a == b && members[c].count > members[chosen].count) { chosen = c }
            }
            guard chosen >= 0 else { break }
            let c = chosen
            if typicality[c] == nil {
                let rows = members[c]
                if rows.count == 1 {
                    typicality[c] = [1]
                } else {
                    let sub = pool.rows(rows)
                    let kk = min(neighbours, rows.count - 1)
                    let nn = try NearestNeighbors.exact(queries: sub, targets: sub, k: kk, excludeSelf: true)
                    typicality[c] = (0..<rows.count).map { r in
                        var s: Float = 0
                        for t in 0..<kk { s += nn.distances[r * kk + t] }
                        return 1 / (s / Float(kk) + 1e-12)
                    }
                }
            }
            let rows = members[c], typ = typicality[c]!
            var best = -1
            for (r, i) in rows.enumerated() where !taken.contains(i) && (best < 0 || typ[r] > typ[best]) { best = r }
            picks.append(Pick(index: rows[best], cluster: c, typicality: typ[best]))
            taken.insert(rows[best])
            covered[c] += 1
        }
        return picks
    }
}

/// ProbCover (Yehuda, Dekel, Hacohen & Weinshall, "Active Learning Through a Covering Lens", NeurIPS 2022).
/// Points within distance δ of each other are joined; greedily pick the point whose δ-ball holds the most points not yet
/// covered (labeled points cover their balls from the start), then mark its ball covered. When every point is covered,
/// further picks gain 0 and follow row order among the unpicked.
/// δ: given, or the largest candidate whose ball purity — the share of points whose δ-ball holds only points of their
/// own k-means cluster — is at least `purity` (0.95 in the paper), with k chosen by the silhouette over 2...10.
public enum ProbCover {
    public struct Result: Sendable {
        public var picks: [Int]
        /// Points newly covered by each pick.
        public var gains: [Int]
        public var delta: Float
        public var coverage: Double
    }

    public static func select(_ pool: Embeddings, budget: Int, labeled: [Int] = [], delta: Float? = nil, purity: Double = 0.95,
                              seed: UInt64 = 0) throws -> Result {
        let n = pool.count
        guard budget >= 1, budget + Set(labeled).count <= n else {
            throw SelectionError.invalidInput("budget \(budget) with \(labeled.count) labeled exceeds the pool of \(n)")
        }
        let radius = try delta ?? estimateDelta(pool, purity: purity, seed: seed)
        guard radius > 0, radius.isFinite else { throw SelectionError.invalidInput("delta must be positive, got \(radius)") }
        let graph = neighbourhoods(pool, delta: radius)
        var covered = [Bool](repeating: false, count: n)
        var taken = [Bool](repeating: false, count: n)
        for l in Set(labeled) { taken[l] = true; for j in graph[l] { covered[Int(j)] = true } }
        var picks: [Int] = [], gains: [Int] = []
        while picks.count < budget {
            var best = -1, bestGain = -1
            for i in 0..<n where !taken[i] {
                var g = 0
                for j in graph[i] where !covered[Int(j)] { g += 1 }
                if g > bestGain { bestGain = g; best = i }
            }
            if best < 0 { break }
            taken[best] = true
            for j in graph[best] { covered[Int(j)] = true }
            picks.append(best); gains.append(bestGain)
        }
        return Result(picks: picks, gains: gains, delta: radius, coverage: Double(covered.filter { $0 }.count) / Double(n))
    }

    /// δ-neighbourhoods (self included), through blocked distances.
    static func neighbourhoods(_ pool: Embeddings, delta: Float) -> [[Int32]] {
        let n = pool.count
        let d2 = delta * delta
        var graph = [[Int32]](repeating: [], count: n)
        BlockedDistances.forEachBlock(queries: pool, targets: pool) { first, block in
            for r in 0..<(block.count / n) {
                var row: [Int32] = []
                for j in 0..<n where block[r * n + j] <= d2 || j == first + r { row.append(Int32(j)) }
                graph[first + r] = row
            }
        }
        return graph
    }

    static func estimateDelta(_ pool: Embeddings, purity: Double, seed: UInt64) throws -> Float {
        let n = pool.count
        var bestK = 2, bestS = -Double.infinity
        for k in 2...min(10, max(2, n - 1)) {
            let m = try KMeans.fit(pool, k: k, restarts: 2, seed: seed)
            let s = try Silhouette.score(pool, labels: m.labels, sampleSize: 3000, seed: seed)
            if s > bestS { bestS = s; bestK = k }
        }
        let labels = try KMeans.fit(pool, k: bestK, restarts: 3, seed: seed).labels
        // For each point: distance to the nearest point of another cluster; a δ-ball is pure iff δ < that distance.
        var nearestOther = [Float](repeating: .infinity, count: n)
        BlockedDistances.forEachBlock(queries: pool, targets: pool) { first, block in
            for r in 0..<(block.count / n) {
                let i = first + r
                var m = Float.infinity
                for j in 0..<n where labels[j] != labels[i] { m = min(m, block[r * n + j]) }
                nearestOther[i] = m.squareRoot()
            }
        }
        // Largest δ with purity >= target: the (1 - purity) quantile of nearestOther, just below it.
        let sorted = nearestOther.sorted()
        let idx = min(n - 1, max(0, Int((1 - purity) * Double(n))))
        return max(sorted[idx] * 0.999, 1e-6)
    }
}
