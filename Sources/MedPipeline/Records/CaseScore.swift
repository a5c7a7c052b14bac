import Foundation
import MedData
import MedFoundation

/// One held-out case scored by a model, for one foreground label: what training writes to
/// `validation_metrics.csv` (`case,site,label,dice,hausdorff95_mm,assd_mm`) and the experiment runner reads back.
/// Written and read only here.
public struct CaseScore: Sendable, Equatable {
    public var id: String, site: String, label: Int
    public var dice: Double, hausdorff95: Double, assd: Double

    public init(id: String, site: String, label: Int, dice: Double, hausdorff95: Double, assd: Double) {
        self.id = id; self.site = site; self.label = label; self.dice = dice; self.hausdorff95 = hausdorff95; self.assd = assd
    }

    public static let header = "case,site,label,dice,hausdorff95_mm,assd_mm"

    /// The table, with a header line; values as Swift prints them ("nan" where a metric is undefined).
    public static func csv(_ scores: [CaseScore]) -> String {
        header + "\n" + scores.map { "\($0.id),\($0.site),\($0.label),\($0.dice),\($0.hausdorff95),\($0.assd)\n" }.joined()
    }

    public static func write(_ scores: [CaseScore], to path: String) throws { try AtomicFile.write(csv(scores), to: path) }

    /// Reads a table written by ``write(_:to:)``; a file with another header or a short row is refused.
    public static func read(_ path: String) throws -> [CaseScore] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw DataError.badDataset(path: path, reason: "cannot be read (\(error.localizedDescription))")
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        guard lines.first.map(String.init) == header else {
            throw DataError.badDataset(path: path, reason: "not a validation_metrics.csv (its header is not '\(header)')")
        }
        return try lines.dropFirst().enumerated().map { i, line in
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 6, let label = Int(f[2]) else {
                throw DataError.badDataset(path: path, reason: "row \(i + 2) does not have the six columns of \(header)")
            }
            return CaseScore(id: f[0], site: f[1], label: label, dice: Double(f[3]) ?? .nan, hausdorff95: Double(f[4]) ?? .nan, assd: Double(f[5]) ?? .nan)
        }
    }
}
