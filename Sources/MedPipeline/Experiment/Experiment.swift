import Foundation
import MedAnalysis
import MedNN
import MedData
import MedFormats
import MedFoundation

/// Runs an experiment's plan as one worker among any number: take a ready item (its dependencies published, nobody
/// else holding it), compute it, repeat until every item is done; then write the results. Several workers on a
/// shared run folder cooperate through the ``ItemStore``'s claims, so a Slurm job array or a Kubernetes Indexed Job
/// runs the grid with no coordinator. Items are deterministic (seeded; with the same thread count), so the results
/// do not depend on which worker computed what, or on interruptions.
public struct Experiment {
    public let plan: ExperimentPlan
    public let run: String
    public var log: @Sendable (String) -> Void

    public init(plan: ExperimentPlan, run: String, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.plan = plan; self.run = run; self.log = log
    }

    public typealias Tally = PlanRunner.Tally

    /// Works until every item is done. Items computed earlier (by this or any run) are reused, not recomputed.
    public func work(pollInterval: TimeInterval = 0.5) throws -> Tally {
        try PlanRunner.work(plan.items, store: plan.store, pollInterval: pollInterval, log: log)
    }

    public typealias ResultRow = MedPipeline.ResultRow

    /// results.csv, cases.csv and results.json from the finished items (atomic writes; any worker may write them,
    /// with the same bytes).
    @discardableResult
    public func writeResults(configPath: String, version: String) throws -> [ResultRow] {
        let store = plan.store
        var rows: [ResultRow] = []
        var cases = "strategy,budget,seed,round,case,site,label,dice,hausdorff95_mm,assd_mm\n"
        for r in plan.runs {
            let scores = try CaseScore.read(store.folder(r.strategy.isNone ? "score" : "train", r.trainKey) + "/validation_metrics.csv")
            for c in scores {
                cases += "\(r.strategy),\(r.budget),\(r.seed),\(r.round),\(c.id),\(c.site),\(c.label),\(c.dice),\(c.hausdorff95),\(c.assd)\n"
            }
            let selection = r.selectKey.map { "items/select/\($0)/selection.json" } ?? ""
            for (site, v) in Dictionary(grouping: scores, by: \.site).sorted(by: { $0.key < $1.key }) {
                func mean(_ x: [Double]) -> Double { Stats.mean(x.filter(\.isFinite)) }
                rows.append(ResultRow(strategy: r.strategy, budget: r.budget, seed: r.seed, round: r.round, site: site,
                                      labeled: r.labeled, cases: v.count, dice: mean(v.map(\.dice)), hausdorff95: mean(v.map(\.hausdorff95)),
                                      assd: mean(v.map(\.assd)), selection: selection))
            }
        }
        try ResultRow.write(rows, to: run + "/results.csv")
        try AtomicFile.write(cases, to: run + "/cases.csv")
        // Summary: per strategy, budget and round (in the order the rows first name them), the mean and standard
        // deviation over seeds of the per-seed mean Dice over target sites.
        struct CellKey: Hashable { var strategy: RunName, budget: String, round: Int }
        let cells = ExperimentReport.orderedUnique(rows.map { CellKey(strategy: $0.strategy, budget: $0.budget, round: $0.round) })
        let summary = cells.map { cell in
            let members = rows.filter { $0.strategy == cell.strategy && $0.budget == cell.budget && $0.round == cell.round }
            let v = ExperimentReport.perSeedRows(members).filter(\.isFinite)
            return ExperimentResults.Cell(strategy: cell.strategy.description, budget: cell.budget, round: cell.round, labeled: members.first?.labeled ?? 0,
                                          seeds: v.count, diceMean: ExperimentResults.finite(Stats.mean(v)),
                                          diceSD: ExperimentResults.finite(Stats.standardDeviation(v)))
        }
        // The paired comparisons the report states.
        let comparisons = ExperimentReport.comparisons(rows, references: ExperimentReport.references(rows)).map { c in
            ExperimentResults.Comparison(a: c.strategy.description, b: c.reference.description, budget: c.budget, pairs: c.pairs,
                                         diff: ExperimentResults.finite(c.meanDifference),
                                         ci: [ExperimentResults.finite(c.interval.low), ExperimentResults.finite(c.interval.high)],
                                         p: ExperimentResults.finite(c.wilcoxonP), mdd80: ExperimentResults.finite(c.minimumDetectable), verdict: c.verdict.words)
        }
        try ExperimentResults(config: JSONValue(any: plan.config.json) ?? .null, configFile: configPath, medselectVersion: version,
                              poolCases: plan.pool.count, heldOutCases: plan.held.count, items: plan.items.count,
                              summary: summary, comparisons: comparisons,
                              itemFolders: plan.items.map { "items/\($0.stage)/\($0.key)" }).write(to: run + "/results.json")
        // The site analysis's report and tables beside the results (RUN/sites/).
        if let key = plan.sitesKey, store.isDone("sites", key) {
            try FileManager.default.createDirectory(atPath: run + "/sites", withIntermediateDirectories: true)
            for f in ["report.html", "sites.json", "sites.csv", "cases.csv"] {
                let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: store.folder("sites", key) + "/" + f)))
                try AtomicFile.write(bytes, to: run + "/sites/" + f)
            }
        }
        return rows
    }
}

/// An experiment item that failed: its folder, what it was, and the error it failed with, whose message it keeps.
public struct ItemFailure: MedError {
    public var path: String
    public var item: String
    public var underlying: Error
    public var reason: String { "\(item) failed: \((underlying as? MedError)?.description ?? "\(underlying)")" }
}
