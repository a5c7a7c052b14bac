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
            let result = try XSSR.select(pool: pool, source: source, budget: budget, alphaGrid: grid) { message in log(message) }
            try report("xssr", Date().timeIntervalSince(start), ["alpha": result.alpha, "alpha_grid": grid.count,
                                                                 "source_rows": sourceCount, "timings": result.timings])
        }
    }

    func log(_ message: String) {
        FileHandle.standardError.write(Data("[scale] \(message)\n".utf8))
    }
}
