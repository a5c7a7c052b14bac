import Foundation
import Testing
@testable import MedPipeline

@Suite("Experiment statistics and configuration")
struct ExperimentStatisticsTests {
    func row(_ strategy: String, _ seed: UInt64, _ site: String, _ dice: Double, budget: String = "4", round: Int = 1) -> Experiment.ResultRow {
        Experiment.ResultRow(strategy: RunName(parsing: strategy), budget: budget, seed: seed, round: round, site: site, labeled: 4, cases: 1,
                             dice: dice, hausdorff95: 1, assd: 1, selection: "")
    }

    @Test("a verdict needs the interval and the Wilcoxon test to agree, and enough pairs for the test to reach 0.05 (a bootstrap over 2-6 pairs said 'better' beside p 0.156)")
    func verdicts() {
        func c(pairs: Int, low: Double, high: Double, p: Double) -> ExperimentReport.Comparison {
            ExperimentReport.Comparison(strategy: "coreset", reference: "random", budget: "6", pairs: pairs, meanDifference: (low + high) / 2,
                                        interval: (low, high), wilcoxonP: p)
        }
        // 5 pairs: the exact test's smallest two-sided p is 2/32 = 0.0625, so nothing can be told.
        let few = c(pairs: 5, low: 0.01, high: 0.03, p: 0.0625).verdict
        #expect(few.words == "not distinguishable from" && few.note?.contains("smallest possible Wilcoxon p is 0.062") == true, "\(few)")
        // The issue's case: an interval above 0 with p 0.156 over 6 pairs.
        #expect(c(pairs: 6, low: 0.002, high: 0.03, p: 0.156).verdict.words == "not distinguishable from")
        // Both agree: better, worse; the interval across 0 with a small p: not distinguishable.
        #expect(c(pairs: 8, low: 0.002, high: 0.03, p: 0.0078).verdict == ("better than", nil))
        #expect(c(pairs: 8, low: -0.03, high: -0.002, p: 0.0078).verdict == ("worse than", nil))
        #expect(c(pairs: 8, low: -0.01, high: 0.03, p: 0.0078).verdict.words == "not distinguishable from")
        // Every difference 0: p is nan, never a difference.
        #expect(c(pairs: 8, low: 0, high: 0, p: .nan).verdict.words == "not distinguishable from")
    }

    @Test("paired differences to random: mean, pairs and the exact Wilcoxon p of hand-made results")
    func comparisons() {
        // xssr beats random on all four (seed, site) pairs by 0.01, 0.02, 0.03, 0.04: mean 0.025; W+ = 10 of 10,
        // exact two-sided p = 2/16 = 0.125.
        var rows: [Experiment.ResultRow] = []
        for (i, (seed, site)) in [(UInt64(0), "A"), (0, "B"), (1, "A"), (1, "B")].enumerated() {
            rows.append(row("random", seed, site, 0.80))
            rows.append(row("xssr", seed, site, 0.80 + 0.01 * Double(i + 1)))
        }
        let c = ExperimentReport.comparisons(rows, references: ["random"])
        #expect(c.count == 1 && c[0].strategy == "xssr" && c[0].pairs == 4)
        #expect(abs(c[0].meanDifference - 0.025) < 1e-12)
        #expect(c[0].wilcoxonP == 0.125)
        // Detectable with 80 % power: (t.ppf(0.975, 3) + t.ppf(0.8, 3)) · sd / √4 (SciPy) = MDD below.
        #expect(abs(c[0].minimumDetectable - 0.026858614) < 1e-8)
        #expect(c[0].interval.low > 0 && c[0].interval.high <= 0.04 + 1e-12 && c[0].interval.low >= 0.01 - 1e-12)
        // Win matrix: xssr wins every pair.
        let w = ExperimentReport.winMatrix(rows, strategies: ["random", "xssr"], budget: "4")
        #expect(w[0][1] == 0 && w[1][0] == 1 && w[0][0].isNaN)
    }

    @Test("normalised area under a budget curve: trapezoids over the labeled range")
    func area() {
        // (2, 0.5) -> (4, 0.7) -> (8, 0.9): (2·0.6 + 4·0.8) / 6 = 4.4 / 6.
        #expect(abs(ExperimentReport.normalisedArea([(2, 0.5), (4, 0.7), (8, 0.9)]) - 4.4 / 6) < 1e-12)
        #expect(ExperimentReport.normalisedArea([(2, 0.5)]).isNaN)
    }

    @Test("configuration: budgets as shares or counts, relative paths from the file's folder, every problem listed")
    func configuration() throws {
        #expect(ExperimentConfig.count("5%", pool: 23) == 1 && ExperimentConfig.count("10%", pool: 25) == 3 && ExperimentConfig.count("7", pool: 23) == 7)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("medselect-config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = #"{"data": "data", "source_sites": ["S"], "target_sites": ["T"], "strategies": ["random", "xssr:density/novelty"], "budgets": ["5%", 3], "seeds": [0, 1], "full_data": false}"#
        try good.write(toFile: dir + "/ok.json", atomically: true, encoding: .utf8)
        let c = try ExperimentConfig.load(dir + "/ok.json")
        #expect(c.data == dir + "/data" && c.budgets == ["5%", "3"] && c.seeds == [0, 1] && c.fullData == false)
        let bad = #"{"data": "data", "source_sites": ["S"], "target_sites": ["S"], "strategies": [], "budgets": [true], "seeds": [1.5], "train": {"levels": 9}}"#
        try bad.write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        do {
            _ = try ExperimentConfig.load(dir + "/bad.json")
            Issue.record("a bad configuration was accepted")
        } catch let e as ExperimentConfig.Problem {
            let lines = e.description.split(separator: "\n")
            // Overlapping sites, no strategy, a boolean budget, a fractional seed, levels out of range.
            #expect(lines.count == 5, "\(e.description)")
            #expect(lines.allSatisfy { $0.hasPrefix(dir + "/bad.json: ") })
        }
    }
}
