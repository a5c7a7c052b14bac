import Foundation
import MedFoundation
import MedSelection

/// What `medselect sites` computes: every site against the source sites and against each other, from per-case
/// embeddings, quality measures, intensity histograms and geometry, and, given per-case segmentation results, how
/// shift relates to quality. Plain inputs, a Codable report out.
public struct SiteAnalysis: Sendable {
    /// Geometry of one case's image.
    public struct Geometry: Sendable, Codable, Equatable {
        public var spacing: [Double]
        public var shape: [Int]
        public var orientation: String
        public var datatype: String
        public var minimum: Double
        public var maximum: Double
        public init(spacing: [Double], shape: [Int], orientation: String, datatype: String, minimum: Double, maximum: Double) {
            self.spacing = spacing; self.shape = shape; self.orientation = orientation; self.datatype = datatype
            self.minimum = minimum; self.maximum = maximum
        }
    }

    /// Segmentation quality of one case.
    public struct Outcome: Sendable, Codable, Equatable {
        public var dice: Double
        public var hausdorff95: Double
        public init(dice: Double, hausdorff95: Double) { self.dice = dice; self.hausdorff95 = hausdorff95 }
    }

    public var ids: [String]
    public var sites: [String]
    /// N x d, row per case (in `ids` order).
    public var embeddings: [Float]
    public var dimensions: Int
    public var quality: [[String: Double]?]
    /// The source model's view of each case (``ModelView`` measures by name), or empty without a model.
    public var modelView: [[String: Double]?] = []
    /// With a fitted ``DiceEstimator``: its estimate of every case's Dice (in `ids` order, NaN without a view) by
    /// each method, and the estimator (for the report's account of its calibration).
    public var estimates: [DiceEstimator.Method: [Double]] = [:]
    public var estimator: DiceEstimator?
    public var calibrationCases = 0
    public var histograms: [Histogram?]
    public var geometry: [Geometry?]
    public var outcomes: [String: Outcome]
    public var source: [String]
    public var permutations = 1000
    public var seed: UInt64 = 0
    /// Neighbours for the kNN distance.
    public var neighbours = 5
    /// At most this many cases per site enter the embedding measures (drawn with the seed); all cases are summarised.
    public var maxPerSite = 2000

    public init(ids: [String], sites: [String], embeddings: [Float], dimensions: Int, quality: [[String: Double]?], histograms: [Histogram?],
                geometry: [Geometry?], outcomes: [String: Outcome] = [:], source: [String]) {
        self.ids = ids; self.sites = sites; self.embeddings = embeddings; self.dimensions = dimensions; self.quality = quality
        self.histograms = histograms; self.geometry = geometry; self.outcomes = outcomes; self.source = source
    }

    /// The order of sites: as they first appear.
    public var siteNames: [String] {
        var seen = Set<String>(), out: [String] = []
        for s in sites where seen.insert(s).inserted { out.append(s) }
        return out
    }

    func validate() throws {
        let n = ids.count
        guard sites.count == n, quality.count == n, histograms.count == n, geometry.count == n, embeddings.count == n * dimensions, dimensions > 0 else {
            throw AnalysisError.invalidInput("per-case inputs disagree in length (\(n) ids, \(sites.count) sites, \(embeddings.count / max(1, dimensions)) embedding rows)")
        }
        let names = Set(sites)
        for s in source where !names.contains(s) {
            throw AnalysisError.invalidInput("the source site \(s) is not among the sites (\(siteNames.joined(separator: ", ")))")
        }
        guard !source.isEmpty else { throw AnalysisError.invalidInput("name at least one source site") }
        guard modelView.isEmpty || modelView.count == n else { throw AnalysisError.invalidInput("\(modelView.count) model-view rows for \(n) cases") }
        for s in siteNames {
            let count = sites.filter { $0 == s }.count
            guard count >= 2 else { throw AnalysisError.invalidInput("site \(s) has \(count) case; every site needs at least 2 to be compared") }
        }
        guard siteNames.count > Set(source).count else { throw AnalysisError.invalidInput("every site is a source site; name the others' sites to compare") }
    }

