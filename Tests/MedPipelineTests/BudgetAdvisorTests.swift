import Foundation
import Testing
@testable import MedPipeline

@Suite("Budget advisor")
struct BudgetAdvisorTests {
    /// Results whose Dice follows `curve` at the given budgets for 3 seeds (seed noise ±`noise`), two sites, and a
    /// full-data reference.
    func rows(_ curve: (Double) -> Double, budgets: [Int], full: Double, noise: Double = 0.002) -> [Experiment.ResultRow] {
        var out: [Experiment.ResultRow] = []
        for seed in UInt64(0)..<3 {
            let shift = (Double(seed) - 1) * noise
            for n in budgets {
                for site in ["A", "B"] {
                    out.append(Experiment.ResultRow(strategy: "xssr", budget: String(n), seed: seed, round: 1, site: site, labeled: n, cases: 3,
                                                    dice: curve(Double(n)) + shift, hausdorff95: 1, assd: 1, selection: ""))
                }
            }
            for site in ["A", "B"] {
                out.append(Experiment.ResultRow(strategy: "full", budget: "100%", seed: seed, round: 1, site: site, labeled: 200, cases: 3,
                                                dice: full, hausdorff95: 1, assd: 1, selection: ""))
            }
        }
        return out
    }

    @Test("an inverse power law is recovered and its budget found: D = 0.9 − 0.5/n reaches 0.95 x 0.9 at n = 12 (0.5 / 0.045 = 11.1)")
    func powerLaw() throws {
        let advice = BudgetAdvisor.advise(rows({ 0.9 - 0.5 / $0 }, budgets: [2, 4, 8, 16, 32], full: 0.9), target: 0.95, limit: 200)
        let a = try #require(advice.first)
        #expect(a.strategy == "xssr" && a.curve?.model == "inverse power law")
        #expect(abs((a.curve?.parameters["c"] ?? 0) - 1) < 0.02 && abs((a.curve?.parameters["a"] ?? 0) - 0.9) < 0.002)
        #expect(a.budget == 12)
        // The seeds differ only by a constant, so every resample predicts about the same budget.
        #expect((a.interval.low ?? 0) >= 10 && (a.interval.high ?? 1000) <= 14)
    }

    @Test("an exponential approach to the full-data Dice: D = 0.9 − 0.4·exp(−n/10) reaches 0.855 at n = 22 (10·ln(0.4/0.045) = 21.8)")
    func exponential() throws {
        let advice = BudgetAdvisor.advise(rows({ 0.9 - 0.4 * exp(-$0 / 10) }, budgets: [2, 5, 10, 20, 40], full: 0.9), target: 0.95, limit: 200)
        let a = try #require(advice.first)
        #expect(a.curve?.model == "exponential approach to the full-data Dice")
        #expect(a.budget == 22)
    }

    @Test("fewer than 3 budgets, or no full-data reference: no advice, with the reason")
    func refusals() throws {
        let few = BudgetAdvisor.advise(rows({ 0.9 - 0.5 / $0 }, budgets: [4, 8], full: 0.9), limit: 200)
        #expect(few.first?.curve == nil && few.first?.reason?.contains("at least 3") == true)
        let noFull = rows({ 0.9 - 0.5 / $0 }, budgets: [2, 4, 8], full: 0.9).filter { $0.strategy != "full" }
        #expect(BudgetAdvisor.advise(noFull, limit: 200).first?.reason?.contains("full_data") == true)
    }
}
