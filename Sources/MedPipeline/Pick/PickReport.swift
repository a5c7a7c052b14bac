import Foundation
import MedAnalysis
import MedData
import MedFormats
import MedFoundation
import MedReport

/// What `medselect pick` hands over, from its finished items: PLAN/worklist/ for the annotators (as `medselect
/// worklist` lays it out), PLAN/worklist.csv (rank, case, site, the selection's terms and a reason in words),
/// PLAN/report.html (one self-contained page: the picks and why, the pool map, how each site differs from the source,
/// the source model's view of each site, the budget advice) and PLAN/plan.json (the same facts for programs).
public enum PickReport {
    public struct Options: Sendable {
        public var version = ""
        public var worklistFormat = Worklist.Format.files
        /// Things the reader should know (masks skipped, sites renamed, ...).
        public var notes: [String] = []
        public init() {}
    }

    /// The budget prior from the phantom benchmarks (Docs/results.md, "Budget advice"): the advisor's validation on the
    /// chest X-ray phantom, where 7 labeled cases (interval 7-10) of a pool of 240 were predicted to reach 95 % of the
    /// full-data Dice and reached 97.8 % when trained. Shown as a prior, never as a measurement on the user's images.
    public static let phantomPrior = "A prior from phantoms, not a measurement on your images: on MedSelect's chest X-ray phantom benchmark (Docs/results.md, \"Budget advice\"), about 7 labeled cases (95 % interval 7–10) of a pool of 240, i.e. about 3 %, were predicted to reach 95 % of the Dice of labeling everything, and reached 97.8 % when trained. Once your first labels exist, `medselect advise` on an experiment over your labeled cases replaces this prior with a measured learning curve."

    @discardableResult
    public static func write(_ plan: PickPlan, to folder: String, options: Options) throws -> PickRecord {
        let store = plan.store
        let selectionPath = store.folder(plan.selectItem) + "/selection.json"
        let selection = try Selection.read(selectionPath)
        let byID = Dictionary(plan.targets.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })

        // The annotators' folder: kept when it already holds these picks, rewritten when the picks changed, unless
        // annotators have started saving labels there.
        let worklist = folder + "/worklist"
        try refreshWorklist(worklist, selection: selection, selectionPath: selectionPath, samples: plan.targets, format: options.worklistFormat)
        let images = try worklistImages(worklist)

        // Picks with their terms and reasons.
        let termNames = Array(Set(selection.picks.flatMap { ($0.terms ?? [:]).keys })).sorted()
        var picks: [PickRecord.Pick] = []
        for (i, p) in selection.picks.enumerated() {
            let s = byID[p.id]!
            picks.append(.init(rank: i + 1, id: p.id, site: s.site, image: images[p.id] ?? "", terms: p.terms ?? [:],
                               reason: reason(strategy: plan.settings.strategy, pick: p, selection: selection, site: s.site)))
        }
        var csv = (["rank", "case", "site", "image"] + termNames + ["score", "reason"]).joined(separator: ",") + "\n"
        for (p, pick) in zip(picks, selection.picks) {
            let terms = termNames.map { p.terms[$0].map(shown) ?? "" }
            csv += ([String(p.rank), p.id, p.site, p.image] + terms + [pick.score.map { String(format: "%.4g", $0) } ?? ""]).map(csvField).joined(separator: ",")
                + "," + csvField(p.reason) + "\n"
        }
        try AtomicFile.write(csv, to: folder + "/worklist.csv")

