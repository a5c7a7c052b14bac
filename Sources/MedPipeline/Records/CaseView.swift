import Foundation
import MedData
import MedFoundation

/// One case as the source model sees it, for one foreground label: the predicted structure's size (mm² for a 2-D
/// image, mm³ for a volume, 0 when nothing is predicted), its number of pieces and compactness, and the case's mean
/// predictive entropy (nats) and test-time-augmentation disagreement (1 − mean Dice of augmented predictions with the
/// plain one). What the model-view stage writes to `view.csv`
/// (`case,site,entropy,disagreement,label,size_mm,components,compactness`) and the pick report and site analysis read;
/// written and read only here.
public struct CaseView: Sendable, Equatable {
    public var id: String, site: String
    public var entropy: Double
    public var disagreement: Double
    public var label: Int
    public var size: Double, components: Int, compactness: Double

    public init(id: String, site: String, entropy: Double, disagreement: Double, label: Int, size: Double, components: Int, compactness: Double) {
        self.id = id; self.site = site; self.entropy = entropy; self.disagreement = disagreement; self.label = label; self.size = size
        self.components = components
        self.compactness = compactness
    }

    public static let header = "case,site,entropy,disagreement,label,size_mm,components,compactness"

    public static func write(_ rows: [CaseView], to path: String) throws {
        try AtomicFile.write(header + "\n" + rows.map { "\($0.id),\($0.site),\($0.entropy),\($0.disagreement),\($0.label),\($0.size),\($0.components),\($0.compactness)\n" }.joined(),
                             to: path)
    }

    /// Reads a table written by ``write(_:to:)``; another header or a short row is refused.
    public static func read(_ path: String) throws -> [CaseView] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw DataError.badDataset(path: path, reason: "cannot be read") }
        let lines = text.split(separator: "\n")
        guard lines.first.map(String.init) == header else { throw DataError.badDataset(path: path, reason: "not a view.csv (its header is not '\(header)')") }
        return try lines.dropFirst().enumerated().map { i, line in
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 8, let label = Int(f[4]), let components = Int(f[6]) else {
                throw DataError.badDataset(path: path, reason: "row \(i + 2) does not have the eight columns of \(header)")
            }
            return CaseView(id: f[0], site: f[1], entropy: Double(f[2]) ?? .nan, disagreement: Double(f[3]) ?? .nan, label: label,
                            size: Double(f[5]) ?? .nan, components: components, compactness: Double(f[7]) ?? .nan)
        }
    }
}
