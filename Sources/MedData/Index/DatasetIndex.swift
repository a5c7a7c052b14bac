import Foundation
import MedFoundation
import MedCompute
import MedFormats
import MedImage
import Synchronization

/// The SQLite index of one or more dataset folders (schema: Docs/datasets.md#index-schema).
///
/// `update(root:)` lists the folder with its adapter, records sites and samples, and reads the header of every image
/// and label file it has not seen (or whose size or modification time changed), in parallel; label files are read
/// whole for their values and volumes, images only with `statistics` (intensity percentiles). Files are written in
/// transactions of `batchSize`, so an interrupted run leaves a consistent database and the next run finishes the work.
/// Files that disappeared are marked `present = 0`, never deleted.
public final class DatasetIndex: @unchecked Sendable {
    public static let schemaVersion = 1
    let db: SQLiteDatabase
    public let path: String

    public init(path: String) throws {
        self.path = path
        db = try SQLiteDatabase(path: path)
        try db.execute("""
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS datasets(root TEXT PRIMARY KEY, adapter TEXT NOT NULL, indexed_at TEXT, report_json TEXT);
            CREATE TABLE IF NOT EXISTS sites(root TEXT NOT NULL, name TEXT NOT NULL, aliases TEXT, modality TEXT, metadata_json TEXT,
                PRIMARY KEY(root, name));
            CREATE TABLE IF NOT EXISTS samples(root TEXT NOT NULL, id TEXT NOT NULL, site TEXT NOT NULL, split TEXT, label_rule TEXT NOT NULL,
                images_json TEXT NOT NULL, labels_json TEXT NOT NULL, tags_json TEXT NOT NULL, scanner_json TEXT, present INTEGER NOT NULL,
                label_volumes_json TEXT, PRIMARY KEY(root, id));
            CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, root TEXT NOT NULL, sample_id TEXT NOT NULL, role TEXT NOT NULL,
                size INTEGER, mtime REAL, sha256 TEXT, format TEXT, datatype TEXT, nx INTEGER, ny INTEGER, nz INTEGER, nt INTEGER,
                sx REAL, sy REAL, sz REAL, orientation TEXT, affine_json TEXT, label_values TEXT, label_volumes_json TEXT,
                p01 REAL, p50 REAL, p99 REAL, error TEXT, present INTEGER NOT NULL, indexed_at TEXT);
            CREATE INDEX IF NOT EXISTS files_sample ON files(root, sample_id);
            CREATE TABLE IF NOT EXISTS imported_labels(root TEXT NOT NULL, sample_id TEXT NOT NULL, path TEXT NOT NULL, label_rule TEXT NOT NULL,
                imported_at TEXT, PRIMARY KEY(root, sample_id));
            """)
        let version = try db.query("SELECT value FROM meta WHERE key = 'schema_version'").first?["value"]?.string
        if let version, Int(version) != Self.schemaVersion {
            throw DataError.badDataset(path: path, reason: "index schema version \(version), this medselect reads \(Self.schemaVersion); index into a new file")
        }
        try db.query("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", [.text(String(Self.schemaVersion))])
    }

    /// This index's salt for patient keys (``PatientKey``), made on first use.
    func patientSalt() throws -> String {
        if let s = try db.query("SELECT value FROM meta WHERE key = 'patient_salt'").first?["value"]?.string { return s }
        let s = PatientKey.newSalt()
        try db.query("INSERT OR IGNORE INTO meta(key, value) VALUES ('patient_salt', ?)", [.text(s)])
        return try db.query("SELECT value FROM meta WHERE key = 'patient_salt'").first?["value"]?.string ?? s
    }

    public struct Options: Sendable {
        /// Read whole images for intensity percentiles (1st, 50th, 99th).
        public var statistics = false
        /// SHA-256 of every file's bytes.
        public var hash = false
        /// Files per transaction.
        public var batchSize = 256
        /// Stop after this many files (tests simulate an interruption with it).
        public var limit: Int? = nil
        public init(statistics: Bool = false, hash: Bool = false, batchSize: Int = 256, limit: Int? = nil) {
            self.statistics = statistics; self.hash = hash; self.batchSize = batchSize; self.limit = limit
        }
    }

