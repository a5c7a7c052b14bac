import Foundation
import MedImage
internal import CNIfTI
internal import CZlib

/// libnifti keeps global state and is not thread-safe: every call into it goes through this lock.
let niftiLock = NSLock()

/// What a NIfTI header says, read before any voxel data (also what the dataset index records).
public struct NIfTIHeader: Sendable, Equatable {
    /// 1 or 2 for NIfTI, 0 for an ANALYZE 7.5 pair.
    public var version: Int
    /// Data shape as NiBabel reports it: dim[1...dim[0]].
    public var dims: [Int]
    public var storedType: VoxelType
    /// Raw `pixdim[1...7]` as stored (not unit-converted).
    public var pixdim: [Double]
    public var qformCode: Int
    public var sformCode: Int
    /// Voxel to world in RAS+ mm, chosen as NiBabel chooses it and converted from the file's spatial unit to mm.
    public var affine: Affine
    /// Linear scaling applied to stored values, or nil when unscaled (slope 0, NaN or infinite; or 1 and 0).
    public var scaling: (slope: Double, inter: Double)?
    /// Spatial unit code (0 unknown, 1 m, 2 mm, 3 µm) and the factor that converted it to mm.
    public var spatialUnitCode: Int
    public var timeUnitCode: Int
    public var description: String
    /// True for `.hdr`/`.img` pairs.
    public var isPair: Bool
    public var isCompressed: Bool

    public static func == (a: NIfTIHeader, b: NIfTIHeader) -> Bool {
        a.version == b.version && a.dims == b.dims && a.storedType == b.storedType && a.pixdim == b.pixdim
            && a.qformCode == b.qformCode && a.sformCode == b.sformCode && a.affine == b.affine
            && a.scaling?.slope == b.scaling?.slope && a.scaling?.inter == b.scaling?.inter
            && a.description == b.description && a.isPair == b.isPair && a.isCompressed == b.isCompressed
    }

    /// Elements per volume position (RGB24 counts as one element of 3 bytes).
    public var elementCount: Int { dims.reduce(1, *) }

    /// Voxel spacing in mm along i, j, k (from the chosen affine).
    public var spacing: [Double] { affine.spacing }
}

/// Reads NIfTI-1, NIfTI-2 and ANALYZE 7.5 files through libnifti, with NiBabel's choices for affine and scaling.
///
/// - Affine: the sform when `sform_code > 0`, else the qform when `qform_code > 0`, else NiBabel's base affine
///   (diagonal pixdim with x flipped, centred on the volume); spatial units in metres or microns are converted to mm.
/// - Scaling: `scl_slope`/`scl_inter` applied by the reader (slope 0, NaN or infinite means unscaled, as NiBabel).
/// - Data: every integer and float type, RGB24 and RGBA32 (as 3 or 4 channels), both byte orders, up to 7-D
///   (dimensions 4...7 fold into the fourth axis).
public enum NIfTIReader {
    static let codes: [Int32: VoxelType] = [
        2: .uint8, 4: .int16, 8: .int32, 16: .float32, 64: .float64, 128: .rgb24, 256: .int8, 512: .uint16,
        768: .uint32, 1024: .int64, 1280: .uint64, 2304: .rgba32,
    ]
    static let names: [Int32: String] = [1: "binary (1-bit)", 32: "complex64", 1536: "float128", 1792: "complex128",
                                         2048: "complex256"]

    /// Reads the header only (no voxel data), validating it.
    public static func readHeader(_ path: String, options: ReadOptions = .default) throws -> NIfTIHeader {
        let pre = try precheck(path, options: options)
        return try withHandle(path) { _, h in try makeHeader(h, path: path, pre: pre) }
    }

    /// Reads an image: Float32 voxels with scaling applied, and the NiBabel affine.
    public static func read(_ path: String, options: ReadOptions = .default) throws -> MedicalImage {
        try readWithHeader(path, options: options).image
    }

