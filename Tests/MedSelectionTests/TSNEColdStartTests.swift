import Foundation
import Testing
import TestSupport
@testable import MedSelection

@Suite("PCA, t-SNE and the cold start")
struct TSNEColdStartTests {
    @Test("PCA finds the axes of an anisotropic cloud, in order of variance")
    func pca() throws {
        var g = SplitMix(state: 51)
        var v: [Float] = []
        for _ in 0..<2000 {
            let a = Float.random(in: -1...1, using: &g) * 10, b = Float.random(in: -1...1, using: &g) * 3, c = Float.random(in: -1...1, using: &g) * 0.5
            v += [a + b, a - b, c]     // main axis (1,1,0)/√2, second (1,-1,0)/√2
        }
        let e = try Embeddings(values: v, count: 2000, dimensions: 3)
        let m = try PCA.fit(e, components: 2)
        let s = Float(0.5).squareRoot()
        // the sample covariance of 2000 points tilts the axes by about 0.01
        #expect(abs(abs(m.components[0]) - s) < 0.03 && abs(abs(m.components[1]) - s) < 0.03 && abs(m.components[2]) < 0.01)
        #expect(m.components[0] * m.components[1] > 0 && m.components[3] * m.components[4] < 0)
        #expect(m.explainedVariance[0] > m.explainedVariance[1])
        // variance of a uniform(-10,10) sum along (1,1)/√2: 2 * 100/3 = 66.7
        #expect(abs(m.explainedVariance[0] - 200.0 / 3) < 5)
    }

    @Test("PCA with fewer rows than dimensions (the Gram-matrix path) finds the same axes and variances")
    func pcaWide() throws {
        // 30 rows in 200-D: scores 10, 5 and 2 times cos(2π f i / 30) for f = 1, 2, 3 (zero-mean, mutually
        // orthogonal over the rows) along three orthogonal directions, plus noise of 1e-4: the principal axes are
        // those directions and the variances 10², 5², 2² times (n / 2) / (n - 1).
        var g = SplitMix(state: 61)
        let d = 200, n = 30
        var axes: [[Float]] = []
        for a in 0..<3 { axes.append((0..<d).map { j in j % 3 == a ? (j / 3 % 2 == 0 ? 1 : -1) / Float((d + 2 - a) / 3).squareRoot() : 0 }) }
        var v: [Float] = []
        let sigma: [Double] = [10, 5, 2]
        for i in 0..<n {
            let c = (0..<3).map { Float(sigma[$0] * cos(2 * Double.pi * Double($0 + 1) * Double(i) / Double(n))) }
            v += (0..<d).map { j in (0..<3).reduce(Float(0)) { $0 + c[$1] * axes[$1][j] } + Float.random(in: -1e-4...1e-4, using: &g) }
        }
        let m = try PCA.fit(try Embeddings(values: v, count: n, dimensions: d), components: 3)
        for a in 0..<3 {
            let norm = (0..<d).reduce(Float(0)) { $0 + axes[a][$1] * axes[a][$1] }.squareRoot()
            let dot = (0..<d).reduce(Float(0)) { $0 + m.components[a * d + $1] * axes[a][$1] } / norm
            #expect(abs(abs(dot) - 1) < 1e-4, "axis \(a): cos \(dot)")
            let expected = sigma[a] * sigma[a] * Double(norm * norm) * Double(n) / 2 / Double(n - 1)
            #expect(abs(m.explainedVariance[a] - expected) / expected < 1e-3, "variance \(m.explainedVariance[a]) vs \(expected)")
        }
    }

    @Test("trustworthiness is 1 for an identical map")
    func trustIdentity() throws {
        let e = try randomEmbeddings(60, 2, seed: 52)
        #expect(abs(try TSNE.trustworthiness(original: e, embedded: e.values, k: 5) - 1) < 1e-12)
    }