    public struct UpdateResult: Sendable, Equatable {
        public var samples: Int
        public var files: Int
        /// Files whose headers were read in this run.
        public var read: Int
        /// Files unchanged since the last run.
        public var unchanged: Int
        /// Files marked as removed.
        public var removed: Int
        /// Files that could not be read (recorded with their error).
        public var failed: Int
    }

    /// Indexes `root` (adapter named or detected) incrementally.
    @discardableResult
    /// `siteFrom` decides what a site is from the cases' scanner facts (``SiteRule``; DICOM's default is the scanner).
    /// DICOM patient ids become keys salted with this index's own salt (created once, kept in its `meta` table).
    public func update(root rawRoot: String, benchmark: String? = nil, siteFrom: SiteRule? = nil, options: Options = Options(),
                       progress: (@Sendable (String) -> Void)? = nil) throws -> (UpdateResult, Dataset) {
        let root = URL(fileURLWithPath: rawRoot).standardizedFileURL.path
        let salt = try patientSalt()
        var dataset = try PatientKey.$salt.withValue(salt) { try DatasetAdapters.load(root, benchmark: benchmark) }
        if let siteFrom { dataset = try dataset.withSites(from: siteFrom) }
        let now = ISO8601DateFormatter().string(from: Date())
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ v: T) throws -> String { String(decoding: try enc.encode(v), as: UTF8.self) }
        // Sites and samples: one transaction (directory listing only, fast).
        try db.transaction {
            try db.query("INSERT INTO datasets(root, adapter, indexed_at, report_json) VALUES (?, ?, ?, ?) ON CONFLICT(root) DO UPDATE SET adapter = excluded.adapter, indexed_at = excluded.indexed_at, report_json = excluded.report_json",
                         [.text(root), .text(dataset.report.adapter), .text(now), .text(try json(dataset.report))])
            for s in dataset.sites {
                try db.query("INSERT OR REPLACE INTO sites(root, name, aliases, modality, metadata_json) VALUES (?, ?, ?, ?, ?)",
                             [.text(root), .text(s.name), .text(s.aliases.joined(separator: ",")), .text(s.modality), .text(try json(s.metadata))])
            }
            // Only new or changed samples are written; samples no longer found are marked absent.
            var existing: [String: String] = [:]
            for row in try db.query("SELECT id, site, split, label_rule, images_json, labels_json, tags_json, scanner_json, present FROM samples WHERE root = ?", [.text(root)]) {
                guard let id = row["id"]?.string else { continue }
                existing[id] = [row["site"]?.string ?? "", row["split"]?.string ?? "\u{0}", row["label_rule"]?.string ?? "", row["images_json"]?.string ?? "",
                                row["labels_json"]?.string ?? "", row["tags_json"]?.string ?? "", row["scanner_json"]?.string ?? "\u{0}",
                                String(row["present"]?.int ?? 0)].joined(separator: "\u{1}")
            }
            var seenIDs = Set<String>()
            for s in dataset.samples {
                seenIDs.insert(s.id)
                let images = try json(s.images), labels = try json(s.labels), tags = try json(s.tags)
                let scanner = try s.scanner.map { try json($0) }
                let signature = [s.site, s.split ?? "\u{0}", s.labelRule.rawValue, images, labels, tags, scanner ?? "\u{0}", "1"].joined(separator: "\u{1}")
                if existing[s.id] == signature { continue }
                // An upsert keeps the label volumes of samples whose label files are the same.
                try db.query("""
                    INSERT INTO samples(root, id, site, split, label_rule, images_json, labels_json, tags_json, scanner_json, present)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
                    ON CONFLICT(root, id) DO UPDATE SET site = excluded.site, split = excluded.split, label_rule = excluded.label_rule,
                      images_json = excluded.images_json, labels_json = excluded.labels_json, tags_json = excluded.tags_json,
                      scanner_json = excluded.scanner_json, present = 1,
                      label_volumes_json = CASE WHEN samples.labels_json = excluded.labels_json THEN samples.label_volumes_json ELSE NULL END
                    """, [.text(root), .text(s.id), .text(s.site), s.split.map { .text($0) } ?? .null, .text(s.labelRule.rawValue),
                          .text(images), .text(labels), .text(tags), scanner.map { .text($0) } ?? .null])
            }
            for id in existing.keys where !seenIDs.contains(id) {
                try db.query("UPDATE samples SET present = 0 WHERE root = ? AND id = ?", [.text(root), .text(id)])
            }
        }
        // Files: compare size and mtime with what the index holds.
        var wanted: [(path: String, sample: Sample, role: String)] = []
        for s in dataset.samples {
            for p in s.images { wanted.append((p, s, "image")) }
            for p in s.labels { wanted.append((p, s, "label")) }
        }
        var known: [String: (size: Int64, mtime: Double, hashed: Bool, stats: Bool)] = [:]
        for row in try db.query("SELECT path, size, mtime, sha256, p50, error FROM files WHERE root = ? AND present = 1", [.text(root)]) {
            guard let p = row["path"]?.string, row["error"] == .null else { continue }
            known[p] = (row["size"]?.int ?? -1, row["mtime"]?.double ?? -1, row["sha256"]?.string != nil, row["p50"] != .null)
        }
        var todo: [(path: String, sample: Sample, role: String, size: Int64, mtime: Double)] = []
        var unchanged = 0
        for w in wanted {
            // stat(2) directly: Foundation's attributesOfItem costs tens of microseconds per file.
            var st = stat()
            let ok = stat(w.path, &st) == 0
            let size = ok ? Int64(st.st_size) : -1
            let mtime = ok ? Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9 : -1
            if let k = known[w.path], k.size == size, k.mtime == mtime, !options.hash || k.hashed,
               !(options.statistics && w.role == "image") || k.stats {
                unchanged += 1
                continue
            }
            todo.append((w.path, w.sample, w.role, size, mtime))
        }
        if let limit = options.limit { todo = Array(todo.prefix(limit)) }
        // Removed files.
        let seen = Set(wanted.map(\.path))
        var removed = 0
        try db.transaction {
            for row in try db.query("SELECT path FROM files WHERE root = ? AND present = 1", [.text(root)]) {
                guard let p = row["path"]?.string, !seen.contains(p) else { continue }
                try db.query("UPDATE files SET present = 0 WHERE path = ?", [.text(p)])
                removed += 1
            }
        }
        progress?("\(dataset.report.summary); \(todo.count) files to read, \(unchanged) unchanged, \(removed) removed")
        var failed = 0
        let start = Date()
        var done = 0
        var batchStart = 0
        while batchStart < todo.count {
            let batch = Array(todo[batchStart..<min(todo.count, batchStart + options.batchSize)])
            let results = Mutex([Int: FileFacts]())
            parallelFor(batch.count) { i in
                let f = FileFacts.read(batch[i].path, role: batch[i].role, statistics: options.statistics, hash: options.hash,
                                       series: batch[i].sample.tags["series_uid"])
                results.withLock { $0[i] = f }
            }
            let facts = results.withLock { $0 }
            try db.transaction {
                for (i, item) in batch.enumerated() {
                    let f = facts[i]!
                    if f.error != nil { failed += 1 }
                    try db.query("""
                        INSERT OR REPLACE INTO files(path, root, sample_id, role, size, mtime, sha256, format, datatype, nx, ny, nz, nt, sx, sy, sz,
                          orientation, affine_json, label_values, label_volumes_json, p01, p50, p99, error, present, indexed_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
                        """, [.text(item.path), .text(root), .text(item.sample.id), .text(item.role), .int(item.size), .real(item.mtime),
                              f.sha256.map { .text($0) } ?? .null, f.text(\.format), f.text(\.storedType),
                              f.int(0), f.int(1), f.int(2), f.int(3), f.real(0), f.real(1), f.real(2), f.text(\.orientation),
                              f.geometry.map { .text(try! json($0.affine)) } ?? .null,
                              f.labelValues.map { .text(try! json($0)) } ?? .null, f.labelVolumes.map { .text(try! json($0)) } ?? .null,
                              f.percentiles.map { .real($0[0]) } ?? .null, f.percentiles.map { .real($0[1]) } ?? .null,
                              f.percentiles.map { .real($0[2]) } ?? .null, f.error.map { .text($0) } ?? .null, .text(now)])
                }
            }
            done += batch.count
            batchStart += batch.count
            let rate = Double(done) / max(1e-9, Date().timeIntervalSince(start))
            progress?(String(format: "%d/%d files (%.0f/s, %.0f s left)", done, todo.count, rate, Double(todo.count - done) / max(rate, 1e-9)))
        }
        // Label volumes per sample after its label rule (left + right lung merged, disc/cup decoded, ...), for the
        // samples whose label files were read now or that have none recorded yet.
        let changed = Set(todo.filter { $0.role == "label" }.map(\.sample.id))
        let missing = Set(try db.query("SELECT id FROM samples WHERE root = ? AND present = 1 AND label_volumes_json IS NULL", [.text(root)]).compactMap { $0["id"]?.string })
        let labeledSamples = dataset.samples.filter { $0.isLabeled && (changed.contains($0.id) || missing.contains($0.id)) }
        var vStart = 0
        while vStart < labeledSamples.count && options.limit == nil {
            let batch = Array(labeledSamples[vStart..<min(labeledSamples.count, vStart + options.batchSize)])
            let volumes = Mutex([Int: String]())
            parallelFor(batch.count) { i in
                guard let label = try? batch[i].loadLabel() else { return }
                var counts: [Int: Int] = [:]
                for v in label.voxels.prefix(label.shape.spatialCount) where v != 0 { counts[Int(v), default: 0] += 1 }
                let unit = label.spacing.prefix(label.is2D ? 2 : 3).reduce(1, *)
                let e = JSONEncoder()
                e.outputFormatting = [.sortedKeys]
                let dict = Dictionary(uniqueKeysWithValues: counts.map { (String($0.key), Double($0.value) * unit) })
                let text = (try? e.encode(dict)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                volumes.withLock { $0[i] = text }
            }
            let v = volumes.withLock { $0 }
            try db.transaction {
                for (i, s) in batch.enumerated() {
                    try db.query("UPDATE samples SET label_volumes_json = ? WHERE root = ? AND id = ?", [v[i].map { .text($0) } ?? .null, .text(root), .text(s.id)])
                }
            }
            vStart += batch.count
        }
        let files = wanted.count
        return (UpdateResult(samples: dataset.samples.count, files: files, read: todo.count, unchanged: unchanged, removed: removed, failed: failed), dataset)
    }

