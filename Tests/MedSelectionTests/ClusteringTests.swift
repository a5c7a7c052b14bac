import Foundation
import Testing
import TestSupport
@testable import MedSelection

@Suite("k-means and silhouette")
struct ClusteringTests {
    @Test("silhouette of a hand-computable 1-D example")
    func handSilhouette() throws {
        // Points 0, 1 in cluster 0 and 10, 12 in cluster 1 (1-D).
        let x = try Embeddings(values: [0, 1, 10, 12], count: 4, dimensions: 1)
        // s(0): a=1, b=(10+12)/2=11 -> 10/11; s(1): a=1, b=(9+11)/2=10 -> 9/10
        // s(10): a=2, b=(10+9)/2=9.5 -> 7.5/9.5; s(12): a=2, b=(12+11)/2=11.5 -> 9.5/11.5
        let expected = (10.0 / 11 + 9.0 / 10 + 7.5 / 9.5 + 9.5 / 11.5) / 4
        #expect(abs(try Silhouette.score(x, labels: [0, 0, 1, 1]) - expected) < 1e-5)
        #expect(throws: SelectionError.self) { try Silhouette.score(x, labels: [0, 0, 0, 0]) }
    }

    @Test("k-means recovers separated blobs and the silhouette picks the true k")
    func trueK() throws {
        let (e, truth) = try blobs(sizes: [120, 80, 60, 40, 30], d: 2, seed: 31)
        var scores: [Int: Double] = [:]
        for k in 2...8 {
            let m = try KMeans.fit(e, k: k, restarts: 4, seed: 1)
            scores[k] = try Silhouette.score(e, labels: m.labels)
        }
        #expect(scores.max { $0.value < $1.value }?.key == 5)
        let m = try KMeans.fit(e, k: 5, restarts: 4, seed: 1)
        // Every true blob maps to exactly one cluster.
        for b in 0..<5 {
            let ls = Set(zip(truth, m.labels).filter { $0.0 == b }.map(\.1))
            #expect(ls.count == 1)
        }
        #expect(try KMeans.fit(e, k: 5, restarts: 4, seed: 1).labels == m.labels)   // seeded
    }

    @Test("sampled silhouette approximates the exact one")
    func sampled() throws {
        let (e, _) = try blobs(sizes: [300, 200, 100], d: 4, seed: 32)
        let m = try KMeans.fit(e, k: 3, restarts: 2, seed: 3)
        let exact = try Silhouette.score(e, labels: m.labels)
        let approx = try Silhouette.score(e, labels: m.labels, sampleSize: 200, seed: 1)
        #expect(abs(exact - approx) < 0.05)
    }
}