    /// Reads an image and its header.
    public static func readWithHeader(_ path: String, options: ReadOptions = .default) throws -> (image: MedicalImage, header: NIfTIHeader) {
        let pre = try precheck(path, options: options)
        return try withHandle(path) { handle, h in
            let header = try makeHeader(h, path: path, pre: pre)
            let count = header.elementCount
            let bytes = Int64(count) * Int64(h.nbyper)
            var voxels: [Float]
            var shape = spatialShape(header.dims)
            if header.storedType == .float32 && header.scaling == nil {
                voxels = try [Float](unsafeUninitializedCapacity: count) { buf, n in
                    let rc = msnifti_load_into(handle, buf.baseAddress, bytes)
                    if rc != 0 { throw loadError(path, pre: pre) }
                    n = count
                }
            } else {
                var raw = [UInt8](unsafeUninitializedCapacity: Int(bytes)) { _, n in n = Int(bytes) }
                let rc = raw.withUnsafeMutableBytes { msnifti_load_into(handle, $0.baseAddress, bytes) }
                if rc != 0 { throw loadError(path, pre: pre) }
                let channels = header.storedType == .rgb24 ? 3 : (header.storedType == .rgba32 ? 4 : 1)
                if channels > 1 {
                    guard shape.t == 1 else {
                        throw FormatError.unsupported(path: path, reason: "colour NIfTI with more than one volume")
                    }
                    shape = ImageShape(shape.x, shape.y, shape.z, channels)
                    voxels = deinterleave(raw, channels: channels, count: count)
                } else {
                    voxels = raw.withUnsafeBytes {
                        ElementConversion.toFloat($0, type: header.storedType, count: count,
                                                  slope: header.scaling?.slope, inter: header.scaling?.inter ?? 0)
                    }
                }
            }
            let colour = header.storedType == .rgb24 || header.storedType == .rgba32
            let step = header.dims.count >= 4 && header.pixdim.count >= 4 && header.pixdim[3] > 0
                ? header.pixdim[3] * timeFactor(header.timeUnitCode) : nil
            let info = ImageInfo(storedType: header.storedType, format: header.version == 2 ? "nifti2" : (header.version == 1 ? "nifti1" : "analyze"),
                                 spacingIsKnown: true, components: colour ? .color : .scalar,
                                 description: header.description, qformCode: header.qformCode,
                                 sformCode: header.sformCode, timeStep: colour ? nil : step)
            return (MedicalImage(shape: shape, voxels: voxels, affine: header.affine, info: info), header)
        }
    }

    /// The stored values exactly as NiBabel's `get_fdata()` sees them: shape dim[1...dim[0]], Fortran order.
    /// Unscaled data keeps its integer type; scaled data comes as float64 computed as NiBabel does.
    public static func readArray(_ path: String, options: ReadOptions = .default) throws -> NDArray {
        let pre = try precheck(path, options: options)
        return try withHandle(path) { handle, h in
            let header = try makeHeader(h, path: path, pre: pre)
            let bytes = Int64(header.elementCount) * Int64(h.nbyper)
            var raw = [UInt8](unsafeUninitializedCapacity: Int(bytes)) { _, n in n = Int(bytes) }
            let rc = raw.withUnsafeMutableBytes { msnifti_load_into(handle, $0.baseAddress, bytes) }
            if rc != 0 { throw loadError(path, pre: pre) }
            switch header.storedType {
            case .rgb24, .rgba32:
                let ch = header.storedType == .rgb24 ? 3 : 4
                let planar = deinterleave(raw, channels: ch, count: header.elementCount)
                return NDArray(dtype: .uint8, shape: header.dims + [ch], fortranOrder: true,
                               storage: try ElementConversion.encode(planar, as: .uint8, path: path))
            default:
                if let s = header.scaling {
                    let d = raw.withUnsafeBytes { ElementConversion.toDouble($0, type: header.storedType, count: header.elementCount) }
                    let scaled = d.map { $0 * s.slope + s.inter }
                    return NDArray(dtype: .float64, shape: header.dims, fortranOrder: true,
                                   storage: scaled.withUnsafeBytes { Array($0) })
                }
                return NDArray(dtype: header.storedType, shape: header.dims, fortranOrder: true, storage: raw)
            }
        }
    }

