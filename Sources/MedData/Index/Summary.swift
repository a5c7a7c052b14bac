import Foundation

/// One row of `medselect summary`: what the index knows about a site.
public struct SiteSummary: Sendable, Codable, Equatable {
    public var root: String
    public var site: String
    public var cases: Int
    public var labeled: Int
    /// "nx x ny x nz" -> number of cases (image files).
    public var shapes: [String: Int]
    /// Smallest and largest spacing per axis, mm.
    public var spacingMin: [Double]
    public var spacingMax: [Double]
    /// Medians over the site's images of their 1st, 50th and 99th intensity percentiles (indexed with statistics).
    public var intensityPercentiles: [Double]?
    /// Label value (after the sample's label rule) -> mean and standard deviation of its volume per labeled case, in
    /// mm³ (for 2-D images the pixel area times the 1 mm that the third axis counts, i.e. the area in mm²).
    public var labelVolumes: [String: [Double]]
    /// Files the index could not read.
    public var unreadable: Int
    /// The scanners of the site's cases ("SIEMENS Prisma 3T MR" -> cases), from their DICOM headers; empty otherwise.
    public var scanners: [String: Int] = [:]

    /// JSON keys in snake_case with their units, as every other output of the tool.
    enum CodingKeys: String, CodingKey {
        case root, site, cases, labeled, shapes, unreadable, scanners
        case spacingMin = "spacing_min_mm", spacingMax = "spacing_max_mm"
        case intensityPercentiles = "intensity_p1_p50_p99"
        case labelVolumes = "label_volumes_mm3_mean_sd"
    }
}

extension DatasetIndex {
    /// Per-site summary of every indexed root (present samples and files only).
    public func summary() throws -> [SiteSummary] {
        var out: [SiteSummary] = []
        let dec = JSONDecoder()
        for d in try rows("SELECT root FROM datasets ORDER BY root") {
            guard let root = d["root"]?.string else { continue }
            let sites = try rows("SELECT name FROM sites WHERE root = ? ORDER BY rowid", [.text(root)]).compactMap { $0["name"]?.string }
            for site in sites {
                let samples = try rows("SELECT id, labels_json, label_rule, label_volumes_json, scanner_json FROM samples WHERE root = ? AND site = ? AND present = 1", [.text(root), .text(site)])
                guard !samples.isEmpty else { continue }
                let imported = Set(try rows("SELECT sample_id FROM imported_labels WHERE root = ?", [.text(root)]).compactMap { $0["sample_id"]?.string })
                let labeled = samples.filter { ($0["labels_json"]?.string ?? "[]") != "[]" || LabelRule(rawValue: $0["label_rule"]?.string ?? "")?.labelsInTags == true
                                               || imported.contains($0["id"]?.string ?? "") }.count
                let files = try rows("""
                    SELECT f.* FROM files f JOIN samples s ON s.root = f.root AND s.id = f.sample_id
                    WHERE f.root = ? AND s.site = ? AND f.present = 1 AND s.present = 1
                    """, [.text(root), .text(site)])
                var shapes: [String: Int] = [:]
                var lo = [Double](repeating: .infinity, count: 3), hi = [Double](repeating: -.infinity, count: 3)
                var pct: [[Double]] = [[], [], []]
                var volumes: [String: [Double]] = [:]
                var unreadable = 0
                for f in files {
                    if f["error"] != .null { unreadable += 1; continue }
                    if f["role"]?.string == "image" {
                        let key = ["nx", "ny", "nz"].map { String(f[$0]?.int ?? 0) }.joined(separator: "x")
                        shapes[key, default: 0] += 1
                        for (a, k) in ["sx", "sy", "sz"].enumerated() {
                            if let v = f[k]?.double { lo[a] = min(lo[a], v); hi[a] = max(hi[a], v) }
                        }
                        for (i, k) in ["p01", "p50", "p99"].enumerated() { if let v = f[k]?.double { pct[i].append(v) } }
                    }
                }
                var scanners: [String: Int] = [:]
                for sm in samples {
                    if let text = sm["scanner_json"]?.string, let sc = try? dec.decode(ScannerInfo.self, from: Data(text.utf8)),
                       let name = sc.scannerName {
                        let field = sc.fieldStrength.map { String(format: "%gT", $0) }
                        scanners[[name, field, sc.modality].compactMap { $0 }.joined(separator: " "), default: 0] += 1
                    }
                    if let text = sm["label_volumes_json"]?.string, let v = try? dec.decode([String: Double].self, from: Data(text.utf8)) {
                        for (label, volume) in v { volumes[label, default: []].append(volume) }
                    }
                }
                func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
                let stats = pct[1].isEmpty ? nil : pct.map(median)
                let vol = volumes.mapValues { v -> [Double] in
                    let m = v.reduce(0, +) / Double(v.count)
                    let sd = (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(max(1, v.count - 1))).squareRoot()
                    return [m, sd]
                }
                out.append(SiteSummary(root: root, site: site, cases: samples.count, labeled: labeled, shapes: shapes,
                                       spacingMin: lo.map { $0.isFinite ? $0 : 0 }, spacingMax: hi.map { $0.isFinite ? $0 : 0 },
                                       intensityPercentiles: stats, labelVolumes: vol, unreadable: unreadable, scanners: scanners))
            }
        }
        return out
    }

    /// The summary as a Markdown table (pastes into papers and issues).
    public static func markdown(_ rows: [SiteSummary]) -> String {
        func f(_ v: Double) -> String { v >= 100 ? String(format: "%.0f", v) : v >= 1 ? String(format: "%.2f", v) : String(format: "%.3g", v) }
        // The scanners column only when some site has scanner facts (DICOM).
        let withScanners = rows.contains { !$0.scanners.isEmpty }
        var s = "| site | cases | labeled |" + (withScanners ? " scanners |" : "") + " shapes | spacing (mm) | intensity p1 / p50 / p99 | label volume, mm³ (2-D: mm²), mean ± sd |\n"
            + "|---|---|---|" + (withScanners ? "---|" : "") + "---|---|---|---|\n"
        for r in rows {
            let scanners = r.scanners.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.key) (\($0.value))" }.joined(separator: ", ")
            let shapes = r.shapes.sorted { $0.value > $1.value }.prefix(3).map { "\($0.key) (\($0.value))" }.joined(separator: ", ")
                + (r.shapes.count > 3 ? ", ..." : "")
            let spacing = (0..<3).map { r.spacingMin[$0] == r.spacingMax[$0] ? f(r.spacingMin[$0]) : "\(f(r.spacingMin[$0]))-\(f(r.spacingMax[$0]))" }.joined(separator: " x ")
            let pct = r.intensityPercentiles.map { $0.map(f).joined(separator: " / ") } ?? "(index with --statistics)"
            let vol = r.labelVolumes.sorted { $0.key < $1.key }.map { "\($0.key): \(f($0.value[0])) ± \(f($0.value[1]))" }.joined(separator: "; ")
            s += "| \(r.site) | \(r.cases) | \(r.labeled) |" + (withScanners ? " \(scanners.isEmpty ? "-" : scanners) |" : "") + " \(shapes) | \(spacing) | \(pct) | \(vol.isEmpty ? "-" : vol) |\n"
        }
        return s
    }
}