    /// Raw rows, for tests and the summary.
    func rows(_ sql: String, _ parameters: [SQLiteDatabase.Value] = []) throws -> [[String: SQLiteDatabase.Value]] {
        try db.query(sql, parameters)
    }

    /// SQLite's own consistency check ("ok" when sound).
    public func integrityCheck() throws -> String {
        try db.query("PRAGMA integrity_check").first?.values.first?.string ?? "no answer"
    }

    /// The indexed samples (present ones) as datasets, one per indexed root.
    public func datasets() throws -> [Dataset] {
        let dec = JSONDecoder()
        var out: [Dataset] = []
        for d in try db.query("SELECT root, adapter, report_json FROM datasets ORDER BY root") {
            guard let root = d["root"]?.string else { continue }
            let sites = try db.query("SELECT name, aliases, modality, metadata_json FROM sites WHERE root = ? ORDER BY rowid", [.text(root)]).map { r in
                Site(name: r["name"]?.string ?? "", aliases: (r["aliases"]?.string ?? "").split(separator: ",").map(String.init),
                     modality: r["modality"]?.string ?? "",
                     metadata: (try? dec.decode([String: String].self, from: Data((r["metadata_json"]?.string ?? "{}").utf8))) ?? [:])
            }
            let samples = try db.query("SELECT * FROM samples WHERE root = ? AND present = 1 ORDER BY rowid", [.text(root)]).map { r in
                Sample(id: r["id"]?.string ?? "", images: (try? dec.decode([String].self, from: Data((r["images_json"]?.string ?? "[]").utf8))) ?? [],
                       labels: (try? dec.decode([String].self, from: Data((r["labels_json"]?.string ?? "[]").utf8))) ?? [],
                       labelRule: LabelRule(rawValue: r["label_rule"]?.string ?? "") ?? .identity, site: r["site"]?.string ?? "",
                       scanner: r["scanner_json"]?.string.flatMap { try? dec.decode(ScannerInfo.self, from: Data($0.utf8)) },
                       split: r["split"]?.string,
                       tags: (try? dec.decode([String: String].self, from: Data((r["tags_json"]?.string ?? "{}").utf8))) ?? [:])
            }
            // Labels brought back from annotation (importLabel) complete cases the dataset itself leaves unlabeled; they
            // live in their own table, so re-indexing the folder keeps them.
            let imported = Dictionary(try db.query("SELECT sample_id, path, label_rule FROM imported_labels WHERE root = ?", [.text(root)])
                .compactMap { r -> (String, (String, LabelRule))? in
                    guard let id = r["sample_id"]?.string, let p = r["path"]?.string else { return nil }
                    return (id, (p, LabelRule(rawValue: r["label_rule"]?.string ?? "") ?? .identity))
                }, uniquingKeysWith: { a, _ in a })
            let completed = samples.map { s -> Sample in
                guard s.labels.isEmpty, let (path, rule) = imported[s.id] else { return s }
                var t = s
                t.labels = [path]; t.labelRule = rule; t.tags["label_source"] = "imported"
                return t
            }
            let report = (try? dec.decode(AdapterReport.self, from: Data((d["report_json"]?.string ?? "").utf8)))
                ?? AdapterReport(adapter: d["adapter"]?.string ?? "", samples: completed.count, labeled: 0, problems: [], notes: [])
            out.append(Dataset(name: (root as NSString).lastPathComponent, root: root, samples: completed, sites: sites, report: report))
        }
        return out
    }
}

