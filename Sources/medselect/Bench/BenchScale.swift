import ArgumentParser
import Foundation
import MedSelection
import MedFoundation

/// The scale run of the selection strategies: CoreSet and XSSR choosing a fraction of N synthetic embeddings.
struct BenchScale: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Time CoreSet and XSSR selecting a fraction of N x D synthetic embeddings (time and peak memory).",
        discussion: """
        The pool is drawn like the reference data of bench select, only larger: 20 Gaussian blobs (standard deviation 4) \
        with centres uniform in [-10, 10]^D. XSSR's source set is drawn from 15 of the 20 blobs (the other 5 are novel).
        Example: medselect bench scale --count 1000000 --fraction 0.05 --json
        """
    )
    @Option(help: "Pool rows N.") var count = 1_000_000
    @Option(help: "Dimensions D.") var dimensions = 256
    @Option(help: "Fraction of the pool to select.") var fraction = 0.05
    @Option(help: "Source rows for XSSR's novelty term.") var sourceCount = 100_000
    @Option(help: "Strategies to run: coreset,xssr.") var only = "coreset,xssr"
    @Option(help: "XSSR alpha grid (comma-separated; default 0,0.1,...,1).") var alphas: String?
    @Option(help: "XSSR at scale: approximate (inverted-file kNN, the α sweep on a subsample, one full run) or exact (the method as defined).") var scale = XSSRScale.approximate
    @Option(help: "Also run exact and approximate XSSR on a pool of this many rows (drawn the same way) and compare their picks (0: no comparison).") var compare = 0
    @Option(help: "Seed of the synthetic data.") var seed: UInt64 = 0
    @Flag(help: "One JSON object per figure.") var json = false

    func run() throws {
        guard count >= 2, dimensions >= 1, fraction > 0, fraction < 1, sourceCount >= 1 else {
            throw ValidationError("need count >= 2, dimensions >= 1, 0 < fraction < 1, source-count >= 1")
        }
        let budget = max(1, Int((Double(count) * fraction).rounded()))
        let grid = try alphas.map { text in
            try text.split(separator: ",").map { s -> Double in
                guard let v = Double(s.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("bad alpha '\(s)'") }
                return v
            }
        } ?? XSSR.defaultAlphaGrid
        var g = SplitMix64(seed: seed)
        let centres = (0..<(20 * dimensions)).map { _ in Float.random(in: -10..<10, using: &g) }
        let t0 = Date()
        let pool = try Embeddings(values: SyntheticData.blobs(count, dimensions, centres: centres, blobs: 0..<20, seed: seed &+ 1),
                                  count: count, dimensions: dimensions)
        log("generated \(count) x \(dimensions) in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s; budget \(budget)")
        let work = Set(only.split(separator: ",").map(String.init))
        func report(_ name: String, _ seconds: Double, _ extra: [String: Any]) throws {
            var obj: [String: Any] = ["bench": name, "lib": "medselect", "seconds": (seconds * 10).rounded() / 10, "N": count,
                                      "d": dimensions, "budget": budget, "peak_rss_mb": SyntheticData.peakRSSMegabytes()]
            for (k, v) in extra { obj[k] = v }
            if json {
                // Written at once (not buffered): a scale run is long and may be stopped after the first figure.
                FileHandle.standardOutput.write(try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) + Data("\n".utf8))
            } else {
                FileHandle.standardOutput.write(Data(String(format: "%-10@ %9.1f s  peak %6.0f MB  %@\n", name, seconds, SyntheticData.peakRSSMegabytes(), "\(extra)").utf8))
            }
        }
        if work.contains("coreset") {
            let start = Date()
            let picks = try CoreSet.select(pool, budget: budget, first: .index(0))
            try report("coreset", Date().timeIntervalSince(start), ["final_radius": Double(picks.last!.distance)])
        }
        if work.contains("xssr") {
            let source = try Embeddings(values: SyntheticData.blobs(sourceCount, dimensions, centres: centres, blobs: 0..<15, seed: seed &+ 2),
                                        count: sourceCount, dimensions: dimensions)
            let start = Date()
            let result = try XSSR.select(pool: pool, source: source, budget: budget, alphaGrid: grid, scale: scale.scale) { message in log(message) }
            try report("xssr-\(scale.rawValue)", Date().timeIntervalSince(start), Self.figures(result, grid: grid, sourceRows: sourceCount))
        }
        if compare > 0 {
            // The same draw at a size where the exact method is affordable: exact and approximate side by side.
            let rows = compare, small = max(1, Int((Double(rows) * fraction).rounded()))
            let pool = try Embeddings(values: SyntheticData.blobs(rows, dimensions, centres: centres, blobs: 0..<20, seed: seed &+ 3), count: rows, dimensions: dimensions)
            let sourceRows = max(1, rows / 10)
            let source = try Embeddings(values: SyntheticData.blobs(sourceRows, dimensions, centres: centres, blobs: 0..<15, seed: seed &+ 4),
                                        count: sourceRows, dimensions: dimensions)
            var results: [XSSR.Result] = []
            for (name, mode) in [("exact", XSSR.Scale.exact), ("approximate", XSSR.Scale.defaultApproximate)] {
                let start = Date()
                let r = try XSSR.select(pool: pool, source: source, budget: small, alphaGrid: grid, scale: mode) { message in log("\(name): \(message)") }
                var f = Self.figures(r, grid: grid, sourceRows: sourceRows)
                f["N"] = rows; f["budget"] = small
                try report("compare-xssr-\(name)", Date().timeIntervalSince(start), f)
                results.append(r)
            }
            let (e, a) = (results[0], results[1])
            let picksE = Set(e.picks.map(\.index)), picksA = Set(a.picks.map(\.index))
            let coverage = { (r: XSSR.Result) -> Double in r.finalCoverage?.meanRadius ?? r.coverageCurve.first { $0.alpha == r.alpha }!.meanRadius }
            let (ce, ca) = (coverage(e), coverage(a))
            log(String(format: "compare at %d rows: alpha exact %.1f, approximate %.1f; mean coverage radius exact %.4f, approximate %.4f (%+.2f %%); picks in common %d of %d",
                       rows, e.alpha, a.alpha, ce, ca, 100 * (ca - ce) / ce, picksE.intersection(picksA).count, small))
            try report("compare-xssr", 0, ["N": rows, "alpha_exact": e.alpha, "alpha_approximate": a.alpha, "coverage_exact": ce, "coverage_approximate": ca,
                                           "coverage_change_percent": 100 * (ca - ce) / ce, "common_picks": picksE.intersection(picksA).count, "budget": small])
        }
    }

    static func figures(_ r: XSSR.Result, grid: [Double], sourceRows: Int) -> [String: Any] {
        var f: [String: Any] = ["alpha": r.alpha, "alpha_grid": grid.count, "source_rows": sourceRows,
                                "timings": r.timings.mapValues { ($0 * 10).rounded() / 10 }]
        for (name, search) in r.neighbourSearch {
            f["\(name)_knn"] = ["lists": search.lists, "probes": search.probes, "recall": search.recall, "sampled": search.sampled,
                                "tried": search.tried.map { ["probes": $0.probes, "recall": $0.recall] }]
        }
        if let rows = r.sweepRows { f["sweep_rows"] = rows }
        if let c = r.finalCoverage { f["mean_coverage_radius"] = c.meanRadius; f["max_coverage_radius"] = c.maxRadius }
        else if let c = r.coverageCurve.first(where: { $0.alpha == r.alpha }) { f["mean_coverage_radius"] = c.meanRadius; f["max_coverage_radius"] = c.maxRadius }
        return f
    }

    func log(_ message: String) {
        FileHandle.standardError.write(Data("[scale] \(message)\n".utf8))
    }
}