        // Sites: the site analysis (when there is a source) and the model's view.
        let siteNames = Array(Set(plan.targets.map(\.site))).sorted()
        var siteReport: SiteReport? = nil
        if let item = plan.sitesItem {
            let data = try Data(contentsOf: URL(fileURLWithPath: store.folder(item) + "/sites.json"))
            siteReport = try JSONDecoder().decode(SiteReport.self, from: data)
        }
        // The cases as they are (the calibration's synthetic versions of the held-out source cases left out).
        let views = try (plan.viewItem.map { try CaseView.read(store.folder($0) + "/view.csv") } ?? []).filter { $0.severity == 0 }
        let sourceViews = views.filter { plan.sourceSites.contains($0.site) }
        let pickedPerSite = Dictionary(grouping: picks, by: \.site).mapValues(\.count)
        var sites: [PickRecord.SiteEntry] = []
        for name in plan.sourceSites + siteNames {
            let isSource = plan.sourceSites.contains(name)
            let entry = siteReport?.sites.first { $0.name == name }
            var shift: [String: JSONValue] = [:]
            if let entry {
                for (k, v) in entry.distanceToSource { if let v, v.isFinite { shift[k] = .number(v) } }
                if let p = entry.mmdPValueHolm { shift["mmd_p_holm"] = .number(p) }
                if !entry.flags.isEmpty { shift["flags"] = .array(entry.flags.map { .string($0) }) }
            }
            let mine = views.filter { $0.site == name }
            sites.append(.init(name: name, role: isSource ? "source" : "target", cases: isSource ? plan.source.filter { $0.site == name }.count : plan.targets.filter { $0.site == name }.count,
                               picked: pickedPerSite[name] ?? 0, shift: shift,
                               finding: siteReport?.findings.first { $0.hasPrefix(name + ":") } ?? entry?.finding ?? "",
                               modelView: viewSummary(mine, reference: sourceViews), estimatedDice: entry?.estimatedDice))
        }

