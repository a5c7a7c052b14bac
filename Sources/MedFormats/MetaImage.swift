import Foundation
import MedImage
internal import CZlib

/// What a MetaImage header says (the parsed key-value pairs, with the geometry converted to RAS+).
public struct MetaImageHeader: Sendable, Equatable {
    public var dims: [Int]
    public var channels: Int
    public var storedType: VoxelType
    public var bigEndian: Bool
    public var compressed: Bool
    /// Voxel to world in RAS+ mm (ITK's LPS geometry with x and y negated).
    public var affine: Affine
    /// `ElementDataFile` resolved to a path, or nil for LOCAL (.mha).
    public var dataFile: String?
    /// Byte offset of the data in the data file (for LOCAL: just after the header).
    public var dataOffset: Int
    public var headerSize: Int?
    public var anatomicalOrientation: String?
    public var fields: [String: String]
}

/// Reads and writes ITK MetaImage (`.mhd` with `.raw`/`.zraw`, or `.mha` with the data inside), the format of
/// PROMISE12 and ITK. Geometry: `TransformMatrix` lists the direction of each voxel axis in turn (as ITK writes it),
/// `Offset` is the world position of voxel 0, both in ITK's LPS, converted to RAS+ by negating x and y.
public enum MetaImageReader {
    static let types: [String: VoxelType] = [
        "MET_UCHAR": .uint8, "MET_CHAR": .int8, "MET_USHORT": .uint16, "MET_SHORT": .int16,
        "MET_UINT": .uint32, "MET_INT": .int32, "MET_ULONG": .uint32, "MET_LONG": .int32,
        "MET_ULONG_LONG": .uint64, "MET_LONG_LONG": .int64, "MET_FLOAT": .float32, "MET_DOUBLE": .float64,
    ]

    public static func readHeader(_ path: String, options: ReadOptions = .default) throws -> MetaImageHeader {
        let prefix = try FileIO.readPrefix(path, count: 1 << 16)
        return try parseHeader(prefix, path: path, options: options)
    }

