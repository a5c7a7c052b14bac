import Foundation
import ArgumentParser
import MedData

/// Where a command's cases come from: a dataset folder (adapter detected or named) or an index, optionally only some
/// sites; and the train/validation split that `train` and `embed` share.
struct DatasetOptions: ParsableArguments {
    @Option(help: "Dataset folder (adapter detected or --benchmark); repeat it to use several datasets together.") var data: [String] = []
    @Option(help: "SQLite index instead of a folder.") var db: String?
    @Option(help: "Benchmark adapter for --data.") var benchmark: String?
    @Option(help: "Only these sites (comma-separated).") var sites: String?

    func validate() throws {
        if data.isEmpty && db == nil { throw ValidationError("give --data DIR (a dataset folder) or --db index.sqlite") }
        if !data.isEmpty && db != nil { throw ValidationError("give --data or --db, not both") }
    }

    /// The folder or index named, for error messages.
    var origin: String { data.isEmpty ? db ?? "" : data.joined(separator: ", ") }

    func load() throws -> [Dataset] {
        var datasets: [Dataset]
        if let db {
            guard data.isEmpty else { throw ValidationError("give --data or --db, not both") }
            datasets = try DatasetIndex(path: db).datasets()
        } else if !data.isEmpty {
            datasets = try data.map { try DatasetAdapters.load($0, benchmark: benchmark) }
            for d in datasets where !d.report.problems.isEmpty {
                let first = d.report.problems[0]
                FileHandle.standardError.write(Data("note: \(d.root): \(d.report.problems.count) file\(d.report.problems.count == 1 ? "" : "s") not used (e.g. \(first.path): \(first.reason)); medselect index --verbose lists them\n".utf8))
            }
        } else { throw ValidationError("give --data or --db") }
        if let sites {
            let keep = Set(sites.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            let known = Set(datasets.flatMap { d in d.sites.map(\.name) + d.samples.map(\.site) })
            let unknown = keep.subtracting(known).sorted()
            guard unknown.isEmpty else {
                throw DataError.badDataset(path: origin, reason: "--sites: no site \(unknown.joined(separator: ", ")) (sites: \(known.sorted().joined(separator: ", ")))")
            }
            datasets = datasets.map { $0.filtered(sites: keep) }
        }
        return datasets
    }

    /// The labeled cases of `dataset` split per site into training and validation parts, as `medselect train` does
    /// and `medselect embed --split` repeats.
    static func split(_ dataset: Dataset, seed: UInt64, validationFraction: Double) -> (train: [Sample], validation: [Sample]) {
        dataset.trainValidationSplit(seed: seed, validationFraction: validationFraction)
    }

    /// The cases of one part of a dataset: "all" (every case), or "train" / "validation" of ``split(_:seed:validationFraction:)``.
    static func cases(of dataset: Dataset, part: DatasetPart, seed: UInt64, validationFraction: Double) -> [Sample] {
        guard part != .all else { return dataset.samples }
        let parts = split(dataset, seed: seed, validationFraction: validationFraction)
        return part == .train ? parts.train : parts.validation
    }
}

/// Which cases of a dataset a command works on: all, or the training or validation part of `medselect train`'s split
/// (same seed and fraction), so that `embed`, `uncertainty` and `train` agree on the cases.
struct PartOptions: ParsableArguments {
    @Option(help: "Which cases (as medselect train splits the labeled cases).") var split = DatasetPart.all
    @Option(help: "Held-out fraction of the split (as medselect train).") var validationFraction = 0.2
    @Option(help: "Seed of the split (medselect train's --split-seed, or its --seed).") var seed: UInt64 = 0

    func validate() throws {
        guard (0..<1).contains(validationFraction) else { throw ValidationError("need 0 <= --validation-fraction < 1") }
    }

    func cases(of dataset: Dataset) -> [Sample] {
        DatasetOptions.cases(of: dataset, part: split, seed: seed, validationFraction: validationFraction)
    }
}
