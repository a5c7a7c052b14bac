import Foundation
import Testing
import TestSupport
@testable import MedSelection

func randomEmbeddings(_ n: Int, _ d: Int, seed: UInt64) throws -> Embeddings {
    var g = SplitMix(state: seed)
    return try Embeddings(values: (0..<(n * d)).map { _ in Float.random(in: -1...1, using: &g) }, count: n, dimensions: d)
}

/// Gaussian blobs of unequal sizes, far apart; returns the matrix and each row's blob.
func blobs(sizes: [Int], d: Int, seed: UInt64) throws -> (Embeddings, [Int]) {
    var g = SplitMix(state: seed)
    var values: [Float] = [], labels: [Int] = []
    for (b, size) in sizes.enumerated() {
        let centre = (0..<d).map { _ in Float.random(in: -50...50, using: &g) }
        for _ in 0..<size {
            values += centre.map { $0 + Float.random(in: -1...1, using: &g) }
            labels.append(b)
        }
    }
    return (try Embeddings(values: values, count: labels.count, dimensions: d), labels)
}

func naiveD2(_ e: Embeddings, _ i: Int, _ j: Int) -> Double {
    (0..<e.dimensions).reduce(0.0) { s, k in
        let t = Double(e.values[i * e.dimensions + k]) - Double(e.values[j * e.dimensions + k]); return s + t * t
    }
}

@Suite("Selection building blocks")
struct BuildingBlockTests {
    @Test("exact kNN equals brute force (self excluded), across several blocks")
    func knn() throws {
        let e = try randomEmbeddings(300, 7, seed: 5)
        let nn = try NearestNeighbors.exact(queries: e, targets: e, k: 5, excludeSelf: true)
        for q in stride(from: 0, to: 300, by: 13) {
            let truth = (0..<300).filter { $0 != q }.sorted { naiveD2(e, q, $0) < naiveD2(e, q, $1) }.prefix(5)
            let ours = nn.indices[(q * 5)..<(q * 5 + 5)].map(Int.init)
            let truthD = truth.map { naiveD2(e, q, $0).squareRoot() }
            let oursD = nn.distances[(q * 5)..<(q * 5 + 5)].map(Double.init)
            #expect(zip(truthD, oursD).allSatisfy { abs($0 - $1) < 1e-4 }, "query \(q)")
            #expect(Set(ours) == Set(truth) || zip(truthD, oursD).allSatisfy { abs($0 - $1) < 1e-4 })
        }
        #expect(throws: SelectionError.self) { try NearestNeighbors.exact(queries: e, targets: e, k: 300, excludeSelf: true) }
    }

    @Test("blocked distances match a naive computation")
    func blocks() throws {
        let a = try randomEmbeddings(37, 5, seed: 1), b = try randomEmbeddings(11, 5, seed: 2)
        var seen = 0
        BlockedDistances.forEachBlock(queries: a, targets: b, blockRows: 8) { first, block in
            for r in 0..<(block.count / 11) { for c in 0..<11 {
                let naive = (0..<5).reduce(0.0) { s, k in let t = Double(a.values[(first + r) * 5 + k]) - Double(b.values[c * 5 + k]); return s + t * t }
                #expect(abs(Double(block[r * 11 + c]) - naive) < 1e-4)
                seen += 1
            } }
        }
        #expect(seen == 37 * 11)
    }

    @Test("CoreSet picks exactly the farthest point at every step (naive reference)")
    func coresetFarthest() throws {
        let e = try randomEmbeddings(400, 16, seed: 7)
        let picks = try CoreSet.select(e, budget: 40, first: .index(3))
        var chosen = [3]
        #expect(picks[0].index == 3)
        for p in picks.dropFirst() {
            let minD = (0..<400).map { i in chosen.map { naiveD2(e, i, $0) }.min()! }
            let best = minD.indices.max { minD[$0] < minD[$1] }!
            #expect(abs(minD[p.index] - minD[best]) < 1e-3, "picked \(p.index), farthest \(best)")
            #expect(abs(Double(p.distance) - minD[best].squareRoot()) < 1e-3)
            chosen.append(p.index)
        }
    }