    static func parseHeader(_ bytes: [UInt8], path: String, options: ReadOptions) throws -> MetaImageHeader {
        var fields: [String: String] = [:]
        var offset = 0
        var foundData = false
        var lineStart = 0
        var lines = 0
        while lineStart < bytes.count {
            var end = lineStart
            while end < bytes.count && bytes[end] != 0x0a { end += 1 }
            if end >= bytes.count && !foundData {
                // The last line must end with a newline before binary data; accept a final line without one for .mhd.
            }
            let raw = bytes[lineStart..<end]
            guard let line = String(bytes: raw, encoding: .utf8) ?? String(bytes: raw, encoding: .isoLatin1) else {
                throw FormatError.invalidHeader(path: path, reason: "header line \(lines + 1) is not text")
            }
            lines += 1
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty {
                guard let eq = trimmed.firstIndex(of: "=") else {
                    if lines == 1 {
                        throw FormatError.unsupported(path: path, reason: "not a MetaImage header (first line has no 'Key = Value')")
                    }
                    throw FormatError.invalidHeader(path: path, reason: "header line \(lines) has no '=': \(trimmed.prefix(60))")
                }
                let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
                let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                fields[key.lowercased()] = value
                if key.lowercased() == "elementdatafile" {
                    offset = min(end + 1, bytes.count)
                    foundData = true
                    break
                }
            }
            lineStart = end + 1
            if lines > 200 { break }
        }
        guard foundData else {
            if fields.isEmpty {
                throw FormatError.unsupported(path: path, reason: "not a MetaImage header")
            }
            throw FormatError.invalidHeader(path: path, reason: "header has no ElementDataFile line")
        }
        if let obj = fields["objecttype"], obj.lowercased() != "image" {
            throw FormatError.unsupported(path: path, reason: "MetaImage ObjectType \(obj) is not an image")
        }
        func ints(_ key: String) throws -> [Int]? {
            guard let v = fields[key] else { return nil }
            let parts = v.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let out = parts.compactMap { Int($0) }
            guard out.count == parts.count else {
                throw FormatError.invalidHeader(path: path, reason: "\(key) is not a list of integers: \(v)")
            }
            return out
        }
        func doubles(_ key: String) throws -> [Double]? {
            guard let v = fields[key] else { return nil }
            let parts = v.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let out = parts.compactMap { Double($0) }
            guard out.count == parts.count, out.allSatisfy({ $0.isFinite }) else {
                throw FormatError.invalidHeader(path: path, reason: "\(key) is not a list of numbers: \(v)")
            }
            return out
        }
        guard let dims = try ints("dimsize") else {
            throw FormatError.invalidHeader(path: path, reason: "header has no DimSize")
        }
        let ndims = try ints("ndims")?.first ?? dims.count
        guard (1...4).contains(ndims) else {
            throw FormatError.unsupported(path: path, reason: "NDims = \(ndims); 1 to 4 are supported")
        }
        guard dims.count == ndims else {
            throw FormatError.invalidHeader(path: path, reason: "DimSize has \(dims.count) values for NDims = \(ndims)")
        }
        for (i, d) in dims.enumerated() where d <= 0 {
            throw FormatError.invalidHeader(path: path, reason: "DimSize[\(i)] is \(d); dimensions must be positive")
        }
        guard let typeName = fields["elementtype"] else {
            throw FormatError.invalidHeader(path: path, reason: "header has no ElementType")
        }
        guard let type = types[typeName.uppercased()] else {
            throw FormatError.unsupported(path: path, reason: "ElementType \(typeName) is not supported")
        }
        let channels = try ints("elementnumberofchannels")?.first ?? 1
        guard channels >= 1 && channels <= 64 else {
            throw FormatError.invalidHeader(path: path, reason: "ElementNumberOfChannels = \(channels)")
        }
        guard let count = checkedProduct(dims.map(Int64.init) + [Int64(channels)]) else {
            throw FormatError.tooLarge(path: path, bytes: Int64.max, limit: options.maxBytes)
        }
        try options.check(elements: count, bytesPerElement: type.byteCount, path: path)

        let spatial = min(ndims, 3)
        let spacing = try doubles("elementspacing") ?? doubles("elementsize") ?? [Double](repeating: 1, count: ndims)
        guard spacing.count >= spatial else {
            throw FormatError.invalidHeader(path: path, reason: "ElementSpacing has \(spacing.count) values for NDims = \(ndims)")
        }
        let origin = try doubles("offset") ?? doubles("origin") ?? doubles("position") ?? [Double](repeating: 0, count: ndims)
        guard origin.count >= spatial else {
            throw FormatError.invalidHeader(path: path, reason: "Offset has \(origin.count) values for NDims = \(ndims)")
        }
        let matrix = try doubles("transformmatrix") ?? doubles("rotation") ?? doubles("orientation")
        var direction = [[Double]](repeating: [0, 0, 0], count: 3)  // direction[axis] = unit vector (LPS)
        for a in 0..<3 { direction[a][a] = 1 }
        if let m = matrix {
            guard m.count == ndims * ndims else {
                throw FormatError.invalidHeader(path: path, reason: "TransformMatrix has \(m.count) values for NDims = \(ndims)")
            }
            for a in 0..<spatial { for r in 0..<spatial { direction[a][r] = m[a * ndims + r] } }
        }
        var affine = Affine.identity
        for r in 0..<3 {
            let flip: Double = r < 2 ? -1 : 1    // LPS -> RAS
            for a in 0..<3 {
                let s = a < spatial ? spacing[a] : 1
                affine[r, a] = flip * direction[a][r] * s
            }
            affine[r, 3] = r < spatial ? flip * origin[r] : 0
        }
        let msb = (fields["binarydatabyteordermsb"] ?? fields["elementbyteordermsb"] ?? "false").lowercased() == "true"
        let compressed = (fields["compresseddata"] ?? "false").lowercased() == "true"
        let dataName = fields["elementdatafile"] ?? "LOCAL"
        var dataFile: String? = nil
        if dataName.uppercased() == "LIST" || dataName.contains("%") {
            throw FormatError.unsupported(path: path, reason: "ElementDataFile = \(dataName) (one file per slice) is not supported")
        }
        if dataName.uppercased() != "LOCAL" {
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
            dataFile = dataName.hasPrefix("/") ? dataName : dir.appendingPathComponent(dataName).path
        }
        let headerSize = try ints("headersize")?.first
        return MetaImageHeader(dims: dims, channels: channels, storedType: type, bigEndian: msb, compressed: compressed,
                               affine: affine, dataFile: dataFile, dataOffset: dataFile == nil ? offset : 0,
                               headerSize: headerSize, anatomicalOrientation: fields["anatomicalorientation"],
                               fields: fields)
    }

