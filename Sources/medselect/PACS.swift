import ArgumentParser
import Foundation
import MedPACS

/// The DICOMweb options `index` and `pick` share: search filters and the local cache the series land in.
struct DICOMwebOptions: ParsableArguments {
    @Option(name: .customLong("query"), help: "A QIDO-RS search filter KEY=VALUE for the DICOMweb server (repeat; e.g. Modality=MR, StudyDate=20240101-20241231).")
    var query: [String] = []
    @Option(name: .customLong("cache"), help: "Folder the DICOMweb series are retrieved into (resumable; shared by runs; default: ./dicomweb-cache). It holds the files as the PACS sends them, identifiers included: keep it where the images may be.")
    var cache: String?

    /// Brings the series `url` finds into the cache and returns the cache folder, which is then read as a DICOM tree.
    /// Credentials come from MEDSELECT_DICOMWEB_USER/PASSWORD or MEDSELECT_DICOMWEB_TOKEN only.
    func retrieve(_ url: String, quiet: Bool) throws -> String {
        let folder = cache ?? "dicomweb-cache"
        let cache = DICOMwebCache(folder: folder, client: try DICOMwebClient(url))
        let filters = try DICOMwebCache.filters(query)
        let progress = ProgressLine("dicomweb", quiet: quiet)
        progress("searching \(cache.client.base.absoluteString)")
        let o = try cache.sync(filters: filters) { done, total, fetched in progress("\(done)/\(total) series, \(fetched) files fetched") }
        progress.finish("\(o.series) series found: \(o.cached) already in \(folder), \(o.fetched) files (\(megabytes(o.bytes))) fetched")
        if o.series == 0 { throw CommandError(subject: url, reason: "the search found no series\(filters.isEmpty ? "" : " matching the filters on \(filters.map(\.0).joined(separator: ", "))")") }
        if o.others > 0 && !quiet {
            FileHandle.standardError.write(Data("note: \(folder) also holds \(o.others) series from earlier searches; they are read too (use one cache folder per search to keep them apart)\n".utf8))
        }
        return folder
    }
}

/// "0.4 MB", "12 MB".
private func megabytes(_ bytes: Int) -> String {
    bytes < 10_000_000 ? String(format: "%.1f MB", Double(bytes) / 1e6) : "\(bytes / 1_000_000) MB"
}
