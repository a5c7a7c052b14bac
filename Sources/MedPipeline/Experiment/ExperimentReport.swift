import Foundation
import MedAnalysis
import MedData
import MedFormats
import MedReport
import MedFoundation

/// The statistics of an experiment's results and its self-contained HTML page: each strategy against random (and
/// CoreSet) as paired differences over (seed, target site) with a bootstrap interval and a Wilcoxon signed-rank test,
/// a win matrix, the share of the full-data Dice, Dice per site, a map of the target pool with each strategy's picks,
/// and thumbnails of the picks.
public enum ExperimentReport {
    /// A strategy's Dice minus a reference strategy's on the same (seed, site) pairs, at one budget.
    public struct Comparison: Sendable {
        public var strategy: RunName, reference: RunName, budget: String
        public var pairs: Int
        public var meanDifference: Double
        public var interval: (low: Double, high: Double)
        public var wilcoxonP: Double
        /// The smallest mean difference this design (these pairs' spread) would detect with 80 % power
        /// (``Stats/minimumDetectableDifference(_:alpha:power:)``): what "not distinguishable" can rule out.
        public var minimumDetectable: Double = .nan

        /// What the comparison shows, in words before the reference's name ("better than", "worse than", "not
        /// distinguishable from"), and why when nothing can be told. A difference is called only when the bootstrap
        /// interval excludes 0 and the Wilcoxon test beside it agrees (p < 0.05); with fewer than 6 non-zero pairs the
        /// exact test cannot reach 0.05 at all (its smallest two-sided p is 2 / 2^n), so the verdict says so; p is nan (never
        /// below 0.05) when every difference is 0.
        public var verdict: (words: String, note: String?) {
            let smallest = 2 / pow(2, Double(pairs))
            if smallest >= 0.05 {
                return ("not distinguishable from", String(format: "too few pairs to tell: with %d the smallest possible Wilcoxon p is %.3f", pairs, min(1, smallest)))
            }
            guard wilcoxonP < 0.05 else { return ("not distinguishable from", nil) }
            if interval.low > 0 { return ("better than", nil) }
            if interval.high < 0 { return ("worse than", nil) }
            return ("not distinguishable from", nil)
        }
    }

    /// What the paired comparisons pair: two runs of the same seed scored on the same target site.
    struct Pair: Hashable {
        var seed: UInt64, site: String
        init(_ row: ResultRow) { seed = row.seed; site = row.site }
    }

    /// How the report names each start of fine-tuning (`train.start`).
    static let startWords = ["source": "the source model fine-tuned", "pretrained": "the HSSL-pretrained U-Net fine-tuned",
                             "single-domain": "the U-Net pretrained with HSSL on the same images as one domain, fine-tuned",
                             "scratch": "a U-Net from scratch"]

    /// What the strategies are compared with: random and CoreSet, the full XSSR when its ablations ran (a term's
    /// contribution), and the single-domain pretraining when it ran (what the multi-domain objective adds).
    public static func references(_ rows: [ResultRow]) -> [RunName] {
        let strategies = Set(rows.map(\.strategy))
        return ["random", "coreset"] + (strategies.contains("xssr") && strategies.contains { $0.xssrAblationTerms != nil } ? ["xssr"] : [])
            + strategies.filter { $0.start == "single-domain" && !$0.isFull }.sorted()
    }