    public static func read(_ path: String, options: ReadOptions = .default) throws -> MedicalImage {
        let (h, raw) = try readRaw(path, options: options)
        let n = h.dims.reduce(1, *)
        let ch = h.channels
        var voxels = raw.withUnsafeBytes { ElementConversion.toFloat($0, type: h.storedType, count: n * ch, slope: nil, inter: 0) }
        if ch > 1 {
            var planar = [Float](repeating: 0, count: n * ch)
            for i in 0..<n { for c in 0..<ch { planar[c * n + i] = voxels[i * ch + c] } }
            voxels = planar
        }
        let d = h.dims
        let shape = ImageShape(d[0], d.count > 1 ? d[1] : 1, d.count > 2 ? d[2] : 1, (d.count > 3 ? d[3] : 1) * ch)
        let info = ImageInfo(storedType: h.storedType, format: "metaimage", spacingIsKnown: true,
                             components: ch > 1 ? .color : .scalar)
        return MedicalImage(shape: shape, voxels: voxels, affine: h.affine, info: info)
    }

    /// The stored values in NiBabel-like order: shape (nx, ny, nz[, nt][, channels]) in Fortran order for one channel;
    /// multi-channel data comes planar as Float32 converted back to the stored type.
    public static func readArray(_ path: String, options: ReadOptions = .default) throws -> NDArray {
        let (h, raw) = try readRaw(path, options: options)
        if h.channels == 1 {
            return NDArray(dtype: h.storedType, shape: h.dims, fortranOrder: true, storage: raw)
        }
        let img = try read(path, options: options)
        return NDArray(dtype: h.storedType, shape: h.dims + [h.channels], fortranOrder: true,
                       storage: try ElementConversion.encode(img.voxels, as: h.storedType, path: path))
    }

    static func readRaw(_ path: String, options: ReadOptions) throws -> (MetaImageHeader, [UInt8]) {
        let h = try readHeader(path, options: options)
        let count = h.dims.reduce(1, *) * h.channels
        let need = count * h.storedType.byteCount
        let dataPath = h.dataFile ?? path
        var raw: [UInt8]
        if h.compressed {
            if h.dataFile != nil && FileIO.fileSize(dataPath) == nil {
                throw FormatError.invalidHeader(path: path, reason: "its data file \((dataPath as NSString).lastPathComponent) (ElementDataFile) was not found at \(dataPath)")
            }
            let file = try FileIO.readAll(dataPath, limit: options.maxBytes)
            let start = h.dataFile == nil ? h.dataOffset : max(0, h.headerSize ?? 0)
            guard start <= file.count else {
                throw FormatError.truncated(path: dataPath, reason: "no compressed data after the header")
            }
            raw = try Zlib.inflate(Array(file[start...]), expected: need, path: dataPath)
        } else {
            guard let size = FileIO.fileSize(dataPath) else {
                if h.dataFile != nil {   // name the file the user gave, and the one its header points at
                    throw FormatError.invalidHeader(path: path, reason: "its data file \((dataPath as NSString).lastPathComponent) (ElementDataFile) was not found at \(dataPath)")
                }
                throw FormatError.notFound(path: dataPath)
            }
            var start = Int64(h.dataFile == nil ? h.dataOffset : 0)
            if let hs = h.headerSize {
                start = hs == -1 ? size - Int64(need) : Int64(hs) + start
            }
            guard start >= 0, size - start >= Int64(need) else {
                throw FormatError.truncated(path: dataPath, reason: "data needs \(need) bytes after offset \(start); the file has \(max(0, size - start))")
            }
            raw = try FileIO.readRange(dataPath, offset: start, count: need)
        }
        if h.bigEndian { ElementConversion.swapBytes(&raw, elementSize: h.storedType.byteCount) }
        return (h, raw)
    }
}

