import Foundation
import Testing
import TestSupport
@testable import MedSelection

@Suite("Approximate nearest neighbours (inverted file) and XSSR at scale")
struct InvertedFileTests {
    /// Recall of `found` against the exact search, counted independently of the reported figure.
    static func recall(_ found: NearestNeighbors, _ exact: NearestNeighbors, k: Int, rows: Int) -> Double {
        var hit = 0
        for q in 0..<rows {
            let truth = Set(exact.indices[(q * k)..<((q + 1) * k)])
            for t in 0..<k where truth.contains(found.indices[q * k + t]) { hit += 1 }
        }
        return Double(hit) / Double(rows * k)
    }

    @Test("the inverted file finds at least the target recall of the exact neighbours, with exact distances in ascending order, and its reported recall is what the sample shows")
    func recallAndDistances() throws {
        let (pool, _) = try blobs(sizes: [9000, 7000, 5000, 3000, 1000], d: 12, seed: 41)
        let k = 10
        var settings = NearestNeighbors.ApproximateSettings()
        settings.probes = 2
        let (found, report) = try NearestNeighbors.approximate(queries: pool, targets: pool, k: k, excludeSelf: true, settings: settings)
        let exact = try NearestNeighbors.exact(queries: pool, targets: pool, k: k, excludeSelf: true)
        let measured = Self.recall(found, exact, k: k, rows: pool.count)
        #expect(report.lists == Int((2 * Double(pool.count).squareRoot()).rounded()) && report.sampled == 512)
        #expect(report.recall >= 0.97 && measured >= 0.95, "reported \(report.recall), measured \(measured), tried \(report.tried)")
        #expect(abs(report.recall - measured) < 0.03, "reported \(report.recall), measured on every row \(measured)")
        // The probes were doubled from 2 until the sample reached the target, then bisected: the chosen setting is the
        // smallest tried that reached it, and every smaller one tried fell short.
        #expect(report.tried.first?.probes == 2)
        #expect(report.tried.filter { $0.recall >= 0.97 }.map(\.probes).min() == report.probes)
        #expect(report.tried.filter { $0.probes < report.probes }.allSatisfy { $0.recall < 0.97 })
        for q in stride(from: 0, to: pool.count, by: 997) {
            let ids = found.indices[(q * k)..<((q + 1) * k)], ds = Array(found.distances[(q * k)..<((q + 1) * k)])
            #expect(!ids.contains(Int32(q)) && Set(ids).count == k)
            #expect(zip(ds, ds.dropFirst()).allSatisfy { $0 <= $1 })
            // Exact distances up to the norm formula's rounding (|a|² + |b|² − 2a·b in float32, |a|² near 10^4 here).
            for (i, d) in zip(ids, ds) { #expect(abs(Double(d) - naiveD2(pool, q, Int(i)).squareRoot()) < 5e-3) }
        }
        // Queries against another set (XSSR's novelty): the same guarantees.
        let (other, _) = try blobs(sizes: [300, 200], d: 12, seed: 42)
        let (cross, crossReport) = try NearestNeighbors.approximate(queries: other, targets: pool, k: k, settings: settings)
        let crossExact = try NearestNeighbors.exact(queries: other, targets: pool, k: k)
        #expect(crossReport.recall >= 0.97 && Self.recall(cross, crossExact, k: k, rows: other.count) >= 0.95)
    }

    @Test("below 20,000 targets the exact search runs (recall 1, the same neighbours)")
    func smallIsExact() throws {
        let pool = try randomEmbeddings(3000, 8, seed: 43)
        let (found, report) = try NearestNeighbors.approximate(queries: pool, targets: pool, k: 5, excludeSelf: true)
        let exact = try NearestNeighbors.exact(queries: pool, targets: pool, k: 5, excludeSelf: true)
        #expect(report.recall == 1 && report.lists == 0 && found.indices == exact.indices)
    }

    @Test("approximate XSSR (inverted-file kNN, the alpha sweep on a subsample, one full run) covers the pool within 1 % of the exact method's mean radius")
    func xssrAtScale() throws {
        let (pool, _) = try blobs(sizes: [9000, 6000, 4000, 1500, 500], d: 12, seed: 44)
        let (source, _) = try blobs(sizes: [2000, 1000], d: 12, seed: 45)
        let budget = 150
        let exact = try XSSR.select(pool: pool, source: source, budget: budget, scale: .exact)
        let approximate = try XSSR.select(pool: pool, source: source, budget: budget, scale: .approximate(.init(), sweepRows: 10_000))
        #expect(exact.sweepRows == nil && exact.neighbourSearch.isEmpty)
        #expect(approximate.sweepRows == 10_000 && approximate.picks.count == budget && Set(approximate.picks.map(\.index)).count == budget)
        #expect(approximate.neighbourSearch["density"].map { $0.recall >= 0.97 } == true && approximate.neighbourSearch["novelty"].map { $0.recall >= 0.97 } == true)
        // Coverage recomputed here from the picks, not taken from either result.
        func meanRadius(_ picks: [XSSR.Pick]) -> Double {
            (0..<pool.count).map { i in Double(picks.map { pool.distance2(i, $0.index) }.min()!).squareRoot() }.reduce(0, +) / Double(pool.count)
        }
        let (re, ra) = (meanRadius(exact.picks), meanRadius(approximate.picks))
        #expect(abs(ra - re) / re < 0.01, "exact \(re) (alpha \(exact.alpha)), approximate \(ra) (alpha \(approximate.alpha))")
        #expect(abs(approximate.finalCoverage!.meanRadius - ra) < 1e-3 * ra)
        // auto: exact below the threshold.
        let auto = try XSSR.select(pool: pool, source: source, budget: budget, scale: .auto)
        #expect(auto.picks.map(\.index) == exact.picks.map(\.index))
    }
}