    // MARK: - internals

    struct Precheck {
        var compressed: Bool
        var pair: Bool
        var dataPath: String
        /// 0 ANALYZE, 1 or 2 from sizeof_hdr and magic.
        var version: Int
    }

    static func spatialShape(_ dims: [Int]) -> ImageShape {
        let x = dims.count > 0 ? dims[0] : 1
        let y = dims.count > 1 ? dims[1] : 1
        let z = dims.count > 2 ? dims[2] : 1
        let t = dims.count > 3 ? dims[3...].reduce(1, *) : 1
        return ImageShape(x, y, z, t)
    }

    static func deinterleave(_ raw: [UInt8], channels: Int, count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count * channels)
        raw.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<count { for c in 0..<channels { dst[c * count + i] = Float(src[i * channels + c]) } }
            }
        }
        return out
    }

    static func timeFactor(_ code: Int) -> Double {
        switch code & 0x38 {
        case 16: return 1e-3
        case 24: return 1e-6
        default: return 1
        }
    }

    static func spatialFactor(_ code: Int) -> Double {
        switch code & 0x07 {
        case 1: return 1000      // metres
        case 3: return 1e-3      // microns
        default: return 1        // mm or unknown (NiBabel and ITK assume mm)
        }
    }

    static func loadError(_ path: String, pre: Precheck) -> FormatError {
        if pre.compressed {
            return .corrupt(path: path, reason: "compressed voxel data is truncated or damaged (gzip stream ended early or failed its check)")
        }
        return .truncated(path: path, reason: "could not read all voxel data from \(URL(fileURLWithPath: pre.dataPath).lastPathComponent)")
    }

    static func withHandle<T>(_ path: String, _ body: (UnsafeMutableRawPointer, msnifti_header) throws -> T) throws -> T {
        niftiLock.lock()
        defer { niftiLock.unlock() }
        var h = msnifti_header()
        guard let handle = path.withCString({ msnifti_open($0, &h) }) else {
            throw FormatError.invalidHeader(path: path, reason: "libnifti could not read the header")
        }
        defer { msnifti_close(handle) }
        return try body(handle, h)
    }

    /// Reads the first bytes of the header ourselves (through gzip when compressed) to give precise reasons for
    /// malformed files before libnifti sees them, and to apply the memory limit before any allocation.
    static func precheck(_ path: String, options: ReadOptions) throws -> Precheck {
        guard let fileSize = FileIO.fileSize(path) else {
            _ = try FileIO.readPrefix(path, count: 1)   // throws notFound / unreadable
            throw FormatError.notFound(path: path)
        }
        let lower = path.lowercased()
        var headerPath = path
        var pair = false
        if lower.hasSuffix(".img") || lower.hasSuffix(".img.gz") {
            let base = lower.hasSuffix(".gz") ? String(path.dropLast(7)) : String(path.dropLast(4))
            headerPath = [base + ".hdr", base + ".hdr.gz", base + ".HDR"].first { FileIO.fileSize($0) != nil } ?? base + ".hdr"
            guard FileIO.fileSize(headerPath) != nil else {
                throw FormatError.notFound(path: base + ".hdr")
            }
        }
        if headerPath.lowercased().hasSuffix(".hdr") || headerPath.lowercased().hasSuffix(".hdr.gz") { pair = true }
        let prefix = try FileIO.readPrefix(headerPath, count: 4)
        let compressed = prefix.count >= 2 && prefix[0] == 0x1f && prefix[1] == 0x8b
        let head: [UInt8]
        if compressed {
            head = try gzipPrefix(headerPath, count: 540)
        } else {
            head = try FileIO.readPrefix(headerPath, count: 540)
        }
        if head.count < 348 {
            throw FormatError.truncated(path: path, reason: "file has \(head.count) header bytes; a NIfTI header needs at least 348")
        }
        func i32(_ o: Int, _ swap: Bool) -> Int32 {
            var v: Int32 = 0
            withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: head[o..<(o + 4)]) }
            return swap ? v.byteSwapped : v
        }
        func i16(_ o: Int, _ swap: Bool) -> Int16 {
            var v: Int16 = 0
            withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: head[o..<(o + 2)]) }
            return swap ? v.byteSwapped : v
        }
        func i64(_ o: Int, _ swap: Bool) -> Int64 {
            var v: Int64 = 0
            withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: head[o..<(o + 8)]) }
            return swap ? v.byteSwapped : v
        }
        func f32(_ o: Int, _ swap: Bool) -> Float { Float(bitPattern: UInt32(bitPattern: i32(o, swap))) }
        func f64(_ o: Int, _ swap: Bool) -> Double { Double(bitPattern: UInt64(bitPattern: i64(o, swap))) }

        let sz = i32(0, false)
        let version: Int
        let swap: Bool
        switch sz {
        case 348: version = 1; swap = false
        case Int32(348).byteSwapped: version = 1; swap = true
        case 540: version = 2; swap = false
        case Int32(540).byteSwapped: version = 2; swap = true
        default:
            throw FormatError.invalidHeader(path: path, reason: "not a NIfTI file (sizeof_hdr is \(sz), expected 348 or 540)")
        }
        var dims: [Int64] = []
        var analyze = false
        let datatype: Int32
        var voxOffset: Double
        if version == 1 {
            let magic = Array(head[344..<348])
            let single = magic == [0x6e, 0x2b, 0x31, 0]    // "n+1\0"
            let hdrMagic = magic == [0x6e, 0x69, 0x31, 0]  // "ni1\0"
            if !single && !hdrMagic && !pair {
                throw FormatError.invalidHeader(path: path, reason: "bad NIfTI-1 magic \(magic.map { String(format: "%02x", $0) }.joined()) (expected 'n+1')")
            }
            analyze = !single && !hdrMagic
            let rank = Int(i16(40, swap))
            guard (1...7).contains(rank) else {
                throw FormatError.invalidHeader(path: path, reason: "dim[0] is \(rank); it must be 1 to 7")
            }
            for d in 1...rank { dims.append(Int64(i16(40 + 2 * d, swap))) }
            datatype = Int32(i16(70, swap))
            voxOffset = Double(f32(108, swap))
            if !voxOffset.isFinite || voxOffset > 9.0e15 {
                throw FormatError.invalidHeader(path: path, reason: "vox_offset \(voxOffset) is not a valid file offset")
            }
            if single && !pair && !(voxOffset >= 352) {
                throw FormatError.invalidHeader(path: path, reason: "vox_offset \(voxOffset) lies inside the 352-byte header")
            }
        } else {
            if head.count < 540 {
                throw FormatError.truncated(path: path, reason: "file has \(head.count) header bytes; a NIfTI-2 header needs 540")
            }
            let rank = Int(i64(16, swap))
            guard (1...7).contains(rank) else {
                throw FormatError.invalidHeader(path: path, reason: "dim[0] is \(rank); it must be 1 to 7")
            }
            for d in 1...rank { dims.append(i64(16 + 8 * d, swap)) }
            datatype = Int32(i16(12, swap))
            voxOffset = Double(i64(168, swap))
            if !pair && !(voxOffset >= 544) {
                throw FormatError.invalidHeader(path: path, reason: "vox_offset \(Int64(voxOffset)) lies inside the 544-byte header")
            }
            _ = f64(176, swap)
        }
        if !voxOffset.isFinite || voxOffset < 0 || voxOffset > 9.0e15 {
            throw FormatError.invalidHeader(path: path, reason: "vox_offset \(voxOffset) is not a valid file offset")
        }
        for (i, d) in dims.enumerated() where d <= 0 {
            throw FormatError.invalidHeader(path: path, reason: "dimension \(i + 1) is \(d); dimensions must be positive")
        }
        guard let type = codes[datatype] else {
            let name = names[datatype].map { " (\($0))" } ?? ""
            throw FormatError.unsupported(path: path, reason: "NIfTI datatype \(datatype)\(name) is not supported")
        }
        guard let count = checkedProduct(dims) else {
            throw FormatError.tooLarge(path: path, bytes: Int64.max, limit: options.maxBytes)
        }
        let channels = type == .rgb24 ? 3 : (type == .rgba32 ? 4 : 1)
        try options.check(elements: count * Int64(channels), bytesPerElement: type.byteCount / channels, path: path)
        let dataBytes = count * Int64(type.byteCount)
        if pair {
            let stem = headerPath.lowercased().hasSuffix(".gz") ? String(headerPath.dropLast(7)) : String(headerPath.dropLast(4))
            let candidates = [stem + ".img", stem + ".img.gz", stem + ".IMG"]
            guard let img = candidates.first(where: { FileIO.fileSize($0) != nil }) else {
                throw FormatError.notFound(path: stem + ".img")
            }
            let imgPrefix = try FileIO.readPrefix(img, count: 2)
            let imgCompressed = imgPrefix.count == 2 && imgPrefix[0] == 0x1f && imgPrefix[1] == 0x8b
            if !imgCompressed, let s = FileIO.fileSize(img), s < Int64(voxOffset) + dataBytes {
                throw FormatError.truncated(path: img, reason: "image file has \(s) bytes; the header needs \(Int64(voxOffset) + dataBytes)")
            }
            return Precheck(compressed: imgCompressed, pair: true, dataPath: img, version: analyze ? 0 : version)
        }
        if !compressed && fileSize < Int64(voxOffset) + dataBytes {
            throw FormatError.truncated(path: path, reason: "file has \(fileSize) bytes; header and data need \(Int64(voxOffset) + dataBytes)")
        }
        return Precheck(compressed: compressed, pair: false, dataPath: path, version: version)
    }

    static func gzipPrefix(_ path: String, count: Int) throws -> [UInt8] {
        guard let gz = gzopen(path, "rb") else { throw FormatError.unreadable(path: path, reason: "cannot open gzip stream") }
        defer { gzclose(gz) }
        var out = [UInt8](repeating: 0, count: count)
        let n = out.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32(count)) }
        if n < 0 {
            var code: Int32 = 0
            let msg = gzerror(gz, &code).map { String(cString: $0) } ?? "unknown error"
            throw FormatError.corrupt(path: path, reason: "gzip stream is damaged: \(msg)")
        }
        out.removeLast(count - Int(n))
        return out
    }

    static func makeHeader(_ h: msnifti_header, path: String, pre: Precheck) throws -> NIfTIHeader {
        let rank = Int(h.dim.0)
        let dimArr = withUnsafeBytes(of: h.dim) { Array($0.bindMemory(to: Int64.self)) }
        let pixArr = withUnsafeBytes(of: h.pixdim) { Array($0.bindMemory(to: Double.self)) }
        let dims = (1...max(1, rank)).map { Int(dimArr[$0]) }
        guard let type = codes[h.datatype] else {
            throw FormatError.unsupported(path: path, reason: "NIfTI datatype \(h.datatype) is not supported")
        }
        let factor = spatialFactor(Int(h.xyz_units))
        var affine: Affine
        if h.sform_code > 0 {
            affine = Affine(rowMajor: withUnsafeBytes(of: h.sto_xyz) { Array($0.bindMemory(to: Double.self)) })
        } else if h.qform_code > 0 {
            affine = Affine(rowMajor: withUnsafeBytes(of: h.qto_xyz) { Array($0.bindMemory(to: Double.self)) })
        } else {
            // NiBabel's get_base_affine: diag(-dx, dy, dz), origin at the volume centre.
            var zooms = (0..<3).map { $0 < rank ? pixArr[$0 + 1] : 1.0 }
            let shape = (0..<3).map { $0 < rank ? Double(dims[$0]) : 1.0 }
            zooms[0] = -zooms[0]
            affine = .identity
            for d in 0..<3 {
                affine[d, d] = zooms[d]
                affine[d, 3] = -(shape[d] - 1) / 2 * zooms[d]
            }
        }
        if factor != 1 {
            for r in 0..<3 { for c in 0..<4 { affine[r, c] *= factor } }
        }
        var scaling: (Double, Double)? = nil
        let slope = h.scl_slope, inter = h.scl_inter
        if slope != 0 && slope.isFinite {
            guard inter.isFinite else {
                throw FormatError.invalidHeader(path: path, reason: "scl_inter is \(inter) while scl_slope is \(slope)")
            }
            if !(slope == 1 && inter == 0) { scaling = (slope, inter) }
        }
        let descrip = withUnsafeBytes(of: h.descrip) { raw -> String in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        }
        return NIfTIHeader(version: pre.version, dims: dims, storedType: type,
                           pixdim: Array(pixArr[1...7]), qformCode: Int(h.qform_code), sformCode: Int(h.sform_code),
                           affine: affine, scaling: scaling, spatialUnitCode: Int(h.xyz_units),
                           timeUnitCode: Int(h.time_units), description: descrip, isPair: pre.pair,
                           isCompressed: pre.compressed)
    }
}

