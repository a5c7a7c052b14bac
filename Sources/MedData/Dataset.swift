import Foundation
import MedFormats
import MedImage
import Synchronization
import MedFoundation

/// Scanner facts where a dataset states them.
public struct ScannerInfo: Sendable, Codable, Equatable {
    public var vendor: String?
    public var model: String?
    public var fieldStrength: Double?
    public var protocolName: String?
    /// From DICOM headers (``MedFormats/DICOMAcquisition``): modality, station, institution, device serial number,
    /// software versions, tube voltage (kVp), slice thickness and pixel spacing (mm, as written), acquisition
    /// "YYYY-MM". Never a patient identifier or a full date.
    public var modality: String?
    public var station: String?
    public var institution: String?
    public var deviceSerial: String?
    public var software: String?
    public var kvp: String?
    public var sliceThickness: String?
    public var pixelSpacing: String?
    public var acquisitionMonth: String?

    public init(vendor: String? = nil, model: String? = nil, fieldStrength: Double? = nil, protocolName: String? = nil) {
        self.vendor = vendor; self.model = model; self.fieldStrength = fieldStrength; self.protocolName = protocolName
    }

    /// The facts a DICOM series' headers give (empty values left out).
    public init(dicom a: DICOMAcquisition) {
        func v(_ s: String) -> String? { s.isEmpty ? nil : s }
        self.init(vendor: v(a.manufacturer), model: v(a.model), fieldStrength: Double(a.fieldStrength))
        modality = v(a.modality); station = v(a.station); institution = v(a.institution); deviceSerial = v(a.deviceSerial)
        software = v(a.software); kvp = v(a.kvp); sliceThickness = v(a.sliceThickness); pixelSpacing = v(a.pixelSpacing)
        acquisitionMonth = v(a.acquisitionMonth)
    }

    /// "SIEMENS Prisma": the vendor's first word and the model, the default DICOM site.
    public var scannerName: String? {
        let name = [vendor?.split(separator: " ").first.map(String.init), model].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
        return name.isEmpty ? nil : name
    }
}

/// An acquisition site (hospital, scanner, domain).
public struct Site: Sendable, Codable, Equatable {
    public var name: String
    /// Other names of the same site in other copies of the data (e.g. ISBI for RUNMC).
    public var aliases: [String]
    /// "MR", "CR" (chest radiograph), "fundus", ...
    public var modality: String
    public var metadata: [String: String]
    public init(name: String, aliases: [String] = [], modality: String, metadata: [String: String] = [:]) {
        self.name = name; self.aliases = aliases; self.modality = modality; self.metadata = metadata
    }
}

/// How a sample's label files become one label map (0 = background).
public enum LabelRule: String, Sendable, Codable {
    /// The file's values as they are.
    case identity
    /// Every value > 0 becomes 1 (prostate collections, 0/255 masks).
    case binarize
    /// The union of several files (> 0) becomes 1 (Montgomery's left and right lung masks; SCR's lungs).
    case union
    /// Fundus disc/cup masks: the encoding is detected (the value touching the background is the disc rim, the
    /// enclosed one the cup) and mapped to 1 = disc outside the cup, 2 = cup (the disc is labels >= 1).
    case discCup
    /// Run-length-encoded masks from a CheXmask table (tags `rle_<structure>`, `rle_height`, `rle_width`): left and
    /// right lung become 1, the heart 2.
    case chexmaskRLE

    /// The label is in the sample's tags (CheXmask's run-length codes), not in files.
    public var labelsInTags: Bool { self == .chexmaskRLE }
}

/// One case: image file(s), label file(s), site, and what is known about it.
public struct Sample: Sendable, Codable, Equatable {
    public var id: String
    /// Image files: one, or one per channel (nnU-Net's `_0000`, `_0001`, ...). Absolute paths.
    public var images: [String]
    /// Label files combined by `labelRule`; empty for an unlabeled sample.
    public var labels: [String]
    public var labelRule: LabelRule
    public var site: String
    public var scanner: ScannerInfo?
    /// "train", "test", "validation", or nil.
    public var split: String?
    public var tags: [String: String]

    public init(id: String, images: [String], labels: [String] = [], labelRule: LabelRule = .identity, site: String,
                scanner: ScannerInfo? = nil, split: String? = nil, tags: [String: String] = [:]) {
        self.id = id; self.images = images; self.labels = labels; self.labelRule = labelRule; self.site = site
        self.scanner = scanner; self.split = split; self.tags = tags
    }

    public var isLabeled: Bool { !labels.isEmpty || labelRule.labelsInTags }

