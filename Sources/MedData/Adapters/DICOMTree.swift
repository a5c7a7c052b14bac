import Foundation
import MedFoundation
import MedFormats

/// What a hospital's PACS export or CD holds: a tree of DICOM files, one folder per study or series or all in one.
/// Every series is a case (a volume; a series of separate images without patient geometry, such as radiographs, gives
/// one case per image). Its site is its scanner (manufacturer and model, "SIEMENS Prisma"; `index --site-from`
/// chooses another rule, ``SiteRule``), its scanner facts go to the case's ``ScannerInfo``, and its patient id only
/// as a salted SHA-256 in `tags["patient"]` (``PatientKey``), so splits keep a patient's cases together. Names, ids,
/// birth dates, accession numbers and full dates are never read into the dataset.
public enum DICOMTreeAdapter: DatasetAdapter {
    public static let name = "dicom"
    public static let layout = "any tree of DICOM files (PACS export, CD): one case per series, the scanner as its site"

    /// A DICOM file among the first 200 files found (by content, or a .dcm name).
    public static func detect(_ root: String) -> Bool {
        guard let e = FileManager.default.enumerator(atPath: root) else { return false }
        var seen = 0
        while let p = e.nextObject() as? String, seen < 200 {
            if p.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
            let full = root + "/" + p
            guard fileExists(full) else { continue }
            seen += 1
            if p.lowercased().hasSuffix(".dcm") { return true }
            if (try? ImageIO.detect(full)) == .dicom { return true }
        }
        return false
    }

    public static func load(_ root: String) throws -> Dataset {
        guard isDirectory(root) else { throw DataError.badDataset(path: root, reason: "not a folder") }
        let rootName = ((root as NSString).standardizingPath as NSString).lastPathComponent
        let series = try DICOMSeriesReader.scan(root)
        let salt = PatientKey.salt
        var samples: [Sample] = []
        var problems: [AdapterReport.Problem] = []
        for s in series {
            let scanner = ScannerInfo(dicom: s.scanner)
            var tags = ["series_uid": s.uid, "files": String(s.files.count)]
            if !s.description.isEmpty { tags["series_description"] = s.description }
            if let key = s.patientKey(salt: salt) { tags["patient"] = String(key.prefix(16)) }
            let site = scanner.scannerName ?? "unknown scanner"
            let stem = "\(scanner.modality ?? "DICOM")-S\(s.number.map(String.init) ?? "x")-\(String(SHA256.hex(of: Array(s.uid.utf8)).prefix(10)))"
            if s.isVolume {
                do { _ = try DICOMSeriesReader.order(s.files) } catch {
                    problems.append(.init(path: folder(of: s.files.map(\.path)), reason: (error as? FormatError)?.reason ?? "\(error)"))
                    continue
                }
                let folder = folder(of: s.files.map(\.path))
                tags["folder"] = relativeFirstFolder(folder, root: root, rootName: rootName)
                samples.append(Sample(id: stem, images: [folder], site: site, scanner: scanner, tags: tags))
            } else {
                for (k, f) in s.files.enumerated() {
                    var t = tags
                    t.removeValue(forKey: "series_uid")
                    t["files"] = "1"
                    t["folder"] = relativeFirstFolder((f.path as NSString).deletingLastPathComponent, root: root, rootName: rootName)
                    samples.append(Sample(id: "\(stem)-\(k + 1)", images: [f.path], site: site, scanner: scanner, tags: t))
                }
            }
        }
        let sites = Array(Set(samples.map(\.site))).sorted().map { name in
            Site(name: name, modality: samples.first { $0.site == name }?.scanner?.modality ?? "")
        }
        let notes = ["\(series.count) series in \(Set(samples.map(\.site)).count) scanner(s); patient ids kept only as salted hashes"]
        let report = AdapterReport(adapter: name, samples: samples.count, labeled: 0, problems: problems, notes: notes)
        return Dataset(name: rootName, root: root, samples: samples, sites: sites, report: report)
    }

    /// The deepest folder holding all of `paths`.
    static func folder(of paths: [String]) -> String {
        var parts = (paths[0] as NSString).deletingLastPathComponent.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for p in paths.dropFirst() {
            let q = (p as NSString).deletingLastPathComponent.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            var n = 0
            while n < min(parts.count, q.count) && parts[n] == q[n] { n += 1 }
            parts = Array(parts.prefix(n))
        }
        return parts.joined(separator: "/")
    }

    /// The first sub-folder of `root` on the way to `folder` (the root's name for files in the root itself).
    static func relativeFirstFolder(_ folder: String, root: String, rootName: String) -> String {
        let r = (root as NSString).standardizingPath, f = (folder as NSString).standardizingPath
        guard f.hasPrefix(r + "/") else { return rootName }
        return String(f.dropFirst(r.count + 1).split(separator: "/").first ?? Substring(rootName))
    }
}

/// The salt of the patient keys (``DICOMSeries/patientKey(salt:)``): the index's own (kept in its database, so
/// re-indexing keeps a patient's key), or else one random salt per process.
public enum PatientKey {
    @TaskLocal public static var salt: String = processSalt
    static let processSalt: String = {
        var g = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(g.next() as UInt64, radix: 16) }.joined()
    }()

    /// A new random salt (for a new index).
    public static func newSalt() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(g.next() as UInt64, radix: 16) }.joined()
    }
}

/// What a site is, for datasets with scanner facts (DICOM): `index --site-from`.
public enum SiteRule: String, Sendable, CaseIterable {
    /// Manufacturer and model ("SIEMENS Prisma"): the default for DICOM.
    case scanner
    case institution
    case station
    /// The first sub-folder under the root (as the image-tree and benchmark layouts have it).
    case folder
}

extension Dataset {
    /// The dataset with every sample's site decided by `rule` from its scanner facts (or its first folder); samples
    /// without the fact are in site "unknown <rule>". Throws when no sample has the fact at all.
    public func withSites(from rule: SiteRule) throws -> Dataset {
        func value(_ s: Sample) -> String? {
            switch rule {
            case .scanner: return s.scanner?.scannerName
            case .institution: return s.scanner?.institution
            case .station: return s.scanner?.station
            case .folder: return s.tags["folder"] ?? (s.images.first.map { (($0 as NSString).deletingLastPathComponent as NSString).lastPathComponent })
            }
        }
        guard samples.contains(where: { value($0) != nil }) else {
            throw DataError.badDataset(path: root, reason: "no case has a \(rule.rawValue) in its metadata (--site-from \(rule.rawValue) needs DICOM headers that carry it)")
        }
        var out = self
        out.samples = samples.map { s in var t = s; t.site = value(s) ?? "unknown \(rule.rawValue)"; return t }
        out.sites = Array(Set(out.samples.map(\.site))).sorted().map { name in
            sites.first { $0.name == name } ?? Site(name: name, modality: out.samples.first { $0.site == name }?.scanner?.modality ?? "")
        }
        return out
    }
}