/// What the index learns about one file.
struct FileFacts: Sendable {
    var geometry: ImageGeometry?
    var sha256: String?
    var labelValues: [Int]?
    /// Label value -> volume in mm^3 (area in mm^2 for 2-D images).
    var labelVolumes: [String: Double]?
    var percentiles: [Double]?
    var error: String?

    var format: String? { geometry?.format }
    var storedType: String? { geometry?.storedType }
    var orientation: String? { geometry?.orientation }

    func text(_ key: KeyPath<FileFacts, String?>) -> SQLiteDatabase.Value { self[keyPath: key].map { .text($0) } ?? .null }
    func int(_ axis: Int) -> SQLiteDatabase.Value { geometry.map { .int(Int64($0.shape[axis])) } ?? .null }
    func real(_ axis: Int) -> SQLiteDatabase.Value { geometry.map { .real($0.spacing[axis]) } ?? .null }

    static func read(_ path: String, role: String, statistics: Bool, hash: Bool, series: String? = nil) -> FileFacts {
        var f = FileFacts()
        var readOptions = ReadOptions.default
        readOptions.dicomSeries = series   // a DICOM series: the case's folder, read as that series
        do {
            let reader = RawImageReaders.forFile(path)
            f.geometry = try reader?.geometry(path) ?? ImageIO.readGeometry(path, options: readOptions)
            // A folder (DICOM series) has no one file to hash.
            let isFolder = series != nil
            if hash && !isFolder { f.sha256 = try SHA256.hex(ofFile: path) }
            if role == "label" {
                let image = try ImageIO.read(path)
                let n = image.shape.spatialCount
                var counts: [Float: Int] = [:]
                for v in image.voxels.prefix(n) { counts[v, default: 0] += 1 }
                f.labelValues = counts.keys.sorted().map { Int($0) }
                let unit = image.spacing.prefix(image.is2D ? 2 : 3).reduce(1, *)
                f.labelVolumes = Dictionary(uniqueKeysWithValues: counts.filter { $0.key != 0 }.map { (String(Int($0.key)), Double($0.value) * unit) })
            } else if statistics {
                let image = try reader?.readImage(path) ?? ImageIO.read(path, options: readOptions)
                f.percentiles = image.percentiles([1, 50, 99]).map(Double.init)
            }
        } catch {
            f.error = "\(error)"
        }
        return f
    }
}