    /// Reads the image (several files are stacked as channels on the fourth axis; their grids must agree).
    public func loadImage(options: ReadOptions = .default) throws -> MedicalImage {
        guard let first = images.first else { throw DataError.badDataset(path: id, reason: "sample has no image file") }
        if let reader = RawImageReaders.named(tags["reader"]) { return try reader.readImage(first) }
        var options = options
        if let uid = tags["series_uid"] { options.dicomSeries = uid }   // a DICOM series in its folder
        var image = try ImageIO.read(first, options: options)
        guard images.count > 1 else { return image }
        for path in images.dropFirst() {
            let other = try ImageIO.read(path, options: options)
            guard other.shape.spatialCount == image.shape.spatialCount, other.shape.x == image.shape.x, other.shape.y == image.shape.y else {
                throw DataError.badDataset(path: path, reason: "channel grid \(other.shape) differs from \(image.shape) of \(first)")
            }
            image = MedicalImage(shape: ImageShape(image.shape.x, image.shape.y, image.shape.z, image.shape.t + other.shape.t),
                                 voxels: image.voxels + other.voxels, affine: image.affine, kind: image.kind, info: image.info)
        }
        return image
    }

    /// Reads and combines the label files by `labelRule`; nil when unlabeled.
    public func loadLabel(options: ReadOptions = .default) throws -> MedicalImage? {
        switch labelRule {
        case .chexmaskRLE:
            return try CheXmask.decode(tags: tags, id: id)
        case .identity, .binarize, .union, .discCup:
            guard let first = labels.first else { return nil }
            var label = try ImageIO.read(first, options: options)
            label.kind = .labelMap
            if let problem = label.labelMapProblem { throw DataError.badDataset(path: first, reason: "not a label map: \(problem)") }
            let reader = RawImageReaders.named(tags["reader"])
            if let reader { label = try reader.conformLabel(label, path: first) }
            if label.shape.t > 1 { label = LabelTools.firstChannel(label) }
            switch labelRule {
            case .identity: break
            case .binarize: label.voxels = label.voxels.map { $0 > 0 ? 1 : 0 }
            case .union:
                label.voxels = label.voxels.map { $0 > 0 ? 1 : 0 }
                for path in labels.dropFirst() {
                    var other = try ImageIO.read(path, options: options)
                    if let problem = other.labelMapProblem { throw DataError.badDataset(path: path, reason: "not a label map: \(problem)") }
                    if other.shape.t > 1 { other = LabelTools.firstChannel(other) }
                    if let reader { other = try reader.conformLabel(other, path: path) }
                    guard other.shape.spatialCount == label.shape.spatialCount else {
                        throw DataError.badDataset(path: path, reason: "mask grid \(other.shape) differs from \(label.shape) of \(first)")
                    }
                    for k in 0..<label.voxels.count where other.voxels[k] > 0 { label.voxels[k] = 1 }
                }
            case .discCup:
                label.voxels = try LabelTools.discCup(label.voxels, width: label.shape.x, height: label.shape.y, path: first).map
            case .chexmaskRLE: break
            }
            return label
        }
    }
}

/// What an adapter found and what it could not use (it never stops at a bad file).
public struct AdapterReport: Sendable, Codable, Equatable {
    public var adapter: String
    public var samples: Int
    public var labeled: Int
    public struct Problem: Sendable, Codable, Equatable {
        public var path: String
        public var reason: String
    }
    public var problems: [Problem]
    /// Notes about the data (e.g. the detected disc/cup encoding).
    public var notes: [String]

    public var summary: String {
        var s = "\(adapter): \(samples) samples (\(labeled) labeled)"
        if !problems.isEmpty { s += ", \(problems.count) not used" }
        return s
    }
}

/// Samples grouped by site, with their sites and the adapter's report.
public struct Dataset: Sendable {
    public var name: String
    public var root: String
    public var samples: [Sample]
    public var sites: [Site]
    public var report: AdapterReport

    public init(name: String, root: String, samples: [Sample], sites: [Site], report: AdapterReport) {
        self.name = name; self.root = root; self.samples = samples; self.sites = sites; self.report = report
    }

    /// Samples of each site, in sample order.
    public var bySite: [String: [Sample]] { Dictionary(grouping: samples, by: \.site) }

    /// The samples matching every given condition.
    public func filtered(sites: Set<String>? = nil, split: String? = nil, labeled: Bool? = nil) -> Dataset {
        var d = self
        d.samples = samples.filter { s in
            (sites.map { $0.contains(s.site) } ?? true) && (split.map { $0 == s.split } ?? true) && (labeled.map { $0 == s.isLabeled } ?? true)
        }
        return d
    }