    public static func comparisons(_ rows: [ResultRow], references: [RunName] = ["random", "coreset"]) -> [Comparison] {
        let budgets = orderedUnique(rows.filter { $0.round == 1 && !$0.strategy.isFull }.map(\.budget))
        let strategies = orderedUnique(rows.filter { $0.round == 1 && !$0.strategy.isFull }.map(\.strategy))
        var out: [Comparison] = []
        for budget in budgets {
            for reference in references where strategies.contains(reference) {
                let ref = Dictionary(rows.filter { $0.strategy == reference && $0.budget == budget }.map { (Pair($0), $0.dice) },
                                     uniquingKeysWith: { a, _ in a })
                for strategy in strategies where strategy != reference {
                    let d = rows.filter { $0.strategy == strategy && $0.budget == budget }.compactMap { r -> Double? in
                        guard let b = ref[Pair(r)], r.dice.isFinite, b.isFinite else { return nil }
                        return r.dice - b
                    }
                    let interval = Stats.bootstrapInterval(d, d, seed: 0) { x, _ in Stats.mean(x) }
                    out.append(Comparison(strategy: strategy, reference: reference, budget: budget, pairs: d.count, meanDifference: Stats.mean(d),
                                          interval: interval, wilcoxonP: Stats.wilcoxonSignedRankP(d).p,
                                          minimumDetectable: Stats.minimumDetectableDifference(d)))
                }
            }
        }
        return out
    }

    /// wins[a][b]: the share of (seed, site) pairs at `budget` where strategy a's Dice is above b's (ties count half).
    public static func winMatrix(_ rows: [ResultRow], strategies: [RunName], budget: String) -> [[Double]] {
        struct Key: Hashable { var strategy: RunName, pair: Pair }
        let dice = Dictionary(rows.filter { $0.budget == budget }.map { (Key(strategy: $0.strategy, pair: Pair($0)), $0.dice) }, uniquingKeysWith: { a, _ in a })
        let pairs = Set(rows.filter { $0.budget == budget }.map(Pair.init))
        return strategies.map { a in strategies.map { b in
            guard a != b else { return .nan }
            var wins = 0.0, n = 0.0
            for p in pairs {
                guard let x = dice[Key(strategy: a, pair: p)], let y = dice[Key(strategy: b, pair: p)], x.isFinite, y.isFinite else { continue }
                wins += x > y ? 1 : (x == y ? 0.5 : 0); n += 1
            }
            return n > 0 ? wins / n : .nan
        } }
    }

    /// The area under a curve of (labeled, Dice) points divided by its labeled range: the curve's mean Dice.
    static func normalisedArea(_ points: [(Double, Double)]) -> Double {
        guard points.count >= 2, let first = points.first, let last = points.last, last.0 > first.0 else { return .nan }
        var area = 0.0
        for (a, b) in zip(points, points.dropFirst()) { area += (b.0 - a.0) * (a.1 + b.1) / 2 }
        return area / (last.0 - first.0)
    }

    /// Per seed, the mean Dice over the rows' target sites.
    static func perSeedRows(_ rows: [Experiment.ResultRow]) -> [Double] {
        Set(rows.map(\.seed)).sorted().map { seed in Stats.mean(rows.filter { $0.seed == seed }.map(\.dice).filter(\.isFinite)) }
    }

    static func orderedUnique<T: Hashable>(_ v: [T]) -> [T] { var seen = Set<T>(); return v.filter { seen.insert($0).inserted } }

    /// Writes RUN/report.html.
    /// Writes RUN/report.html: one section after another (``ReportSections``).
    public static func write(plan: ExperimentPlan, rows: [Experiment.ResultRow], run: String, version: String) throws {
        var r = ReportSections(plan: plan, rows: rows, version: version)
        r.summary()
        r.resultsTable()
        r.siteDots()
        r.budgetCurves()
        r.pairedComparisons()
        r.activeLearning()
        try r.poolMap()
        r.shiftCorrelation()
        r.estimatedDice()
        r.files()
        try AtomicFile.write(r.page.html, to: run + "/report.html")
    }
}

/// The experiment report's sections, each one function over the results; what they share is computed once here.
struct ReportSections {
    let plan: ExperimentPlan
    let rows: [ResultRow]
    let c: ExperimentConfig
    var page: HTMLReport
    /// First-round strategies and budgets, in the order the results name them.
    let strategies: [RunName], budgets: [String]
    /// Mean over seeds of the full-data reference's and the unadapted source model's target Dice.
    var full = Double.nan, baseline = Double.nan
    let comps: [ExperimentReport.Comparison]

