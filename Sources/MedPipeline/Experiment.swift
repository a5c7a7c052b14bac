import Foundation
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

    /// Counts of a worker's pass.
    public struct Tally: Sendable { public var computed = 0, reused = 0, total = 0 }

    /// Works until every item is done. Items computed earlier (by this or any run) are reused, not recomputed.
    public func work(pollInterval: TimeInterval = 0.5) throws -> Tally {
        let store = plan.store
        var tally = Tally(total: plan.items.count)
        tally.reused = plan.items.filter { store.isDone($0.stage, $0.key) }.count
        while true {
            let pending = plan.items.filter { !store.isDone($0.stage, $0.key) }
            if pending.isEmpty { break }
            let ready = pending.filter { item in item.dependencies.allSatisfy { dep in
                let parts = dep.split(separator: "/", maxSplits: 1).map(String.init)
                return store.isDone(parts[0], parts[1])
            } }
            var worked = false
            for item in ready where try store.claim(item.stage, item.key) {
                let done = plan.items.count - pending.count
                log("[\(done + 1)/\(plan.items.count)] \(item.label)")
                do {
                    try store.compute(item.stage, item.key) { folder in
                        try item.compute(folder)
                        // A finished item is never resumed: the optimiser state kept for an exact resume (twice the
                        // checkpoint's size) goes before the item is published.
                        TrainingState.discardOptimizerState(folder: folder)
                    }
                } catch {
                    throw ItemFailure(path: store.folder(item.stage, item.key), item: item.label, underlying: error)
                }
                tally.computed += 1
                worked = true
                break
            }
            // Everything ready is held by other workers: wait for them (or for their claims to expire).
            if !worked { Thread.sleep(forTimeInterval: pollInterval) }
        }
        return tally
    }

    /// One row of results.csv: a fine-tuned (or unadapted) model's mean scores on one target site's held-out cases.
    public struct ResultRow: Sendable, Equatable {
        public var strategy: String, budget: String, seed: UInt64, round: Int, site: String, labeled: Int
        public var cases: Int, dice: Double, hausdorff95: Double, assd: Double, selection: String
    }

    /// results.csv, cases.csv and results.json from the finished items (atomic writes; any worker may write them,
    /// with the same bytes).
    @discardableResult
    public func writeResults(configPath: String, version: String) throws -> [ResultRow] {
        let store = plan.store
        var rows: [ResultRow] = []
        var cases = "strategy,budget,seed,round,case,site,label,dice,hausdorff95_mm,assd_mm\n"
        for r in plan.runs {
            let stage = r.strategy == "none" ? "score" : "train"
            let path = store.folder(stage, r.trainKey) + "/validation_metrics.csv"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            var bySite: [String: [(Double, Double, Double)]] = [:]
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                guard f.count >= 6 else { continue }
                bySite[f[1], default: []].append((Double(f[3]) ?? .nan, Double(f[4]) ?? .nan, Double(f[5]) ?? .nan))
                cases += "\(r.strategy),\(r.budget),\(r.seed),\(r.round),\(f[0]),\(f[1]),\(f[2]),\(f[3]),\(f[4]),\(f[5])\n"
            }
            let selection = r.selectKey.map { "items/select/\($0)/selection.json" } ?? ""
            for site in bySite.keys.sorted() {
                let v = bySite[site]!
                func mean(_ x: [Double]) -> Double { let f = x.filter(\.isFinite); return f.isEmpty ? .nan : f.reduce(0, +) / Double(f.count) }
                rows.append(ResultRow(strategy: r.strategy, budget: r.budget, seed: r.seed, round: r.round, site: site,
                                      labeled: r.labeled, cases: v.count, dice: mean(v.map(\.0)), hausdorff95: mean(v.map(\.1)),
                                      assd: mean(v.map(\.2)), selection: selection))
            }
        }
        func fmt(_ v: Double) -> String { v.isNaN ? "nan" : String(format: "%.6f", v) }
        var csv = "strategy,budget,seed,round,site,labeled,cases,dice,hd95,assd,selection\n"
        for r in rows {
            csv += "\(r.strategy),\(r.budget),\(r.seed),\(r.round),\(r.site),\(r.labeled),\(r.cases),\(fmt(r.dice)),\(fmt(r.hausdorff95)),\(fmt(r.assd)),\(r.selection)\n"
        }
        try AtomicFile.write(csv, to: run + "/results.csv")
        try AtomicFile.write(cases, to: run + "/cases.csv")
        // Summary: per strategy, budget and round, the mean and standard deviation over seeds of the per-seed mean
        // Dice over target sites.
        var perCell: [String: [Double]] = [:]
        var order: [String] = []
        for r in rows {
            let cell = "\(r.strategy)|\(r.budget)|\(r.round)"
            if perCell[cell] == nil { order.append(cell); perCell[cell] = [] }
        }
        for cell in order {
            let parts = cell.split(separator: "|").map(String.init)
            let members = rows.filter { $0.strategy == parts[0] && $0.budget == parts[1] && String($0.round) == parts[2] }
            perCell[cell] = ExperimentReport.perSeedRows(members)
        }
        let summary: [[String: Any]] = order.map { cell in
            let parts = cell.split(separator: "|").map(String.init)
            let v = perCell[cell]!.filter(\.isFinite)
            let mean = v.isEmpty ? Double.nan : v.reduce(0, +) / Double(v.count)
            let sd = v.count > 1 ? (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count - 1)).squareRoot() : Double.nan
            let labeled = rows.first { "\($0.strategy)|\($0.budget)|\($0.round)" == cell }?.labeled ?? 0
            return ["strategy": parts[0], "budget": parts[1], "round": Int(parts[2]) ?? 0, "labeled": labeled, "seeds": v.count,
                    "dice_mean": mean.isFinite ? mean : NSNull(), "dice_sd": sd.isFinite ? sd : NSNull()]
        }
        // Paired comparisons with random and CoreSet, as the report states them (JSON has no NaN: null).
        // References: random and CoreSet, and the full XSSR when its ablations ran (a term's contribution).
        let strategies = Set(rows.map(\.strategy))
        let references = ["random", "coreset"] + (strategies.contains("xssr") && strategies.contains { $0.hasPrefix("xssr:") } ? ["xssr"] : [])
        let comparisons: [[String: Any]] = ExperimentReport.comparisons(rows, references: references).map { c in
            ["a": c.strategy, "b": c.reference, "budget": c.budget, "pairs": c.pairs, "diff": SelectionStage.jsonNumber(c.meanDifference),
             "ci": [SelectionStage.jsonNumber(c.interval.low), SelectionStage.jsonNumber(c.interval.high)],
             "p": SelectionStage.jsonNumber(c.wilcoxonP), "mdd80": SelectionStage.jsonNumber(c.minimumDetectable),
             "verdict": c.verdict.words]
        }
        let object: [String: Any] = ["config": plan.config.json, "config_file": configPath, "medselect_version": version,
                                     "pool_cases": plan.pool.count, "held_out_cases": plan.held.count, "items": plan.items.count,
                                     "summary": summary, "comparisons": comparisons]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        try AtomicFile.write(Array(data) + [10], to: run + "/results.json")
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