        var timings: [String: Double] = [:]
        for item in plan.items {
            if let t = try? String(contentsOfFile: store.folder(item.id) + "/seconds.txt", encoding: .utf8), let v = Double(t.trimmingCharacters(in: .whitespacesAndNewlines)) {
                timings[item.stage] = v
            }
        }
        // The training lengths as they ran (the defaults depend on the number of images).
        var settings = plan.settings
        if plan.sourceItem != nil { settings.sourceEpochs = settings.sourceEpochs(trainCases: plan.sourceTrain.count) }
        if plan.encoderItem != nil { settings.encoderEpochs = settings.encoderEpochs(images: plan.source.count + plan.targets.count) }
        let record = PickRecord(medselectVersion: options.version, settings: settings, strategy: selection.strategy, budget: selection.budget,
                                poolCases: plan.targets.count, picks: picks, sites: sites, selectionResults: selection.results,
                                budgetAdvice: phantomPrior, notes: options.notes, timingsSeconds: timings)
        try record.write(to: folder + "/plan.json")
        try selection.write(to: folder + "/selection.json")
        try AtomicFile.write(try page(plan, record: record, siteReport: siteReport, options: options), to: folder + "/report.html")
        return record
    }

    // MARK: - The worklist folder

    static func refreshWorklist(_ worklist: String, selection: Selection, selectionPath: String, samples: [Sample], format: Worklist.Format) throws {
        let fm = FileManager.default
        let csvPath = worklist + "/worklist.csv"
        if fm.fileExists(atPath: csvPath) {
            let rows = try readCSV(csvPath)
            if rows.map({ $0["id"] ?? "" }) == selection.selected { return }
            // The picks changed: the old folder goes, unless annotators saved labels in it since it was written.
            let written = (try? fm.attributesOfItem(atPath: csvPath)[.modificationDate] as? Date) ?? .distantPast
            let labels = ((try? fm.contentsOfDirectory(atPath: worklist + "/labels")) ?? []).filter { !$0.hasPrefix(".") }
            let touched = labels.filter { f in
                ((try? fm.attributesOfItem(atPath: worklist + "/labels/" + f)[.modificationDate] as? Date) ?? .distantPast) > written.addingTimeInterval(1)
            }
            guard touched.isEmpty else {
                throw DataError.badConfiguration(path: worklist + "/labels", reason: "holds \(touched.count) label file(s) saved for the previous picks (e.g. \(touched.sorted()[0])); import them (medselect import-labels) and move the worklist away, or give another --out")
            }
            try fm.removeItem(atPath: worklist)
        } else if fm.fileExists(atPath: worklist) {
            try fm.removeItem(atPath: worklist)
        }
        // Written next to the final folder, then renamed: an interrupted write leaves no half worklist.
        let temporary = worklist + ".partial"
        try? fm.removeItem(atPath: temporary)
        try Worklist.write(selection: selectionPath, samples: samples, to: temporary, link: false, format: format)
        guard rename(temporary, worklist) == 0 else {
            throw DataError.badConfiguration(path: worklist, reason: "could not be written (\(String(cString: strerror(errno))))")
        }
    }

    /// The worklist's image file (relative to the worklist folder) of every case.
    static func worklistImages(_ worklist: String) throws -> [String: String] {
        Dictionary(try readCSV(worklist + "/worklist.csv").compactMap { r in r["id"].map { ($0, r["image"] ?? "") } }, uniquingKeysWith: { a, _ in a })
    }

    // MARK: - Words

    static func shown(_ v: JSONValue) -> String {
        if case .string(let s) = v { return s }
        return v.double.map { String(format: "%.3g", $0) } ?? "\(v)"
    }

    static func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// Why a case was picked, in one line, from the strategy's terms.
    static func reason(strategy: Strategy, pick: Selection.Pick, selection: Selection, site: String) -> String {
        let t = pick.terms ?? [:]
        func v(_ k: String) -> Double? { t[k]?.double }
        switch strategy {
        case .xssr:
            var parts: [String] = []
            if let d = v("density") { parts.append(d >= 0.5 ? "typical of many target images (density \(f(d)))" : "from a sparse part of the pool (density \(f(d)))") }
            if let n = v("novelty") { parts.append(n >= 0.5 ? "unlike the source images (novelty \(f(n)))" : "close to the source images (novelty \(f(n)))") }
            if let d = v("diversity") { parts.append(d >= 0.5 ? "far from the cases picked before it (diversity \(f(d)))" : "near an earlier pick (diversity \(f(d)))") }
            return parts.isEmpty ? "picked by XSSR" : parts.joined(separator: "; ")
        case .coldstart:
            let k = selection.results["k"]?.double.map { Int($0) }
            return "the most central case of cluster \(v("cluster").map { String(Int($0) + 1) } ?? "?")" + (k.map { " of \($0)" } ?? "") + " on the pool's map"
        case .coreset:
            return "the case farthest from every earlier pick (distance \(v("distance_to_nearest_centre").map(f) ?? "?"))"
        case .typiclust:
            return "the most typical case of cluster \(v("cluster").map { String(Int($0) + 1) } ?? "?") (typicality \(v("typicality").map(f) ?? "?"))"
        case .probcover:
            return "covers \(v("newly_covered").map { String(Int($0)) } ?? "?") images no earlier pick covers"
        case .random:
            return "drawn at random (site quotas in proportion to \(site)'s share of the pool)"
        case .acquisition:
            return "uncertain for the model (\(v("uncertainty").map(f) ?? "?")) and unlike earlier picks (\(v("diversity").map(f) ?? "?"))"
        }
    }

    static func folderPrefix(_ plan: PickPlan) -> String { (plan.store.root as NSString).deletingLastPathComponent + "/" }

    static func f(_ x: Double) -> String { String(format: "%.2f", x) }

    /// A site's model-view summary: mean entropy, share of empty predictions, and per label the median size and mean
    /// number of pieces, with the median size relative to the source's held-out cases when there are some.
    static func viewSummary(_ rows: [CaseView], reference: [CaseView]) -> [String: JSONValue] {
        guard !rows.isEmpty else { return [:] }
        var out: [String: JSONValue] = [:]
        let cases = Dictionary(grouping: rows, by: \.id)
        out["cases"] = .int(cases.count)
        out["mean_entropy"] = .number(Stats.mean(cases.values.map { $0[0].entropy }))
        out["mean_disagreement"] = .number(Stats.mean(cases.values.map { $0[0].disagreement }.filter(\.isFinite)))
        out["empty_share"] = .number(Double(cases.values.filter { $0.allSatisfy { $0.size == 0 } }.count) / Double(cases.count))
        for label in Set(rows.map(\.label)).sorted() {
            let mine = rows.filter { $0.label == label }
            let size = median(mine.map(\.size))
            var l: [String: JSONValue] = ["median_size_mm": .number(size), "mean_pieces": .number(Stats.mean(mine.map { Double($0.components) }))]
            let ref = median(reference.filter { $0.label == label }.map(\.size))
            if ref.isFinite && ref > 0 { l["size_vs_source"] = .number(size / ref) }
            out["label_\(label)"] = .object(l)
        }
        return out
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.filter(\.isFinite).sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    // MARK: - The page

    static func page(_ plan: PickPlan, record: PickRecord, siteReport: SiteReport?, options: Options) throws -> String {
        let s = plan.settings
        var page = HTMLReport(title: "\(record.picks.count) images to annotate first",
                              subtitle: "medselect pick, \(s.strategy.rawValue) at a budget of \(s.budget) of \(plan.targets.count) target images; medselect \(options.version)")
        let sourceText = plan.source.isEmpty ? "no source images (a ready model and encoder were given)"
            : "\(plan.source.count) labeled source images (\(plan.sourceSites.joined(separator: ", ")))"
        page.paragraph("Target: \(plan.targets.count) unlabeled images from \(Set(plan.targets.map(\.site)).count) site(s) in \(s.targets.joined(separator: ", ")); no target label was read. Source: \(sourceText). Embeddings: " + (s.encoder == nil ? "a masked autoencoder pretrained on the source and target images together, without labels (\(s.encoderEpochs(images: plan.source.count + plan.targets.count)) epochs at \(s.encoderSize) px)." : "the encoder \(s.encoder!)."))
        if !options.notes.isEmpty { page.list(options.notes) }

        page.heading("What to annotate, in this order", id: "picks")
        page.paragraph("The annotators' folder is worklist/ (open the images in 3D Slicer or ITK-SNAP, save each mask in worklist/labels/ under the case's name); worklist.csv has these rows with every term of the selection.")
        let perSite = Dictionary(grouping: record.picks, by: \.site).map { ($0.key, $0.value.count) }.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        page.paragraph("Picks per site: " + perSite.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ".")
        let shown = 24
        let byID = Dictionary(plan.targets.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let cells = record.picks.prefix(shown).compactMap { p -> ImageGrid.Cell? in
            guard let sample = byID[p.id], let uri = try? CaseThumbnail.uri(sample, options: .default) else { return nil }
            return ImageGrid.Cell(pngDataURI: uri, caption: "\(p.rank). \(p.id) (\(p.site))")
        }
        if !cells.isEmpty { page.raw(ImageGrid(rows: [("picks", cells)]).html) }
        page.table(header: ["rank", "case", "site", "why"], rows: record.picks.prefix(shown).map { [String($0.rank), $0.id, $0.site, $0.reason] }, numeric: [0],
                   caption: record.picks.count > shown ? "The first \(shown) of \(record.picks.count) picks; worklist.csv lists all of them." : nil)

        // The pool map.
        if let m = try? NPYReader.readMatrix(plan.store.folder(plan.embedItem) + "/pool.npy") {
            let map = try CaseThumbnail.map(m.values, dimensions: m.columns, count: m.rows, seed: 0)
            let siteOrder = Array(Set(plan.targets.map(\.site))).sorted()
            let plot = CaseThumbnail.picksPlot(map: map, ids: plan.targets.map(\.id), sites: plan.targets.map(\.site), siteOrder: siteOrder,
                                               picked: record.picks.map(\.id), title: "The target pool and the picks")
            page.figures([(plot.svg, "Every target image on the first two principal components of its embedding, coloured by site; the picks in black, numbered in order.")])
        }

        page.heading("How each site differs from the source", id: "sites")
        if let siteReport {
            let rows = record.sites.map { e -> [String] in
                let d = e.shift["mmd"]?.double ?? siteReport.sites.first { $0.name == e.name }?.distanceToSource["mmd"].flatMap { $0 }
                return [e.name, e.role, String(e.cases), String(e.picked), d.map { String(format: "%.3g", $0) } ?? "–",
                        e.shift["mmd_p_holm"]?.double.map { $0 < 0.001 ? "< 0.001" : String(format: "%.3f", $0) } ?? "–"]
            }
            page.table(header: ["site", "role", "images", "picked", "MMD to source", "p (Holm)"], rows: rows, numeric: [2, 3, 4, 5],
                       caption: "The site analysis (medselect sites) on the pretrained embeddings, with image quality, geometry and intensities; its full report is items/sites/*/report.html.")
            if !siteReport.findings.isEmpty { page.list(siteReport.findings) }
        } else {
            page.paragraph("No source images were given, so no site is compared with the source; give --source-data for this section.")
        }

        page.heading("The source model's view of each site", id: "model-view")
        let viewRows = record.sites.filter { !$0.modelView.isEmpty }.map { e -> [String] in
            let m = e.modelView
            let labels = m.keys.filter { $0.hasPrefix("label_") }.sorted()
            let sizes = labels.map { k -> String in
                guard case .object(let o)? = m[k] else { return "" }
                let rel = o["size_vs_source"]?.double.map { String(format: " (%.0f %% of source)", 100 * $0) } ?? ""
                return "\(k.dropFirst(6)): \(o["median_size_mm"]?.double.map { String(format: "%.0f", $0) } ?? "–")\(rel), \(o["mean_pieces"]?.double.map { String(format: "%.1f", $0) } ?? "–") pieces"
            }.joined(separator: "; ")
            return [e.name, e.role, m["cases"]?.double.map { String(Int($0)) } ?? "",
                    e.estimatedDice.map { String(format: "%.3f (%.3f – %.3f)", $0.mean, $0.low, $0.high) } ?? "–",
                    m["mean_entropy"]?.double.map { String(format: "%.3f", $0) } ?? "–",
                    m["mean_disagreement"]?.double.map { String(format: "%.3f", $0) } ?? "–",
                    m["empty_share"]?.double.map { String(format: "%.0f %%", 100 * $0) } ?? "–", sizes]
        }
        if viewRows.isEmpty {
            page.paragraph("No source model: give --source-data (or --model) to see how the model sees each site.")
        } else {
            page.table(header: ["site", "role", "images", "expected Dice (95 % interval)", "mean entropy (nats)", "augmentation disagreement", "empty predictions",
                                "predicted structures: median size (mm² or mm³), pieces"],
                       rows: viewRows, numeric: [2, 3, 4, 5, 6],
                       caption: "The source model's predictions on every image, without labels (source: its held-out cases). Augmentation disagreement: 1 − the mean Dice of the predictions on the mirrored and on the noisy image with the plain one. Higher entropy or disagreement, empty or fragmented predictions and sizes far from the source's are signs the model will do worse at that site. Expected Dice: the source model's Dice estimated without labels from these signs, calibrated on the held-out source cases and their synthetic scanner changes (the site analysis's 'Will the model work here?', items/sites/*/report.html; its accuracy on phantoms is in Docs/analysis.md); the interval covers the sampling of the site's images only.")
            if !record.sites.contains(where: { $0.estimatedDice != nil }) {
                let held = plan.sourceHeld.count
                page.paragraph(held == 0
                    ? "No expected Dice: it is calibrated on labeled source cases the model was not trained on, and there are none here (give --source-data)."
                    : "No expected Dice: \(held) held-out source case\(held == 1 ? "" : "s") are too few to calibrate it (at least 10 calibration rows, i.e. 3 cases with their synthetic versions, are needed; the source's held-out share is a fifth of its labeled cases).")
            }
        }

        page.heading("How many labels", id: "budget")
        page.paragraph(record.budgetAdvice)

        page.heading("Next steps", id: "next")
        page.list(["Annotate: open worklist/images in 3D Slicer or ITK-SNAP, save each mask into worklist/labels/ with the case's name.",
                   "Index the target once and import the masks: medselect index \(s.targets[0]) --db target.sqlite, then medselect import-labels PLAN/worklist --db target.sqlite",
                   "Fine-tune the source model on them: medselect train --db target.sqlite --selection PLAN/selection.json --init-from " + (plan.modelPath.map { $0.hasPrefix(folderPrefix(plan)) ? "PLAN/" + $0.dropFirst(folderPrefix(plan).count) : $0 } ?? "MODEL.safetensors") + " --out model/",
                   "Pick again, knowing what is labeled (active learning): medselect pick ... --labeled PLAN/selection.json --budget N --out PLAN2/"])
        page.heading("Settings and timings", id: "settings")
        page.table(header: ["stage", "seconds"], rows: record.timingsSeconds.sorted { $0.key < $1.key }.map { [$0.key, String(format: "%.1f", $0.value)] }, numeric: [1],
                   caption: "Time each stage took when it was computed (a re-run reuses them).")
        return page.html
    }
}
