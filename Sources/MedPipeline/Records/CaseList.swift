import Foundation
import MedData
import MedFoundation

/// A list of case ids, one per line: what `embed` writes beside an embedding matrix (`<name>.ids.csv`, columns
/// `id,site`, one row per matrix row) and what users give as `--ids` or `--labeled`. Reading takes the first column
/// and skips a header line (`id`, `ids`, `case`, `site`, `group`); written and read only here.
public enum CaseList {
    /// The ids file beside an embedding matrix: `x.npy` -> `x.ids.csv`.
    public static func path(beside npy: String) -> String { (npy.hasSuffix(".npy") ? String(npy.dropLast(4)) : npy) + ".ids.csv" }

    /// The first column of every line, without a header line.
    public static func read(_ path: String) throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DataError.badConfiguration(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file")
        }
        var lines = text.split(whereSeparator: \.isNewline).map { String($0.split(separator: ",").first ?? "").trimmingCharacters(in: .whitespaces) }
        if let first = lines.first, ["id", "ids", "case", "site", "group"].contains(first.lowercased()) { lines.removeFirst() }
        return lines
    }

    /// `id,site` of every case, in order.
    public static func write(_ cases: [Sample], to path: String) throws {
        try AtomicFile.write("id,site\n" + cases.map { "\($0.id),\($0.site)\n" }.joined(), to: path)
    }
}