extension DatasetIndex {
    /// Attaches an annotator's label map to the indexed case `sampleID` after checking it against the case's image:
    /// the same grid (shape, and spacing and position within 0.01 mm when both files carry them) and integer labels
    /// 0...255 (a mask of only 0 and 255, as many tools save binary PNGs, is read as 0/1). The label is kept in its
    /// own table (re-indexing the folder keeps it) and used for cases the dataset leaves unlabeled. Returns the case's
    /// site.
    @discardableResult
    public func importLabel(sampleID: String, path: String) throws -> String {
        let rows = try db.query("SELECT root, site, images_json, labels_json FROM samples WHERE id = ? AND present = 1", [.text(sampleID)])
        guard !rows.isEmpty else { throw DataError.badDataset(path: path, reason: "no indexed case '\(sampleID)' in \(self.path)") }
        guard rows.count == 1, let root = rows[0]["root"]?.string else {
            throw DataError.badDataset(path: path, reason: "the case id '\(sampleID)' is in \(rows.count) indexed datasets; index them into separate files")
        }
        let images = (try? JSONDecoder().decode([String].self, from: Data((rows[0]["images_json"]?.string ?? "[]").utf8))) ?? []
        guard let imagePath = images.first else { throw DataError.badDataset(path: path, reason: "the case '\(sampleID)' has no image in the index") }
        var path = path
        let isSegmentation = try path.lowercased().hasSuffix(".nrrd") && SlicerSegmentation.isSegmentation(NRRDReader.readHeader(path))
        if isSegmentation {
            path = try placeSegmentation(path, sampleID: sampleID, imagePath: imagePath)
        }
        let image = try ImageIO.readGeometry(imagePath), label = try ImageIO.readGeometry(path)
        guard Array(image.shape.prefix(3)) == Array(label.shape.prefix(3)) else {
            throw DataError.badDataset(path: path, reason: "its grid \(label.shape.prefix(3).map(String.init).joined(separator: " x ")) differs from the image's \(image.shape.prefix(3).map(String.init).joined(separator: " x ")) (\(imagePath))")
        }
        if image.spacingIsKnown && label.spacingIsKnown {
            let far = zip(image.affine, label.affine).map { abs($0 - $1) }.max() ?? 0
            guard far <= 0.01 else {
                throw DataError.badDataset(path: path, reason: "its spacing, orientation or position differs from the image's (\(imagePath)) by up to \(String(format: "%.3g", far)) mm; save the label on the image's grid")
            }
        }
        let voxels = try ImageIO.read(path).voxels
        if let bad = voxels.firstIndex(where: { !$0.isFinite || $0 < 0 || $0 > 255 || $0 != $0.rounded() }) {
            throw DataError.badDataset(path: path, reason: "not a label map: voxel \(bad) holds \(voxels[bad]) (labels are integers 0...255)")
        }
        let values = Set(voxels)
        let rule: LabelRule = values.contains(255) && values.isSubset(of: [0, 255]) ? .binarize : .identity
        let kept = try keepCopy(of: path, sampleID: sampleID)
        // Label volumes (mm³, or mm² for 2-D images) after the rule, as indexing records them for the summary.
        var counts: [String: Int] = [:]
        for v in voxels.prefix(label.shape.prefix(3).reduce(1, *)) where v != 0 { counts[String(rule == .binarize ? 1 : Int(v)), default: 0] += 1 }
        let unit = label.spacing.prefix(label.shape.count > 2 && label.shape[2] > 1 ? 3 : 2).reduce(1, *)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let volumes = String(decoding: try encoder.encode(counts.mapValues { Double($0) * unit }), as: UTF8.self)
        try db.transaction {
            try db.query("INSERT OR REPLACE INTO imported_labels(root, sample_id, path, label_rule, imported_at) VALUES (?, ?, ?, ?, ?)",
                         [.text(root), .text(sampleID), .text(kept), .text(rule.rawValue), .text(ISO8601DateFormatter().string(from: Date()))])
            try db.query("UPDATE samples SET label_volumes_json = ? WHERE root = ? AND id = ?", [.text(volumes), .text(root), .text(sampleID)])
        }
        return rows[0]["site"]?.string ?? ""
    }

