import Foundation
import Testing
import TestSupport
@testable import MedSelection

@Suite("Active-learning acquisition")
struct AcquisitionTests {
    @Test("entropy, margin and MC-dropout variance by hand")
    func uncertainty() throws {
        // Two pixels, two classes, class-major: pixel 0 certain (1, 0), pixel 1 undecided (0.5, 0.5).
        let p: [Float] = [1, 0.5, 0, 0.5]
        #expect(abs(try Acquisition.entropy(probabilities: p, classes: 2) - 0.5) < 1e-12)   // (0 + log2/log2) / 2
        #expect(abs(try Acquisition.margin(probabilities: p, classes: 2) - 0.5) < 1e-12)    // ((1-1) + (1-0)) / 2
        let uniform3 = [Float](repeating: 1.0 / 3, count: 3 * 4)
        #expect(abs(try Acquisition.entropy(probabilities: uniform3, classes: 3) - 1) < 1e-6)
        // Passes (0.2, 0.8) and (0.6, 0.4) for one pixel: variances 0.04 per class -> mean 0.04.
        #expect(abs(try Acquisition.mcDropoutVariance(samples: [[0.2, 0.8], [0.6, 0.4]], classes: 2) - 0.04) < 1e-7)
        #expect(throws: SelectionError.self) { try Acquisition.entropy(probabilities: [0.1, 0.2, 0.3], classes: 2) }
    }

    @Test("alpha 1 ranks by uncertainty, alpha 0 is k-center greedy from the labeled set")
    func alphaExtremes() throws {
        let e = try randomEmbeddings(100, 6, seed: 61)
        var g = SplitMix(state: 62)
        let u = (0..<100).map { _ in Double.random(in: 0...1, using: &g) }
        let byU = try Acquisition.select(uncertainty: u, pool: e, labeled: [3], budget: 5, alpha: 1)
        let order = u.indices.filter { $0 != 3 }.sorted { u[$0] > u[$1] }
        #expect(byU.map(\.index) == Array(order.prefix(5)))
        let byD = try Acquisition.select(uncertainty: u, pool: e, labeled: [3], budget: 5, alpha: 0)
        let core = try CoreSet.select(e, budget: 5, labeled: [3])
        #expect(byD.map(\.index) == core.map(\.index))
        let mixed = try Acquisition.select(uncertainty: u, pool: e, labeled: [3], budget: 5, alpha: 0.5)
        #expect(!mixed.contains { $0.index == 3 } && Set(mixed.map(\.index)).count == 5)
    }
}