    @Test("t-SNE keeps neighbourhoods of blobs (trustworthiness at least 0.9) and is seeded")
    func tsne() throws {
        let (e, _) = try blobs(sizes: [100, 60, 40, 25, 15], d: 20, seed: 53)
        var o = TSNE.Options(); o.iterations = 400; o.seed = 4; o.perplexity = 10
        let y = try TSNE.embed(e, options: o)
        #expect(y.allSatisfy { $0.isFinite })
        #expect(try TSNE.trustworthiness(original: e, embedded: y, k: 5) >= 0.9)
        #expect(try TSNE.embed(e, options: o) == y)
    }

    @Test("the cold start covers every blob of unequal size in most seeds (observed 6 of 8); random rarely does")
    func coldStart() throws {
        // Blobs no smaller than the perplexity (see the limitation below); small so the debug build stays quick.
        let sizes = [120, 60, 30, 15, 12]
        let (e, labels) = try blobs(sizes: sizes, d: 16, seed: 54)
        var o = TSNE.Options(); o.iterations = 400; o.perplexity = 10
        var coveredRuns = 0
        var map: [Float] = []
        for seed in 0..<4 {
            let r = try ColdStart.select(e, budget: 8, tsne: o, seed: UInt64(seed))
            #expect(r.picks.count == 8 && Set(r.picks).count == 8)
            if Set(r.picks.map { labels[$0] }).count == 5 { coveredRuns += 1; map = r.map }
        }
        #expect(coveredRuns >= 3)
        var randomCovered = 0
        for seed in 0..<20 where Set(try RandomSelection.select(count: e.count, budget: 8, seed: UInt64(seed)).map { labels[$0] }).count == 5 {
            randomCovered += 1
        }
        #expect(randomCovered <= 10)
        // With a map where the blobs separate, a budget equal to the blob count takes one medoid per blob.
        let exact = try ColdStart.select(e, budget: 5, map: map, seed: 0)
        #expect(Set(exact.picks.map { labels[$0] }).count == 5)
    }

    @Test("the cluster search follows the budget (2...min(budget, 50)) and modes the map merges are found: twelve blobs of 1500 down to 20 points, budget 24, every blob picked", arguments: [UInt64(0), 1, 2])
    func budgetCoversSmallBlobs(seed: UInt64) throws {
        // Issue 13's reproduction: 5,000 points in 64-D; with k searched over 2...10 seeds 0-2 covered only 10-11 blobs.
        let sizes = [1500, 1200, 900, 600, 300, 150, 100, 80, 60, 50, 40, 20]
        let (e, labels) = try blobs(sizes: sizes, d: 64, seed: 90)
        var o = TSNE.Options(); o.iterations = 500
        let r = try ColdStart.select(e, budget: 24, tsne: o, seed: seed)
        #expect(r.picks.count == 24 && Set(r.picks).count == 24)
        #expect(Set(r.picks.map { labels[$0] }).count == 12, "k = \(r.k)")
        // The silhouette prefers fewer clusters on this map (the small blobs sit close together in it); the mode
        // step finds the blobs the map merged.
        #expect(r.silhouettes.map(\.k) == Array(2...24) && !r.modePicks.isEmpty && Set(r.modePicks).isSubset(of: Set(r.picks)))
        #expect(ColdStart.defaultClusterRange(budget: 24) == 2...24 && ColdStart.defaultClusterRange(budget: 500) == 2...50
                && ColdStart.defaultClusterRange(budget: 1) == 2...2)
    }

    @Test("known limitation: blobs smaller than the perplexity can merge in the map (documented in Docs/selection.md)")
    func tinyBlobsMerge() throws {
        let (e, _) = try blobs(sizes: [120, 60, 30, 8, 6], d: 16, seed: 54)
        var o = TSNE.Options(); o.iterations = 400; o.perplexity = 10
        let r = try ColdStart.select(e, budget: 8, tsne: o, seed: 2)
        #expect(r.k < 5)
    }
}
