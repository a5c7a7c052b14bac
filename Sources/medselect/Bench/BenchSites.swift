import ArgumentParser
import Foundation
import MedAnalysis
import MedSelection
import MedFoundation

/// The scale run of the site analysis: every measure of `medselect sites` on synthetic per-case inputs with many
/// cases per site (time and peak memory).
struct BenchSites: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sites",
        abstract: "Time the site analysis (MMD tests, Fréchet, kNN, classifiers, pairwise matrices) on N cases per site.",
        discussion: """
        Synthetic inputs with a known shift: site k's embeddings are standard normal in D dimensions with the mean \
        moved by k x shift along the first axis (site 0 is the source); quality measures and intensity histograms are \
        drawn per case. Every case enters the embedding measures (--max-per-site is set to N). Reports the seconds of \
        the analysis and of the per-case distances, the peak resident memory, and the ranking of the sites by MMD.
        Example: medselect bench sites --cases-per-site 100000 --sites 4 --json
        """
    )
    @Option(help: "Cases per site N.") var casesPerSite = 100_000
    @Option(help: "Sites (the first is the source).") var sites = 4
    @Option(help: "Embedding dimensions D.") var dimensions = 32
    @Option(help: "Mean shift per site step, in standard deviations.") var shift = 0.1
    @Option(help: "Permutations of the MMD tests.") var permutations = 1000
    @Option(help: "Seed of the synthetic data and of the analysis.") var seed: UInt64 = 0
    @Flag(help: "One JSON object.") var json = false

    func run() throws {
        guard casesPerSite >= 2, sites >= 2, dimensions >= 1, permutations >= 19 else {
            throw ValidationError("need cases-per-site >= 2, sites >= 2, dimensions >= 1, permutations >= 19")
        }
        let n = casesPerSite * sites
        let t0 = Date()
        func log(_ message: String) {
            FileHandle.standardError.write(Data(String(format: "[sites %6.1f s] %@\n", Date().timeIntervalSince(t0), message).utf8))
        }
        // Standard normal rows (the blob generator with one centre at 0 and standard deviation 4, rescaled), then shifted.
        var values = SyntheticData.blobs(n, dimensions, centres: [Float](repeating: 0, count: dimensions), blobs: 0..<1, seed: seed)
        for i in values.indices { values[i] /= 4 }
        for i in 0..<n { values[i * dimensions] += Float(Double(i / casesPerSite) * shift) }
        let names = (0..<sites).map { "S\($0)" }
        var g = SplitMix64(seed: seed &+ 1)
        let quality: [[String: Double]?] = (0..<n).map { i in
            Dictionary(uniqueKeysWithValues: ImageQuality.measures.map { ($0, Double(i / casesPerSite) + Double.random(in: 0..<1, using: &g)) })
        }
        let histograms: [Histogram?] = (0..<sites).map { k in
            Histogram((0..<256).map { Float($0) / 64 - 2 + Float(k) * 0.1 }, lower: -4, upper: 4, bins: 64)
        }.flatMap { h in [Histogram?](repeating: h, count: casesPerSite) }
        log("generated \(sites) sites x \(casesPerSite) cases x \(dimensions) dimensions in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")

        var analysis = SiteAnalysis(ids: (0..<n).map { "case\($0)" }, sites: (0..<n).map { names[$0 / casesPerSite] }, embeddings: values,
                                    dimensions: dimensions, quality: quality, histograms: histograms,
                                    geometry: [SiteAnalysis.Geometry?](repeating: nil, count: n), source: [names[0]])
        analysis.permutations = permutations; analysis.seed = seed; analysis.maxPerSite = casesPerSite
        let start = Date()
        let report = try analysis.run { log($0) }
        let analysisSeconds = Date().timeIntervalSince(start)
        let start2 = Date()
        let distances = try analysis.caseDistances()
        let caseSeconds = Date().timeIntervalSince(start2)
        precondition(distances.count == n)
        let mmd = report.sites.filter { !$0.isSource }.map { ($0.name, ($0.distanceToSource["mmd"] ?? nil) ?? .nan) }
        let ranking = mmd.sorted { $0.1 < $1.1 }.map(\.0)
        let obj: [String: Any] = [
            "bench": "sites", "lib": "medselect", "cases_per_site": casesPerSite, "sites": sites, "d": dimensions,
            "permutations": permutations, "analysis_seconds": (analysisSeconds * 10).rounded() / 10,
            "case_distance_seconds": (caseSeconds * 10).rounded() / 10, "peak_rss_mb": SyntheticData.peakRSSMegabytes(),
            "mmd_method": report.sites.compactMap(\.mmdMethod).first ?? "", "ranking_by_mmd": ranking,
            "ranking_correct": ranking == Array(names.dropFirst()),
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "sites: %d x %d cases, d %d: analysis %.1f s, per-case distances %.1f s, peak %.0f MB; MMD ranks the sites %@ (%@)",
                         sites, casesPerSite, dimensions, analysisSeconds, caseSeconds, SyntheticData.peakRSSMegabytes(), ranking.joined(separator: " < "),
                         ranking == Array(names.dropFirst()) ? "the order of their shifts" : "not the order of their shifts"))
        }
    }

}
