import Foundation
import MedImage
internal import CGDCM

/// What a DICOM file's header says, as GDCM decodes it (CGDCM).
public struct DICOMHeader: Sendable, Equatable {
    public var columns: Int, rows: Int, frames: Int
    public var samplesPerPixel: Int
    public var bitsAllocated: Int, bitsStored: Int
    public var signed: Bool
    public var photometric: String
    public var slope: Double, intercept: Double
    public var hasRescale: Bool
    /// Voxel to world in RAS+ mm (DICOM's LPS with x and y negated).
    public var affine: Affine
    public var hasPatientGeometry: Bool
    public var transferSyntax: String
    public var modality: String
    public var bufferLength: Int

    /// The stored integer type of one sample.
    public var storedType: VoxelType {
        switch (bitsAllocated, signed) {
        case (1, _), (8, false): return .uint8
        case (8, true): return .int8
        case (16, false): return .uint16
        case (16, true): return .int16
        case (32, false): return .uint32
        default: return .int32
        }
    }
}

/// Reads one DICOM file through GDCM (Debian's libgdcm-dev, what ITK and SimpleITK use): every transfer syntax GDCM
/// decodes (implicit and explicit VR, big endian, deflated, RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000).
/// Values as SimpleITK gives them: the stored bits (sign-extended at BitsStored), MONOCHROME1 inverted within the
/// stored range ((2^BitsStored − 1) − value), then the rescale slope and intercept; YBR colour converted to RGB.
/// Geometry: ImagePositionPatient and ImageOrientationPatient in LPS converted to RAS+, spacing from PixelSpacing (or
/// ImagerPixelSpacing, else 1 mm, as GDCM decides); frames of a multi-frame object are the third axis.
/// Series (several files) are assembled by the series reader, not here.
public enum DICOMReader {
    public static func readHeader(_ path: String, options: ReadOptions = .default) throws -> DICOMHeader {
        guard FileManager.default.fileExists(atPath: path) else { throw FormatError.notFound(path: path) }
        var info = cgdcm_info()
        var message = [CChar](repeating: 0, count: 512)
        guard cgdcm_read_info(path, &info, &message, message.count) == 0 else {
            throw FormatError.unsupported(path: path, reason: text(message))
        }
        return try header(info, path: path, options: options)
    }

