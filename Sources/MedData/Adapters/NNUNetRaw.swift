import Foundation

/// nnU-Net v2 raw datasets: `imagesTr/CASE_0000.ext` (one file per channel, `_0001`, ...), `labelsTr/CASE.ext`,
/// `imagesTs/` (unlabeled), `dataset.json` (`channel_names`, `labels`, `numTraining`, `file_ending`).
public enum NNUNetRawAdapter: DatasetAdapter {
    public static let name = "nnunet"
    public static let layout = "dataset.json + imagesTr/CASE_XXXX.ext + labelsTr/CASE.ext [+ imagesTs/]"

    public static func detect(_ root: String) -> Bool {
        fileExists(root + "/dataset.json") && isDirectory(root + "/imagesTr")
    }

    public static func load(_ root: String) throws -> Dataset {
        let jsonPath = root + "/dataset.json"
        guard let data = FileManager.default.contents(atPath: jsonPath),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DataError.badDataset(path: jsonPath, reason: "not a JSON object")
        }
        guard let ending = json["file_ending"] as? String else { throw DataError.badDataset(path: jsonPath, reason: "no file_ending") }
        let channels = (json["channel_names"] as? [String: Any])?.count ?? 1
        var samples: [Sample] = [], problems: [AdapterReport.Problem] = []
        for (folder, labeled) in [("imagesTr", true), ("imagesTs", false)] where isDirectory(root + "/" + folder) {
            let files = listing(root + "/" + folder).filter { $0.hasSuffix(ending) }
            var cases: [String: [String]] = [:]
            for f in files {
                let base = String(f.dropLast(ending.count))
                guard base.count > 5, base.dropLast(4).hasSuffix("_"), Int(base.suffix(4)) != nil else {
                    problems.append(.init(path: "\(root)/\(folder)/\(f)", reason: "name lacks the _XXXX channel suffix; ignored")); continue
                }
                cases[String(base.dropLast(5)), default: []].append("\(root)/\(folder)/\(f)")
            }
            for (c, paths) in cases.sorted(by: { $0.key < $1.key }) {
                let sorted = paths.sorted()
                if sorted.count != channels {
                    problems.append(.init(path: sorted[0], reason: "\(sorted.count) channel files, dataset.json names \(channels)"))
                }
                var s = Sample(id: c, images: sorted, labelRule: .identity, site: "nnunet", split: labeled ? "train" : "test")
                let label = "\(root)/labelsTr/\(c)\(ending)"
                if labeled {
                    if fileExists(label) { s.labels = [label] } else { problems.append(.init(path: label, reason: "missing label; kept as unlabeled")) }
                }
                samples.append(s)
            }
        }
        if let n = json["numTraining"] as? Int, n != samples.filter({ $0.split == "train" }).count {
            problems.append(.init(path: jsonPath, reason: "numTraining is \(n) but imagesTr holds \(samples.filter { $0.split == "train" }.count) cases"))
        }
        let name = (root as NSString).lastPathComponent
        let report = AdapterReport(adapter: Self.name, samples: samples.count, labeled: samples.filter(\.isLabeled).count, problems: problems, notes: [])
        return Dataset(name: name, root: root, samples: samples, sites: [Site(name: "nnunet", modality: (json["channel_names"] as? [String: String])?["0"] ?? "")],
                       report: report)
    }
}

/// A generic folder: `images/` and `labels/` with matching file names (or stems), and an optional `sites.csv`
/// (columns `image` or `id`, and `site`; further columns become tags).
public enum GenericFolderAdapter: DatasetAdapter {
    public static let name = "folder"
    public static let layout = "images/* + labels/* (same stems) [+ sites.csv with image|id,site]"

    public static func detect(_ root: String) -> Bool { isDirectory(root + "/images") }

    public static func load(_ root: String) throws -> Dataset {
        var siteOf: [String: [String: String]] = [:]
        if fileExists(root + "/sites.csv") {
            for row in try readCSV(root + "/sites.csv") {
                if let key = row["image"].map(stem) ?? row["id"] { siteOf[key] = row }
            }
        }
        var labels: [String: String] = [:]
        var samples: [Sample] = [], problems: [AdapterReport.Problem] = []
        for f in listing(root + "/labels") where !isDirectory(root + "/labels/" + f) {
            guard isImageFileName(f) else { problems.append(.init(path: root + "/labels/" + f, reason: "not an image file; ignored")); continue }
            labels[stem(f)] = root + "/labels/" + f
        }
        for f in listing(root + "/images") where !isDirectory(root + "/images/" + f) {
            guard isImageFileName(f) else { problems.append(.init(path: root + "/images/" + f, reason: "not an image file; ignored")); continue }
            let id = stem(f)
            let row = siteOf[id] ?? [:]
            var tags = row
            tags.removeValue(forKey: "image"); tags.removeValue(forKey: "id"); tags.removeValue(forKey: "site")
            var s = Sample(id: id, images: [root + "/images/" + f], labelRule: .identity, site: row["site"].flatMap { $0.isEmpty ? nil : $0 } ?? "default", tags: tags)
            if let l = labels[id] { s.labels = [l] }
            samples.append(s)
        }
        let ids = Set(samples.map(\.id))
        for (k, p) in labels.sorted(by: { $0.key < $1.key }) where !ids.contains(k) { problems.append(.init(path: p, reason: "label without an image; ignored")) }
        for k in siteOf.keys.sorted() where !ids.contains(k) { problems.append(.init(path: root + "/sites.csv", reason: "row for \(k), which is not in images/")) }
        let sites = Array(Set(samples.map(\.site))).sorted().map { Site(name: $0, modality: "") }
        let report = AdapterReport(adapter: name, samples: samples.count, labeled: samples.filter(\.isLabeled).count, problems: problems, notes: [])
        return Dataset(name: (root as NSString).lastPathComponent, root: root, samples: samples, sites: sites, report: report)
    }
}
