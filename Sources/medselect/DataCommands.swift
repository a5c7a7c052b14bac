import ArgumentParser
import Foundation
import MedData

extension ProgressLine {
    /// This line as a library's progress callback (nil when quiet).
    var callback: (@Sendable (String) -> Void)? {
        if quiet { return nil }
        return { @Sendable [self] (text: String) in self(text) }
    }
}

/// `medselect index`: records a dataset folder in the SQLite index, incrementally.
struct Index: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Index a dataset folder into SQLite: samples, sites, and every file's header (incremental).",
        discussion: """
        Walks ROOT with the benchmark's adapter (detected from the layout, or --benchmark), records sites and samples, \
        and reads the header of each image and label file in parallel; label files are read whole for their values and \
        volumes. Re-running reads only new or changed files (size or modification time) and marks removed ones. Safe to \
        interrupt: files are committed in transactions and the next run completes the work. \
        Benchmarks: \(DatasetAdapters.all.map { $0.name }.joined(separator: ", ")). Schema: Docs/datasets.md. \
        From a PACS: --dicomweb URL searches it (QIDO-RS, filters with --query KEY=VALUE), retrieves the series found \
        (WADO-RS) into --cache resumably and indexes the cache as a DICOM tree; credentials only from the environment \
        (MEDSELECT_DICOMWEB_USER and MEDSELECT_DICOMWEB_PASSWORD, or MEDSELECT_DICOMWEB_TOKEN).
        Example: medselect index Samples/prostate --db index.sqlite; from a PACS: medselect index --dicomweb \
        http://pacs:8042/dicom-web --query Modality=MR --cache pacs-cache --db index.sqlite
        """
    )
    @OptionGroup var limits: ReadLimitOptions
    @Argument(help: "Dataset folder (not with --dicomweb).") var root: String?
    @Option(help: "A DICOMweb server (its QIDO-RS/WADO-RS base URL) to index instead of a folder.") var dicomweb: String?
    @OptionGroup var pacs: DICOMwebOptions
    @Option(help: "Benchmark adapter (default: detected).") var benchmark: String?
    @Option(help: "SQLite database (created when missing).") var db: String
    @Option(name: .customLong("site-from"), help: "What a site is: scanner (manufacturer + model, DICOM's default), institution, station or folder (the first sub-folder; the benchmark layouts' default).")
    var siteFrom: SiteRule?
    @Flag(help: "Also read whole images for intensity percentiles (1, 50, 99).") var statistics = false
    @Flag(help: "Also record each file's SHA-256.") var hash = false
    @Flag(help: "No progress lines on stderr.") var quiet = false
    @Flag(help: "Print the adapter's report (every file it could not use).") var verbose = false
    @Option(help: ArgumentHelp("Files per transaction.", visibility: .hidden)) var batchSize = 256

    func validate() throws {
        if (root == nil) == (dicomweb == nil) { throw ValidationError("give a dataset folder or --dicomweb URL (one of them)") }
        if dicomweb == nil && (!pacs.query.isEmpty || pacs.cache != nil) { throw ValidationError("--query and --cache go with --dicomweb") }
    }

    func run() throws {
        let root = try dicomweb.map { url in
            try pacs.retrieve(url, quiet: quiet)
        } ?? self.root!
        let benchmark = dicomweb == nil ? self.benchmark : "dicom"
        // A run that fails before it recorded anything leaves no new, empty database behind.
        let existed = FileManager.default.fileExists(atPath: db)
        let r: DatasetIndex.UpdateResult, dataset: Dataset
        let progress = ProgressLine("index", quiet: quiet)
        do {
            let index = try DatasetIndex(path: db)
            (r, dataset) = try index.update(root: root, benchmark: benchmark, siteFrom: siteFrom, options: .init(statistics: statistics, hash: hash, batchSize: max(1, batchSize)),
                                            progress: progress.callback)
        } catch {
            if !existed { for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: db + suffix) } }
            throw error
        }
        progress.finish()
        print("\(dataset.report.summary) in \(dataset.sites.count) sites; files: \(r.files) (\(r.read) read, \(r.unchanged) unchanged, \(r.removed) removed, \(r.failed) unreadable) -> \(db)")
        for n in dataset.report.notes { print("note: \(n)") }
        if !dataset.report.problems.isEmpty {
            print("not used: \(dataset.report.problems.count) (\(verbose ? "below" : "--verbose lists them"))")
            if verbose { for p in dataset.report.problems { print("  \(p.path): \(p.reason)") } }
        }
    }
}

/// `medselect summary`: the per-site table of an index.
struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-site summary of an index: cases, labeled, shapes, spacing, intensity percentiles, label volumes.",
        discussion: "Example: medselect summary --db index.sqlite (Markdown table) or --json"
    )
    @Option(help: "SQLite index.") var db: String
    @Flag(help: "JSON instead of a Markdown table.") var json = false

    func run() throws {
        guard FileManager.default.fileExists(atPath: db) else { throw DataError.badDataset(path: db, reason: "no such index (create it with medselect index)") }
        let rows = try DatasetIndex(path: db).summary()
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try enc.encode(rows), as: UTF8.self))
        } else {
            print(DatasetIndex.markdown(rows), terminator: "")
        }
    }
}

