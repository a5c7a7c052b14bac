import Foundation
import MedData
import MedFoundation

/// One case as the source model sees it, for one foreground label: the predicted structure's size (mm² for a 2-D
/// image, mm³ for a volume, 0 when nothing is predicted), its number of pieces, the largest piece's share of it, its
/// boundary (mm in 2-D, mm² in 3-D) and compactness, and the case's mean
/// predictive entropy (nats), test-time-augmentation disagreement (1 − mean Dice of augmented predictions with the
/// plain one) and best Dice against the labeled references' shapes (`reference`, NaN without references). A labeled
/// calibration case also has its true Dice (`dice`, the mean over labels at the model's grid), and its synthetic
/// versions (`severity` > 0: the scanner changes `CaseView.compute` applies) have rows of their own; a case as it is
/// has severity 0. What the model-view stage writes to `view.csv`
/// (`case,site,severity,entropy,disagreement,reference,label,size_mm,components,largest_share,boundary_mm,compactness,dice`) and the pick
/// report, the site analysis and the Dice estimate read; written and read only here.
public struct CaseView: Sendable, Equatable {
    public var id: String, site: String
    public var severity: Double = 0
    public var entropy: Double
    public var disagreement: Double
    public var reference: Double = .nan
    public var label: Int
    public var size: Double, components: Int, compactness: Double
    public var largestShare: Double = .nan, boundary: Double = .nan
    public var dice: Double = .nan

    public init(id: String, site: String, severity: Double = 0, entropy: Double, disagreement: Double, reference: Double = .nan, label: Int,
                size: Double, components: Int, largestShare: Double = .nan, boundary: Double = .nan, compactness: Double, dice: Double = .nan) {
        self.id = id; self.site = site; self.severity = severity; self.entropy = entropy; self.disagreement = disagreement
        self.reference = reference; self.label = label; self.size = size; self.components = components; self.compactness = compactness
        self.largestShare = largestShare; self.boundary = boundary; self.dice = dice
    }

    public static let header = "case,site,severity,entropy,disagreement,reference,label,size_mm,components,largest_share,boundary_mm,compactness,dice"

    public static func write(_ rows: [CaseView], to path: String) throws {
        try AtomicFile.write(header + "\n" + rows.map {
            "\($0.id),\($0.site),\($0.severity),\($0.entropy),\($0.disagreement),\($0.reference),\($0.label),\($0.size),\($0.components),\($0.largestShare),\($0.boundary),\($0.compactness),\($0.dice)\n"
        }.joined(), to: path)
    }

    /// Reads a table written by ``write(_:to:)``; another header or a short row is refused.
    public static func read(_ path: String) throws -> [CaseView] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw DataError.badDataset(path: path, reason: "cannot be read") }
        let lines = text.split(separator: "\n")
        guard lines.first.map(String.init) == header else { throw DataError.badDataset(path: path, reason: "not a view.csv (its header is not '\(header)')") }
        return try lines.dropFirst().enumerated().map { i, line in
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 13, let label = Int(f[6]), let components = Int(f[8]) else {
                throw DataError.badDataset(path: path, reason: "row \(i + 2) does not have the 13 columns of \(header)")
            }
            func d(_ s: String) -> Double { Double(s) ?? .nan }
            return CaseView(id: f[0], site: f[1], severity: d(f[2]), entropy: d(f[3]), disagreement: d(f[4]), reference: d(f[5]), label: label,
                            size: d(f[7]), components: components, largestShare: d(f[9]), boundary: d(f[10]), compactness: d(f[11]), dice: d(f[12]))
        }
    }

    /// Every case's rows as the named measures the site analysis and the Dice estimate read: `entropy`,
    /// `disagreement`, `reference` (when known), `label<N>_size_mm`, `label<N>_pieces`, `label<N>_compactness`, and
    /// `empty` (1 when no label is predicted anywhere). Rows are grouped by site, case and severity.
    public static func measures(_ rows: [CaseView]) -> [(site: String, id: String, severity: Double, dice: Double, measures: [String: Double])] {
        var order: [String] = [], groups: [String: [CaseView]] = [:]
        for r in rows {
            let key = "\(r.site)\u{0}\(r.id)\u{0}\(r.severity)"
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(r)
        }
        return order.map { key in
            let r = groups[key]!, first = r[0]
            var m: [String: Double] = ["entropy": first.entropy, "disagreement": first.disagreement, "empty": r.allSatisfy { $0.size == 0 } ? 1 : 0]
            if first.reference.isFinite { m["reference"] = first.reference }
            for v in r {
                m["label\(v.label)_size_mm"] = v.size; m["label\(v.label)_pieces"] = Double(v.components)
                if v.compactness.isFinite { m["label\(v.label)_compactness"] = v.compactness }
                if v.boundary.isFinite { m["label\(v.label)_boundary_mm"] = v.boundary }
            }
            return (first.site, first.id, first.severity, first.dice, m)
        }
    }
}