/// Writes MetaImage: `.mha` (header and data in one file) or `.mhd` with a `.raw` (or `.zraw` when compressed) beside.
public enum MetaImageWriter {
    static let names: [VoxelType: String] = [
        .uint8: "MET_UCHAR", .int8: "MET_CHAR", .uint16: "MET_USHORT", .int16: "MET_SHORT", .uint32: "MET_UINT",
        .int32: "MET_INT", .uint64: "MET_ULONG_LONG", .int64: "MET_LONG_LONG", .float32: "MET_FLOAT", .float64: "MET_DOUBLE",
    ]

    public static func write(_ image: MedicalImage, to path: String, storedType: VoxelType? = nil, compressed: Bool = false) throws {
        let type = ElementConversion.writableType(of: image, requested: storedType)
        guard let name = names[type] else {
            throw FormatError.cannotRepresent(path: path, reason: "MetaImage cannot store \(type.rawValue)")
        }
        let s = image.shape
        let colour = image.info.components == .color && s.t > 1
        let dims = colour ? (s.z > 1 ? [s.x, s.y, s.z] : [s.x, s.y]) : (s.t > 1 ? [s.x, s.y, s.z, s.t] : (s.z > 1 ? [s.x, s.y, s.z] : [s.x, s.y]))
        let ndims = dims.count
        var voxels = image.voxels
        if colour {
            let n = s.spatialCount, ch = s.t
            voxels = [Float](repeating: 0, count: n * ch)
            for i in 0..<n { for c in 0..<ch { voxels[i * ch + c] = image.voxels[c * n + i] } }
        }
        var data = try ElementConversion.encode(voxels, as: type, path: path)
        if compressed { data = try Zlib.deflate(data, path: path) }
        // RAS -> LPS
        let a = image.affine
        let sp = a.spacing
        var matrix: [Double] = []
        for ax in 0..<ndims {
            for r in 0..<ndims {
                if ax < 3 && r < 3 {
                    let flip: Double = r < 2 ? -1 : 1
                    matrix.append(sp[ax] > 0 ? flip * a[r, ax] / sp[ax] : (ax == r ? 1 : 0))
                } else {
                    matrix.append(ax == r ? 1 : 0)
                }
            }
        }
        let origin = (0..<ndims).map { r in r < 3 ? (r < 2 ? -a[r, 3] : a[r, 3]) : 0 }
        let spacing = (0..<ndims).map { r in r < 3 ? sp[r] : (image.info.timeStep ?? 1) }
        func fmt(_ v: [Double]) -> String { v.map { $0 == 0 ? "0" : String($0) }.joined(separator: " ") }
        let lower = path.lowercased()
        let local = lower.hasSuffix(".mha")
        guard local || lower.hasSuffix(".mhd") else {
            throw FormatError.unsupported(path: path, reason: "a MetaImage file name ends in .mha or .mhd")
        }
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let dataName = stem + (compressed ? ".zraw" : ".raw")
        var header = """
        ObjectType = Image
        NDims = \(ndims)
        BinaryData = True
        BinaryDataByteOrderMSB = False
        CompressedData = \(compressed ? "True" : "False")

        """
        if compressed { header += "CompressedDataSize = \(data.count)\n" }
        header += """
        TransformMatrix = \(fmt(matrix))
        Offset = \(fmt(origin))
        CenterOfRotation = \(fmt([Double](repeating: 0, count: ndims)))
        ElementSpacing = \(fmt(spacing))
        DimSize = \(dims.map(String.init).joined(separator: " "))

        """
        if colour { header += "ElementNumberOfChannels = \(s.t)\n" }
        header += "ElementType = \(name)\nElementDataFile = \(local ? "LOCAL" : dataName)\n"
        if local {
            try FileIO.writeAtomically(Array(header.utf8) + data, to: path)
        } else {
            let dataPath = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(dataName).path
            try FileIO.writeAtomically(data, to: dataPath)
            try FileIO.writeAtomically(Array(header.utf8), to: path)
        }
    }
}
