import Foundation
import MedFormats
import MedImage

/// RIGA+ (RIGA, Almazroa et al. 2018, as split for domain adaptation by Hu et al.): per-domain CSV files
/// `{domain}_train.csv`, `{domain}_test.csv` (and `_unlabeled.csv`) with columns `image,mask`, paths relative to the
/// root; domains BinRushed, Magrabia, MESSIDOR_Base1..3. Masks are disc/cup maps whose encoding is detected on the
/// data (``LabelRule/discCup``) and reported. The original images and masks are TIFF, which MedSelect does not read:
/// such rows are reported with the advice to convert them to PNG.
public enum RIGAPlusAdapter: DatasetAdapter {
    public static let name = "riga"
    public static let layout = "{domain}_train.csv / _test.csv / _unlabeled.csv (image,mask) + the files they list"

    static func splitFiles(_ root: String) -> [(domain: String, split: String, file: String)] {
        listing(root).compactMap { f in
            guard f.hasSuffix(".csv") else { return nil }
            for split in ["train", "test", "unlabeled"] where f.hasSuffix("_\(split).csv") {
                return (String(f.dropLast(split.count + 5)), split, f)
            }
            return nil
        }
    }

    public static func detect(_ root: String) -> Bool {
        splitFiles(root).contains { d in ["BinRushed", "Magrabia"].contains(d.domain) || d.domain.hasPrefix("MESSIDOR") }
    }

    public static func load(_ root: String) throws -> Dataset {
        var samples: [Sample] = [], problems: [AdapterReport.Problem] = [], notes: [String] = [], domains: [String] = []
        var encodings: [String: Set<String>] = [:]
        for (domain, split, file) in splitFiles(root) {
            if !domains.contains(domain) { domains.append(domain) }
            let rows: [[String: String]]
            do { rows = try readCSV(root + "/" + file) } catch {
                problems.append(.init(path: root + "/" + file, reason: "\(error)")); continue
            }
            for (r, row) in rows.enumerated() {
                guard let image = row["image"], !image.isEmpty else {
                    problems.append(.init(path: "\(root)/\(file):\(r + 2)", reason: "no image column value")); continue
                }
                let path = root + "/" + image
                if [".tif", ".tiff"].contains(where: { image.lowercased().hasSuffix($0) }) {
                    problems.append(.init(path: path, reason: "TIFF is not supported; convert the images and masks to PNG first (e.g. ImageMagick `mogrify -format png`) and point the CSV at them"))
                    continue
                }
                guard fileExists(path) else { problems.append(.init(path: path, reason: "listed in \(file) but missing")); continue }
                var s = Sample(id: "\(domain)_\(stem(image))", images: [path], labelRule: .discCup, site: domain, split: split)
                if let m = row["mask"], !m.isEmpty {
                    let mp = root + "/" + m
                    if fileExists(mp) {
                        s.labels = [mp]
                        // Verify the encoding on the data (the first masks of every domain).
                        if encodings[domain, default: []].count < 1, let mask = try? ImageIO.read(mp) {
                            let values = mask.shape.t > 1 ? Array(mask.voxels.prefix(mask.shape.spatialCount)) : mask.voxels
                            if let e = try? LabelTools.discCup(values, width: mask.shape.x, height: mask.shape.y, path: mp).encoding {
                                encodings[domain, default: []].insert(e)
                            }
                        }
                    } else { problems.append(.init(path: mp, reason: "mask listed in \(file) but missing; kept as unlabeled")) }
                }
                samples.append(s)
            }
        }
        for (d, e) in encodings.sorted(by: { $0.key < $1.key }) { notes.append("\(d): mask encoding \(e.sorted().joined(separator: "; ")) -> 1 disc rim, 2 cup") }
        let report = AdapterReport(adapter: name, samples: samples.count, labeled: samples.filter(\.isLabeled).count, problems: problems, notes: notes)
        return Dataset(name: name, root: root, samples: samples, sites: domains.map { Site(name: $0, modality: "fundus") }, report: report)
    }
}

/// CheXmask (Gaggion et al., Scientific Data 2024): CSV tables of run-length-encoded lung and heart masks keyed by an
/// image id (the column name differs per source dataset: `dicom_id`, `Image Index`, `Path`, `ImageID`, ...), with
/// `Height` and `Width`; runs are "start length" pairs, starts 1-based, row-major over height x width. The root holds
/// the user's images (any folder structure) and one or more CheXmask CSV files; images are matched by file stem.
public enum CheXmaskAdapter: DatasetAdapter {
    public static let name = "chexmask"
    public static let layout = "images anywhere under the root + CheXmask *.csv (id, Left Lung, Right Lung, Heart, Height, Width)"
    static let idColumns = ["dicom_id", "Image Index", "ImageID", "Image ID", "Path", "image_id", "id"]

