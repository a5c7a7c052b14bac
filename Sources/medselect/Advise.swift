import ArgumentParser
import Foundation
import MedPipeline

/// `medselect advise`: how many labels are enough, from an experiment's results.
struct Advise: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fit learning curves to an experiment's Dice against labeled cases and say which budget reaches a target share of the full-data Dice.",
        discussion: """
        Per first-round strategy with at least 3 budgets: an inverse power law D(n) = a − b·n^(−c) and an exponential \
        approach to the full-data Dice D(n) = F − (F − d0)·exp(−n/τ), each by weighted least squares (weights: 1 / \
        variance over seeds per budget); the one with the lower AIC predicts the smallest budget whose Dice reaches \
        --target x the full-data Dice, with a 95 % bootstrap interval over seeds. The experiment needs several budgets \
        and "full_data": true.
        Example: medselect advise runs/exp1/results.csv --target 0.95
        """
    )
    @Argument(help: "results.csv of medselect run.") var results: String
    @Option(help: "Share of the full-data Dice to reach.") var target = 0.95
    @Option(help: "Largest budget to consider (default: the full-data run's labeled count).") var limit: Int?
    @Flag(help: "One JSON object.") var json = false

    func validate() throws {
        guard target > 0, target <= 1 else { throw ValidationError("--target must be in (0, 1]") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let rows = try BudgetAdvisor.read(results)
        let pool = limit ?? rows.filter { $0.strategy == "full" }.map(\.labeled).max() ?? rows.map(\.labeled).max() ?? 1
        let advice = BudgetAdvisor.advise(rows, target: target, limit: pool)
        if json {
            let objects: [[String: Any]] = advice.map { a in
                var o: [String: Any] = ["strategy": a.strategy, "budgets": a.budgets, "target": a.target,
                                        "full_data_dice": a.fullDice.isFinite ? a.fullDice : NSNull(),
                                        "predicted_budget": a.budget.map { $0 as Any } ?? NSNull(),
                                        "interval": [a.interval.low.map { $0 as Any } ?? NSNull(), a.interval.high.map { $0 as Any } ?? NSNull()]]
                if let c = a.curve { o["model"] = c.model; o["parameters"] = c.parameters; o["aic"] = c.aic }
                if let c = a.other { o["other_model"] = c.model; o["other_aic"] = c.aic }
                if let r = a.reason { o["reason"] = r }
                if let n = a.intervalNote { o["interval_note"] = n }
                return o
            }
            let data = try JSONSerialization.data(withJSONObject: ["results": results, "pool_limit": pool, "advice": objects], options: [.sortedKeys, .prettyPrinted])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print(String(format: "Target: %.0f %% of the full-data Dice (%.3f); budgets up to %d", target * 100, (advice.first?.fullDice ?? .nan) * target, pool))
        for a in advice {
            guard let c = a.curve else { print("  \(a.strategy): no advice (\(a.reason ?? "no fit"))"); continue }
            let params = c.parameters.sorted { $0.key < $1.key }.map { String(format: "%@ %.4g", $0.key, $0.value) }.joined(separator: ", ")
            var budget = a.budget.map { "\($0) labeled cases" } ?? "not reached within \(pool)"
            if let b = a.budget, let smallest = a.budgets.first, b < smallest {
                budget = "at most \(smallest) labeled cases (the smallest measured budget already reaches it; the curve extrapolates to \(b))"
            }
            func bound(_ v: Int?) -> String { v.map(String.init) ?? "more than \(pool)" }
            let interval = a.intervalNote.map { "no interval: " + $0 }
                ?? (a.interval.low == nil && a.interval.high == nil ? "no interval: too few bootstrap fits"
                    : "95 % interval \(bound(a.interval.low)) to \(bound(a.interval.high))")
            print("  \(a.strategy): \(budget) (\(interval)); \(c.model) (\(params); AIC \(String(format: "%.1f", c.aic)) vs \(String(format: "%.1f", a.other?.aic ?? .nan))); measured budgets \(a.budgets.map(String.init).joined(separator: ", "))")
        }
    }
}