    init(plan: ExperimentPlan, rows: [ResultRow], version: String) {
        self.plan = plan; self.rows = rows; c = plan.config
        page = HTMLReport(title: "Experiment: which target cases to annotate",
                          subtitle: "source \(c.sourceSites.joined(separator: ", ")) -> targets \(c.targetSites.joined(separator: ", ")); medselect \(version)")
        strategies = ExperimentReport.orderedUnique(rows.filter { $0.round == 1 && !$0.strategy.isFull }.map(\.strategy))
        budgets = ExperimentReport.orderedUnique(rows.filter { $0.round == 1 && !$0.strategy.isFull }.map(\.budget))
        comps = ExperimentReport.comparisons(rows, references: ExperimentReport.references(rows))
        full = Stats.mean(perSeed(.full(), nil))
        baseline = Stats.mean(perSeed(.none, nil))
    }

    func n(_ v: Double, _ digits: Int = 3) -> String { v.isFinite ? String(format: "%.\(digits)f", v) : "–" }
    func p(_ v: Double) -> String { !v.isFinite ? "–" : (v < 0.001 ? "< 0.001" : String(format: "%.3f", v)) }
    /// Per seed, the mean Dice over target sites of `strategy` at `budget` (any budget when nil).
    func perSeed(_ strategy: RunName, _ budget: String?) -> [Double] {
        let sel = rows.filter { $0.strategy == strategy && (budget == nil || $0.budget == budget!) }
        return Dictionary(grouping: sel, by: \.seed).keys.sorted().map { seed in Stats.mean(sel.filter { $0.seed == seed }.map(\.dice).filter(\.isFinite)) }
    }


    /// The headline: each strategy against random, and what the source model and the full pool reach.
    mutating func summary() {
        page.heading("Summary")
        var findings: [String] = []
        for cmp in comps where cmp.reference == "random" {
            let verdict = cmp.verdict
            findings.append(String(format: "%@ at budget %@: %@ random (Dice difference %+.3f, 95 %% interval [%+.3f, %+.3f], Wilcoxon p %@ over %d seed x site pairs%@).",
                                   cmp.strategy.description, cmp.budget, verdict.words, cmp.meanDifference, cmp.interval.low, cmp.interval.high, p(cmp.wilcoxonP), cmp.pairs,
                                   (verdict.note.map { "; " + $0 } ?? "")
                                   + (verdict.words.hasPrefix("not") && cmp.minimumDetectable.isFinite
                                      ? String(format: "; a difference of %.3f would have been detected with 80 %% power", cmp.minimumDetectable) : "")))
        }
        findings.append(String(format: "Without target labels the source model reaches Dice %@ on the held-out target cases; fine-tuned on the whole pool (%d cases), %@.",
                               n(baseline), plan.pool.count, n(full)))
        page.list(findings, emphasiseFirst: false)
        page.paragraph("Target pool: the target sites' labeled training split (\(plan.pool.count) cases); every run is scored on the same \(plan.held.count) held-out target cases (split seed \(c.splitSeed)). Seeds: \(c.seeds.map(String.init).joined(separator: ", ")). Encoder: \(c.encoder.method). Training: \(c.train.starts.enumerated().map { i, s in ExperimentReport.startWords[s, default: "a U-Net from scratch"] + (i == 0 ? "" : " (strategies marked @\(s))") }.joined(separator: "; ")) for \(c.train.epochs) epochs at \(c.train.size) px.")

    }

