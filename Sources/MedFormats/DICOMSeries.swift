import Foundation
import Synchronization
import MedImage
import MedFoundation
import MedCompute
internal import CGDCM

/// The scanner and acquisition facts of a DICOM series that MedSelect keeps (the index stores them as the case's
/// `ScannerInfo`). Nothing here identifies a patient: no names, ids, birth dates, accession numbers or full dates
/// (the acquisition date is kept as its year and month).
public struct DICOMAcquisition: Codable, Sendable, Equatable {
    public var modality = ""
    public var manufacturer = ""
    public var model = ""
    /// Tesla, MR only ("" when absent).
    public var fieldStrength = ""
    public var station = ""
    public var institution = ""
    public var deviceSerial = ""
    public var software = ""
    public var kvp = ""
    public var sliceThickness = ""
    /// Row and column spacing (mm) as the header gives them, "0.7\0.7".
    public var pixelSpacing = ""
    /// "YYYY-MM" of the acquisition (or series, or study) date; never the day.
    public var acquisitionMonth = ""

    public init() {}

    enum CodingKeys: String, CodingKey {
        case modality, manufacturer, model, fieldStrength = "field_strength", station, institution,
             deviceSerial = "device_serial", software, kvp, sliceThickness = "slice_thickness", pixelSpacing = "pixel_spacing",
             acquisitionMonth = "acquisition_month"
    }
}

/// One DICOM file's header as far as series assembly needs it, read without its pixel data. `patientID` stays in
/// memory only, for the index's salted hash (``DICOMSeries/patientKey(salt:)``); it is never written anywhere.
public struct DICOMFileHeader: Sendable {
    public var path: String
    public var seriesUID = "", studyUID = "", instanceUID = ""
    public var seriesDescription = ""
    public var seriesNumber: Int? = nil
    public var instanceNumber: Int? = nil
    public var rows = 0, columns = 0, frames = 1
    /// ImagePositionPatient and ImageOrientationPatient (LPS mm), nil when absent.
    public var position: [Double]? = nil
    public var orientation: [Double]? = nil
    public var pixelSpacing: [Double]? = nil
    public var gantryTilt = 0.0
    public var scanner = DICOMAcquisition()
    var patientID = ""

    /// Tags read for every file: (group << 16 | element).
    static let tags: [UInt32] = [
        0x0020_000E, 0x0020_000D, 0x0008_0018, 0x0008_103E, 0x0020_0011, 0x0020_0013,            // series, study, instance, description, numbers
        0x0028_0010, 0x0028_0011, 0x0028_0008, 0x0020_0032, 0x0020_0037, 0x0028_0030, 0x0018_1120, // grid, geometry, tilt
        0x0008_0060, 0x0008_0070, 0x0008_1090, 0x0018_0087, 0x0008_1010, 0x0008_0080, 0x0018_1000, // scanner
        0x0018_1020, 0x0018_0060, 0x0018_0050, 0x0008_0022, 0x0008_0021, 0x0008_0020, 0x0010_0020, // ..., dates, patient id
    ]

    /// Reads the header (everything before the pixel data) through GDCM.
    public static func read(_ path: String) throws -> DICOMFileHeader {
        let tags = Self.tags
        var out = [CChar](repeating: 0, count: 16384)
        var offsets = [Int](repeating: 0, count: tags.count)
        var message = [CChar](repeating: 0, count: 512)
        let rc = tags.withUnsafeBufferPointer { t in
            cgdcm_read_tags(path, t.baseAddress, Int32(t.count), &out, out.count, &offsets, &message, message.count)
        }
        guard rc == 0 else { throw FormatError.unsupported(path: path, reason: DICOMReader.text(message)) }
        let v = offsets.map { o in String(decoding: out[o...].prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).trimmingCharacters(in: .whitespaces) }
        func numbers(_ s: String) -> [Double] { s.split(separator: "\\").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) } }
        var h = DICOMFileHeader(path: path)
        (h.seriesUID, h.studyUID, h.instanceUID, h.seriesDescription) = (v[0], v[1], v[2], v[3])
        h.seriesNumber = Int(v[4]); h.instanceNumber = Int(v[5])
        h.rows = Int(v[6]) ?? 0; h.columns = Int(v[7]) ?? 0; h.frames = max(1, Int(v[8]) ?? 1)
        let p = numbers(v[9]), o = numbers(v[10]), s = numbers(v[11])
        h.position = p.count == 3 ? p : nil
        h.orientation = o.count == 6 ? o : nil
        h.pixelSpacing = s.count == 2 ? s : nil
        h.gantryTilt = Double(v[12]) ?? 0
        var sc = DICOMAcquisition()
        (sc.modality, sc.manufacturer, sc.model, sc.fieldStrength, sc.station, sc.institution, sc.deviceSerial) = (v[13], v[14], v[15], v[16], v[17], v[18], v[19])
        (sc.software, sc.kvp, sc.sliceThickness, sc.pixelSpacing) = (v[20], v[21], v[22], v[11])
        let date = [v[23], v[24], v[25]].first { $0.count >= 6 && $0.prefix(6).allSatisfy(\.isNumber) } ?? ""
        sc.acquisitionMonth = date.isEmpty ? "" : "\(date.prefix(4))-\(date.dropFirst(4).prefix(2))"
        h.scanner = sc
        h.patientID = v[26]
        return h
    }
}

