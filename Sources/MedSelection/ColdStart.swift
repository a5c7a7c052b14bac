import Foundation
import MedCompute
import MedFoundation

/// Embedding cold start (Levy & Assayag 2026): select without any labels from the geometry of a 2-D t-SNE map.
///
/// 1. t-SNE of the pool to 2-D (``TSNE``).
/// 2. k-means on the map for every k in `clusterRange` (seeded restarts, each scored by its silhouette); keep the k
///    and partition with the largest mean silhouette. The default range is 2...min(budget, 50), as in the method's
///    reference implementation: a budget can cover at most `budget` clusters, and a fixed range (2...10) left small
///    modes unpicked when the budget could have covered them.
/// 3. One medoid per cluster (the member with the smallest summed distance to the others, in the map).
/// 4. Modes the map merged: farthest-point sampling in the embedding space from the picks so far, for as long as the
///    farthest row lies more than four times the pool's typical neighbour distance (median distance to the 10th
///    nearest neighbour) from every pick. t-SNE draws large clusters
///    wide and squeezes small ones, so two small modes can sit closer in the map than a large cluster's members do
///    (a 20-point blob next to a 40-point one, in the test below), and k-means and the silhouette then keep them
///    together; in the embedding space they keep their distance.
/// 5. The rest of the budget is split over clusters in proportion to their sizes (largest remainder; a cluster gets at
///    most its size), and each cluster's share is filled by farthest-point sampling inside it (in the map), starting
///    from its picks so far.
/// 6. If the budget cannot hold every medoid and mode pick, the budget's worth of them in farthest-point order (in the
///    embedding space, from the largest cluster's medoid); if clusters run out of members, a global farthest-point
///    top-up over the map fills the budget.
public enum ColdStart {
    public struct Result: Sendable {
        public var picks: [Int]
        /// The cluster of each pick (-1 for the global top-up).
        public var clusters: [Int]
        public var k: Int
        public var silhouettes: [(k: Int, score: Double)]
        /// N x 2 t-SNE map.
        public var map: [Float]
        /// The picks of step 4 (modes the map merged), a subset of `picks`.
        public var modePicks: [Int] = []
    }

    /// The default range of k for a budget: 2...min(budget, 50) (2...2 for a budget of 1 or 2).
    public static func defaultClusterRange(budget: Int) -> ClosedRange<Int> { 2...max(2, min(budget, 50)) }

    public static func select(_ pool: Embeddings, budget: Int, clusterRange range: ClosedRange<Int>? = nil, restarts: Int = 8,
                              tsne: TSNE.Options = TSNE.Options(), map precomputed: [Float]? = nil, seed: UInt64 = 0) throws -> Result {
        let n = pool.count
        guard budget >= 1, budget <= n else { throw SelectionError.invalidInput("budget \(budget) is outside 1...\(n)") }
        let clusterRange = range ?? defaultClusterRange(budget: budget)
        guard clusterRange.lowerBound >= 2 else { throw SelectionError.invalidInput("the cluster range must start at 2 or more") }
        guard clusterRange.lowerBound < n else {
            throw SelectionError.invalidInput("the cluster range \(clusterRange) needs more than \(clusterRange.lowerBound) rows; the pool has \(n)")
        }
        var options = tsne
        options.seed = seed
        if n - 1 <= Int(3 * options.perplexity) { options.perplexity = max(2, Double(n - 1) / 3.5) }
        let map = try precomputed ?? TSNE.embed(pool, options: options)
        let points = try Embeddings(values: map, count: n, dimensions: 2)
        var bestK = clusterRange.lowerBound, bestS = -Double.infinity, bestLabels: [Int] = []
        var silhouettes: [(Int, Double)] = []
        for k in clusterRange where k < n {
            // Each restart is scored by its silhouette, not its inertia: on t-SNE maps a large cluster is drawn wide,
            // and splitting it can lower the inertia more than separating two small neighbouring clusters, although
            // the silhouette (the criterion that chooses k) clearly prefers the latter.
            var bestOfK = -Double.infinity, labelsOfK: [Int] = []
            for r in 0..<restarts {
                let model = try KMeans.fit(points, k: k, restarts: 1, seed: seed &+ UInt64(r) &* 0x9e3779b97f4a7c15)
                let s = try Silhouette.score(points, labels: model.labels, seed: seed)
                if s > bestOfK { bestOfK = s; labelsOfK = model.labels }
            }
            silhouettes.append((k, bestOfK))
            if bestOfK > bestS { bestS = bestOfK; bestK = k; bestLabels = labelsOfK }
        }
        var members = [[Int]](repeating: [], count: bestK)
        for (i, c) in bestLabels.enumerated() { members[c].append(i) }
        func d2(_ a: Int, _ b: Int) -> Float {
            let dx = map[2 * a] - map[2 * b], dy = map[2 * a + 1] - map[2 * b + 1]
            return dx * dx + dy * dy
        }
        let medoids = members.map { rows -> Int in
            var best = rows[0], bestSum = Float.infinity
            for i in rows {
                var s: Float = 0
                for j in rows { s += d2(i, j).squareRoot() }
                if s < bestSum { bestSum = s; best = i }
            }
            return best
        }
        let bySize = (0..<bestK).sorted { (a: Int, b: Int) -> Bool in
            let (sa, sb) = (members[a].count, members[b].count)
            return sa != sb ? sa > sb : a < b
        }
        var picks: [Int] = [], clusters: [Int] = []
        // Modes the map merged: farthest rows in the embedding space, while they lie beyond twice a typical radius.
        let modes = try modePicks(pool, medoids: medoids, budget: budget, seed: seed)
        if budget <= bestK + modes.count {
            // No room for all medoids and modes: the budget's worth of them, spread out (farthest-point order in the
            // embedding space from the largest cluster's medoid).
            let candidates = bySize.map { medoids[$0] } + modes
            for i in farthestFirst(pool, candidates: candidates, count: budget) { picks.append(i); clusters.append(bestLabels[i]) }
            return Result(picks: picks, clusters: clusters, k: bestK, silhouettes: silhouettes.map { (k: $0.0, score: $0.1) }, map: map,
                          modePicks: modes.filter(picks.contains))
        }
        var chosen = medoids.map { [$0] }
        for i in modes { chosen[bestLabels[i]].append(i) }
        // Largest-remainder split of the remaining budget, capped by cluster sizes (caps redistributed).
        var quota = chosen.map(\.count)
        var remaining = budget - quota.reduce(0, +)
        while remaining > 0 {
            let open = (0..<bestK).filter { quota[$0] < members[$0].count }
            if open.isEmpty { break }
            let total = open.reduce(0) { $0 + members[$1].count }
            let exact = open.map { Double(members[$0].count) * Double(remaining) / Double(total) }
            var give = exact.map { Int($0.rounded(.down)) }
            var left = remaining - give.reduce(0, +)
            let byRemainder = open.indices.sorted { (a: Int, b: Int) -> Bool in
                let ra = exact[a] - Double(give[a]), rb = exact[b] - Double(give[b])
                return ra != rb ? ra > rb : a < b
            }
            for t in byRemainder where left > 0 {
                give[t] += 1; left -= 1
            }
            var used = 0
            for (t, c) in open.enumerated() {
                let g = min(give[t], members[c].count - quota[c])
                quota[c] += g; used += g
            }
            if used == 0 { break }
            remaining -= used
        }
        var taken = Set<Int>()
        for c in bySize {
            var picked = chosen[c]
            var minD = members[c].map { i in picked.map { d2(i, $0) }.min()! }
            while picked.count < quota[c] {
                var best = -1, bestD: Float = -1
                for (t, i) in members[c].enumerated() where !picked.contains(i) && minD[t] > bestD { bestD = minD[t]; best = t }
                if best < 0 { break }
                let i = members[c][best]
                picked.append(i)
                for (t, j) in members[c].enumerated() { minD[t] = min(minD[t], d2(j, i)) }
            }
            for i in picked { picks.append(i); clusters.append(c); taken.insert(i) }
        }
        if picks.count < budget {   // global farthest-point top-up
            var minD = (0..<n).map { i in picks.map { d2(i, $0) }.min() ?? .infinity }
            while picks.count < budget {
                var best = -1, bestD: Float = -1
                for i in 0..<n where !taken.contains(i) && minD[i] > bestD { bestD = minD[i]; best = i }
                picks.append(best); clusters.append(-1); taken.insert(best)
                for i in 0..<n { minD[i] = min(minD[i], d2(i, best)) }
            }
        }
        return Result(picks: picks, clusters: clusters, k: bestK, silhouettes: silhouettes.map { (k: $0.0, score: $0.1) }, map: map,
                      modePicks: modes)
    }

