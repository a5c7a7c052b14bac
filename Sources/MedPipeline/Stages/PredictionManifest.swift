import Foundation
import MedData
import MedFormats
import MedFoundation

/// What `medselect predict` records beside its label maps, `predictions.csv` (prediction,image): the image each
/// prediction was made from, by absolute path. `medselect evaluate --ref-data` reads it to pair a prediction with
/// its case even where file names repeat across sites (every site of the six-site prostate layout has a Case00).
public enum PredictionManifest {
    public static let fileName = "predictions.csv"

    /// A path made absolute, with `.` / `..` and symbolic links resolved, for comparing two names of one file.
    public static func canonical(_ path: String) -> String { canonicalPath(path) }

    /// Writes FOLDER/predictions.csv: one row per (prediction file name, image path made absolute).
    public static func write(_ rows: [(prediction: String, image: String)], folder: String) throws {
        let text = "prediction,image\n" + rows.map { Worklist.csvField($0.prediction) + "," + Worklist.csvField(canonical($0.image)) + "\n" }.joined()
        try AtomicFile.write(text, to: folder + "/" + fileName)
    }

    /// The image of every prediction file name in FOLDER/predictions.csv, or nil when the folder has none.
    public static func read(folder: String) throws -> [String: String]? {
        let path = folder + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        var out: [String: String] = [:]
        for (n, row) in try readCSV(path).enumerated() {
            guard let prediction = row["prediction"], let image = row["image"], !prediction.isEmpty, !image.isEmpty else {
                throw DataError.badDataset(path: path, reason: "row \(n + 1) has no prediction and image (columns prediction,image)")
            }
            out[prediction] = image
        }
        return out
    }
}
