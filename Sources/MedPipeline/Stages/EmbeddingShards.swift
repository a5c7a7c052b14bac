import Foundation
import MedData
import MedFormats
import MedFoundation

/// Embeddings computed in shards on many machines (one shard per Slurm array task or Kubernetes Indexed Job pod) and
/// merged on one: shard I of N covers the contiguous rows ⌊I·T/N⌋ ..< ⌊(I+1)·T/N⌋ of the T ordered cases; each part is
/// an ordinary `.npy` with its ids file plus a manifest (`PART.shard.json`) that names the shard, the cases (a hash of
/// every case id in order) and the embedding (method and a hash of the encoder file), so that a merge refuses parts
/// of different data or encoders, overlaps and gaps.
public enum EmbeddingShards {
    /// Shard `index` of `count` (0 <= index < count).
    public struct Shard: Sendable, Equatable {
        public var index: Int, count: Int
        public init(index: Int, count: Int) { self.index = index; self.count = count }

        /// "I/N", e.g. "3/16"; nil when it is not one.
        public init?(_ text: String) {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, (0..<n).contains(i) else { return nil }
            index = i; count = n
        }

        /// The rows of `total` ordered cases this shard embeds.
        public func rows(of total: Int) -> Range<Int> { (index * total / count)..<((index + 1) * total / count) }
    }

    /// What a part's manifest records.
    public struct Manifest: Codable, Equatable, Sendable {
        public var format = "medselect-embedding-shard-1"
        public var shard: Int
        public var shards: Int
        /// First row and end (exclusive) in the whole matrix.
        public var rows: [Int]
        public var total: Int
        public var columns: Int
        /// FNV-1a of every case id in global order: the same data in the same order.
        public var cases: String
        /// The method in words and the encoder file's hash: the same embedding.
        public var embedding: String
        /// FNV-1a of this part's own ids file rows (id, site), so that a merge names a part whose ids file was edited
        /// or replaced; absent in manifests written before it existed (the merge then checks all ids against `cases`).
        public var partIDs: String?
        enum CodingKeys: String, CodingKey { case format, shard, shards, rows, total, columns, cases, embedding, partIDs = "part_ids" }
    }

    /// `E.npy` -> `E.shard.json`.
    public static func manifestPath(_ npy: String) -> String { (npy.hasSuffix(".npy") ? String(npy.dropLast(4)) : npy) + ".shard.json" }

    /// The fingerprint of the ordered cases.
    public static func casesFingerprint(_ cases: [Sample]) -> String {
        fingerprint(cases.map { ($0.id, $0.site) })
    }

    /// The fingerprint of ordered (id, site) pairs, as an ids file lists them.
    static func fingerprint(_ pairs: [(id: String, site: String)]) -> String {
        var h = FNV1a()
        for c in pairs { h.add(c.id + "\u{1f}" + c.site) }
        return "\(pairs.count) cases, ids \(h.hex)"
    }

    /// The (id, site) rows of an ids file line by line ("id,site"; the site after the last comma).
    static func pairs(_ lines: [Substring]) -> [(id: String, site: String)] {
        lines.map { line in
            guard let comma = line.lastIndex(of: ",") else { return (String(line), "") }
            return (String(line[..<comma]), String(line[line.index(after: comma)...]))
        }
    }

    /// Writes one part: rows `shard.rows(of: cases.count)` (given as `rows`, `columns` wide) to `path` with its ids
    /// and manifest.
    public static func writePart(rows: [Float], columns: Int, shard: Shard, cases: [Sample], embedding: String, to path: String) throws {
        let range = shard.rows(of: cases.count)
        precondition(rows.count == range.count * columns, "a part of \(range.count) rows needs \(range.count * columns) values")
        try CaseEmbedder.write(rows, dimensions: columns, range: 0..<range.count, cases: Array(cases[range]), to: path)
        let manifest = Manifest(shard: shard.index, shards: shard.count, rows: [range.lowerBound, range.upperBound], total: cases.count,
                                columns: columns, cases: casesFingerprint(cases), embedding: embedding,
                                partIDs: casesFingerprint(Array(cases[range])))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(Array(try encoder.encode(manifest)) + [10], to: manifestPath(path))
    }