/// Writes NIfTI files through libnifti, setting both the qform and the sform from the image's affine so that NiBabel,
/// ITK and FSL read the same geometry back. The layout follows the name: `.nii`, `.nii.gz`, `.hdr` (+ `.img`),
/// `.hdr.gz`. Files are written under a temporary name in the same folder and renamed into place.
public enum NIfTIWriter {
    public struct Options: Sendable {
        /// Element type on disk; nil picks one (see ``NIfTIWriter/defaultType(for:)``).
        public var storedType: VoxelType?
        /// 1 or 2; NIfTI-2 is chosen automatically when a dimension exceeds 32767.
        public var version: Int
        public init(storedType: VoxelType? = nil, version: Int = 1) {
            self.storedType = storedType
            self.version = version
        }
    }

    static let typeCodes: [VoxelType: Int32] = Dictionary(uniqueKeysWithValues: NIfTIReader.codes.map { ($1, $0) })

    /// Label maps: the smallest of uint8, int16, int32 that holds their values; scalar images: the type they were
    /// read from when NIfTI can store it, else float32.
    public static func defaultType(for image: MedicalImage) -> VoxelType {
        if image.kind == .labelMap {
            let s = image.statistics
            let lo = s?.min ?? 0, hi = s?.max ?? 0
            if lo >= 0 && hi <= 255 { return .uint8 }
            if lo >= -32768 && hi <= 32767 { return .int16 }
            return .int32
        }
        let t = image.info.storedType
        if image.info.components == .color && (t == .uint8 || t == .rgb24) { return image.shape.t == 4 ? .rgba32 : .rgb24 }
        if typeCodes[t] != nil && t != .rgb24 && t != .rgba32 { return t }
        return .float32
    }