    static func text(_ message: [CChar]) -> String {
        String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The header of GDCM's facts, checked: an image MedSelect reads, within the size limit, pixel data long enough.
    static func header(_ info: cgdcm_info, path: String, options: ReadOptions) throws -> DICOMHeader {
        func text<T>(_ tuple: T) -> String {
            withUnsafeBytes(of: tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let (cols, rows, frames) = (Int(info.columns), Int(info.rows), Int(max(1, info.frames)))
        let samples = Int(info.samples_per_pixel)
        // One bit per pixel (binary segmentations) is read for one sample only, as GDCM and SimpleITK do.
        guard cols > 0, rows > 0, [1, 3].contains(samples), [8, 16, 32].contains(Int(info.bits_allocated)) || (info.bits_allocated == 1 && samples == 1) else {
            throw FormatError.unsupported(path: path, reason: "\(cols) x \(rows) pixels of \(samples) sample(s), \(info.bits_allocated) bits allocated: not an image MedSelect reads")
        }
        guard let count = checkedProduct([Int64(cols), Int64(rows), Int64(frames), Int64(samples)]) else {
            throw FormatError.tooLarge(path: path, bytes: Int64.max, limit: options.maxBytes)
        }
        try options.check(elements: count, bytesPerElement: max(1, Int(info.bits_allocated) / 8), path: path)
        let needed = (count * Int64(info.bits_allocated) + 7) / 8
        guard Int64(info.buffer_length) >= needed else {
            throw FormatError.truncated(path: path, reason: "the pixel data holds \(info.buffer_length) bytes, less than rows x columns x frames x samples need (\(needed))")
        }
        let sp = [info.spacing.0, info.spacing.1, info.spacing.2].map { $0 > 0 && $0.isFinite ? $0 : 1 }
        // A single frame keeps the third spacing GDCM gives (SpacingBetweenSlices or SliceThickness, else 1), as SimpleITK does.
        let d = [info.direction.0, info.direction.1, info.direction.2, info.direction.3, info.direction.4, info.direction.5]
        var affine = Self.affine(row: Array(d[0..<3]), column: Array(d[3..<6]), origin: [info.origin.0, info.origin.1, info.origin.2], spacing: sp)
        // An enhanced multi-frame object: frames advance from the first frame's position to the last one's, which may
        // run against row x column; as SimpleITK, the third axis follows them (step |last - first| / (frames - 1)).
        if info.has_frame_positions != 0 && frames > 1 {
            let first = [info.first_frame.0, info.first_frame.1, info.first_frame.2], last = [info.last_frame.0, info.last_frame.1, info.last_frame.2]
            let step = (0..<3).map { last[$0] - first[$0] }
            let length = (step[0] * step[0] + step[1] * step[1] + step[2] * step[2]).squareRoot()
            if length > 0 {
                affine = Self.affine(row: Array(d[0..<3]), column: Array(d[3..<6]), origin: first,
                                     spacing: [sp[0], sp[1], length / Double(frames - 1)], normal: step.map { $0 / length })
            }
        }
        return DICOMHeader(columns: cols, rows: rows, frames: frames, samplesPerPixel: samples, bitsAllocated: Int(info.bits_allocated),
                           bitsStored: Int(info.bits_stored), signed: info.pixel_representation == 1, photometric: text(info.photometric),
                           slope: info.slope, intercept: info.intercept, hasRescale: info.has_rescale != 0, affine: affine,
                           hasPatientGeometry: info.has_patient_geometry != 0, transferSyntax: text(info.transfer_syntax),
                           modality: text(info.modality), bufferLength: Int(info.buffer_length))
    }

    /// Voxel to RAS+ world from DICOM's LPS row and column directions, the slice normal (row x column), origin and
    /// spacing (column step, row step, slice step).
    static func affine(row: [Double], column: [Double], origin: [Double], spacing sp: [Double], normal given: [Double]? = nil) -> Affine {
        let normal = given ?? [row[1] * column[2] - row[2] * column[1], row[2] * column[0] - row[0] * column[2], row[0] * column[1] - row[1] * column[0]]
        var affine = Affine.identity
        for r in 0..<3 {
            let flip: Double = r < 2 ? -1 : 1   // LPS -> RAS
            affine[r, 0] = flip * row[r] * sp[0] + 0
            affine[r, 1] = flip * column[r] * sp[1] + 0
            affine[r, 2] = flip * normal[r] * sp[2] + 0
            affine[r, 3] = flip * origin[r] + 0
        }
        return affine
    }

    public static func read(_ path: String, options: ReadOptions = .default) throws -> MedicalImage {
        guard FileManager.default.fileExists(atPath: path) else { throw FormatError.notFound(path: path) }
        var info = cgdcm_info()
        info.max_bytes = options.maxBytes > 0 ? Int(options.maxBytes) : 0
        var message = [CChar](repeating: 0, count: 512)
        var pixels: UnsafeMutableRawPointer? = nil
        defer { cgdcm_free(pixels) }
        guard cgdcm_read_image(path, &info, &pixels, &message, message.count) == 0, let pixels else {
            let reason = text(message)
            if reason.hasPrefix("the pixel data could not be decoded") { throw FormatError.corrupt(path: path, reason: reason) }
            throw FormatError.unsupported(path: path, reason: reason)
        }
        let h = try header(info, path: path, options: options)
        let raw = UnsafeRawBufferPointer(start: pixels, count: h.bufferLength)
        let n = h.columns * h.rows * h.frames, samples = h.samplesPerPixel
        let rescale = h.hasRescale && (h.slope != 1 || h.intercept != 0)
        let invert = h.photometric.trimmingCharacters(in: .whitespaces) == "MONOCHROME1"
        // Stored bits, MONOCHROME1 inversion, rescale and colour planes in one pass (CGDCM, optimised C++).
        var values = [Float](repeating: 0, count: n * samples)
        values.withUnsafeMutableBufferPointer { v in
            cgdcm_to_float(raw.baseAddress, n, Int32(samples), Int32(h.bitsAllocated), Int32(h.bitsStored), h.signed ? 1 : 0,
                           invert ? 1 : 0, rescale ? h.slope : 1, rescale ? h.intercept : 0, v.baseAddress)
        }
        var stored = h.storedType
        if rescale {
            if h.slope != h.slope.rounded() || h.intercept != h.intercept.rounded() { stored = .float32 }
            else if stored == .uint16 || stored == .uint8, values.contains(where: { $0 < 0 }) { stored = .int32 }
        }
        let imageInfo = ImageInfo(storedType: stored, format: "dicom", spacingIsKnown: true, components: samples > 1 ? .color : .scalar)
        return MedicalImage(shape: ImageShape(h.columns, h.rows, h.frames, samples), voxels: values, affine: h.affine, info: imageInfo)
    }
}
