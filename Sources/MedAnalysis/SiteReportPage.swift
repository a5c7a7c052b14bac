import Foundation
import MedReport

/// The HTML page of a ``SiteReport``: findings, the ranked table, pairwise heat maps, intensity histograms, the map of
/// the embeddings, quality measures, shift against segmentation quality, example cases, geometry, and how every
/// figure was computed.
public enum SiteReportPage {
    /// Thumbnails of a site's most typical and most atypical cases (caption, PNG data URI).
    public struct Examples: Sendable {
        public var site: String
        public var typical: [(caption: String, uri: String)]
        public var atypical: [(caption: String, uri: String)]
        public init(site: String, typical: [(caption: String, uri: String)], atypical: [(caption: String, uri: String)]) {
            self.site = site; self.typical = typical; self.atypical = atypical
        }
    }

    /// - map: N x 2 coordinates of the cases (in `caseSites` order) for the embedding map.
    /// - histograms: per case (in `caseSites` order).
    /// - worst: per target site, its cases with the lowest estimated Dice, with the predicted contour (in `typical`).
    public static func render(_ r: SiteReport, caseSites: [String], map: [Float], histograms: [Histogram?], examples: [Examples],
                              worst: [Examples] = [], origin: String) -> String {
        let names = r.sites.map(\.name)
        var page = HTMLReport(title: "Site shift report: \(origin)",
                              subtitle: "Source: \(r.source.joined(separator: ", ")). \(r.sites.count) sites, \(r.sites.map(\.cases).reduce(0, +)) cases. "
                                  + (r.embeddingsDescription.map { "Embeddings: \($0)." } ?? ""))
        page.heading("Findings")
        page.list(r.findings, emphasiseFirst: true)
        willItWork(r, worst: worst, into: &page)

        // Ranked table.
        page.heading("Sites ranked by shift from the source")
        let ranked = r.rankedTargets + r.sites.filter(\.isSource)
        func n(_ v: Double?, _ digits: Int = 3) -> String { guard let v, v.isFinite else { return "–" }; return formatNumber(v, digits: digits) }
        func p(_ v: Double?) -> String { guard let v else { return "–" }; return v < 0.001 ? "< 0.001" : String(format: "%.3f", v) }
        let hasDice = r.sites.contains { $0.meanDice != nil }
        var header = ["site", "cases", "MMD²", "p (Holm)", "Fréchet", "kNN distance", "classifier AUC", "intensity W1", "intensity JS"]
        if hasDice { header += ["Dice", "HD95 (mm)"] }
        header.append("needs")
        let rows = ranked.map { s -> [String] in
            var row = [s.name + (s.isSource ? " (source)" : ""), String(s.cases)]
            if s.isSource { row += ["–", "–", "–", "–", "–", "–", "–"] } else {
                let d = s.distanceToSource
                row += [n(d["mmd"] ?? nil), p(s.mmdPValueHolm), n(d["frechet"] ?? nil), n(d["knn"] ?? nil), n(d["classifier_auc"] ?? nil, 2),
                        n(d["intensity_w1"] ?? nil), n(d["intensity_js"] ?? nil)]
            }
            if hasDice { row += [n(s.meanDice), n(s.meanHausdorff95)] }
            row.append(s.flags.isEmpty ? "–" : s.flags.joined(separator: "; "))
            return row
        }
        page.table(header: header, rows: rows, numeric: Set(1..<(header.count - 1)),
                   caption: "Distances of each site's embeddings and intensities to the pooled source sites; rank = mean rank over the six measures.")

        // Pairwise heat maps.
        page.heading("Every site against every other")
        let pw = r.pairwise
        let pStars = pw.mmdPValueHolm
        let mmdMap = Heatmap(title: "MMD² between sites (* p < 0.05, Holm)", labels: names, values: pw.mmd.map { $0.map { max(0, $0) } },
                             cellText: { i, j in i == j ? "" : formatNumber(max(0, pw.mmd[i][j]), digits: 2) + (pStars[i][j] < 0.05 ? "*" : "") })
        let aucMap = Heatmap(title: "Domain classifier AUC (0.5: indistinguishable)", labels: names, values: pw.classifierAUC, colorRange: 0.5...1)
        let w1Map = Heatmap(title: "Intensity Wasserstein-1 (z-scored units)", labels: names, values: pw.intensityW1)
        page.figures([(mmdMap.svg, nil), (aucMap.svg, nil), (w1Map.svg, nil)])
        let confusion = Heatmap(title: String(format: "Site classifier, out-of-fold (accuracy %.2f)", r.confusion.accuracy), labels: names,
                                values: r.confusion.counts.map { row in row.map { Double($0) / Double(max(1, row.reduce(0, +))) } }, unit: "share of row",
                                colorRange: 0...1, cellText: { i, j in String(r.confusion.counts[i][j]) })
        page.figures([(confusion.svg, "Rows: true site; columns: predicted site; cells: cases. A site the classifier confuses with the source looks like it.")])

        // Intensity histograms and the embedding map.
        page.heading("Intensities and embeddings")
        var series: [LineChart.Series] = []
        for (k, name) in names.enumerated() {
            let hs = zip(caseSites, histograms).filter { $0.0 == name }.compactMap(\.1)
            guard let first = hs.first else { continue }
            let probs = (0..<first.probabilities.count).map { b in hs.reduce(0.0) { $0 + $1.probabilities[b] } / Double(hs.count) }
            let centres = (0..<probs.count).map { first.lower + (Double($0) + 0.5) * first.binWidth }
            series.append(.init(name: name, points: zip(centres, probs.map { $0 / first.binWidth }).map { ($0, $1) }, color: chartColors[k % chartColors.count]))
        }
        var hist = LineChart(title: "Intensity after z-scoring, per site", xLabel: "z-scored intensity", yLabel: "density", series: series)
        hist.width = 560; hist.height = 340
        var scatter = ScatterPlot(title: "Cases in embedding space (first two principal components)", xLabel: "PC 1", yLabel: "PC 2",
                                  points: caseSites.indices.map { ScatterPlot.Point(x: Double(map[2 * $0]), y: Double(map[2 * $0 + 1]),
                                                                                    group: names.firstIndex(of: caseSites[$0]) ?? 0) })
        scatter.groups = names; scatter.width = 640; scatter.pointRadius = caseSites.count > 2000 ? 1.5 : 3.5
        page.figures([(hist.svg, nil), (scatter.svg, "Colours as in the histograms. Sites far from the source's cloud are shifted in the embedding.")])

        // Quality.
        page.heading("Image quality (MRQy measures, median over a site's cases)")
        var bars: [(String, String?)] = []
        let sourceIdx = Set(r.sites.indices.filter { r.sites[$0].isSource })
        for (m, label) in [("snr", "SNR (std fg / std bg)"), ("cnr", "CNR"), ("cjv", "CJV"), ("efc", "EFC"), ("cv", "CV (%)"), ("fber", "FBER")] {
            var b = BarChart(title: label, yLabel: m, labels: names, values: r.sites.map { $0.quality[m] ?? .nan })
            b.highlighted = sourceIdx
            bars.append((b.svg, nil))
        }
        page.figures(bars)
        page.paragraph("Source sites in orange. Measures per case on an Otsu foreground mask (Docs/analysis.md gives the definitions); a volume's value is the mean over up to 16 axial slices.")

        // The source model's view.
        if r.sites.contains(where: { $0.modelView != nil }) {
            page.heading("The source model's view (no labels)")
            let measures = Array(Set(r.sites.compactMap(\.modelView).flatMap(\.keys))).sorted()
            func cell(_ site: SiteReport.Site, _ m: String) -> String {
                guard let v = site.modelView?[m] else { return "–" }
                let p = site.modelViewPValueHolm?[m]
                let shown = m == "empty" || m == "fragmented" ? String(format: "%.0f %%", 100 * v) : formatNumber(v, digits: 3)
                return shown + (p.map { $0 < 0.05 ? " *" : "" } ?? "")
            }
            page.table(header: ["site", "role"] + measures, rows: r.sites.map { s in [s.name, s.isSource ? "source" : "target"] + measures.map { cell(s, $0) } },
                       numeric: Set(2..<(2 + measures.count)),
                       caption: "Medians over each site's cases of the source model's predictions: mean predictive entropy (nats), the disagreement of test-time-augmented predictions (mirrored; with noise) with the plain one (1 − mean Dice), per label the predicted structure's size (mm² for images, mm³ for volumes), its pieces, boundary and compactness, the best Dice of the predicted shape against the labeled source cases' (reference), and the shares of empty predictions and of fragmented ones (more pieces than the source's median). * differs from the source's cases (Mann-Whitney, Holm p < 0.05).")
        }

        // Performance.
        if let perf = r.performance, !perf.correlations.isEmpty {
            page.heading("Shift against segmentation quality")
            var figs: [(String, String?)] = []
            for measure in ["classifier_auc", "mmd", "knn", "intensity_w1"] {
                guard let c = perf.correlations.first(where: { $0.measure == measure && $0.outcome == "dice" }) else { continue }
                let sites = r.sites.filter { !$0.isSource && $0.meanDice != nil }
                var sc = ScatterPlot(title: "Dice against \(measure)", xLabel: measure, yLabel: "mean Dice",
                                     points: sites.map { .init(x: ($0.distanceToSource[measure] ?? nil) ?? .nan, y: $0.meanDice!, label: $0.name) })
                sc.fitLine = true
                sc.subtitle = String(format: "Spearman %@ (permutation p %@), Pearson %@; %d sites", n(c.spearman, 2), SiteReport.formatP(c.spearmanP),
                                     n(c.pearson, 2), c.sites)
                figs.append((sc.svg, nil))
            }
            page.figures(figs)
            let fewest = perf.correlations.map(\.sites).min() ?? 0
            let smallest = fewest >= 3 && fewest <= 8 ? 2 / Double((1...fewest).reduce(1, *)) : .nan
            page.table(header: ["measure", "outcome", "sites", "Spearman", "permutation p", "bootstrap 95 %", "Pearson", "bootstrap 95 %"],
                       rows: perf.correlations.map { [$0.measure, $0.outcome, String($0.sites), n($0.spearman, 2), SiteReport.formatP($0.spearmanP),
                                                      "[\(n($0.spearmanInterval.low, 2)), \(n($0.spearmanInterval.high, 2))]", n($0.pearson, 2),
                                                      "[\(n($0.pearsonInterval.low, 2)), \(n($0.pearsonInterval.high, 2))]"] },
                       numeric: [2, 3, 4, 6],
                       caption: "Across target sites. The permutation p-value is exact up to 8 sites: with \(fewest) sites the smallest possible is "
                           + (smallest.isFinite ? String(format: "%.3g", smallest) : "below 0.001")
                           + ", so a perfect ranking of a few sites is not yet evidence. Bootstrap intervals resample the sites and say little below ten sites (the resamples repeat the same few).")
        }

        // Examples.
        if !examples.isEmpty {
            page.heading("Examples: each site's most typical and most atypical cases")
            var gridRows: [(title: String, cells: [ImageGrid.Cell])] = []
            for e in examples {
                gridRows.append((e.site + " typical", e.typical.map { .init(pngDataURI: $0.uri, caption: $0.caption) }))
                if !e.atypical.isEmpty { gridRows.append((e.site + " atypical", e.atypical.map { .init(pngDataURI: $0.uri, caption: $0.caption) })) }
            }
            page.raw(ImageGrid(rows: gridRows).html)
            page.paragraph("Typical and atypical by the mean distance of a case's embedding to its nearest source cases (in brackets).")
        }

        // Geometry.
        page.heading("Acquisition and geometry")
        page.table(header: ["site", "spacing (mm, median)", "field of view (mm)", "shapes", "orientation", "data type", "value range"],
                   rows: r.sites.map { s in
                       guard let g = s.geometry else { return [s.name, "–", "–", "–", "–", "–", "–"] }
                       return [s.name, g.spacingMedian.map { formatNumber($0, digits: 3) }.joined(separator: " x "),
                               g.fieldOfViewMedian.map { formatNumber($0, digits: 3) }.joined(separator: " x "),
                               g.shapes.sorted { $0.value > $1.value }.prefix(2).map { "\($0.key) (\($0.value))" }.joined(separator: ", "),
                               g.orientations.joined(separator: ", "), g.datatypes.joined(separator: ", "),
                               g.valueRange.map { formatNumber($0, digits: 4) }.joined(separator: " – ")]
                   })

        page.heading("How these numbers were computed")
        page.paragraph("MMD²: unbiased estimator with a Gaussian kernel whose bandwidth is the median distance between pooled cases; p-value from \(r.permutations) random relabellings as (b + 1)/(n + 1), adjusted for the number of sites (Holm). Fréchet: distance between Gaussian fits (FID's formula) on \(r.frechetDimensions) dimensions; covariances of sites with no more cases than dimensions are shrunk (Ledoit-Wolf). kNN: mean distance of a site's cases to their \(r.neighbours) nearest source cases. Classifier AUC: logistic regression, 5-fold cross-validation. Intensities: each image z-scored, 64 bins over [−4, 4]; W1 in z-units, JS in bits. At most \(r.maxPerSite) cases per site enter the embedding measures. Seed \(r.seed).")
        return page.html
    }