    /// Rows of the embedding matrix for a set of cases (at most `maxPerSite`, drawn with the seed, per site).
    func rows(of site: Set<String>, salt: UInt64) -> [Int] {
        var out: [Int] = []
        for name in siteNames where site.contains(name) {
            var r = sites.indices.filter { sites[$0] == name }
            if r.count > maxPerSite {
                var h: UInt64 = 0xcbf2_9ce4_8422_2325   // FNV-1a of the name: the same draw whatever other sites exist
                for ch in name.utf8 { h = (h ^ UInt64(ch)) &* 0x100_0000_01b3 }
                var g = SplitMix64(seed: seed ^ salt ^ h)
                r.shuffle(using: &g)
                r = Array(r.prefix(maxPerSite)).sorted()
            }
            out += r
        }
        return out
    }

    func matrix(_ rows: [Int]) -> [Float] { rows.flatMap { embeddings[($0 * dimensions)..<(($0 + 1) * dimensions)] } }

    /// Embeddings reduced to at most 64 dimensions (PCA of all cases) for the Fréchet distance, whose covariance
    /// square roots cost d³.
    func reduced() throws -> (values: [Float], dimensions: Int) {
        guard dimensions > 64 else { return (embeddings, dimensions) }
        let e = try Embeddings(values: embeddings, count: ids.count, dimensions: dimensions)
        let m = min(64, ids.count - 1)
        let model = try PCA.fit(e, components: m, seed: seed)
        return (PCA.transform(e, model), m)
    }