    /// The training and validation parts of the labeled cases, per site (``split(seed:fractions:stratifyBySite:)``
    /// with fractions 1 - `validationFraction` and `validationFraction`): the one split that `train`, `embed --split`,
    /// exports and experiments share.
    public func trainValidationSplit(seed: UInt64, validationFraction: Double) -> (train: [Sample], validation: [Sample]) {
        let parts = filtered(labeled: true).split(seed: seed, fractions: [("train", 1 - validationFraction), ("validation", validationFraction)])
        return (parts["train"] ?? [], parts["validation"] ?? [])
    }

    /// Deterministic split: within each site (or overall), samples are shuffled with the seed and cut by the
    /// fractions (largest remainder), named in order. Returns split name -> samples; `split` fields are set.
    /// Cases that carry a patient key (`tags["patient"]`, DICOM) are split by patient instead: all of a patient's
    /// cases, in whichever site, land in one part (``patientSplit(seed:fractions:)``).
    public func split(seed: UInt64, fractions: [(String, Double)], stratifyBySite: Bool = true) -> [String: [Sample]] {
        if samples.contains(where: { $0.tags["patient"] != nil }) { return patientSplit(seed: seed, fractions: fractions) }
        let groups: [[Sample]] = stratifyBySite ? sites.map(\.name).compactMap { bySite[$0] } : [samples]
        var out: [String: [Sample]] = [:]
        for group in groups {
            // The stream depends on the site's name, not its position: a site splits the same way whichever other
            // sites the dataset holds (so `train --sites A` and `embed --sites A,B` agree on A's split).
            let key = stratifyBySite ? FNV1a.hash(group.first?.site ?? "") : 0
            var rng = PhantomRandom(seed: seed, streams: [Int(truncatingIfNeeded: key), 7])
            var items = group.sorted { $0.id < $1.id }
            items.shuffle(using: &rng)
            let total = fractions.reduce(0) { $0 + $1.1 }
            let exact = fractions.map { $0.1 / total * Double(items.count) }
            var counts = exact.map { Int($0.rounded(.down)) }
            var left = items.count - counts.reduce(0, +)
            for i in exact.indices.sorted(by: { exact[$0] - Double(counts[$0]) > exact[$1] - Double(counts[$1]) }) where left > 0 {
                counts[i] += 1; left -= 1
            }
            var start = 0
            for (i, (name, _)) in fractions.enumerated() {
                for var s in items[start..<(start + counts[i])] { s.split = name; out[name, default: []].append(s) }
                start += counts[i]
            }
        }
        return out
    }

    /// The split by patient: patients (cases without a key count as their own patient) shuffled with the seed and
    /// handed out in turn to the part furthest below its share of cases, so no patient is on both sides.
    public func patientSplit(seed: UInt64, fractions: [(String, Double)]) -> [String: [Sample]] {
        var byPatient: [String: [Sample]] = [:]
        for s in samples { byPatient[s.tags["patient"].map { "p:" + $0 } ?? "c:" + s.id, default: []].append(s) }
        var rng = PhantomRandom(seed: seed, streams: [11, 7])
        var units = byPatient.keys.sorted()
        units.shuffle(using: &rng)
        let total = fractions.reduce(0) { $0 + $1.1 }
        var counts = [Int](repeating: 0, count: fractions.count)
        var out: [String: [Sample]] = [:]
        var assigned = 0
        for u in units {
            let cases = byPatient[u]!.sorted { $0.id < $1.id }
            // The part with the largest deficit against its share once these cases are added.
            let next = assigned + cases.count
            let i = fractions.indices.max { a, b in
                (fractions[a].1 / total * Double(next) - Double(counts[a]), b) < (fractions[b].1 / total * Double(next) - Double(counts[b]), a)
            }!
            counts[i] += cases.count
            assigned = next
            for var s in cases { s.split = fractions[i].0; out[fractions[i].0, default: []].append(s) }
        }
        return out
    }

    /// One 2-D slice of a 3-D case, for the 2-D networks.
    public struct Slice: Sendable, Equatable {
        public var sample: Sample
        /// Index along the slicing axis (2 = axial, k).
        public var index: Int
        public var axis: Int
        public var id: String { "\(sample.id)_s\(String(format: "%03d", index))" }
    }