    /// "Will the model work here?": per site the Dice estimated without labels with its interval (and the true Dice
    /// when known), what moved most in the model's view, the cases estimated worst with their predicted contours, and
    /// how the estimate was made.
    static func willItWork(_ r: SiteReport, worst: [Examples], into page: inout HTMLReport) {
        guard let estimator = r.estimator, r.sites.contains(where: { $0.estimatedDice != nil }) else { return }
        page.heading("Will the model work here?")
        func n(_ v: Double?) -> String { guard let v, v.isFinite else { return "–" }; return String(format: "%.3f", v) }
        let hasDice = r.sites.contains { $0.meanDice != nil }
        let ordered = r.sites.filter { !$0.isSource }.sorted { ($0.estimatedDice?.mean ?? 2) < ($1.estimatedDice?.mean ?? 2) } + r.sites.filter(\.isSource)
        var header = ["site", "estimated Dice", "95 % interval"]
        if hasDice { header.append("true Dice") }
        header.append("the model's view against the source's")
        page.table(header: header, rows: ordered.map { s in
            var row = [s.name + (s.isSource ? " (source)" : ""), n(s.estimatedDice?.mean), "\(n(s.estimatedDice?.low)) – \(n(s.estimatedDice?.high))"]
            if hasDice { row.append(n(s.meanDice)) }
            let moved = SiteReport.modelViewChanges(s, r).map {
                $0.replacingOccurrences(of: "the source model's predictions: ", with: "").replacingOccurrences(of: " (Holm p < 0.05)", with: "")
            }
            row.append(s.isSource ? "(reference)" : moved ?? "no significant change")
            return row
        }, numeric: Set(1..<(hasDice ? 4 : 3)),
        caption: "Target sites from the lowest estimate; the changes named are significant (Mann-Whitney, Holm p < 0.05) and at least 5 %. The interval covers the sampling of the site's cases only; how far the estimator itself is off on phantoms with known Dice is in Docs/analysis.md.")
        if hasDice, let check = estimator.check?[estimator.method] {
            let sites = r.sites.filter { $0.estimatedDice != nil && $0.meanDice != nil }
            var sc = ScatterPlot(title: "Estimated against true Dice per site", xLabel: "true mean Dice", yLabel: "estimated mean Dice (\(estimator.method))",
                                 points: sites.map { .init(x: $0.meanDice!, y: $0.estimatedDice!.mean, label: $0.name) })
            sc.identityLine = true
            sc.subtitle = String(format: "per site Spearman %.2f, mean absolute error %.3f; per case Spearman %.2f (%d cases)", check.siteSpearman, check.siteMAE,
                                 check.caseSpearman, check.cases)
            page.figures([(sc.svg, nil)])
        }
        if !worst.isEmpty {
            page.raw(ImageGrid(rows: worst.map { e in (e.site + ": lowest estimates", e.typical.map { .init(pngDataURI: $0.uri, caption: $0.caption) }) }).html)
        }
        let errors = estimator.calibrationError.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.3f", $0.value))" }.joined(separator: ", ")
        page.paragraph("Estimated by \(estimator.method): the source model's view of each case (test-time-augmentation agreement, entropy, the predicted structures' sizes, pieces and compactness against the source's, and the best Dice of the predicted shape against the labeled references' shapes) mapped to Dice by a fit on \(estimator.calibrationCases) labeled source cases, each also under synthetic scanner changes (\(estimator.calibrationRows) rows in all). Mean absolute error on those rows, cross-validated by case: \(errors). Contours: the source model's prediction (yellow) on the middle slice.")
    }
}
