import Foundation
import Testing
import TestSupport
@testable import MedSelection

@Suite("TypiClust and ProbCover")
struct TypiClustProbCoverTests {
    @Test("TypiClust covers every blob of unequal size and picks each cluster's most typical point")
    func typiclust() throws {
        let sizes = [300, 150, 50, 20, 10]
        let (e, labels) = try blobs(sizes: sizes, d: 16, seed: 41)
        let picks = try TypiClust.select(e, budget: 5, seed: 2)
        #expect(Set(picks.map { labels[$0.index] }).count == 5)
        // The first pick comes from the largest cluster and is its most typical member.
        let first = picks[0]
        let blob = labels[first.index]
        #expect(blob == 0)
        let rows = labels.indices.filter { labels[$0] == blob }
        let typ = rows.map { i -> Double in
            let d = rows.filter { $0 != i }.map { naiveD2(e, i, $0).squareRoot() }.sorted().prefix(20)
            return 1 / (d.reduce(0, +) / 20)
        }
        #expect(rows[typ.indices.max { typ[$0] < typ[$1] }!] == first.index)
    }

    @Test("ProbCover with a radius between blob diameter and blob separation covers all blobs, greedy by gain")
    func probcover() throws {
        let sizes = [200, 100, 40, 15]
        let (e, labels) = try blobs(sizes: sizes, d: 8, seed: 42)
        let r = try ProbCover.select(e, budget: 4, delta: 10)
        #expect(Set(r.picks.map { labels[$0] }).count == 4)
        #expect(abs(r.coverage - 1) < 1e-12)
        #expect(r.gains == sizes)     // each pick covers a whole blob, largest first
        let auto = try ProbCover.select(e, budget: 4, seed: 1)
        #expect(auto.delta > 0 && Set(auto.picks.map { labels[$0] }).count == 4)
    }
}