/// `medselect export`: nnU-Net v2 raw or a MONAI datalist from an index.
struct Export: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Export indexed samples as an nnU-Net v2 raw dataset or a MONAI/Decathlon datalist.",
        discussion: """
        nnunet: --out is the folder that receives DatasetNNN_Name (imagesTr, labelsTr, imagesTs, dataset.json, and \
        splits_final.json with one fold per site). Labels are made consecutive (0 background). monai: --out is the JSON.
        Examples: medselect export --db index.sqlite --format nnunet --id 501 --name Prostate --out nnUNet_raw \
                  medselect export --db index.sqlite --format monai --out datalist.json
        """
    )
    @OptionGroup var limits: ReadLimitOptions
    @Option(help: "SQLite index.") var db: String
    @Option(help: "The layout to write.") var format: ExportFormat
    @Option(help: "Output folder (nnunet) or JSON file (monai).") var out: String
    @Option(help: "nnU-Net dataset id (1-999).") var id = 500
    @Option(help: "nnU-Net dataset name.") var name = "MedSelect"
    @Option(help: "Resample to this spacing, mm (x,y,z).") var spacing: String?
    @Option(help: "Export 3-D cases as 2-D slices: axial.") var slices: String?
    @Option(help: "Only these sites (comma-separated).") var sites: String?
    @Option(help: "MONAI: validation fraction per site when the data has no split.") var validation = 0.2
    @Option(help: "Seed for the validation split.") var seed: UInt64 = 0
    @Flag(help: "No progress lines on stderr.") var quiet = false

    func run() throws {
        guard FileManager.default.fileExists(atPath: db) else { throw DataError.badDataset(path: db, reason: "no such index (create it with medselect index)") }
        var datasets = try DatasetIndex(path: db).datasets()
        if let sites {
            let keep = Set(sites.split(separator: ",").map(String.init))
            datasets = datasets.map { $0.filtered(sites: keep) }
        }
        switch format {
        case .nnunet:
            guard (1...999).contains(id) else { throw ValidationError("--id must lie in 1...999") }
            guard name.range(of: "^[A-Za-z0-9_-]+$", options: .regularExpression) != nil else { throw ValidationError("--name may hold letters, digits, _ and -") }
            if let s = slices, s != "axial" { throw ValidationError("--slices supports axial") }
            let sp = try spacing.map { text -> [Double] in
                let v = text.split(separator: ",").compactMap { Double($0) }
                guard v.count == 3, v.allSatisfy({ $0 > 0 }) else { throw ValidationError("--spacing needs three positive numbers (mm)") }
                return v
            }
            let progress = ProgressLine("export", quiet: quiet)
            let r = try DatasetExport.nnunet(datasets, parent: out, options: .init(id: id, name: name, spacing: sp, axialSlices: slices == "axial"),
                                             progress: progress.callback)
            progress.finish()
            print("wrote \(r.folder): \(r.training) training cases, \(r.test) test cases, file ending \(r.fileEnding), labels \(r.labelMapping.sorted { $0.key < $1.key }.map { "\($0.key)->\($0.value)" }.joined(separator: ", "))")
        case .monai:
            let r = try DatasetExport.monai(datasets, to: out, validationFraction: validation, seed: seed)
            print("wrote \(out): \(r.training) training, \(r.validation) validation, \(r.test) test entries")
        }
    }
}

/// `medselect cache`: preprocessed training arrays, stored once per parameter set.
struct Cache: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Prepare resampled, normalised training arrays (.npy + manifest.json) once per parameter set.",
        discussion: "Example: medselect cache --db index.sqlite --out cache --spacing 1,1,3 --normalize zscore"
    )
    @OptionGroup var limits: ReadLimitOptions
    @Option(help: "SQLite index.") var db: String
    @Option(help: "Cache folder (a subfolder per parameter set).") var out: String
    @Option(help: "Target spacing, mm (x,y[,z]).") var spacing: String?
    @Option(help: "Target shape (x,y[,z]).") var shape: String?
    @Option(help: "Intensity normalisation.") var normalize = IntensityNormalization.zscore
    @Option(help: "Clip to percentiles first, e.g. 0.5,99.5.") var clip: String?
    @Flag(help: "No progress lines on stderr.") var quiet = false

    func run() throws {
        guard FileManager.default.fileExists(atPath: db) else { throw DataError.badDataset(path: db, reason: "no such index (create it with medselect index)") }
        func numbers(_ s: String?, _ what: String) throws -> [Double]? {
            try s.map { text in
                let v = text.split(separator: ",").compactMap { Double($0) }
                guard !v.isEmpty, v.count == text.split(separator: ",").count, v.allSatisfy({ $0 > 0 }) else { throw ValidationError("--\(what) needs positive numbers") }
                return v
            }
        }
        let params = PreprocessCache.Parameters(spacing: try numbers(spacing, "spacing"), shape: try numbers(shape, "shape")?.map { Int($0) },
                                                normalize: normalize.rawValue, clipPercentiles: try numbers(clip, "clip"))
        let cache = try PreprocessCache(root: out, parameters: params)
        let samples = try DatasetIndex(path: db).datasets().flatMap(\.samples)
        let progress = ProgressLine("cache", quiet: quiet)
        let (entries, computed) = try cache.prepare(samples, progress: progress.callback)
        progress.finish()
        print("\(cache.folder): \(entries.count) entries (\(computed) computed, \(entries.count - computed) reused)")
    }
}