    @Test("lazy centre distances give the exact farthest row and the exact best score at every step (naive reference)",
          arguments: [(400, 16, 8), (66_000, 4, 16)])
    func lazyCentres(n: Int, d: Int, batch: Int) throws {
        let e = try randomEmbeddings(n, d, seed: 21)
        var g = SplitMix(state: 4)
        let a = (0..<n).map { _ in Float.random(in: 0..<0.6, using: &g) }
        let b = (0..<n).map { _ in Float.random(in: 0.2..<1, using: &g) }
        var lazy = LazyCentres(e, batch: batch)
        var minD = [Double](repeating: .infinity, count: n), taken = [Bool](repeating: false, count: n)
        func add(_ c: Int) {
            lazy.add(c); taken[c] = true
            for i in 0..<n { minD[i] = min(minD[i], naiveD2(e, i, c)) }
        }
        add(17)
        for step in 0..<(3 * batch + 5) {
            let far = lazy.farthest()
            let trueFar = (0..<n).filter { !taken[$0] }.max { minD[$0] < minD[$1] || (minD[$0] == minD[$1] && $0 > $1) }!
            #expect(abs(Double(far.squared) - minD[trueFar]) < 1e-3 * max(1, minD[trueFar]), "step \(step)")
            #expect(far.index == trueFar || abs(minD[far.index] - minD[trueFar]) < 1e-4)
            let scale = far.squared.squareRoot()
            let best = lazy.best(a: a, b: b, scale: scale)
            let score = { (i: Int) in Double(a[i]) + Double(b[i]) * minD[i].squareRoot() / Double(scale) }
            let trueBest = (0..<n).filter { !taken[$0] }.max { score($0) < score($1) }!
            #expect(best.index == trueBest || abs(score(best.index) - score(trueBest)) < 1e-5, "step \(step)")
            #expect(abs(Double(best.score) - score(trueBest)) < 1e-4)
            // Alternate the two kinds of pick, as CoreSet and XSSR do.
            add(step % 2 == 0 ? best.index : far.index)
        }
        let final = lazy.distances()
        #expect(zip(final, minD).allSatisfy { abs(Double($0) - $1) < 1e-3 * max(1, $1) })
    }

    @Test("CoreSet warm start never re-picks labeled rows and starts farthest from them")
    func coresetWarm() throws {
        let e = try randomEmbeddings(200, 8, seed: 9)
        let labeled = [0, 10, 20]
        let picks = try CoreSet.select(e, budget: 10, labeled: labeled)
        #expect(Set(picks.map(\.index)).isDisjoint(with: labeled))
        let minD = (0..<200).map { i in labeled.map { naiveD2(e, i, $0) }.min()! }
        #expect(abs(minD[picks[0].index] - minD.max()!) < 1e-3)
    }

    @Test("on unequal blobs CoreSet covers every blob with a budget of the blob count; random often does not")
    func coverage() throws {
        let sizes = [400, 200, 60, 20, 12, 8]
        let (e, labels) = try blobs(sizes: sizes, d: 32, seed: 4)
        let picks = try CoreSet.select(e, budget: sizes.count, first: .random(seed: 1))
        #expect(Set(picks.map { labels[$0.index] }).count == sizes.count)
        var misses = 0
        for seed in 0..<20 {
            let r = try RandomSelection.select(count: e.count, budget: sizes.count, seed: UInt64(seed))
            if Set(r.map { labels[$0] }).count < sizes.count { misses += 1 }
        }
        #expect(misses >= 15)   // expected misses are about 19 of 20
    }

    @Test("random selection: same seed, same picks; stratified quotas by largest remainder")
    func random() throws {
        #expect(try RandomSelection.select(count: 100, budget: 10, seed: 42) == RandomSelection.select(count: 100, budget: 10, seed: 42))
        #expect(try RandomSelection.select(count: 100, budget: 10, seed: 42) != RandomSelection.select(count: 100, budget: 10, seed: 43))
        let groups = (0..<100).map { $0 < 50 ? "A" : ($0 < 80 ? "B" : "C") }
        let s = try RandomSelection.select(count: 100, budget: 10, seed: 1, groups: groups)
        #expect(s.filter { $0 < 50 }.count == 5 && s.filter { $0 >= 50 && $0 < 80 }.count == 3 && s.filter { $0 >= 80 }.count == 2)
        let odd = (0..<10).map { $0 < 5 ? "A" : ($0 < 8 ? "B" : "C") }   // exact shares 2.5, 1.5, 1.0 of 5
        let t = try RandomSelection.select(count: 10, budget: 5, seed: 3, groups: odd)
        #expect(t.count == 5 && Set(t).count == 5)
        #expect(throws: SelectionError.self) { try RandomSelection.select(count: 10, budget: 11, seed: 1) }
    }

    @Test("bad embeddings are refused")
    func bad() {
        #expect(throws: SelectionError.self) { try Embeddings(values: [1, 2, 3], count: 2, dimensions: 2) }
        #expect(throws: SelectionError.self) { try Embeddings(values: [1, .nan], count: 1, dimensions: 2) }
        #expect(throws: SelectionError.self) { try Embeddings(values: [1, 2], count: 1, dimensions: 2, ids: ["a", "b"]) }
    }
}