    public static func write(_ image: MedicalImage, to path: String, options: Options = Options()) throws {
        let type = options.storedType ?? defaultType(for: image)
        guard let code = typeCodes[type] else {
            throw FormatError.cannotRepresent(path: path, reason: "NIfTI cannot store \(type.rawValue)")
        }
        let lower = path.lowercased()
        guard lower.hasSuffix(".nii") || lower.hasSuffix(".nii.gz") || lower.hasSuffix(".hdr") || lower.hasSuffix(".hdr.gz") else {
            throw FormatError.unsupported(path: path, reason: "a NIfTI file name ends in .nii, .nii.gz, .hdr or .hdr.gz")
        }
        let s = image.shape
        var data: [UInt8]
        var dims: [Int]
        if type == .rgb24 || type == .rgba32 {
            let ch = type == .rgb24 ? 3 : 4
            guard s.t == ch else {
                throw FormatError.cannotRepresent(path: path, reason: "\(type.rawValue) needs \(ch) channels, image has \(s.t)")
            }
            let planar = try ElementConversion.encode(image.voxels, as: .uint8, path: path)
            let n = s.spatialCount
            data = [UInt8](repeating: 0, count: n * ch)
            for i in 0..<n { for c in 0..<ch { data[i * ch + c] = planar[c * n + i] } }
            dims = [s.x, s.y, s.z]
        } else {
            data = try ElementConversion.encode(image.voxels, as: type, path: path)
            dims = s.t > 1 ? [s.x, s.y, s.z, s.t] : [s.x, s.y, s.z]
        }
        var spec = msnifti_write_spec()
        let version = (options.version == 2 || dims.contains { $0 > 32767 }) ? 2 : 1
        withUnsafeMutableBytes(of: &spec.dim) { raw in
            let p = raw.bindMemory(to: Int64.self)
            for i in 0..<8 { p[i] = 1 }
            p[0] = Int64(dims.count)
            for (i, d) in dims.enumerated() { p[i + 1] = Int64(d) }
        }
        let spacing = image.spacing
        withUnsafeMutableBytes(of: &spec.pixdim) { raw in
            let p = raw.bindMemory(to: Double.self)
            for i in 0..<8 { p[i] = 1 }
            for d in 0..<3 { p[d + 1] = spacing[d] > 0 ? spacing[d] : 1 }
            p[4] = image.info.timeStep ?? 1
        }
        withUnsafeMutableBytes(of: &spec.affine) { raw in
            let p = raw.bindMemory(to: Double.self)
            for i in 0..<16 { p[i] = image.affine.m[i] }
        }
        spec.datatype = code
        let sform = image.info.sformCode > 0 ? image.info.sformCode : 1
        let qform = image.info.qformCode > 0 ? image.info.qformCode : sform
        spec.qform_code = Int32(qform)
        spec.sform_code = Int32(sform)
        spec.scl_slope = 1
        spec.scl_inter = 0
        spec.xyz_units = 2                                  // mm
        spec.time_units = image.info.timeStep != nil ? 8 : 0 // seconds
        spec.nifti_version = Int32(version)
        spec.intent_code = image.kind == .labelMap ? 1002 : 0 // NIFTI_INTENT_LABEL
        let desc = Array(image.info.description.utf8.prefix(79))
        withUnsafeMutableBytes(of: &spec.descrip) { raw in
            for (i, b) in desc.enumerated() { raw[i] = b }
        }

        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw FormatError.writeFailed(path: path, reason: "folder \(dir) does not exist")
        }
        let temp = FileIO.temporarySibling(of: path)
        let pairPaths: (String, String)? = {
            guard lower.hasSuffix(".hdr") || lower.hasSuffix(".hdr.gz") else { return nil }
            let gz = lower.hasSuffix(".gz")
            let cut = gz ? 7 : 4
            let img = String(path.dropLast(cut)) + (gz ? ".img.gz" : ".img")
            let tempImg = String(temp.dropLast(cut)) + (gz ? ".img.gz" : ".img")
            return (img, tempImg)
        }()
        niftiLock.lock()
        let rc = data.withUnsafeBytes { raw in temp.withCString { msnifti_write($0, &spec, raw.baseAddress) } }
        niftiLock.unlock()
        func cleanup() {
            unlink(temp)
            if let p = pairPaths { unlink(p.1) }
        }
        if rc != 0 {
            cleanup()
            throw FormatError.writeFailed(path: path, reason: "libnifti could not create the file")
        }
        // libnifti does not report write errors: read the header back and check the data size on disk.
        do {
            let back = try NIfTIReader.readHeader(temp)
            guard back.dims == dims else {
                throw FormatError.writeFailed(path: path, reason: "written header does not match (\(back.dims) vs \(dims))")
            }
            if !lower.hasSuffix(".gz") {
                let expected = Int64(data.count) + (pairPaths == nil ? Int64(version == 2 ? 544 : 352) : 0)
                let actual = FileIO.fileSize(pairPaths?.1 ?? temp) ?? 0
                if actual < expected {
                    throw FormatError.writeFailed(path: path, reason: "only \(actual) of \(expected) bytes were written (disk full?)")
                }
            }
        } catch let e as FormatError {
            cleanup()
            if case .writeFailed = e { throw e }
            throw FormatError.writeFailed(path: path, reason: "written file does not read back: \(e.reason)")
        }
        if let p = pairPaths {
            try FileIO.commit(temp: p.1, to: p.0)
        }
        try FileIO.commit(temp: temp, to: path)
    }
}
