import Foundation

/// Embedding cold start (Levy & Assayag 2026): select without any labels from the geometry of a 2-D t-SNE map.
///
/// 1. t-SNE of the pool to 2-D (``TSNE``).
/// 2. k-means on the map for every k in `clusterRange` (seeded restarts, each scored by its silhouette); keep the k
///    and partition with the largest mean silhouette.
/// 3. One medoid per cluster (the member with the smallest summed distance to the others, in the map).
/// 4. The rest of the budget is split over clusters in proportion to their sizes (largest remainder; a cluster gets at
///    most its size), and each cluster's share is filled by farthest-point sampling inside it, starting from its medoid.
/// 5. If the budget is smaller than k, the medoids of the largest clusters are kept; if clusters run out of members,
///    a global farthest-point top-up over the map fills the budget.
public enum ColdStart {
    public struct Result: Sendable {
        public var picks: [Int]
        /// The cluster of each pick (-1 for the global top-up).
        public var clusters: [Int]
        public var k: Int
        public var silhouettes: [(k: Int, score: Double)]
        /// N x 2 t-SNE map.
        public var map: [Float]
    }

    public static func select(_ pool: Embeddings, budget: Int, clusterRange: ClosedRange<Int> = 2...10, restarts: Int = 8,
                              tsne: TSNE.Options = TSNE.Options(), map precomputed: [Float]? = nil, seed: UInt64 = 0) throws -> Result {
        let n = pool.count
        guard budget >= 1, budget <= n else { throw SelectionError.invalidInput("budget \(budget) is outside 1...\(n)") }
        guard clusterRange.lowerBound >= 2 else { throw SelectionError.invalidInput("the cluster range must start at 2 or more") }
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
        if budget <= bestK {
            for c in bySize.prefix(budget) { picks.append(medoids[c]); clusters.append(c) }
            return Result(picks: picks, clusters: clusters, k: bestK, silhouettes: silhouettes.map { (k: $0.0, score: $0.1) }, map: map)
        }
        // Largest-remainder split of the remaining budget, capped by cluster sizes (caps redistributed).
        var quota = [Int](repeating: 1, count: bestK)
        var remaining = budget - bestK
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
            var chosen = [medoids[c]]
            var minD = members[c].map { d2($0, medoids[c]) }
            while chosen.count < quota[c] {
                var best = -1, bestD: Float = -1
                for (t, i) in members[c].enumerated() where !chosen.contains(i) && minD[t] > bestD { bestD = minD[t]; best = t }
                if best < 0 { break }
                let i = members[c][best]
                chosen.append(i)
                for (t, j) in members[c].enumerated() { minD[t] = min(minD[t], d2(j, i)) }
            }
            for i in chosen { picks.append(i); clusters.append(c); taken.insert(i) }
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
        return Result(picks: picks, clusters: clusters, k: bestK, silhouettes: silhouettes.map { (k: $0.0, score: $0.1) }, map: map)
    }
}