    /// Every strategy and budget with its Dice over seeds, the source model and each full-data reference.
    mutating func resultsTable() {
        page.heading("Results")
        var table: [[String]] = []
        for b in budgets {
            for s in strategies {
                let v = perSeed(s, b).filter(\.isFinite)
                let labeled = rows.first { $0.strategy == s && $0.budget == b }?.labeled ?? 0
                let hd = Stats.mean(rows.filter { $0.strategy == s && $0.budget == b }.map(\.hausdorff95).filter(\.isFinite))
                let mean = Stats.mean(v)
                table.append([s.description, b, String(labeled), n(mean), n(Stats.standardDeviation(v)), n(hd, 2), full > 0.05 ? n(100 * mean / full, 1) : "–"])
            }
        }
        table.append(["none (source model)", "0", "0", n(baseline), "–", n(Stats.mean(rows.filter { $0.strategy.isNone }.map(\.hausdorff95).filter(\.isFinite)), 2),
                      full > 0.05 ? n(100 * baseline / full, 1) : "–"])
        // The full-data reference of each start ("full", "full@pretrained", ...).
        for name in ExperimentReport.orderedUnique(rows.filter { $0.strategy.isFull }.map(\.strategy)) {
            let v = perSeed(name, nil)
            let mean = Stats.mean(v)
            guard mean.isFinite else { continue }
            table.append(["full data" + (name.start.map { "@" + $0 } ?? ""), "100%", String(plan.pool.count), n(mean), n(Stats.standardDeviation(v)),
                          n(Stats.mean(rows.filter { $0.strategy == name }.map(\.hausdorff95).filter(\.isFinite)), 2), full > 0.05 ? n(100 * mean / full, 1) : "–"])
        }
        page.table(header: ["strategy", "budget", "labeled", "Dice (mean over seeds)", "sd over seeds", "HD95 mm", "% of full-data Dice"], rows: table,
                   numeric: [2, 3, 4, 5, 6], caption: "Dice: mean over target sites of each site's mean over its held-out cases, then mean and standard deviation over seeds.")
    }

    /// Dice per site and strategy (first budget): a dot plot, one row per strategy, one colour per target site.
    mutating func siteDots() {
        if let b = budgets.first {
            let sites = c.targetSites
            let names = strategies + [.none]
            var values: [[Double]] = [], errors: [[Double]] = []
            for s in names {
                var rowValues: [Double] = [], rowErrors: [Double] = []
                for site in sites {
                    let v = rows.filter { $0.strategy == s && $0.site == site && ($0.budget == b || s.isNone) && $0.round <= 1 }.map(\.dice).filter(\.isFinite)
                    rowValues.append(v.isEmpty ? .nan : Stats.mean(v)); rowErrors.append(v.count > 1 ? Stats.standardDeviation(v) : 0)
                }
                values.append(rowValues); errors.append(rowErrors)
            }
            var chart = DotPlot(title: "Dice per target site (budget \(b))", xLabel: "Dice (mean over seeds)",
                                categories: names.map { $0.isNone ? "none (source model)" : $0.description }, series: sites, values: values, errors: errors)
            chart.width = 760
            page.figures([(chart.svg, "Dots: mean over seeds per target site (colours); whiskers: standard deviation over seeds. 'none': the source model without target labels. The axis covers the data, not zero.")])
        }
    }

    /// Dice against the number of labeled cases, with a 95 % bootstrap interval over seeds, and the area under each curve.
    mutating func budgetCurves() {
        if budgets.count >= 2 {
            var series: [LineChart.Series] = []
            var areaRows: [[String]] = []
            for s in strategies {
                var points: [(Double, Double)] = [], band: [(Double, Double)] = []
                var perSeedCurves: [UInt64: [(Double, Double)]] = [:]
                for b in budgets {
                    let members = rows.filter { $0.strategy == s && $0.budget == b && $0.round == 1 }
                    guard let labeled = members.first?.labeled else { continue }
                    let v = ExperimentReport.perSeedRows(members).filter(\.isFinite)
                    let ci = Stats.bootstrapInterval(v, v, seed: 0) { x, _ in Stats.mean(x) }
                    points.append((Double(labeled), Stats.mean(v)))
                    band.append((ci.low.isFinite ? ci.low : Stats.mean(v), ci.high.isFinite ? ci.high : Stats.mean(v)))
                    for seed in Set(members.map(\.seed)) {
                        perSeedCurves[seed, default: []].append((Double(labeled), Stats.mean(members.filter { $0.seed == seed }.map(\.dice).filter(\.isFinite))))
                    }
                }
                var line = LineChart.Series(name: s.description, points: points, markers: true)
                line.band = band
                series.append(line)
                let areas = perSeedCurves.values.map { ExperimentReport.normalisedArea($0.sorted { $0.0 < $1.0 }) }.filter(\.isFinite)
                areaRows.append([s.description, n(Stats.mean(areas)), n(Stats.standardDeviation(areas)), String(areas.count)])
            }
            var chart = LineChart(title: "Budget curves", xLabel: "labeled target cases", yLabel: "Dice (mean over seeds)", series: series)
            chart.width = 560; chart.height = 320
            page.heading("Budget curves")
            page.figures([(chart.svg, "Bands: 95 % bootstrap interval of the mean over seeds.")])
            page.table(header: ["strategy", "area under the budget curve", "sd over seeds", "seeds"], rows: areaRows, numeric: [1, 2, 3],
                       caption: "Normalised area: the mean Dice over the budget range (trapezoids between the budgets, divided by the range).")
        }
    }