    /// Every slice along `axis` (2 = axial) of every sample, from the headers; `labeledOnly` keeps slices whose
    /// label map has foreground (reads the labels).
    public func slices(axis: Int = 2, labeledOnly: Bool = false) throws -> [Slice] {
        var out: [Slice] = []
        for s in samples {
            guard let first = s.images.first else { continue }
            let g = try ImageIO.readGeometry(first)
            let n = g.shape[axis]
            var keep = [Bool](repeating: true, count: n)
            if labeledOnly, let label = try s.loadLabel() {
                keep = (0..<n).map { k in (try? label.slice(axis: axis, index: k).voxels.contains { $0 > 0 }) ?? false }
            }
            for k in 0..<n where keep[k] { out.append(Slice(sample: s, index: k, axis: axis)) }
        }
        return out
    }

    /// Loads samples in order while the next `prefetch` are read in the background; stops at the first error.
    public func forEachLoaded(prefetch: Int = 2, _ body: (Sample, MedicalImage, MedicalImage?) throws -> Void) throws {
        let items = samples
        let slots = Mutex([Int: Result<(MedicalImage, MedicalImage?), Error>]())
        let ready = DispatchSemaphore(value: 0)
        let room = DispatchSemaphore(value: max(1, prefetch))
        let stop = Atomic(false)
        DispatchQueue.global().async {
            for (i, s) in items.enumerated() {
                room.wait()
                if stop.load(ordering: .relaxed) { ready.signal(); return }
                let r = Result { (try s.loadImage(), try s.loadLabel()) }
                slots.withLock { $0[i] = r }
                ready.signal()
            }
        }
        defer { stop.store(true, ordering: .relaxed); room.signal() }
        for (i, s) in items.enumerated() {
            ready.wait()
            let r = slots.withLock { $0.removeValue(forKey: i)! }
            room.signal()
            let (image, label) = try r.get()
            try body(s, image, label)
        }
    }
}

/// Label-map helpers for the adapters.
enum LabelTools {
    /// A square 2-D mask brought to `size` x `size` by an integer factor (nearest neighbour), with the given spacing.
    static func upsampled(_ m: MedicalImage, to size: Int, spacing: Double, path: String) throws -> MedicalImage {
        guard m.shape.x == m.shape.y, m.shape.x > 0, size % m.shape.x == 0 else {
            throw DataError.badDataset(path: path, reason: "mask is \(m.shape.x)x\(m.shape.y); expected a divisor of \(size)")
        }
        let f = size / m.shape.x
        var out = [Float](repeating: 0, count: size * size)
        for j in 0..<size { for i in 0..<size { out[j * size + i] = m.voxels[(j / f) * m.shape.x + i / f] } }
        return MedicalImage(shape: ImageShape(size, size), voxels: out, affine: Affine.diagonal(spacing: [spacing, spacing, 1]),
                            kind: .labelMap, info: m.info)
    }

    static func firstChannel(_ image: MedicalImage) -> MedicalImage {
        var info = image.info
        if info.components == .color { info.components = .scalar }
        return MedicalImage(shape: ImageShape(image.shape.x, image.shape.y, image.shape.z, 1), voxels: Array(image.voxels.prefix(image.shape.spatialCount)),
                            affine: image.affine, kind: image.kind, info: info)
    }

    /// Detects a disc/cup encoding (two non-zero values; the one touching the background is the disc rim) and maps
    /// it to 1 = disc outside the cup, 2 = cup. Returns the mapped values and a description of the encoding.
    static func discCup(_ values: [Float], width: Int, height: Int, path: String) throws -> (map: [Float], encoding: String) {
        let distinct = Set(values).subtracting([0]).sorted()
        if distinct.isEmpty { return (values, "empty") }
        if distinct.count == 1 { return (values.map { $0 > 0 ? 1 : 0 }, "disc only (\(Int(distinct[0])))") }
        guard distinct.count == 2 else {
            throw DataError.badDataset(path: path, reason: "expected two non-zero disc/cup values, found \(distinct.map { Int($0) })")
        }
        // Count, for each value, how many of its pixels touch the background (4-neighbours).
        var touch = [Float: Int]()
        for j in 0..<height {
            for i in 0..<width {
                let v = values[j * width + i]
                guard v != 0 else { continue }
                let ns = [(i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)]
                if ns.contains(where: { $0.0 >= 0 && $0.0 < width && $0.1 >= 0 && $0.1 < height && values[$0.1 * width + $0.0] == 0 }) {
                    touch[v, default: 0] += 1
                }
            }
        }
        let (a, b) = (distinct[0], distinct[1])
        let rim = (touch[a] ?? 0) >= (touch[b] ?? 0) ? a : b
        let cup = rim == a ? b : a
        return (values.map { $0 == 0 ? 0 : ($0 == rim ? 1 : 2) }, "disc rim \(Int(rim)), cup \(Int(cup))")
    }
}