    /// Runs every measure; `progress` receives a line per step.
    public func run(progress: ((String) -> Void)? = nil) throws -> SiteReport {
        try validate()
        let names = siteNames, sourceSet = Set(source)
        let targets = names.filter { !sourceSet.contains($0) }
        let d = dimensions
        let sourceRows = rows(of: sourceSet, salt: 1)
        let sourceX = matrix(sourceRows)
        let (fValues, fd) = try reduced()
        func fMatrix(_ r: [Int]) -> [Float] { r.flatMap { fValues[($0 * fd)..<(($0 + 1) * fd)] } }
        let sourceHist = pooledHistogram(sourceSet)
        var rowsOut: [SiteReport.Site] = []
        var mmdP: [Double] = []
        // Every site against the pooled source.
        for (t, name) in names.enumerated() {
            progress?("site \(t + 1)/\(names.count): \(name)")
            let members = sites.indices.filter { sites[$0] == name }
            var row = SiteReport.Site(name: name, cases: members.count, isSource: sourceSet.contains(name))
            row.quality = medianQuality(members)
            row.geometry = summarise(members)
            if !row.isSource {
                let r = rows(of: [name], salt: 2)
                let x = matrix(r)
                let mmd = try MMD.test(sourceX, x, dimensions: d, permutations: permutations, seed: seed &+ UInt64(t))
                let fr = try Frechet.distance(fMatrix(sourceRows), fMatrix(r), dimensions: fd)
                let knn = try knnDistance(x, to: sourceX)
                let auc = try DomainClassifier.auc(source: sourceX, site: x, dimensions: d, seed: seed &+ UInt64(t))
                var distances: [String: Double?] = ["mmd": mmd.statistic, "frechet": fr.distance, "knn": knn, "classifier_auc": auc]
                if let h = pooledHistogram([name]), let s = sourceHist {
                    distances["intensity_w1"] = h.wasserstein1(s); distances["intensity_js"] = h.jensenShannon(s)
                } else {
                    distances["intensity_w1"] = .some(nil); distances["intensity_js"] = .some(nil)
                }
                row.distanceToSource = distances.mapValues { $0 }
                row.mmdPValue = mmd.pValue
                row.mmdMethod = mmd.method
                row.frechetShrunk = fr.shrunk
                mmdP.append(mmd.pValue)
            }
            if let perf = performance(members) { row.meanDice = perf.dice; row.meanHausdorff95 = perf.hd95 }
            rowsOut.append(row)
        }
        // What a pipeline must do to bring a site to the source's geometry.
        let sourceGeometry = summarise(sites.indices.filter { sourceSet.contains(sites[$0]) })
        for i in rowsOut.indices where !rowsOut[i].isSource {
            guard let g = rowsOut[i].geometry, let s = sourceGeometry else { continue }
            if zip(g.spacingMedian, s.spacingMedian).contains(where: { abs($0 - $1) > 0.1 * max(abs($1), 1e-9) }) {
                rowsOut[i].flags.append("resampling (spacing " + g.spacingMedian.map { formatSpacing($0) }.joined(separator: " x ")
                                        + " mm vs " + s.spacingMedian.map { formatSpacing($0) }.joined(separator: " x ") + ")")
            }
            if Set(g.orientations) != Set(s.orientations) {
                rowsOut[i].flags.append("reorientation (\(g.orientations.joined(separator: "/")) vs \(s.orientations.joined(separator: "/")))")
            }
            if Set(g.datatypes) != Set(s.datatypes) {
                rowsOut[i].flags.append("type conversion (\(g.datatypes.joined(separator: "/")) vs \(s.datatypes.joined(separator: "/")))")
            }
        }
        // Quality measures: each target site's cases against the source's, Holm over all (site, measure) tests.
        let sourceMembers = sites.indices.filter { sourceSet.contains(sites[$0]) }
        var qualityTests: [(Int, String, Double)] = []
        for i in rowsOut.indices where !rowsOut[i].isSource {
            let members = sites.indices.filter { sites[$0] == rowsOut[i].name }
            for m in ImageQuality.measures {
                let a = members.compactMap { quality[$0]?[m] }.filter(\.isFinite), b = sourceMembers.compactMap { quality[$0]?[m] }.filter(\.isFinite)
                guard a.count >= 2, b.count >= 2 else { continue }
                qualityTests.append((i, m, Stats.mannWhitneyP(a, b)))
            }
        }
        let qualityAdjusted = Stats.holm(qualityTests.map(\.2))
        for (t, (i, m, _)) in qualityTests.enumerated() { rowsOut[i].qualityPValueHolm[m] = qualityAdjusted[t] }
        // The source model's view: medians per site, and each target site against the source, Holm over its own family.
        if modelView.count == ids.count {
            let modelView = withFragmented(modelView, sourceMembers: sourceMembers)
            let measures = Array(Set(modelView.compactMap { $0 }.flatMap(\.keys))).sorted()
            var viewTests: [(Int, String, Double)] = []
            for i in rowsOut.indices {
                let members = sites.indices.filter { sites[$0] == rowsOut[i].name }
                var medians: [String: Double] = [:]
                for m in measures {
                    let a = members.compactMap { modelView[$0]?[m] }.filter(\.isFinite)
                    if !a.isEmpty { medians[m] = m == "empty" || m == "fragmented" ? Stats.mean(a) : Stats.median(a) }
                    guard !rowsOut[i].isSource else { continue }
                    let b = sourceMembers.compactMap { modelView[$0]?[m] }.filter(\.isFinite)
                    guard a.count >= 2, b.count >= 2 else { continue }
                    viewTests.append((i, m, Stats.mannWhitneyP(a, b)))
                }
                rowsOut[i].modelView = medians
                if !rowsOut[i].isSource { rowsOut[i].modelViewPValueHolm = [:] }
            }
            let viewAdjusted = Stats.holm(viewTests.map(\.2))
            for (t, (i, m, _)) in viewTests.enumerated() { rowsOut[i].modelViewPValueHolm?[m] = viewAdjusted[t] }
        }
        if !estimates.isEmpty { estimateSites(&rowsOut) }
        // Holm over the site-versus-source tests.
        let adjusted = Stats.holm(mmdP)
        var k = 0
        for i in rowsOut.indices where !rowsOut[i].isSource { rowsOut[i].mmdPValueHolm = adjusted[k]; k += 1 }
        // With one source site, its pairs are the comparisons against the source already made: the same numbers.
        let againstSource = sourceSet.count == 1 ? Dictionary(rowsOut.filter { !$0.isSource }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }) : [:]
        let pairwise = try pairwiseMatrices(names, fMatrix: fMatrix, reducedDimensions: fd, againstSource: againstSource,
                                            sourceName: sourceSet.count == 1 ? sourceSet.first : nil, progress: progress)
        progress?("site classifier")
        let confusion = try siteConfusion(names)
        var report = SiteReport(source: source, measures: SiteReport.measureNames, sites: rowsOut, pairwise: pairwise, confusion: confusion,
                                performance: nil, permutations: permutations, seed: seed, maxPerSite: maxPerSite, neighbours: neighbours,
                                embeddingDimensions: d, frechetDimensions: fd)
        report.performance = correlations(report, targets: targets)
        report.estimator = estimatorAccount(report)
        report.findings = SiteReport.findings(report)
        return report
    }

    /// Every case's mean distance to its k nearest source cases (a source case's own row excluded): how typical a
    /// case looks from the source's point of view; the report's examples are a site's smallest and largest.
    public func caseDistances() throws -> [Double] {
        let d = dimensions, sourceSet = Set(source)
        let sourceRows = sites.indices.filter { sourceSet.contains(sites[$0]) }
        let targets = try Embeddings(values: matrix(sourceRows), count: sourceRows.count, dimensions: d)
        let all = try Embeddings(values: embeddings, count: ids.count, dimensions: d)
        let k = min(neighbours, sourceRows.count - 1)
        guard k >= 1 else { throw AnalysisError.invalidInput("the source needs at least 2 cases") }
        let nn = try NearestNeighbors.exact(queries: all, targets: targets, k: k + 1)
        let position = Dictionary(uniqueKeysWithValues: sourceRows.enumerated().map { ($1, $0) })
        return (0..<ids.count).map { i in
            var used = 0, total = 0.0
            for t in 0..<(k + 1) where used < k {
                if let own = position[i], Int(nn.indices[i * (k + 1) + t]) == own { continue }
                total += Double(nn.distances[i * (k + 1) + t]); used += 1
            }
            return total / Double(max(1, used))
        }
    }

    func formatSpacing(_ v: Double) -> String { String(format: v >= 1 ? "%.2g" : "%.3g", v) }

    /// Mean over a site's rows of the mean distance to their k nearest source rows.
    func knnDistance(_ x: [Float], to source: [Float]) throws -> Double {
        let d = dimensions
        let queries = try Embeddings(values: x, count: x.count / d, dimensions: d)
        let targets = try Embeddings(values: source, count: source.count / d, dimensions: d)
        let k = min(neighbours, targets.count)
        let nn = try NearestNeighbors.exact(queries: queries, targets: targets, k: k)
        return Stats.mean(nn.distances.map(Double.init))
    }

    /// Mean of the per-case histograms (each case counts once).
    func pooledHistogram(_ group: Set<String>) -> Histogram? {
        let hs = sites.indices.filter { group.contains(sites[$0]) }.compactMap { histograms[$0] }
        guard var first = hs.first else { return nil }
        first.probabilities = (0..<first.probabilities.count).map { b in hs.reduce(0.0) { $0 + $1.probabilities[b] } / Double(hs.count) }
        first.count = hs.reduce(0) { $0 + $1.count }
        return first
    }

    func medianQuality(_ members: [Int]) -> [String: Double] {
        var out: [String: Double] = [:]
        for m in ImageQuality.measures {
            let v = members.compactMap { quality[$0]?[m] }.filter { $0.isFinite }
            if !v.isEmpty { out[m] = Stats.median(v) }
        }
        return out
    }

    func summarise(_ members: [Int]) -> SiteReport.GeometrySummary? {
        let g = members.compactMap { geometry[$0] }
        guard !g.isEmpty else { return nil }
        let dims = g.map { $0.spacing.count }.min() ?? 0
        let spacing = (0..<dims).map { a in Stats.median(g.map { $0.spacing[a] }) }
        let shapes = Dictionary(grouping: g.map { $0.shape.map(String.init).joined(separator: "x") }, by: { $0 }).mapValues(\.count)
        let fov = (0..<dims).map { a in Stats.median(g.map { Double($0.shape.count > a ? $0.shape[a] : 1) * $0.spacing[a] }) }
        return SiteReport.GeometrySummary(spacingMedian: spacing, shapes: shapes, orientations: Array(Set(g.map(\.orientation))).sorted(),
                                          datatypes: Array(Set(g.map(\.datatype))).sorted(), fieldOfViewMedian: fov,
                                          valueRange: [g.map(\.minimum).min() ?? .nan, g.map(\.maximum).max() ?? .nan])
    }

    /// The model's view with `fragmented` per case: 1 when some label is predicted in more pieces than the source cases'
    /// median for that label (two lungs in one label are two pieces at the source too), else 0; a site's value is the share.
    func withFragmented(_ view: [[String: Double]?], sourceMembers: [Int]) -> [[String: Double]?] {
        let pieceKeys = Set(view.compactMap { $0 }.flatMap(\.keys).filter { $0.hasSuffix("_pieces") })
        var typical: [String: Double] = [:]
        for k in pieceKeys {
            let v = sourceMembers.compactMap { view[$0]?[k] }.filter(\.isFinite)
            if !v.isEmpty { typical[k] = Stats.median(v) }
        }
        guard !typical.isEmpty else { return view }
        return view.map { v in
            guard var v else { return nil }
            v["fragmented"] = typical.contains { k, median in (v[k] ?? 0) > median } ? 1 : 0
            return v
        }
    }

    /// Each site's estimated Dice by every method (mean and bootstrap interval over its cases).
    func estimateSites(_ rows: inout [SiteReport.Site]) {
        for i in rows.indices {
            let members = sites.indices.filter { sites[$0] == rows[i].name }
            var all: [String: SiteReport.EstimatedDice] = [:]
            for (method, values) in estimates {
                let e = DiceEstimator.siteEstimate(members.map { values[$0] }, seed: seed)
                guard e.mean.isFinite else { continue }
                all[method.rawValue] = SiteReport.EstimatedDice(mean: e.mean, low: e.low, high: e.high, method: method.rawValue)
            }
            rows[i].estimatedDiceCandidates = all.isEmpty ? nil : all
            rows[i].estimatedDice = all[DiceEstimator.defaultMethod.rawValue]
        }
    }

    /// The estimator's calibration, and with known Dice each method's agreement with it, per site and per case.
    func estimatorAccount(_ report: SiteReport) -> SiteReport.Estimator? {
        guard let estimator, !estimates.isEmpty else { return nil }
        var check: [String: SiteReport.Check] = [:]
        if !outcomes.isEmpty {
            for (method, values) in estimates {
                var siteEst: [Double] = [], siteTrue: [Double] = [], holding = 0
                for site in report.sites {
                    guard let e = site.estimatedDiceCandidates?[method.rawValue], let d = site.meanDice, d.isFinite else { continue }
                    siteEst.append(e.mean); siteTrue.append(d)
                    if d >= e.low && d <= e.high { holding += 1 }
                }
                let pairs = ids.indices.compactMap { i -> (Double, Double)? in
                    guard let o = outcomes[ids[i]], o.dice.isFinite, values[i].isFinite else { return nil }
                    return (values[i], o.dice)
                }
                guard !pairs.isEmpty else { continue }
                func mae(_ a: [Double], _ b: [Double]) -> Double { Stats.mean(zip(a, b).map { abs($0 - $1) }) }
                check[method.rawValue] = SiteReport.Check(sites: siteEst.count, siteSpearman: Stats.spearman(siteEst, siteTrue), siteMAE: mae(siteEst, siteTrue),
                                                          intervalsHolding: holding, cases: pairs.count,
                                                          caseSpearman: Stats.spearman(pairs.map(\.0), pairs.map(\.1)),
                                                          caseMAE: mae(pairs.map(\.0), pairs.map(\.1)))
            }
        }
        return SiteReport.Estimator(method: DiceEstimator.defaultMethod.rawValue, calibrationCases: calibrationCases,
                                    calibrationRows: estimator.calibrationRows,
                                    calibrationError: Dictionary(uniqueKeysWithValues: estimator.calibrationError.map { ($0.key.rawValue, $0.value) }),
                                    check: outcomes.isEmpty ? nil : check)
    }

    func performance(_ members: [Int]) -> (dice: Double, hd95: Double)? {
        let o = members.compactMap { outcomes[ids[$0]] }
        guard !o.isEmpty else { return nil }
        let hd = o.map(\.hausdorff95).filter { $0.isFinite }
        return (Stats.mean(o.map(\.dice).filter { $0.isFinite }), hd.isEmpty ? .nan : Stats.mean(hd))
    }

    /// Site-by-site matrices (symmetric; the diagonal 0): MMD² with Holm-corrected permutation p-values, Fréchet
    /// distance, mean kNN distance (the two directions averaged), classifier AUC, intensity W1 and JS. A pair of the
    /// single source site `sourceName` and another site takes the values of that site's comparison with the source
    /// (`againstSource`) instead of computing them again on another subsample with another seed, so that the report
    /// shows one number per pair (only the kNN distance, averaged over both directions here, is computed anew).
    func pairwiseMatrices(_ names: [String], fMatrix: ([Int]) -> [Float], reducedDimensions fd: Int,
                          againstSource: [String: SiteReport.Site] = [:], sourceName: String? = nil,
                          progress: ((String) -> Void)?) throws -> SiteReport.Pairwise {
        let s = names.count, d = dimensions
        var mmd = [[Double]](repeating: [Double](repeating: 0, count: s), count: s), p = mmd, fr = mmd, knn = mmd, auc = mmd, w1 = mmd, js = mmd
        for i in 0..<s { auc[i][i] = 0.5; p[i][i] = 1 }
        let rowsOf = names.map { rows(of: [$0], salt: 3) }
        let hist = names.map { pooledHistogram([$0]) }
        var pairs: [(Int, Int)] = []
        for i in 0..<s { for j in (i + 1)..<max(i + 1, s) { pairs.append((i, j)) } }
        var rawP: [Double] = []
        for (q, (i, j)) in pairs.enumerated() {
            progress?("pair \(q + 1)/\(pairs.count): \(names[i]) and \(names[j])")
            let (xi, xj) = (matrix(rowsOf[i]), matrix(rowsOf[j]))
            let k = (try knnDistance(xi, to: xj) + knnDistance(xj, to: xi)) / 2
            knn[i][j] = k; knn[j][i] = k
            let other = names[i] == sourceName ? names[j] : (names[j] == sourceName ? names[i] : nil)
            if let other, let known = againstSource[other], let m = known.distanceToSource["mmd"] ?? nil, let pv = known.mmdPValue,
               let f = known.distanceToSource["frechet"] ?? nil, let a = known.distanceToSource["classifier_auc"] ?? nil {
                mmd[i][j] = m; mmd[j][i] = m; rawP.append(pv)
                fr[i][j] = f; fr[j][i] = f
                auc[i][j] = a; auc[j][i] = a
                if let w = known.distanceToSource["intensity_w1"] ?? nil, let jsd = known.distanceToSource["intensity_js"] ?? nil {
                    w1[i][j] = w; w1[j][i] = w; js[i][j] = jsd; js[j][i] = jsd
                }
                continue
            }
            let t = try MMD.test(xi, xj, dimensions: d, permutations: permutations, seed: seed &+ UInt64(1000 + i * s + j))
            mmd[i][j] = t.statistic; mmd[j][i] = t.statistic; rawP.append(t.pValue)
            let f = try Frechet.distance(fMatrix(rowsOf[i]), fMatrix(rowsOf[j]), dimensions: fd).distance
            fr[i][j] = f; fr[j][i] = f
            let a = try DomainClassifier.auc(source: xi, site: xj, dimensions: d, seed: seed &+ UInt64(i * s + j))
            auc[i][j] = a; auc[j][i] = a
            if let hi = hist[i], let hj = hist[j] {
                w1[i][j] = hi.wasserstein1(hj); w1[j][i] = w1[i][j]
                js[i][j] = hi.jensenShannon(hj); js[j][i] = js[i][j]
            }
        }
        let adjusted = Stats.holm(rawP)
        for (t, (i, j)) in pairs.enumerated() { p[i][j] = adjusted[t]; p[j][i] = adjusted[t] }
        return SiteReport.Pairwise(sites: names, mmd: mmd, mmdPValueHolm: p, frechet: fr, knn: knn, classifierAUC: auc, intensityW1: w1, intensityJS: js)
    }

    func siteConfusion(_ names: [String]) throws -> SiteReport.Confusion {
        let r = rows(of: Set(names), salt: 4)
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        let labels = r.map { index[sites[$0]]! }
        let m = try DomainClassifier.confusion(matrix(r), labels: labels, classes: names.count, dimensions: dimensions, seed: seed)
        let correct = (0..<names.count).reduce(0) { $0 + m[$1][$1] }
        return SiteReport.Confusion(sites: names, counts: m, accuracy: Double(correct) / Double(max(1, labels.count)))
    }

    /// Spearman and Pearson correlations of each distance with the target sites' mean Dice and HD95, with bootstrap
    /// 95 % intervals over sites.
    func correlations(_ report: SiteReport, targets: [String]) -> SiteReport.Performance? {
        let rows = report.sites.filter { targets.contains($0.name) && $0.meanDice != nil }
        guard rows.count >= 2 else { return nil }
        var out: [SiteReport.Correlation] = []
        for measure in SiteReport.measureNames {
            for (outcome, values) in [("dice", rows.map { $0.meanDice! }), ("hausdorff95_mm", rows.map { $0.meanHausdorff95 ?? .nan })] {
                let pairs = zip(rows.map { ($0.distanceToSource[measure] ?? nil) ?? .nan }, values).filter { $0.0.isFinite && $0.1.isFinite }
                let x = pairs.map(\.0), y = pairs.map(\.1)
                guard x.count >= 3 else { continue }
                let sp = Stats.spearman(x, y), pe = Stats.pearson(x, y)
                out.append(SiteReport.Correlation(measure: measure, outcome: outcome, sites: x.count, spearman: sp,
                                                  spearmanInterval: Stats.bootstrapInterval(x, y, seed: seed, Stats.spearman),
                                                  spearmanP: Stats.spearmanPermutationP(x, y, seed: seed),
                                                  pearson: pe, pearsonInterval: Stats.bootstrapInterval(x, y, seed: seed &+ 1, Stats.pearson)))
            }
        }
        let sourceRows = report.sites.filter { $0.isSource && $0.meanDice != nil }
        return SiteReport.Performance(sourceDice: sourceRows.isEmpty ? nil : Stats.mean(sourceRows.map { $0.meanDice! }), correlations: out)
    }
}
