import Foundation
import Testing
import TestSupport
@testable import MedSelection

@Suite("XSSR")
struct XSSRTests {
    func densities(_ e: Embeddings, k: Int) -> [Double] {
        (0..<e.count).map { i in
            let d = (0..<e.count).filter { $0 != i }.map { naiveD2(e, i, $0).squareRoot() }.sorted().prefix(k)
            return 1 / (d.reduce(0, +) / Double(k) + 1e-12)
        }
    }

    @Test("density alone picks the most typical rows in order")
    func densityOnly() throws {
        let e = try randomEmbeddings(150, 6, seed: 21)
        let r = try XSSR.select(pool: e, budget: 12, k: 5, terms: [.density])
        let order = densities(e, k: 5).enumerated().sorted { $0.element > $1.element }.map(\.offset)
        #expect(r.picks.map(\.index) == Array(order.prefix(12)))
    }

    @Test("diversity alone is k-center greedy from the first row")
    func diversityOnly() throws {
        let e = try randomEmbeddings(200, 8, seed: 22)
        let r = try XSSR.select(pool: e, budget: 15, terms: [.diversity], alphaGrid: [0])
        let core = try CoreSet.select(e, budget: 15, first: .index(0))
        #expect(r.picks.map(\.index) == core.map(\.index))
    }

    @Test("novelty alone picks the rows farthest from the source, in order")
    func noveltyOnly() throws {
        let e = try randomEmbeddings(120, 5, seed: 23), src = try randomEmbeddings(40, 5, seed: 24)
        let r = try XSSR.select(pool: e, source: src, budget: 10, k: 3, terms: [.novelty], alphaGrid: [1])
        let nov = (0..<120).map { i -> Double in
            let d = (0..<40).map { j in (0..<5).reduce(0.0) { s, c in
                let t = Double(e.values[i * 5 + c]) - Double(src.values[j * 5 + c]); return s + t * t }.squareRoot() }.sorted().prefix(3)
            return d.reduce(0, +) / 3
        }
        let order = nov.enumerated().sorted { $0.element > $1.element }.map(\.offset)
        #expect(r.picks.map(\.index) == Array(order.prefix(10)))
    }

    @Test("switching a term off changes the selection")
    func ablation() throws {
        let (e, _) = try blobs(sizes: [200, 100, 30, 10], d: 16, seed: 25)
        let src = try randomEmbeddings(50, 16, seed: 26)
        let all = try XSSR.select(pool: e, source: src, budget: 8).picks.map(\.index)
        let noDiv = try XSSR.select(pool: e, source: src, budget: 8, terms: [.density, .novelty]).picks.map(\.index)
        let noDen = try XSSR.select(pool: e, source: src, budget: 8, terms: [.novelty, .diversity]).picks.map(\.index)
        #expect(all != noDiv && all != noDen)
    }

    @Test("covers every blob of unequal size with a budget of the blob count; same inputs, same selection")
    func coverage() throws {
        let sizes = [500, 250, 80, 30, 15, 10]
        let (e, labels) = try blobs(sizes: sizes, d: 32, seed: 27)
        let r = try XSSR.select(pool: e, budget: sizes.count)
        #expect(Set(r.picks.map { labels[$0.index] }).count == sizes.count)
        #expect(try XSSR.select(pool: e, budget: sizes.count).picks == r.picks)
    }

    @Test("the kept alpha has the smallest mean coverage radius of the curve; labeled rows are never picked")
    func alpha() throws {
        let (e, _) = try blobs(sizes: [100, 60, 20], d: 8, seed: 28)
        let src = try randomEmbeddings(30, 8, seed: 29)
        let r = try XSSR.select(pool: e, source: src, labeled: [0, 150], budget: 6)
        #expect(r.coverageCurve.count == 11)
        #expect(try XSSR.select(pool: e, labeled: [0, 150], budget: 6).coverageCurve.count == 1)   // no source: α is moot
        let bestMean = r.coverageCurve.map(\.meanRadius).min()!
        #expect(abs(r.coverageCurve.first { $0.alpha == r.alpha }!.meanRadius - bestMean) < 1e-12)
        #expect(!r.picks.contains { [0, 150].contains($0.index) })
        #expect(throws: SelectionError.self) { try XSSR.select(pool: e, budget: 0) }
        #expect(throws: SelectionError.self) { try XSSR.Terms(parsing: "density,typo") }
    }
}
