import Foundation

/// The six-site prostate MRI collection (Liu et al., MS-Net 2020 / SAML 2020): `<SITE>/CaseNN.nii.gz` with
/// `CaseNN_segmentation.nii.gz` or `CaseNN_Segmentation.nii.gz`; labels binarised (> 0).
public enum ProstateMultiSiteAdapter: DatasetAdapter {
    public static let name = "prostate"
    public static let layout = "<SITE>/CaseNN.nii.gz + CaseNN_segmentation.nii.gz (or _Segmentation); sites RUNMC, BMC, I2CVB, UCL, BIDMC, HK"

    /// Canonical site, its aliases, and the acquisition as Table 1 of MS-Net (Liu et al., IEEE TMI 2020) reports it.
    static let sites: [(name: String, aliases: [String], scanner: ScannerInfo, coil: String)] = [
        ("RUNMC", ["ISBI", "SiteA", "Site_A"], ScannerInfo(vendor: "Siemens", fieldStrength: 3), "surface"),
        ("BMC", ["ISBI_1.5", "SiteB", "Site_B"], ScannerInfo(vendor: "Philips", fieldStrength: 1.5), "endorectal"),
        ("I2CVB", ["HCRUDB", "SiteC", "Site_C"], ScannerInfo(vendor: "Siemens", fieldStrength: 3), "none"),
        ("UCL", ["SiteD", "Site_D"], ScannerInfo(vendor: "Siemens"), "none"),
        ("BIDMC", ["SiteE", "Site_E"], ScannerInfo(vendor: "GE", fieldStrength: 3), "endorectal"),
        ("HK", ["SiteF", "Site_F"], ScannerInfo(vendor: "Siemens", fieldStrength: 1.5), "endorectal"),
    ]

    static func isCase(_ f: String) -> Bool {
        f.range(of: #"^Case\d+\.nii(\.gz)?$"#, options: [.regularExpression, .caseInsensitive]) != nil
    }

    public static func detect(_ root: String) -> Bool {
        listing(root).contains { isDirectory(root + "/" + $0) && listing(root + "/" + $0).contains(where: isCase) }
    }

    public static func load(_ root: String) throws -> Dataset {
        var samples: [Sample] = [], problems: [AdapterReport.Problem] = [], notes: [String] = []
        var found: [Site] = []
        for folder in listing(root) where isDirectory(root + "/" + folder) {
            let files = listing(root + "/" + folder)
            let cases = files.filter(isCase)
            guard !cases.isEmpty else { continue }
            let known = sites.first { $0.name.caseInsensitiveCompare(folder) == .orderedSame || $0.aliases.contains { $0.caseInsensitiveCompare(folder) == .orderedSame } }
            let siteName = known?.name ?? folder
            if let known, known.name != folder { notes.append("folder \(folder) is site \(known.name)") }
            if !found.contains(where: { $0.name == siteName }) {
                var meta: [String: String] = ["folder": folder]
                if let k = known { meta["coil"] = k.coil }
                found.append(Site(name: siteName, aliases: known?.aliases ?? [], modality: "MR", metadata: meta))
            }
            for c in cases {
                let s = stem(c)
                let ext = c.hasSuffix(".gz") ? ".nii.gz" : ".nii"
                let seg = ["_segmentation", "_Segmentation", "_SEGMENTATION"].map { s + $0 + ext }.first { files.contains($0) }
                let path = "\(root)/\(folder)/\(c)"
                var sample = Sample(id: "\(siteName)_\(s)", images: [path], labelRule: .binarize, site: siteName, scanner: known?.scanner)
                if let seg {
                    sample.labels = ["\(root)/\(folder)/\(seg)"]
                    if let issue = unexpectedLabelValues(sample.labels[0], allowed: [0, 1]) {
                        problems.append(.init(path: sample.labels[0], reason: issue))
                    }
                } else {
                    problems.append(.init(path: path, reason: "no segmentation (\(s)_segmentation\(ext)); kept as unlabeled"))
                }
                samples.append(sample)
            }
            for f in files where !isCase(f) && !f.lowercased().contains("_segmentation") {
                problems.append(.init(path: "\(root)/\(folder)/\(f)", reason: "not a case or segmentation file; ignored"))
            }
        }
        let report = AdapterReport(adapter: name, samples: samples.count, labeled: samples.filter(\.isLabeled).count, problems: problems, notes: notes)
        return Dataset(name: name, root: root, samples: samples, sites: found, report: report)
    }
}

/// PROMISE12 (Litjens et al., MedIA 2014): `TrainingData_Part1..3/CaseNN.mhd` with `CaseNN_segmentation.mhd`;
/// test cases (no segmentation) are unlabeled. One site per part folder is not true (the centres are mixed), so the
/// site is "PROMISE12" and the part is a tag.
public enum PROMISE12Adapter: DatasetAdapter {
    public static let name = "promise12"
    public static let layout = "TrainingData_Part1..3/CaseNN.mhd + CaseNN_segmentation.mhd (and .raw/.zraw data files)"

    public static func detect(_ root: String) -> Bool {
        listing(root).contains { $0.hasPrefix("TrainingData_Part") && isDirectory(root + "/" + $0) }
    }

    public static func load(_ root: String) throws -> Dataset {
        var samples: [Sample] = [], problems: [AdapterReport.Problem] = []
        for part in listing(root) where isDirectory(root + "/" + part) && (part.hasPrefix("TrainingData_Part") || part.hasPrefix("TestData")) {
            let files = listing(root + "/" + part)
            for f in files where f.range(of: #"^Case\d+\.mhd$"#, options: .regularExpression) != nil {
                let s = stem(f)
                var sample = Sample(id: s, images: ["\(root)/\(part)/\(f)"], labelRule: .binarize, site: "PROMISE12",
                                    split: part.hasPrefix("Test") ? "test" : "train", tags: ["part": part])
                if files.contains("\(s)_segmentation.mhd") {
                    sample.labels = ["\(root)/\(part)/\(s)_segmentation.mhd"]
                } else if !part.hasPrefix("Test") {
                    problems.append(.init(path: "\(root)/\(part)/\(f)", reason: "no \(s)_segmentation.mhd; kept as unlabeled"))
                }
                samples.append(sample)
            }
        }
        let report = AdapterReport(adapter: name, samples: samples.count, labeled: samples.filter(\.isLabeled).count, problems: problems, notes: [])
        return Dataset(name: name, root: root, samples: samples, sites: [Site(name: "PROMISE12", modality: "MR")], report: report)
    }
}