    /// The paired comparisons (against random and CoreSet, ablations against the full XSSR, pretrainings against the
    /// single-domain one), and the win matrix.
    mutating func pairedComparisons() {
        page.heading("Paired comparisons")
        // Each pair of strategies once (random against CoreSet, not CoreSet against random as well).
        var shown = Set<[String]>()
        let once = comps.filter { shown.insert([$0.strategy.description, $0.reference.description].sorted() + [$0.budget]).inserted }
        page.table(header: ["strategy", "against", "budget", "pairs", "mean Dice difference", "bootstrap 95 %", "Wilcoxon p", "detectable (80 % power)"],
                   rows: once.map { [$0.strategy.description, $0.reference.description, $0.budget, String($0.pairs), String(format: "%+.4f", $0.meanDifference),
                                      "[\(String(format: "%+.4f", $0.interval.low)), \(String(format: "%+.4f", $0.interval.high))]", p($0.wilcoxonP),
                                      $0.minimumDetectable.isFinite ? String(format: "%.4f", $0.minimumDetectable) : "–"] },
                   numeric: [3, 4, 6, 7],
                   caption: "Pairs: the same seed and target site. The interval resamples the pairs; the Wilcoxon signed-rank test is exact below 26 pairs without ties. With few seeds and sites no test can reach significance: read the pairs column. Detectable: the smallest mean difference a paired t-test at 5 % would find with 80 % power, given these pairs' spread ((t₀.₉₇₅ + t₀.₈) · sd / √n).")
        if let b = budgets.first, strategies.count >= 2 {
            let wins = ExperimentReport.winMatrix(rows, strategies: strategies, budget: b)
            let heat = Heatmap(title: "Win matrix (budget \(b))", labels: strategies.map(\.description), values: wins, unit: "won", colorRange: 0...1,
                               cellText: { i, j in wins[i][j].isFinite ? String(format: "%.2f", wins[i][j]) : "" })
            page.figures([(heat.svg, "Row strategy against column strategy: the share of (seed, site) pairs where the row's Dice is higher (ties count half).")])
        }
    }

    /// Active-learning curves: Dice against the number of labeled cases, round by round, per continuation.
    mutating func activeLearning() {
        let continued = ExperimentReport.orderedUnique(rows.filter { $0.round >= 2 }.map(\.strategy))
        if !continued.isEmpty, let b = budgets.first {
            var series: [LineChart.Series] = []
            for name in continued {
                let base = RunName(method: name.method, start: name.start)
                var points: [(Double, Double)] = []
                let first = rows.filter { $0.strategy == base && $0.budget == b && $0.round == 1 }
                if let labeled = first.first?.labeled { points.append((Double(labeled), Stats.mean(ExperimentReport.perSeedRows(first)))) }
                for round in Set(rows.filter { $0.strategy == name && $0.budget == b }.map(\.round)).sorted() {
                    let members = rows.filter { $0.strategy == name && $0.budget == b && $0.round == round }
                    if let labeled = members.first?.labeled { points.append((Double(labeled), Stats.mean(ExperimentReport.perSeedRows(members)))) }
                }
                series.append(.init(name: name.description, points: points, markers: true))
            }
            var chart = LineChart(title: "Active learning (budget \(b) first)", xLabel: "labeled target cases", yLabel: "Dice (mean over seeds)", series: series)
            chart.width = 560; chart.height = 320
            page.heading("Active-learning rounds")
            page.figures([(chart.svg, "Each round scores the unlabeled pool with the last round's model and adds cases by uncertainty and diversity (acquisition), or at random; the model is fine-tuned on everything labeled so far.")])
            var table: [[String]] = []
            for name in continued {
                for round in Set(rows.filter { $0.strategy == name }.map(\.round)).sorted() {
                    let members = rows.filter { $0.strategy == name && $0.round == round }
                    let hd = Stats.mean(members.map(\.hausdorff95).filter(\.isFinite))
                    table.append([name.description, String(round), String(members.first?.labeled ?? 0), n(Stats.mean(ExperimentReport.perSeedRows(members))), n(hd, 2)])
                }
            }
            page.table(header: ["continuation", "round", "labeled", "Dice", "HD95 mm"], rows: table, numeric: [1, 2, 3, 4])
        }
    }