    public static func detect(_ root: String) -> Bool {
        listing(root).contains { f in
            guard f.hasSuffix(".csv"), let h = try? headerLine(root + "/" + f) else { return false }
            return h.contains("Left Lung") && h.contains("Right Lung")
        }
    }

    static func headerLine(_ path: String) throws -> String {
        guard let fh = FileHandle(forReadingAtPath: path) else { throw DataError.badDataset(path: path, reason: "cannot open") }
        defer { try? fh.close() }
        let data = fh.readData(ofLength: 4096)
        return String(decoding: data, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
    }

    public static func load(_ root: String) throws -> Dataset {
        var images: [String: String] = [:]
        for f in walk(root) where [".png", ".nii.gz", ".nii", ".mha", ".mhd"].contains(where: { f.lowercased().hasSuffix($0) }) {
            images[stem(f)] = root + "/" + f
        }
        var samples: [Sample] = [], problems: [AdapterReport.Problem] = [], matched = Set<String>()
        var unmatchedRows = 0
        for f in listing(root) where f.hasSuffix(".csv") {
            let rows = try readCSV(root + "/" + f)
            guard let first = rows.first, first["Left Lung"] != nil else { continue }
            guard let idColumn = idColumns.first(where: { first[$0] != nil }) else {
                problems.append(.init(path: root + "/" + f, reason: "no image id column (\(idColumns.joined(separator: ", ")))")); continue
            }
            for row in rows {
                let id = stem(row[idColumn] ?? "")
                guard let path = images[id] else { unmatchedRows += 1; continue }
                guard let h = Int(row["Height"] ?? ""), let w = Int(row["Width"] ?? "") else {
                    problems.append(.init(path: path, reason: "CheXmask row without Height/Width")); continue
                }
                matched.insert(id)
                var tags = ["rle_height": String(h), "rle_width": String(w)]
                for (k, col) in [("rle_left_lung", "Left Lung"), ("rle_right_lung", "Right Lung"), ("rle_heart", "Heart")] { tags[k] = row[col] ?? "" }
                if let dice = row["Dice RCA (Mean)"] { tags["dice_rca_mean"] = dice }
                samples.append(Sample(id: id, images: [path], labelRule: .chexmaskRLE, site: "CheXmask", tags: tags))
            }
        }
        for (id, path) in images.sorted(by: { $0.key < $1.key }) where !matched.contains(id) {
            samples.append(Sample(id: id, images: [path], labelRule: .identity, site: "CheXmask"))
        }
        var notes: [String] = []
        if unmatchedRows > 0 { notes.append("\(unmatchedRows) CheXmask rows name images that are not under the root (ignored)") }
        let report = AdapterReport(adapter: name, samples: samples.count, labeled: matched.count, problems: problems, notes: notes)
        return Dataset(name: name, root: root, samples: samples, sites: [Site(name: "CheXmask", modality: "CR")], report: report)
    }
}

/// Decoding of CheXmask's run-length masks.
public enum CheXmask {
    /// "start length ..." (1-based starts, row-major over height x width) -> 0/1 per pixel.
    public static func decodeRLE(_ rle: String, height: Int, width: Int, path: String = "<rle>") throws -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: height * width)
        let numbers = rle.split(whereSeparator: { $0 == " " }).map { Int($0) }
        guard numbers.allSatisfy({ $0 != nil }), numbers.count % 2 == 0 else {
            throw DataError.badDataset(path: path, reason: "run-length mask is not pairs of integers")
        }
        var i = 0
        while i < numbers.count {
            let start = numbers[i]! - 1, length = numbers[i + 1]!
            guard start >= 0, length >= 0, start + length <= mask.count else {
                throw DataError.badDataset(path: path, reason: "run \(start + 1) + \(length) lies outside \(height) x \(width)")
            }
            for k in start..<(start + length) { mask[k] = 1 }
            i += 2
        }
        return mask
    }

    /// The label map of a CheXmask sample: lungs 1, heart 2 (the heart drawn last, as it overlaps the left lung).
    static func decode(tags: [String: String], id: String) throws -> MedicalImage? {
        guard let h = Int(tags["rle_height"] ?? ""), let w = Int(tags["rle_width"] ?? "") else { return nil }
        var voxels = [Float](repeating: 0, count: h * w)
        for (key, value) in [("rle_left_lung", Float(1)), ("rle_right_lung", 1), ("rle_heart", 2)] {
            guard let rle = tags[key], !rle.isEmpty else { continue }
            let m = try decodeRLE(rle, height: h, width: w, path: id)
            for k in 0..<m.count where m[k] != 0 { voxels[k] = value }
        }
        return MedicalImage(shape: ImageShape(w, h), voxels: voxels, kind: .labelMap,
                            info: ImageInfo(storedType: .uint8, spacingIsKnown: false))
    }
}
