import Foundation
import MedImage
internal import CZlib

/// The formats MedSelect reads and writes.
public enum ImageFormat: String, Sendable, CaseIterable {
    case nifti, png, metaImage = "metaimage", npy, nrrd, dicom

    /// The format an output path asks for, by its extension.
    public static func forOutput(_ path: String) throws -> ImageFormat {
        let l = path.lowercased()
        if l.hasSuffix(".nii") || l.hasSuffix(".nii.gz") || l.hasSuffix(".hdr") || l.hasSuffix(".hdr.gz") { return .nifti }
        if l.hasSuffix(".png") { return .png }
        if l.hasSuffix(".mha") || l.hasSuffix(".mhd") { return .metaImage }
        if l.hasSuffix(".npy") { return .npy }
        if l.hasSuffix(".nrrd") || l.hasSuffix(".nhdr") { return .nrrd }
        throw FormatError.unsupported(path: path, reason: "unknown output extension; use .nii, .nii.gz, .hdr, .png, .mha, .mhd, .nrrd, .nhdr or .npy")
    }
}

/// Format detection by content and dispatch to the readers and writers.
public enum ImageIO {
    /// Detects the format from the file's first bytes (the extension only breaks ties, e.g. `.img` data files).
    public static func detect(_ path: String) throws -> ImageFormat {
        let lower = path.lowercased()
        // A folder is read as a DICOM series (DICOMSeriesReader).
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { return .dicom }
        if lower.hasSuffix(".img") || lower.hasSuffix(".img.gz") {
            return .nifti      // an ANALYZE/NIfTI data file: the reader finds its .hdr
        }
        let head = try FileIO.readPrefix(path, count: 1024)
        if head.isEmpty { throw FormatError.truncated(path: path, reason: "file is empty") }
        if head.starts(with: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) { return .png }
        if head.starts(with: NPYReader.magic) { return .npy }
        if head.starts(with: Array("NRRD000".utf8)) { return .nrrd }
        if head.count >= 132 && Array(head[128..<132]) == Array("DICM".utf8) { return .dicom }
        if head.count >= 2 && head[0] == 0x1f && head[1] == 0x8b {
            let inner = (try? NIfTIReader.gzipPrefix(path, count: 4)) ?? []
            if isNIfTISize(inner) { return .nifti }
            if lower.hasSuffix(".nii.gz") || lower.hasSuffix(".hdr.gz") { return .nifti }
            throw FormatError.unsupported(path: path, reason: "gzip file that does not hold a NIfTI image")
        }
        if isNIfTISize(head) { return .nifti }
        if isBareDICOM(head, path: lower) { return .dicom }
        if let text = String(bytes: head.prefix(200), encoding: .isoLatin1) {
            let first = text.split(separator: "\n").first.map(String.init) ?? ""
            let key = first.split(separator: "=").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            if first.contains("="), ["objecttype", "ndims", "dimsize", "comment", "objectsubtype", "transformtype",
                                      "binarydata", "elementtype"].contains(key) {
                return .metaImage
            }
        }
        throw FormatError.unsupported(path: path, reason: describeUnknown(head, path: path))
    }

    static func isNIfTISize(_ b: [UInt8]) -> Bool {
        guard b.count >= 4 else { return false }
        let le = Int32(b[0]) | Int32(b[1]) << 8 | Int32(b[2]) << 16 | Int32(b[3]) << 24
        return le == 348 || le == 540 || le.byteSwapped == 348 || le.byteSwapped == 540
    }

    /// A DICOM data set without the 128-byte preamble and "DICM" (old ACR-NEMA style files, which GDCM and
    /// SimpleITK read): named .dcm/.dicom, or starting with a group 0x0002/0x0008 element in explicit VR.
    static func isBareDICOM(_ head: [UInt8], path: String) -> Bool {
        guard head.count >= 8, (head[0] == 0x02 || head[0] == 0x08), head[1] == 0 else { return false }
        if path.hasSuffix(".dcm") || path.hasSuffix(".dicom") { return true }
        return (0x41...0x5a).contains(head[4]) && (0x41...0x5a).contains(head[5])
    }