    /// Concatenates parts (any order given) in global row order into `out` (.npy) and its ids file; refuses parts
    /// without a manifest, of other data, encoders, shard counts or widths, overlapping rows and missing rows.
    /// Returns (rows, columns).
    @discardableResult
    public static func merge(_ parts: [String], to out: String) throws -> (rows: Int, columns: Int) {
        guard !parts.isEmpty else { throw DataError.badConfiguration(path: out, reason: "no parts to merge") }
        // The output must not overwrite a part, its ids file or its manifest (they are read after the output is opened).
        let written = Set([out, CaseEmbedder.idsPath(out)].map(canonicalPath))
        for p in parts where !written.isDisjoint(with: [p, CaseEmbedder.idsPath(p), manifestPath(p)].map(canonicalPath)) {
            throw DataError.badConfiguration(path: out, reason: "is one of the parts to merge (\(p)), or its ids file: write the merged matrix to a new file")
        }
        var loaded: [(path: String, manifest: Manifest)] = []
        for p in parts {
            let m = manifestPath(p)
            guard let data = FileManager.default.contents(atPath: m) else {
                throw DataError.badConfiguration(path: p, reason: "has no shard manifest \(m): not written by medselect embed --shard")
            }
            guard let manifest = try? JSONDecoder().decode(Manifest.self, from: data), manifest.format == "medselect-embedding-shard-1" else {
                throw DataError.badConfiguration(path: m, reason: "is not a shard manifest medselect reads")
            }
            loaded.append((p, manifest))
        }
        let first = loaded[0]
        for (p, m) in loaded.dropFirst() {
            if m.cases != first.manifest.cases || m.total != first.manifest.total {
                throw DataError.badConfiguration(path: p, reason: "embeds other cases (\(m.cases)) than \(first.path) (\(first.manifest.cases)): parts of different data")
            }
            let emptyPart = m.rows[0] == m.rows[1] || first.manifest.rows[0] == first.manifest.rows[1]
            if m.embedding != first.manifest.embedding || (m.columns != first.manifest.columns && !emptyPart) {
                throw DataError.badConfiguration(path: p, reason: "comes from another embedding (\(m.embedding), \(m.columns) columns) than \(first.path) (\(first.manifest.embedding), \(first.manifest.columns) columns)")
            }
            if m.shards != first.manifest.shards {
                throw DataError.badConfiguration(path: p, reason: "is shard \(m.shard) of \(m.shards); \(first.path) is of \(first.manifest.shards)")
            }
        }
        let ordered = loaded.sorted { ($0.manifest.rows[0], $0.manifest.rows[1]) < ($1.manifest.rows[0], $1.manifest.rows[1]) }
        var next = 0
        for (p, m) in ordered {
            if m.rows[0] < next {
                let other = ordered.first { $0.path != p && $0.manifest.rows[0] < m.rows[1] && m.rows[0] < $0.manifest.rows[1] }?.path ?? "another part"
                throw DataError.badConfiguration(path: p, reason: "rows \(m.rows[0])..<\(m.rows[1]) overlap \(other)'s (shard \(m.shard) given twice?)")
            }
            if m.rows[0] > next {
                throw DataError.badConfiguration(path: out, reason: "rows \(next)..<\(m.rows[0]) of \(first.manifest.total) are in no part given (missing shards: \(missingShards(ordered.map(\.manifest)).map(String.init).joined(separator: ", ")))")
            }
            next = m.rows[1]
        }
        if next < first.manifest.total {
            throw DataError.badConfiguration(path: out, reason: "rows \(next)..<\(first.manifest.total) are in no part given (missing shards: \(missingShards(ordered.map(\.manifest)).map(String.init).joined(separator: ", ")))")
        }
        let columns = loaded.first { $0.manifest.rows[1] > $0.manifest.rows[0] }?.manifest.columns ?? 0
        var values: [Float] = []
        values.reserveCapacity(first.manifest.total * columns)
        var idLines = "id,site\n"
        for (p, m) in ordered {
            if m.rows[0] == m.rows[1] { continue }
            let a = try NPYReader.readMatrix(p)
            guard a.rows == m.rows[1] - m.rows[0], a.columns == columns else {
                throw DataError.badConfiguration(path: p, reason: "holds \(a.rows) x \(a.columns); its manifest says \(m.rows[1] - m.rows[0]) x \(columns)")
            }
            values += a.values
            guard let ids = try? String(contentsOfFile: CaseEmbedder.idsPath(p), encoding: .utf8) else {
                throw DataError.badConfiguration(path: CaseEmbedder.idsPath(p), reason: "cannot read the part's ids")
            }
            let lines = ids.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().filter { !$0.isEmpty }
            guard lines.count == m.rows[1] - m.rows[0] else {
                throw DataError.badConfiguration(path: CaseEmbedder.idsPath(p), reason: "\(lines.count) ids for \(m.rows[1] - m.rows[0]) rows")
            }
            if let expected = m.partIDs, fingerprint(pairs(lines)) != expected {
                throw DataError.badConfiguration(path: CaseEmbedder.idsPath(p), reason: "its ids (\(fingerprint(pairs(lines)))) are not the ones its manifest records (\(expected)): the ids file was edited or replaced after embed --shard wrote it")
            }
            idLines += lines.map { $0 + "\n" }.joined()
        }
        let merged = fingerprint(pairs(idLines.split(separator: "\n").dropFirst().map { $0 }))
        guard merged == first.manifest.cases else {
            throw DataError.badConfiguration(path: out, reason: "the parts' ids (\(merged)) are not the cases their manifests record (\(first.manifest.cases)): an ids file was edited or replaced after embed --shard wrote it")
        }
        try NPYWriter.write(matrix: values, rows: first.manifest.total, columns: columns, to: out)
        try AtomicFile.write(idLines, to: CaseEmbedder.idsPath(out))
        return (first.manifest.total, columns)
    }

    static func missingShards(_ present: [Manifest]) -> [Int] {
        guard let n = present.first?.shards else { return [] }
        let have = Set(present.map(\.shard))
        return (0..<n).filter { !have.contains($0) }
    }
}