/// The files of one DICOM series, in slice order (ascending along the slice normal), and what they share.
public struct DICOMSeries: Sendable {
    public var uid: String
    public var description: String
    public var number: Int?
    public var files: [DICOMFileHeader]
    public var scanner: DICOMAcquisition { files[0].scanner }
    /// True when the files are one volume's slices (or one multi-frame object); false for a series of separate
    /// images without patient geometry (radiographs, secondary captures), which are read one file at a time.
    public var isVolume: Bool

    /// A salted SHA-256 of the patient id (hex), so an index can keep a patient's cases together without keeping the
    /// id; nil when the files carry no patient id.
    public func patientKey(salt: String) -> String? {
        let id = files[0].patientID
        return id.isEmpty ? nil : SHA256.hex(of: Array((salt + "\u{0}" + id).utf8))
    }

    /// One line for listings: UID, description, number of files.
    public var summary: String {
        "\(uid) \"\(description)\" (\(files.count) file\(files.count == 1 ? "" : "s"))"
    }
}

/// Finds DICOM series in files and folders and reads them as volumes: files grouped by SeriesInstanceUID, slices
/// ordered by ImagePositionPatient along the slice normal (never by file name or InstanceNumber), geometry as
/// SimpleITK's ImageSeriesReader gives it (origin of the first slice, directions from ImageOrientationPatient, slice
/// spacing |last − first| / (n − 1)). Series that are not one regular volume are refused with the reason: slices of
/// different sizes or orientations, two slices at one position, irregular spacing or a missing slice, gantry tilt.
public enum DICOMSeriesReader {
    /// The DICOM files under `root` (a file, or a folder searched recursively; hidden files skipped), headers read on
    /// all cores. Files that are not DICOM are ignored; a DICOM file GDCM cannot read is an error.
    public static func headers(_ root: String) throws -> [DICOMFileHeader] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir) else { throw FormatError.notFound(path: root) }
        var paths: [String] = []
        if isDir.boolValue {
            let e = FileManager.default.enumerator(atPath: root)
            while let rel = e?.nextObject() as? String {
                if rel.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
                let full = (root as NSString).appendingPathComponent(rel)
                var d: ObjCBool = false
                guard FileManager.default.fileExists(atPath: full, isDirectory: &d), !d.boolValue else { continue }
                if (try? ImageIO.detect(full)) == .dicom { paths.append(full) }
            }
        } else {
            paths = [root]
        }
        paths.sort()
        let results = Mutex([Int: Result<DICOMFileHeader, Error>]())
        parallelFor(paths.count) { i in
            let r = Result { try DICOMFileHeader.read(paths[i]) }
            results.withLock { $0[i] = r }
        }
        let found = results.withLock { $0 }
        return try (0..<paths.count).map { try found[$0]!.get() }
    }

    /// The series under `root`, by SeriesInstanceUID (then series number and description), each in slice order.
    /// A series that is not one regular volume is still listed (reading it gives the reason).
    public static func scan(_ root: String) throws -> [DICOMSeries] {
        let all = try headers(root)
        guard !all.isEmpty else { throw FormatError.unreadable(path: root, reason: "a folder without DICOM files (give an image file, or a folder holding a DICOM series)") }
        var groups: [String: [DICOMFileHeader]] = [:]
        for h in all { groups[h.seriesUID.isEmpty ? "(no SeriesInstanceUID) " + h.path : h.seriesUID, default: []].append(h) }
        return groups.map { uid, files in
            let ordered = (try? order(files)) ?? files
            let volume = files.count == 1 || files.allSatisfy { $0.position != nil && $0.orientation != nil }
            return DICOMSeries(uid: uid, description: files[0].seriesDescription, number: files[0].seriesNumber, files: ordered, isVolume: volume)
        }.sorted { ($0.number ?? Int.max, $0.uid) < ($1.number ?? Int.max, $1.uid) }
    }

    /// The one series under `root`, or the one whose UID is `uid`; several without `uid` are refused with a list.
    public static func series(_ root: String, uid: String? = nil) throws -> DICOMSeries {
        let all = try scan(root)
        if let uid {
            guard let s = all.first(where: { $0.uid == uid }) else {
                throw FormatError.unsupported(path: root, reason: "no series \(uid) here; found: " + all.map(\.summary).joined(separator: "; "))
            }
            return s
        }
        guard all.count == 1 else {
            throw FormatError.unsupported(path: root, reason: "\(all.count) series here; pick one with --series UID: " + all.map(\.summary).joined(separator: "; "))
        }
        return all[0]
    }

    /// The slice normal of an orientation (row x column).
    static func normal(_ o: [Double]) -> [Double] {
        [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]]
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { a[0] * b[0] + a[1] * b[1] + a[2] * b[2] }

    /// The files in slice order, checked to form one regular volume; throws the reason otherwise.
    public static func order(_ files: [DICOMFileHeader]) throws -> [DICOMFileHeader] {
        guard files.count > 1 else { return files }
        let name = files[0].seriesUID
        func refuse(_ reason: String) -> FormatError {
            FormatError.unsupported(path: (files[0].path as NSString).deletingLastPathComponent, reason: "series \(name): \(reason)")
        }
        if let f = files.first(where: { $0.frames > 1 }) {
            throw refuse("\(files.count) files, one of them multi-frame (\((f.path as NSString).lastPathComponent), \(f.frames) frames): read that file on its own")
        }
        guard files.allSatisfy({ $0.position != nil && $0.orientation != nil }) else {
            throw refuse("\(files.count) images without patient position or orientation (radiographs or secondary captures?) cannot be stacked into a volume; read them one file at a time")
        }
        let sizes = Set(files.map { "\($0.columns) x \($0.rows)" })
        guard sizes.count == 1 else { throw refuse("slices of different sizes (\(sizes.sorted().joined(separator: ", ")))") }
        let o = files[0].orientation!
        guard files.allSatisfy({ f in zip(f.orientation!, o).allSatisfy { abs($0 - $1) < 1e-4 } }) else {
            throw refuse("slices of different orientations (ImageOrientationPatient differs); mixed orientations are not one volume")
        }
        let n = normal(o)
        let sorted = files.map { ($0, dot($0.position!, n)) }.sorted { $0.1 < $1.1 }
        let steps = zip(sorted.dropFirst(), sorted).map { $0.1 - $1.1 }
        let median = steps.sorted()[steps.count / 2]
        if let i = steps.firstIndex(where: { $0 < 1e-4 }) {
            throw refuse("two slices at one position (\(String(format: "%.3f", sorted[i].1)) mm along the normal: \((sorted[i].0.path as NSString).lastPathComponent) and \((sorted[i + 1].0.path as NSString).lastPathComponent)); several echoes, phases or acquisitions in one series are not one volume")
        }
        let tolerance = max(1e-3, 0.01 * median)
        if let i = steps.firstIndex(where: { abs($0 - median) > tolerance }) {
            let gap = steps[i]
            let around = String(format: "between %.2f and %.2f mm", sorted[i].1, sorted[i + 1].1)
            let ratio = gap / median
            if abs(ratio - ratio.rounded()) < 0.05 && ratio.rounded() >= 2 {
                throw refuse("missing slice(s) \(around) (a gap of \(String(format: "%.2f", gap)) mm where slices are \(String(format: "%.2f", median)) mm apart)")
            }
            throw refuse("irregular slice spacing (\(String(format: "%.3f", steps.min()!)) to \(String(format: "%.3f", steps.max()!)) mm, first off \(around)); resample it first (e.g. dcm2niix, or SimpleITK)")
        }
        // Slices must advance along the normal: an in-plane drift from slice to slice is a gantry tilt (or shear).
        let first = sorted.first!.0.position!, last = sorted.last!.0.position!
        let along = sorted.last!.1 - sorted.first!.1
        let drift = (0..<3).map { last[$0] - first[$0] - along * n[$0] }
        let driftLength = dot(drift, drift).squareRoot()
        if driftLength > max(1e-3, 1e-3 * along) {
            throw refuse(String(format: "slices drift %.2f mm sideways over the series (gantry tilt %.1f degrees in the header): a tilted acquisition is not a regular grid; resample it first (dcm2niix corrects gantry tilt)", driftLength, sorted[0].0.gantryTilt))
        }
        return sorted.map(\.0)
    }

    /// Geometry as ITK's ImageSeriesReader: the first slice's origin and in-plane axes, the slice step
    /// |last - first| / (n - 1) of the files in slice order.
    static func stackAffine(_ ordered: [DICOMFileHeader], inPlane: [Double]) -> Affine {
        let p0 = ordered.first!.position!, pn = ordered.last!.position!
        let step = (0..<3).map { pn[$0] - p0[$0] }
        let spacingZ = dot(step, step).squareRoot() / Double(ordered.count - 1)
        let o = ordered[0].orientation!
        return DICOMReader.affine(row: Array(o[0..<3]), column: Array(o[3..<6]), origin: p0, spacing: [inPlane[0], inPlane[1], spacingZ])
    }

    /// The series' shape (columns, rows, slices, samples), affine and stored type from the headers alone: the slices
    /// ordered and checked as ``read(_:options:)`` does, the first file's header for the in-plane facts. (A series
    /// whose slices rescale to different types reads as the widest; this gives the first slice's type.)
    public static func geometry(_ series: DICOMSeries, options: ReadOptions = .default) throws -> (shape: [Int], affine: Affine, storedType: VoxelType) {
        let files = try order(series.files)
        let h = try DICOMReader.readHeader(files[0].path, options: options)
        if files.count == 1 { return ([h.columns, h.rows, h.frames, h.samplesPerPixel], h.affine, h.storedType) }
        return ([h.columns, h.rows, files.count, h.samplesPerPixel], stackAffine(files, inPlane: h.affine.spacing), h.storedType)
    }

    /// The series as one image: its slices read on all cores and stacked (a single file is read as it is).
    public static func read(_ series: DICOMSeries, options: ReadOptions = .default) throws -> MedicalImage {
        let files = try order(series.files)
        if files.count == 1 { return try DICOMReader.read(files[0].path, options: options) }
        guard let count = checkedProduct([Int64(files[0].columns), Int64(files[0].rows), Int64(files.count)]) else {
            throw FormatError.tooLarge(path: files[0].path, bytes: Int64.max, limit: options.maxBytes)
        }
        try options.check(elements: count, bytesPerElement: 4, path: (files[0].path as NSString).deletingLastPathComponent)
        // The first slice gives the shape; the others decode straight into the volume, in parallel (no second copy
        // of the series in memory).
        let first = try DICOMReader.read(files[0].path, options: options)
        let plane = first.shape.x * first.shape.y, channels = first.shape.t, z = files.count
        let failures = Mutex([Int: Error]())
        let storedTypes = Mutex(Set([first.info.storedType]))
        let voxels = [Float](unsafeUninitializedCapacity: plane * z * channels) { buffer, initialized in
            let out = buffer.baseAddress!
            func place(_ image: MedicalImage, at k: Int) {
                image.voxels.withUnsafeBufferPointer { src in
                    for c in 0..<channels { (out + c * plane * z + k * plane).update(from: src.baseAddress! + c * plane, count: plane) }
                }
            }
            place(first, at: 0)
            parallelFor(z - 1) { j in
                do {
                    let image = try DICOMReader.read(files[j + 1].path, options: options)
                    guard image.shape == first.shape else {
                        throw FormatError.unsupported(path: files[0].path, reason: "series \(series.uid): its slices decode to different shapes")
                    }
                    place(image, at: j + 1)
                    storedTypes.withLock { _ = $0.insert(image.info.storedType) }
                } catch {
                    failures.withLock { $0[j + 1] = error }
                }
            }
            initialized = plane * z * channels
        }
        // The first failing slice in series order, as a serial read would report it.
        if let failure = failures.withLock({ $0.min { $0.key < $1.key } }) { throw failure.value }
        let affine = stackAffine(files, inPlane: first.affine.spacing)
        // The stored type: the widest the slices need (a float slice makes the volume float).
        let types = storedTypes.withLock { $0 }
        let stored = types.count == 1 ? first.info.storedType : (types.contains(.float32) ? .float32 : .int32)
        let info = ImageInfo(storedType: stored, format: "dicom", spacingIsKnown: true, components: first.info.components)
        return MedicalImage(shape: ImageShape(first.shape.x, first.shape.y, z, channels), voxels: voxels, affine: affine, info: info)
    }
}