    static func describeUnknown(_ head: [UInt8], path: String) -> String {
        if head.starts(with: [0x49, 0x49, 0x2a, 0]) || head.starts(with: [0x4d, 0x4d, 0, 0x2a]) {
            return "TIFF is not supported; convert it to PNG first (e.g. `convert in.tif out.png` with ImageMagick, or tifffile + Pillow)"
        }
        if head.starts(with: [0xff, 0xd8, 0xff]) { return "JPEG is not supported; use PNG (lossless) instead" }
        return "unknown file format (not NIfTI, PNG, MetaImage, NRRD, NPY or DICOM)"
    }

    /// Reads any supported image as a ``MedicalImage``.
    public static func read(_ path: String, options: ReadOptions = .default) throws -> MedicalImage {
        switch try detect(path) {
        case .nifti: return try NIfTIReader.read(path, options: options)
        case .png: return try PNGReader.read(path, options: options)
        case .metaImage: return try MetaImageReader.read(path, options: options)
        case .npy: return try image(from: try NPYReader.read(path, options: options), path: path)
        case .dicom: return try readDICOM(path, options: options)
        case .nrrd:
            // A 3D Slicer segmentation reads as its merged label map (SlicerSegmentation).
            if SlicerSegmentation.isSegmentation(try NRRDReader.readHeader(path, options: options)) { return try SlicerSegmentation.read(path, options: options).image }
            return try NRRDReader.read(path, options: options)
        }
    }

    /// A DICOM file on its own, or a folder's series (the one there, or `options.dicomSeries`).
    static func readDICOM(_ path: String, options: ReadOptions) throws -> MedicalImage {
        var isDir: ObjCBool = false
        let folder = FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
        guard folder || options.dicomSeries != nil else { return try DICOMReader.read(path, options: options) }
        return try DICOMSeriesReader.read(try DICOMSeriesReader.series(path, uid: options.dicomSeries), options: options)
    }

    /// Reads the array that `convert` writes to `.npy` (the reference-library contract in ``MedFormatsModule``).
    public static func readArray(_ path: String, options: ReadOptions = .default) throws -> NDArray {
        switch try detect(path) {
        case .nifti: return try NIfTIReader.readArray(path, options: options)
        case .png: return try PNGReader.readArray(path, options: options)
        case .metaImage: return try MetaImageReader.readArray(path, options: options)
        case .npy: return try NPYReader.read(path, options: options)
        case .dicom: return array(from: try readDICOM(path, options: options), path: path)
        case .nrrd:
            if SlicerSegmentation.isSegmentation(try NRRDReader.readHeader(path, options: options)) {
                return array(from: try SlicerSegmentation.read(path, options: options).image, path: path)
            }
            return try NRRDReader.readArray(path, options: options)
        }
    }

    /// An image from an array whose axes are (x, y[, z[, t]]) (NiBabel order); identity affine, spacing unknown.
    public static func image(from array: NDArray, path: String) throws -> MedicalImage {
        let s = array.shape
        guard (1...4).contains(s.count), s.allSatisfy({ $0 > 0 }) else {
            throw FormatError.cannotRepresent(path: path, reason: "array of shape \(s) is not an image (1 to 4 non-empty axes)")
        }
        let dims = s + [Int](repeating: 1, count: 4 - s.count)
        var voxels = array.floats()
        if !array.fortranOrder && s.count > 1 {
            // C order: last axis fastest. Reorder to x fastest.
            var out = [Float](repeating: 0, count: voxels.count)
            let (nx, ny, nz, nt) = (dims[0], dims[1], dims[2], dims[3])
            for i in 0..<nx { for j in 0..<ny { for k in 0..<nz { for t in 0..<nt {
                out[i + nx * (j + ny * (k + nz * t))] = voxels[((i * ny + j) * nz + k) * nt + t]
            } } } }
            voxels = out
        }
        let info = ImageInfo(storedType: array.dtype, format: "npy", spacingIsKnown: false)
        return MedicalImage(shape: ImageShape(dims[0], dims[1], dims[2], dims[3]), voxels: voxels, info: info)
    }