    /// The folder beside the index that holds the imported labels (`index.sqlite` -> `index.labels/`), so that the
    /// index owns its annotations: deleting the hand-off folder, or running from another directory, loses nothing.
    public var labelFolder: String {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        return (absolute as NSString).deletingPathExtension + ".labels"
    }

    /// Copies an imported label file (with a MetaImage header's data file) into ``labelFolder`` under the case's id
    /// and returns the copy's absolute path. The copy is written under a temporary name and renamed.
    /// A case id as a file name: letters, digits, `-`, `_` and `.` kept, anything else `_`.
    static func fileStem(_ sampleID: String) -> String {
        String(sampleID.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
    }

    /// A 3D Slicer segmentation (layers merged, often cropped to its segments) as a label map on the image's grid,
    /// kept beside the index as `<id>.nrrd`; returns its path.
    func placeSegmentation(_ path: String, sampleID: String, imagePath: String) throws -> String {
        let image = try ImageIO.readGeometry(imagePath)
        let placed = try SlicerSegmentation.placed(try SlicerSegmentation.read(path).image, onto: Array(image.shape.prefix(3)),
                                                   affine: Affine(rowMajor: image.affine), path: path)
        try FileManager.default.createDirectory(atPath: labelFolder, withIntermediateDirectories: true)
        let target = labelFolder + "/" + Self.fileStem(sampleID) + ".nrrd"
        try ImageIO.write(placed, to: target)
        return target
    }

    func keepCopy(of path: String, sampleID: String) throws -> String {
        let fm = FileManager.default
        try fm.createDirectory(atPath: labelFolder, withIntermediateDirectories: true)
        let name = (path as NSString).lastPathComponent.lowercased()
        let ext = [".nii.gz", ".nii", ".png", ".mha", ".mhd", ".nrrd", ".npy"].first { name.hasSuffix($0) } ?? ("." + (name as NSString).pathExtension)
        let safe = Self.fileStem(sampleID)
        let target = labelFolder + "/" + safe + ext
        let source = URL(fileURLWithPath: path).standardizedFileURL.path
        guard source != target else { return target }
        if ext == ".mhd" {
            // A two-file MetaImage becomes one .mha with the same header and data (the reader's geometry is unchanged).
            let image = try ImageIO.read(path)
            let mha = labelFolder + "/" + safe + ".mha"
            try ImageIO.write(image, to: mha)
            return mha
        }
        let temporary = target + ".part-\(ProcessInfo.processInfo.processIdentifier)"
        try? fm.removeItem(atPath: temporary)
        do {
            try fm.copyItem(atPath: source, toPath: temporary)
        } catch {
            throw DataError.badDataset(path: path, reason: "cannot copy the label into \(labelFolder): \(error.localizedDescription)")
        }
        guard rename(temporary, target) == 0 else {
            try? fm.removeItem(atPath: temporary)
            throw DataError.badDataset(path: target, reason: "cannot keep the imported label (\(String(cString: strerror(errno))))")
        }
        return target
    }
}
