import Foundation
import MedFoundation
import Synchronization

/// A local copy of the series a DICOMweb search finds, which the rest of MedSelect reads as any DICOM tree:
/// `CACHE/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`, the files exactly as the PACS sends them.
///
/// Resumable by construction: every instance is written atomically under its own UID, so an interrupted retrieval
/// leaves whole files only and the next run fetches just the missing ones; a series whose instances are all present
/// gets a marker (`.series.json`: its search record and instance UIDs) and is not asked for again while the PACS
/// reports the same number of instances. Names in the cache are UIDs (checked to be digits and dots), never patient
/// data; the files themselves are the PACS's and carry what it stores, so the cache belongs where the images may be.
public struct DICOMwebCache: Sendable {
    public let folder: String
    public let client: DICOMwebClient
    /// Instances fetched at once.
    public var workers = 4

    public init(folder: String, client: DICOMwebClient) {
        self.folder = folder
        self.client = client
    }

    /// The marker of a complete series.
    struct Marker: Codable {
        var series: QIDO.Series
        var instances: [String]
    }

    public struct Outcome: Sendable {
        /// Series the search found.
        public var series: Int = 0
        /// Series complete in the cache before this run (not asked for again).
        public var cached: Int = 0
        /// Instances fetched by this run, and their bytes.
        public var fetched: Int = 0
        public var bytes: Int = 0
        /// Series folders in the cache that this search did not find (kept; earlier searches into the same cache).
        public var others: Int = 0
    }

    public func seriesFolder(_ s: QIDO.Series) -> String { "\(folder)/\(s.studyUID)/\(s.seriesUID)" }

    /// Searches with `filters` (QIDO-RS KEY=VALUE pairs, e.g. Modality=MR) and brings every series found into the
    /// cache. `progress(series done, series total, instances fetched)` after each series.
    public func sync(filters: [(String, String)], progress: @Sendable (Int, Int, Int) -> Void = { _, _, _ in }) throws -> Outcome {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let found = try client.searchSeries(filters)
        var outcome = Outcome()
        outcome.series = found.count
        for (k, s) in found.enumerated() {
            let dir = seriesFolder(s)
            if let marker = try? JSONDecoder().decode(Marker.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/.series.json"))),
               s.instances == nil || s.instances == marker.instances.count,
               marker.instances.allSatisfy({ FileManager.default.fileExists(atPath: "\(dir)/\($0).dcm") }) {
                outcome.cached += 1
                progress(k + 1, found.count, outcome.fetched)
                continue
            }
            let sops = try client.instances(of: s)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let missing = sops.filter { !FileManager.default.fileExists(atPath: "\(dir)/\($0).dcm") }
            let (n, bytes) = try fetch(missing, of: s, into: dir)
            outcome.fetched += n
            outcome.bytes += bytes
            try AtomicFile.write(try JSONEncoder().encode(Marker(series: s, instances: sops)), to: dir + "/.series.json")
            progress(k + 1, found.count, outcome.fetched)
        }
        let wanted = Set(found.map { "\($0.studyUID)/\($0.seriesUID)" })
        for study in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where !study.hasPrefix(".") {
            for series in (try? FileManager.default.contentsOfDirectory(atPath: "\(folder)/\(study)")) ?? [] where !series.hasPrefix(".") {
                if !wanted.contains("\(study)/\(series)") { outcome.others += 1 }
            }
        }
        return outcome
    }

    /// Fetches `sops` with `workers` requests at a time; each file lands whole or not at all. The first failure stops
    /// the rest and is thrown (the files already written stay: the next run does not fetch them again).
    private func fetch(_ sops: [String], of s: QIDO.Series, into dir: String) throws -> (Int, Int) {
        let next = Mutex(0)
        let tally = Mutex((files: 0, bytes: 0, failure: Error?.none))
        DispatchQueue.concurrentPerform(iterations: max(1, min(workers, sops.count))) { _ in
            while true {
                let i: Int = next.withLock { n in defer { n += 1 }; return n }
                guard i < sops.count, tally.withLock({ $0.failure == nil }) else { return }
                do {
                    let bytes = try client.instance(sops[i], of: s)
                    try AtomicFile.write(bytes, to: "\(dir)/\(sops[i]).dcm")
                    tally.withLock { $0.files += 1; $0.bytes += bytes.count }
                } catch {
                    tally.withLock { if $0.failure == nil { $0.failure = error } }
                    return
                }
            }
        }
        let t = tally.withLock { $0 }
        if let failure = t.failure { throw failure }
        return (t.files, t.bytes)
    }

    /// KEY=VALUE search filters from the command line (`--query Modality=MR --query StudyDate=20240101-20241231`).
    public static func filters(_ pairs: [String]) throws(PACSFailure) -> [(String, String)] {
        try pairs.map { p throws(PACSFailure) in
            let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, !kv[0].isEmpty else { throw PACSFailure(path: p, reason: "a search filter is KEY=VALUE (e.g. Modality=MR, StudyDate=20240101-20241231, 00080070=SIEMENS)") }
            let reserved = ["limit", "offset", "includefield", "fuzzymatching"]
            guard !reserved.contains(kv[0].lowercased()) else { throw PACSFailure(path: p, reason: "\(kv[0]) is set by medselect itself") }
            return (kv[0], kv[1])
        }
    }
}