    /// The array form of an image: PNG-like 2-D images as (height, width[, channels]) in C order, everything else as
    /// (x, y, z[, t]) in Fortran order; integer stored types are kept when the values fit, else float32.
    public static func array(from image: MedicalImage, path: String = "<memory>") -> NDArray {
        var type = image.info.storedType
        if type == .rgb24 || type == .rgba32 { type = .uint8 }
        let storage = (try? ElementConversion.encode(image.voxels, as: type, path: path))
        let s = image.shape
        if image.info.format == "png", s.z == 1, let st = storage {
            let n = s.x * s.y, ch = s.t, b = type.byteCount
            var inter = [UInt8](repeating: 0, count: st.count)
            for i in 0..<n { for c in 0..<ch { for k in 0..<b { inter[(i * ch + c) * b + k] = st[(c * n + i) * b + k] } } }
            return NDArray(dtype: type, shape: ch == 1 ? [s.y, s.x] : [s.y, s.x, ch], fortranOrder: false, storage: inter)
        }
        let dims = s.t > 1 ? [s.x, s.y, s.z, s.t] : [s.x, s.y, s.z]
        if let st = storage, type != .float16 { return NDArray(dtype: type, shape: dims, fortranOrder: true, storage: st) }
        return NDArray(float32: image.voxels, shape: dims, fortranOrder: true)
    }

    /// Output options for ``write(_:to:options:)``.
    public struct WriteOptions: Sendable {
        /// Element type on disk (NIfTI, MetaImage, NRRD, NPY); nil keeps the image's stored type where the format allows.
        public var storedType: VoxelType?
        /// PNG bit depth (8 or 16); nil chooses from the values.
        public var pngBitDepth: Int?
        /// MetaImage: zlib-compress the data.
        public var compress: Bool
        public init(storedType: VoxelType? = nil, pngBitDepth: Int? = nil, compress: Bool = false) {
            self.storedType = storedType
            self.pngBitDepth = pngBitDepth
            self.compress = compress
        }
    }

    /// Writes an image in the format its extension names (atomically).
    public static func write(_ image: MedicalImage, to path: String, options: WriteOptions = WriteOptions()) throws {
        switch try ImageFormat.forOutput(path) {
        case .nifti: try NIfTIWriter.write(image, to: path, options: .init(storedType: options.storedType))
        case .png: try PNGWriter.write(image, to: path, options: .init(bitDepth: options.pngBitDepth))
        case .metaImage:
            try MetaImageWriter.write(image, to: path, storedType: options.storedType,
                                      compressed: options.compress || path.lowercased().hasSuffix(".mha") && options.compress)
        case .npy:
            var typed = image
            if let t = options.storedType {   // refused with the reason when the values do not fit the type
                _ = try ElementConversion.encode(image.voxels, as: t, path: path)
                typed.info.storedType = t
            }
            try NPYWriter.write(array(from: typed, path: path), to: path)
        case .dicom: throw FormatError.unsupported(path: path, reason: "writing DICOM is not supported; write NIfTI, NRRD or MetaImage")
        case .nrrd:
            var o = NRRDWriter.Options()
            o.storedType = options.storedType
            try NRRDWriter.write(image, to: path, options: o)
        }
    }

    /// Converts between formats. To `.npy` the exact stored values are written in the reference-library layout;
    /// otherwise the image is decoded and re-encoded (types kept where the target format has them).
    public static func convert(_ input: String, to output: String, options: WriteOptions = WriteOptions(),
                               readOptions: ReadOptions = .default) throws {
        let target = try ImageFormat.forOutput(output)
        if target == .npy && options.storedType == nil {
            try NPYWriter.write(try readArray(input, options: readOptions), to: output)
            return
        }
        try write(try read(input, options: readOptions), to: output, options: options)
    }
}

/// What a header says about an image, read without its pixel data (for indexes and summaries).
public struct ImageGeometry: Sendable, Equatable, Codable {
    public var format: String
    /// nx, ny, nz, and channels or time points.
    public var shape: [Int]
    /// Spacing in mm along i, j, k.
    public var spacing: [Double]
    /// Voxel-to-world, row-major 4x4, RAS+ mm.
    public var affine: [Double]
    /// Axis codes such as "LPS" (NiBabel's aff2axcodes).
    public var orientation: String
    public var storedType: String
    /// False when the file gave no physical spacing (PNG without pHYs).
    public var spacingIsKnown: Bool

    public init(format: String, shape: [Int], spacing: [Double], affine: [Double], orientation: String, storedType: String,
                spacingIsKnown: Bool) {
        self.format = format; self.shape = shape; self.spacing = spacing; self.affine = affine
        self.orientation = orientation; self.storedType = storedType; self.spacingIsKnown = spacingIsKnown
    }
}

