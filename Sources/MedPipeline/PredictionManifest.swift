import Foundation
import MedData
import MedFormats

/// What `medselect predict` records beside its label maps, `predictions.csv` (prediction,image): the image each
/// prediction was made from, by absolute path. `medselect evaluate --ref-data` reads it to pair a prediction with
/// its case even where file names repeat across sites (every site of the six-site prostate layout has a Case00).
public enum PredictionManifest {
    public static let fileName = "predictions.csv"

    /// A path made absolute, with `.` / `..` and symbolic links resolved, for comparing two names of one file.
    public static func canonical(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// Writes FOLDER/predictions.csv: one row per (prediction file name, image path made absolute).
    public static func write(_ rows: [(prediction: String, image: String)], folder: String) throws {
        func field(_ s: String) -> String { s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        let text = "prediction,image\n" + rows.map { field($0.prediction) + "," + field(canonical($0.image)) + "\n" }.joined()
        try AtomicFile.write(text, to: folder + "/" + fileName)
    }

    /// The image of every prediction file name in FOLDER/predictions.csv, or nil when the folder has none.
    public static func read(folder: String) throws -> [String: String]? {
        let path = folder + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DataError.badDataset(path: path, reason: "cannot be read as text")
        }
        var out: [String: String] = [:]
        for (n, line) in text.split(whereSeparator: \.isNewline).enumerated().dropFirst() {
            let fields = fieldsOf(String(line))
            guard fields.count == 2, !fields[0].isEmpty, !fields[1].isEmpty else {
                throw DataError.badDataset(path: path, reason: "line \(n + 1) is not 'prediction,image': \(line.prefix(80))")
            }
            out[fields[0]] = fields[1]
        }
        return out
    }

    /// The fields of one CSV line (double quotes around fields that hold commas or quotes).
    static func fieldsOf(_ line: String) -> [String] {
        var fields: [String] = [], current = "", quoted = false
        var chars = Array(line)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" { if chars.first == "\"" { current.append("\""); chars.removeFirst() } else { quoted = false } } else { current.append(c) }
            } else if c == "\"" { quoted = true } else if c == "," { fields.append(current); current = "" } else { current.append(c) }
        }
        fields.append(current)
        return fields
    }
}
