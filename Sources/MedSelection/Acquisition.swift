import Foundation

/// Active-learning acquisition for later rounds: image-level uncertainty from the current model, combined with
/// diversity to what is already labeled.
///
/// Uncertainty of one image from its softmax probabilities, laid out class-major (C planes of P pixels):
/// - `entropy`: mean over pixels of −Σ_c p log p, divided by log C (so 0...1);
/// - `margin`: mean over pixels of 1 − (p_first − p_second);
/// - `mcDropoutVariance`: mean over pixels and classes of the variance of p across T stochastic forward passes.
///
/// Batch selection: score(i) = α û(i) + (1 − α) v̂(i), where û is the uncertainty min-max normalised over the candidates
/// and v̂ the distance to the nearest labeled-or-picked row (in the full embedding or a 2-D map) divided by its largest
/// value among the candidates, recomputed after every pick (v̂ = 1 before any centre); α = 1 is pure uncertainty, α = 0 pure k-center diversity.
public enum Acquisition {
    public static func entropy(probabilities p: [Float], classes c: Int) throws -> Double {
        let pixels = try check(p, c)
        guard c >= 2 else { return 0 }
        var total = 0.0
        for i in 0..<pixels {
            var h = 0.0
            for k in 0..<c {
                let v = Double(p[k * pixels + i])
                if v > 0 { h -= v * log(v) }
            }
            total += h
        }
        return total / Double(pixels) / log(Double(c))
    }

    public static func margin(probabilities p: [Float], classes c: Int) throws -> Double {
        let pixels = try check(p, c)
        var total = 0.0
        for i in 0..<pixels {
            var first: Float = -1, second: Float = -1
            for k in 0..<c {
                let v = p[k * pixels + i]
                if v > first { second = first; first = v } else if v > second { second = v }
            }
            total += Double(1 - (first - max(second, 0)))
        }
        return total / Double(pixels)
    }

    /// `samples`: T passes, each class-major C x P.
    public static func mcDropoutVariance(samples: [[Float]], classes c: Int) throws -> Double {
        guard let first = samples.first, samples.count >= 2 else {
            throw SelectionError.invalidInput("MC-dropout variance needs at least 2 stochastic passes")
        }
        _ = try check(first, c)
        guard samples.allSatisfy({ $0.count == first.count }) else { throw SelectionError.invalidInput("passes differ in size") }
        let t = Double(samples.count)
        var total = 0.0
        for j in 0..<first.count {
            var s = 0.0, sq = 0.0
            for pass in samples { let v = Double(pass[j]); s += v; sq += v * v }
            total += sq / t - (s / t) * (s / t)
        }
        return total / Double(first.count)
    }

    static func check(_ p: [Float], _ c: Int) throws -> Int {
        guard c >= 1, !p.isEmpty, p.count % c == 0 else {
            throw SelectionError.invalidInput("\(p.count) probabilities do not split into \(c) class planes")
        }
        return p.count / c
    }

    public struct Pick: Sendable, Equatable {
        public var index: Int
        public var score: Float
        public var uncertainty: Float
        public var diversity: Float
    }

    /// Greedy batch of `budget` rows (labeled rows are never picked).
    public static func select(uncertainty u: [Double], pool: Embeddings, labeled: [Int], budget: Int, alpha: Double = 0.5) throws -> [Pick] {
        let n = pool.count
        guard u.count == n else { throw SelectionError.invalidInput("\(u.count) uncertainty values for \(n) rows") }
        guard u.allSatisfy({ $0.isFinite }) else { throw SelectionError.invalidInput("uncertainty values must be finite") }
        guard (0...1).contains(alpha) else { throw SelectionError.invalidInput("alpha must lie in [0, 1]") }
        let labeledSet = Set(labeled)
        guard budget >= 1, budget + labeledSet.count <= n else {
            throw SelectionError.invalidInput("budget \(budget) with \(labeledSet.count) labeled exceeds the pool of \(n)")
        }
        let candidates = (0..<n).filter { !labeledSet.contains($0) }
        let lo = candidates.map { u[$0] }.min()!, hi = candidates.map { u[$0] }.max()!
        let uHat = u.map { hi > lo ? Float(($0 - lo) / (hi - lo)) : 0 }
        var state = LazyCentres(pool)
        state.add(labeledSet.sorted())
        let a = uHat.map { Float(alpha) * $0 }
        let b = [Float](repeating: Float(1 - alpha), count: n)
        var picks: [Pick] = []
        while picks.count < budget {
            let i: Int, score: Float, v: Float
            if !state.hasCentre {
                i = XSSR.staticBest(a, b, vhat: 1, taken: state.taken); v = 1; score = a[i] + b[i]
            } else {
                let scale = state.farthest().squared.squareRoot()
                if scale > 0 {
                    let r = state.best(a: a, b: b, scale: scale)
                    i = r.index; score = r.score; v = r.distance / scale
                } else {
                    i = XSSR.staticBest(a, b, vhat: 0, taken: state.taken); v = 0; score = a[i]
                }
            }
            picks.append(Pick(index: i, score: score, uncertainty: uHat[i], diversity: v))
            state.add(i)
        }
        return picks
    }
}