extension ImageIO {
    /// Reads only the header: NIfTI (the 348/540-byte header, inflating just that much of a .nii.gz), PNG (IHDR and
    /// pHYs), MetaImage (the text header). NPY files hold no geometry and give their array shape with 1 mm spacing.
    public static func readGeometry(_ path: String, options: ReadOptions = .default) throws -> ImageGeometry {
        switch try detect(path) {
        case .nifti:
            let h = try NIfTIReader.readHeader(path, options: options)
            var shape = Array(h.dims.prefix(4))
            while shape.count < 4 { shape.append(1) }
            if h.storedType == .rgb24 || h.storedType == .rgba32 { shape[3] = h.storedType == .rgb24 ? 3 : 4 }
            return ImageGeometry(format: h.version == 2 ? "nifti2" : "nifti1", shape: shape, spacing: h.affine.spacing,
                                 affine: (0..<16).map { h.affine[$0 / 4, $0 % 4] }, orientation: h.affine.orientationCodes,
                                 storedType: h.storedType.rawValue, spacingIsKnown: true)
        case .png:
            let h = try PNGReader.readHeader(path, options: options)
            let sp: [Double] = h.spacing.map { [$0.x, $0.y, 1.0] } ?? [1, 1, 1]
            let a = Affine.diagonal(spacing: sp)
            return ImageGeometry(format: "png", shape: [h.width, h.height, 1, h.channels], spacing: sp,
                                 affine: (0..<16).map { a[$0 / 4, $0 % 4] }, orientation: a.orientationCodes,
                                 storedType: h.outputBitDepth == 16 ? "uint16" : "uint8", spacingIsKnown: h.spacing != nil)
        case .metaImage:
            let h = try MetaImageReader.readHeader(path, options: options)
            var shape = Array(h.dims.prefix(3))
            while shape.count < 3 { shape.append(1) }
            shape.append(h.channels)
            return ImageGeometry(format: "metaimage", shape: shape, spacing: h.affine.spacing,
                                 affine: (0..<16).map { h.affine[$0 / 4, $0 % 4] }, orientation: h.affine.orientationCodes,
                                 storedType: h.storedType.rawValue, spacingIsKnown: true)
        case .dicom:
            var isDir: ObjCBool = false
            if options.dicomSeries != nil || (FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue) {
                // A series: its slices' headers only (ordered and checked as reading it would).
                let g = try DICOMSeriesReader.geometry(try DICOMSeriesReader.series(path, uid: options.dicomSeries), options: options)
                return ImageGeometry(format: "dicom", shape: g.shape, spacing: g.affine.spacing,
                                     affine: (0..<16).map { g.affine[$0 / 4, $0 % 4] }, orientation: g.affine.orientationCodes,
                                     storedType: g.storedType.rawValue, spacingIsKnown: true)
            }
            let h = try DICOMReader.readHeader(path, options: options)
            return ImageGeometry(format: "dicom", shape: [h.columns, h.rows, h.frames, h.samplesPerPixel], spacing: h.affine.spacing,
                                 affine: (0..<16).map { h.affine[$0 / 4, $0 % 4] }, orientation: h.affine.orientationCodes,
                                 storedType: h.storedType.rawValue, spacingIsKnown: true)
        case .nrrd:
            let h = try NRRDReader.readHeader(path, options: options)
            var shape = (0..<h.sizes.count).filter { $0 != h.valueAxis }.map { h.sizes[$0] }
            while shape.count < 3 { shape.append(1) }
            // A segmentation's layers merge into one label map.
            if shape.count == 3 { shape.append(SlicerSegmentation.isSegmentation(h) ? 1 : h.valueAxis.map { h.sizes[$0] } ?? 1) }
            return ImageGeometry(format: "nrrd", shape: Array(shape.prefix(4)), spacing: h.affine.spacing,
                                 affine: (0..<16).map { h.affine[$0 / 4, $0 % 4] }, orientation: h.affine.orientationCodes,
                                 storedType: h.storedType.rawValue, spacingIsKnown: h.spacingIsKnown)
        case .npy:
            let a = try NPYReader.read(path, options: options)
            var shape = Array(a.shape.prefix(4))
            while shape.count < 4 { shape.append(1) }
            let aff = Affine.identity
            return ImageGeometry(format: "npy", shape: shape, spacing: [1, 1, 1], affine: (0..<16).map { aff[$0 / 4, $0 % 4] },
                                 orientation: aff.orientationCodes, storedType: a.dtype.rawValue, spacingIsKnown: false)
        }
    }
}