    /// `count` of `candidates`: the first, then repeatedly the one farthest (embedding space) from those taken.
    static func farthestFirst(_ pool: Embeddings, candidates: [Int], count: Int) -> [Int] {
        guard let first = candidates.first, count > 0 else { return [] }
        var taken = [first]
        var minD = candidates.map { pool.distance2(first, $0) }
        while taken.count < min(count, candidates.count) {
            var best = -1, bestD: Float = -1
            for (t, c) in candidates.enumerated() where !taken.contains(c) && minD[t] > bestD { bestD = minD[t]; best = t }
            taken.append(candidates[best])
            for (t, c) in candidates.enumerated() { minD[t] = min(minD[t], pool.distance2(candidates[best], c)) }
        }
        return taken
    }

    /// Step 4: up to `budget` rows, each the farthest (in the embedding space) from the medoids and the rows taken
    /// before it, taken while that distance exceeds four times the pool's typical neighbour distance (the median, over
    /// up to 1,000 rows drawn with `seed`, of the distance to the 10th nearest neighbour): such a row and its
    /// neighbourhood hold no pick and lie well apart from every pick, a mode of their own.
    static func modePicks(_ pool: Embeddings, medoids: [Int], budget: Int, seed: UInt64 = 0) throws -> [Int] {
        let n = pool.count
        guard budget > 0, n > 2 else { return [] }
        func dist2(_ a: Int, _ b: Int) -> Float { pool.distance2(a, b) }
        var g = SplitMix64(seed: seed)
        var sample = Array(0..<n)
        if n > 1000 { sample.shuffle(using: &g); sample = Array(sample.prefix(1000)).sorted() }
        let k = min(10, n - 1)
        let knn = try NearestNeighbors.exact(queries: pool.rows(sample), targets: pool, k: k + 1)   // itself first
        let scales = (0..<sample.count).map { knn.distances[$0 * (k + 1) + k] }.sorted()
        let threshold = 4 * scales[scales.count / 2]
        var minD = (0..<pool.count).map { i in medoids.map { dist2(i, $0) }.min()! }
        var picks: [Int] = []
        while picks.count < budget {
            var best = -1, bestD: Float = -1
            for i in 0..<pool.count where minD[i] > bestD { bestD = minD[i]; best = i }
            guard best >= 0, bestD.squareRoot() > threshold else { break }
            picks.append(best)
            for i in 0..<pool.count { minD[i] = min(minD[i], dist2(i, best)) }
        }
        return picks
    }
}
