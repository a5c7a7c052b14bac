import Foundation
import MedFoundation

/// How k-center greedy chooses its first centre when nothing is labeled yet.
public enum FirstCentre: Sendable, Equatable {
    /// A row drawn with the seeded generator.
    case random(seed: UInt64)
    /// The row nearest to the mean embedding.
    case nearestToMean
    /// A given row.
    case index(Int)
}

/// CoreSet (Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach", ICLR 2018):
/// k-center greedy. Each pick is the pool point farthest from its nearest already-chosen centre,
/// argmax_i min_{c in S} ||x_i - x_c||, which 2-approximates the minimax coverage radius.
///
/// Cost: distances are kept lazily (``LazyCentres``): one SGEMM over the pool per 256 picks plus, per pick, a refresh
/// of the few rows whose distance bound could still be the largest. Exact: the same picks as a full pass per pick.
public enum CoreSet {
    public struct Pick: Sendable, Equatable {
        /// Row index of the chosen sample.
        public var index: Int
        /// Its distance to the nearest earlier centre (labeled or picked) at the time of the pick; +inf for the first.
        public var distance: Float
    }

    /// Selects `budget` rows. `labeled` rows act as centres from the start (warm start) and are never picked.
    public static func select(_ pool: Embeddings, budget: Int, labeled: [Int] = [], first: FirstCentre = .nearestToMean) throws -> [Pick] {
        let n = pool.count, d = pool.dimensions
        guard budget >= 1, budget + Set(labeled).count <= n else {
            throw SelectionError.invalidInput("budget \(budget) with \(labeled.count) labeled exceeds the pool of \(n)")
        }
        if let bad = labeled.first(where: { $0 < 0 || $0 >= n }) {
            throw SelectionError.invalidInput("labeled row \(bad) is outside 0..<\(n)")
        }
        var state = LazyCentres(pool)
        var picks: [Pick] = []
        state.add(Set(labeled).sorted())
        if labeled.isEmpty {
            let start: Int
            switch first {
            case .random(let seed):
                var g = SplitMix64(seed: seed)
                start = Int.random(in: 0..<n, using: &g)
            case .index(let i):
                guard (0..<n).contains(i) else { throw SelectionError.invalidInput("first centre \(i) is outside 0..<\(n)") }
                start = i
            case .nearestToMean:
                var mean = [Float](repeating: 0, count: d)
                for i in 0..<n { for j in 0..<d { mean[j] += pool.values[i * d + j] } }
                for j in 0..<d { mean[j] /= Float(n) }
                var best = 0, bestD = Float.infinity
                for i in 0..<n {
                    var s: Float = 0
                    for j in 0..<d { let t = pool.values[i * d + j] - mean[j]; s += t * t }
                    if s < bestD { bestD = s; best = i }
                }
                start = best
            }
            picks.append(Pick(index: start, distance: .infinity))
            state.add(start)
        }
        while picks.count < budget {
            let (best, bestD) = state.farthest()
            picks.append(Pick(index: best, distance: bestD.squareRoot()))
            state.add(best)
        }
        return picks
    }
}

/// Seeded random selection, optionally stratified by group (site): each group gets a share proportional to its size
/// (largest remainder), then rows are drawn uniformly within groups.
public enum RandomSelection {
    public static func select(count n: Int, budget: Int, seed: UInt64, groups: [String]? = nil) throws -> [Int] {
        guard budget >= 1, budget <= n else { throw SelectionError.invalidInput("budget \(budget) is outside 1...\(n)") }
        var g = SplitMix64(seed: seed)
        guard let groups else {
            var idx = Array(0..<n)
            idx.shuffle(using: &g)
            return Array(idx.prefix(budget))
        }
        guard groups.count == n else { throw SelectionError.invalidInput("\(groups.count) group labels for \(n) rows") }
        var members: [String: [Int]] = [:]
        for (i, s) in groups.enumerated() { members[s, default: []].append(i) }
        let names = members.keys.sorted()
        let exact = names.map { Double(members[$0]!.count) * Double(budget) / Double(n) }
        var quota = exact.map { Int($0.rounded(.down)) }
        let order = names.indices.sorted { (exact[$0] - Double(quota[$0]), $1) > (exact[$1] - Double(quota[$1]), $0) }
        var left = budget - quota.reduce(0, +)
        for i in order where left > 0 { quota[i] += 1; left -= 1 }
        var out: [Int] = []
        for (i, name) in names.enumerated() {
            var rows = members[name]!
            rows.shuffle(using: &g)
            out += rows.prefix(quota[i])
        }
        out.shuffle(using: &g)
        return out
    }
}