    /// The pool map with the picks of the first seed and budget, and the picks' thumbnails.
    mutating func poolMap() throws {
        let embed = plan.store.folder("embed", plan.embedKey)
        if let m = try? NPYReader.read(embed + "/pool.npy"), m.shape.count == 2, let b = budgets.first, let seed = c.seeds.first {
            let map = try CaseThumbnail.map(m.floats(), dimensions: m.shape[1], count: m.shape[0], seed: 0)
            let ids = plan.pool.map(\.id)
            var charts: [(svg: String, caption: String?)] = []
            for s in strategies where s.start == nil {   // strategy@start: the same picks
                guard let run = plan.runs.first(where: { $0.strategy == s && $0.budget == b && $0.seed == seed }), let key = run.selectKey,
                      let picked = try? Selection.read(plan.store.folder("select", key) + "/selection.json").selected else { continue }
                let plot = CaseThumbnail.picksPlot(map: map, ids: ids, sites: plan.pool.map(\.site), siteOrder: c.targetSites, picked: picked,
                                                   title: "\(s): picks (seed \(seed), budget \(b))")
                charts.append((plot.svg, nil))
            }
            if !charts.isEmpty {
                page.heading("The target pool and the picks")
                page.figures(charts)
                page.paragraph("The pool's embeddings on their first two principal components, coloured by site; the selected cases are black, numbered in selection order as in the thumbnails below.")
            }
            // Thumbnails of the picks.
            var grid: [(title: String, cells: [ImageGrid.Cell])] = []
            let byID = Dictionary(plan.pool.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            for s in strategies where s.start == nil {   // strategy@start: the same picks
                guard let run = plan.runs.first(where: { $0.strategy == s && $0.budget == b && $0.seed == seed }), let key = run.selectKey,
                      let picked = try? Selection.read(plan.store.folder("select", key) + "/selection.json").selected else { continue }
                let cells = picked.prefix(16).enumerated().compactMap { k, id -> ImageGrid.Cell? in
                    guard let sample = byID[id], let uri = try? CaseThumbnail.uri(sample, options: .default) else { return nil }
                    return ImageGrid.Cell(pngDataURI: uri, caption: "\(k + 1). \(id) (\(sample.site))")
                }
                grid.append((s.description, cells))
            }
            if !grid.isEmpty { page.raw(ImageGrid(rows: grid).html) }
        }
    }

    /// Per-site Dice against the site's distance to the source (the site analysis stage).
    mutating func shiftCorrelation() {
        if let key = plan.sitesKey, let csv = try? String(contentsOfFile: plan.store.folder("sites", key) + "/sites.csv", encoding: .utf8),
           let b = budgets.first {
            let lines = csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            if let header = lines.first, let siteColumn = header.firstIndex(of: "site"), let mmdColumn = header.firstIndex(of: "mmd"),
               let sourceColumn = header.firstIndex(of: "is_source") {
                var distance: [String: Double] = [:]
                for l in lines.dropFirst() where l.count > max(siteColumn, mmdColumn, sourceColumn) && l[sourceColumn] == "0" {
                    if let v = Double(l[mmdColumn]) { distance[l[siteColumn]] = v }
                }
                let sites = c.targetSites.filter { distance[$0] != nil }
                if sites.count >= 2 {
                    page.heading("Dice against distance to the source")
                    var points: [ScatterPlot.Point] = [], names: [String] = [], notes: [String] = []
                    for (g, s) in ([RunName.none] + strategies).enumerated() {
                        var xs: [Double] = [], ys: [Double] = []
                        for site in sites {
                            let v = rows.filter { $0.strategy == s && $0.site == site && ($0.budget == b || s.isNone) && $0.round <= 1 }.map(\.dice).filter(\.isFinite)
                            guard !v.isEmpty else { continue }
                            xs.append(distance[site]!); ys.append(Stats.mean(v))
                            points.append(.init(x: distance[site]!, y: Stats.mean(v), label: g == 0 ? site : nil, group: g))
                        }
                        names.append(s.isNone ? "none (source model)" : s.description)
                        if xs.count >= 3 { notes.append(String(format: "%@: Spearman %.2f over %d sites", s.isNone ? "source model" : s.description, Stats.spearman(xs, ys), xs.count)) }
                    }
                    var plot = ScatterPlot(title: "Target-site Dice against MMD to the source (budget \(b))", xLabel: "MMD² to the source sites (site analysis)",
                                           yLabel: "Dice (mean over seeds)", points: points)
                    plot.groups = names
                    plot.width = 720   // the legend of strategy names takes a column beside the plot
                    page.figures([(plot.svg, "One point per target site and strategy; the site analysis (sites/report.html) measures each site's distance to the source on thumbnail embeddings.")])
                    if !notes.isEmpty { page.list(notes) }
                    page.paragraph("The full site analysis (image quality, intensities, embeddings, per-site flags) is in sites/report.html.")
                }
            }
        }
    }

    /// The source model's Dice per target site estimated without labels (the site analysis) against what it scored
    /// on the held-out target cases (the `none` rows).
    mutating func estimatedDice() {
        guard let key = plan.sitesKey, let data = try? Data(contentsOf: URL(fileURLWithPath: plan.store.folder("sites", key) + "/sites.json")),
              let report = try? JSONDecoder().decode(SiteReport.self, from: data), let method = report.estimator?.method else { return }
        var points: [ScatterPlot.Point] = [], est: [Double] = [], truth: [Double] = []
        for site in report.sites where !site.isSource {
            let v = rows.filter { $0.strategy.isNone && $0.site == site.name }.map(\.dice).filter(\.isFinite)
            guard let e = site.estimatedDice?.mean, e.isFinite, !v.isEmpty else { continue }
            points.append(.init(x: Stats.mean(v), y: e, label: site.name)); est.append(e); truth.append(Stats.mean(v))
        }
        guard points.count >= 2 else { return }
        page.heading("Will the source model work there? Estimated against true Dice")
        var plot = ScatterPlot(title: "Source model per target site: Dice estimated without labels against Dice measured", xLabel: "Dice on the held-out target cases (none)",
                               yLabel: "estimated Dice (\(method))", points: points)
        plot.identityLine = true
        plot.subtitle = String(format: "Spearman %.2f, mean absolute error %.3f over %d sites", Stats.spearman(est, truth),
                               Stats.mean(zip(est, truth).map { abs($0 - $1) }), points.count)
        page.figures([(plot.svg, "The estimate uses no target label: the source model's view of every target case, calibrated on the source's held-out cases (sites/report.html, 'Will the model work here?'). The measured Dice is the unadapted model's on the held-out target cases.")])
    }

    /// What the run folder holds.
    mutating func files() {
        page.heading("Files")
        page.paragraph("results.csv (one row per strategy, budget, seed, round and target site), cases.csv (per held-out case), results.json (configuration, summary, version), sites/ (the site analysis: report.html, sites.csv), items/ (every stage's outputs: selection JSON, checkpoints, curves).")
    }
}
