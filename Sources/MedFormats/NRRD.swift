import Foundation
import MedFoundation
import MedImage

/// What an NRRD header says: the parsed fields, the axes split into space axes and one optional value axis (a vector,
/// RGB colour or list: the channels), and the geometry converted to RAS+.
public struct NRRDHeader: Sendable, Equatable {
    /// Axis sizes in file order (fastest first).
    public var sizes: [Int]
    /// Index of the non-spatial axis (kinds vector, RGB-color, list, ... or a `none` space direction), if any.
    public var valueAxis: Int?
    public var storedType: VoxelType
    public var bigEndian: Bool
    /// raw, gzip, bzip2, ascii or hex.
    public var encoding: String
    /// Voxel (i, j, k of the space axes) to world in RAS+ mm.
    public var affine: Affine
    /// True when the header gave physical geometry (space directions or spacings).
    public var spacingIsKnown: Bool
    /// The detached data file, or nil when the data follows the header.
    public var dataFile: String?
    /// Byte offset of the data in the header's own file (attached data).
    public var dataOffset: Int
    public var byteSkip: Int
    public var lineSkip: Int
    /// `key: value` fields (keys lower-cased) and `key:=value` pairs (keys as written, e.g. Slicer's
    /// `Segment0_LabelValue`).
    public var fields: [String: String]
    public var keyValues: [String: String]
    /// What was read but not applied (a measurement frame), for the reader's notes.
    public var notes: [String]
}

/// Reads NRRD (`.nrrd` with the data attached, `.nhdr` with a detached data file), the format 3D Slicer saves volumes
/// and segmentations in. A compact reader of our own (Docs/formats.md says why not Teem): the format is a text header
/// and one raw, gzip or ASCII block. Geometry: `space directions` gives each space axis' step vector and
/// `space origin` the position of the first voxel, in the named `space` (RAS, LAS or LPS; converted to RAS+); without
/// them, `spacings` on an identity LPS frame at the origin, as ITK (SimpleITK) reads such files.
public enum NRRDReader {
    static let types: [String: VoxelType] = {
        var t: [String: VoxelType] = [:]
        for n in ["signed char", "int8", "int8_t"] { t[n] = .int8 }
        for n in ["uchar", "unsigned char", "uint8", "uint8_t"] { t[n] = .uint8 }
        for n in ["short", "short int", "signed short", "signed short int", "int16", "int16_t"] { t[n] = .int16 }
        for n in ["ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"] { t[n] = .uint16 }
        for n in ["int", "signed int", "int32", "int32_t"] { t[n] = .int32 }
        for n in ["uint", "unsigned int", "uint32", "uint32_t"] { t[n] = .uint32 }
        for n in ["longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t"] { t[n] = .int64 }
        for n in ["ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"] { t[n] = .uint64 }
        t["float"] = .float32
        t["double"] = .float64
        return t
    }()

    /// The RAS sign of each world axis for the spaces we read: LPS negates x and y, LAS x.
    static let spaces: [String: [Double]] = [
        "right-anterior-superior": [1, 1, 1], "ras": [1, 1, 1],
        "left-anterior-superior": [-1, 1, 1], "las": [-1, 1, 1],
        "left-posterior-superior": [-1, -1, 1], "lps": [-1, -1, 1],
        "right-anterior": [1, 1], "ra": [1, 1], "left-anterior": [-1, 1], "la": [-1, 1], "left-posterior": [-1, -1], "lp": [-1, -1],
    ]

    public static func readHeader(_ path: String, options: ReadOptions = .default) throws -> NRRDHeader {
        let prefix = try FileIO.readPrefix(path, count: 1 << 20)
        return try parseHeader(prefix, path: path, options: options)
    }

    static func parseHeader(_ bytes: [UInt8], path: String, options: ReadOptions) throws -> NRRDHeader {
        guard bytes.count >= 8, Array(bytes.prefix(4)) == Array("NRRD".utf8), bytes[4...7].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw FormatError.unsupported(path: path, reason: "not an NRRD file (it does not start with NRRD000x)")
        }
        var fields: [String: String] = [:], keyValues: [String: String] = [:]
        var lineStart = 0, line = 0, dataOffset: Int? = nil
        while lineStart < bytes.count {
            var end = lineStart
            while end < bytes.count && bytes[end] != 0x0a { end += 1 }
            line += 1
            var raw = bytes[lineStart..<end]
            if raw.last == 0x0d { raw = raw.dropLast() }
            if raw.isEmpty && line > 1 { dataOffset = min(end + 1, bytes.count); break }   // the blank line before attached data
            lineStart = end + 1
            if line == 1 || raw.first == 0x23 { continue }   // the magic, and comments
            guard let text = String(bytes: raw, encoding: .utf8) ?? String(bytes: raw, encoding: .isoLatin1) else {
                throw FormatError.invalidHeader(path: path, reason: "header line \(line) is not text")
            }
            if let kv = text.range(of: ":=") {
                keyValues[String(text[..<kv.lowerBound])] = String(text[kv.upperBound...])
            } else if let colon = text.range(of: ": ") {
                fields[text[..<colon.lowerBound].trimmingCharacters(in: .whitespaces).lowercased()] = text[colon.upperBound...].trimmingCharacters(in: .whitespaces)
            } else {
                throw FormatError.invalidHeader(path: path, reason: "header line \(line) is neither 'field: value' nor 'key:=value': \(text.prefix(60))")
            }
            if line > 10_000 { throw FormatError.invalidHeader(path: path, reason: "header longer than 10000 lines") }
        }
        let detached = fields["data file"] ?? fields["datafile"]
        if detached == nil && dataOffset == nil {
            throw FormatError.truncated(path: path, reason: "the header does not end (no blank line before the data) within the first MiB")
        }
        guard let dimText = fields["dimension"], let dimension = Int(dimText), (1...16).contains(dimension) else {
            throw FormatError.invalidHeader(path: path, reason: "no valid 'dimension' field")
        }
        func list(_ key: String) -> [String]? { fields[key].map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) } }
        guard let sizeTexts = list("sizes"), sizeTexts.count == dimension else {
            throw FormatError.invalidHeader(path: path, reason: "'sizes' must list \(dimension) sizes")
        }
        let sizes = try sizeTexts.map { t -> Int in
            guard let v = Int(t), v > 0 else { throw FormatError.invalidHeader(path: path, reason: "size '\(t)' is not a positive integer") }
            return v
        }
        guard let typeName = fields["type"], let type = types[typeName.lowercased()] else {
            throw FormatError.unsupported(path: path, reason: "type '\(fields["type"] ?? "missing")' is not supported (integers of 8 to 64 bits, float, double)")
        }
        guard let count = checkedProduct(sizes.map(Int64.init)) else { throw FormatError.tooLarge(path: path, bytes: Int64.max, limit: options.maxBytes) }
        try options.check(elements: count, bytesPerElement: type.byteCount, path: path)
        var encoding = (fields["encoding"] ?? "").lowercased()
        switch encoding {
        case "raw": break
        case "gz", "gzip": encoding = "gzip"
        case "txt", "text", "ascii": encoding = "ascii"
        case "hex": break
        case "bz2", "bzip2": throw FormatError.unsupported(path: path, reason: "bzip2 encoding is not supported; resave with gzip or raw encoding (e.g. in 3D Slicer or with pynrrd)")
        default: throw FormatError.invalidHeader(path: path, reason: "encoding '\(fields["encoding"] ?? "missing")' is not raw, gzip, ascii or hex")
        }
        let bigEndian = (fields["endian"] ?? "little").lowercased() == "big"

        // Which axes are space axes: per `kinds` (domain/space/time axes are spatial or temporal; vector, RGB-color and
        // the other value kinds are not) or per a `none` entry of `space directions`.
        let kinds = list("kinds")?.map { $0.lowercased() }
        var directions: [[Double]?]? = nil
        if let text = fields["space directions"] {
            var out: [[Double]?] = []
            var rest = Substring(text)
            while let first = rest.firstIndex(where: { !$0.isWhitespace }) {
                rest = rest[first...]
                if rest.lowercased().hasPrefix("none") { out.append(nil); rest = rest.dropFirst(4); continue }
                guard rest.first == "(", let close = rest.firstIndex(of: ")") else {
                    throw FormatError.invalidHeader(path: path, reason: "space directions: '\(text.prefix(80))' is not a list of (x,y,z) vectors or none")
                }
                let v = rest[rest.index(after: rest.startIndex)..<close].split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard !v.isEmpty, v.allSatisfy({ $0 != nil && $0!.isFinite }) else {
                    throw FormatError.invalidHeader(path: path, reason: "space directions: a vector holds a value that is not a finite number: '\(text.prefix(80))'")
                }
                out.append(v.map { $0! })
                rest = rest[rest.index(after: close)...]
            }
            guard out.count == dimension else {
                throw FormatError.invalidHeader(path: path, reason: "space directions has \(out.count) entries for dimension \(dimension)")
            }
            directions = out
        }
        let valueKinds: Set<String> = ["vector", "covariant-vector", "normal", "list", "point", "stub", "scalar", "complex", "2-vector", "3-color",
                                       "rgb-color", "hsv-color", "xyz-color", "4-color", "rgba-color", "3-vector", "3-gradient", "3-normal",
                                       "4-vector", "quaternion", "2d-symmetric-matrix", "2d-masked-symmetric-matrix", "2d-matrix",
                                       "2d-masked-matrix", "3d-symmetric-matrix", "3d-masked-symmetric-matrix", "3d-matrix", "3d-masked-matrix"]
        let valueAxes = (0..<dimension).filter { a in
            if let d = directions { return d[a] == nil }
            if let k = kinds, k.count == dimension { return valueKinds.contains(k[a]) }
            return false
        }
        guard valueAxes.count <= 1 else {
            throw FormatError.unsupported(path: path, reason: "\(valueAxes.count) non-spatial axes (kinds \(kinds?.joined(separator: " ") ?? "")); one vector, colour or list axis is supported")
        }
        let spaceAxes = (0..<dimension).filter { !valueAxes.contains($0) }
        guard (1...4).contains(spaceAxes.count) else {
            throw FormatError.unsupported(path: path, reason: "\(spaceAxes.count) space axes; 1 to 3 (or 4 with time) are supported")
        }

        var notes: [String] = []
        if fields["measurement frame"] != nil { notes.append("its measurement frame (for vector and tensor values) is ignored") }
        var affine = Affine.identity
        var known = false
        let spaceName = fields["space"]?.lowercased()
        if let d = directions {
            let sign: [Double]
            if let spaceName {
                guard let s = spaces[spaceName] else {
                    throw FormatError.unsupported(path: path, reason: "space '\(fields["space"]!)' is not supported (RAS, LAS or LPS and their 2-D forms)")
                }
                sign = s
            } else if let sd = fields["space dimension"], let n = Int(sd), (2...3).contains(n) {
                sign = n == 3 ? [-1, -1, 1] : [-1, -1]   // no named space: ITK's LPS
            } else {
                throw FormatError.invalidHeader(path: path, reason: "space directions without 'space' or 'space dimension'")
            }
            let n = sign.count
            let spatial = spaceAxes.filter { d[$0] != nil }
            for (column, axis) in spatial.prefix(3).enumerated() {
                let v = d[axis]!
                guard v.count == n else { throw FormatError.invalidHeader(path: path, reason: "a space direction has \(v.count) components in a \(n)-D space") }
                for r in 0..<n { affine[r, column] = sign[r] * v[r] + 0 }
            }
            if let o = fields["space origin"] {
                let v = o.trimmingCharacters(in: CharacterSet(charactersIn: "() ")).split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard v.count == n, v.allSatisfy({ $0 != nil && $0!.isFinite }) else {
                    throw FormatError.invalidHeader(path: path, reason: "space origin '\(o)' is not a \(n)-vector of finite numbers")
                }
                for r in 0..<n { affine[r, 3] = sign[r] * v[r]! + 0 }
            }
            known = true
        } else {
            // No space: spacings (if given) on ITK's identity LPS frame at the origin.
            let sp = list("spacings")?.map { Double($0) }
            for (column, axis) in spaceAxes.prefix(3).enumerated() {
                let s = sp.flatMap { axis < $0.count ? $0[axis] : nil }.flatMap { $0!.isFinite && $0! > 0 ? $0! : nil } ?? 1
                affine[column, column] = (column < 2 ? -1 : 1) * s
            }
            known = sp != nil
        }
        var dataFile: String? = nil
        if let name = detached {
            if name.uppercased().hasPrefix("LIST") || name.contains("%") || name.split(separator: " ").count > 1 {
                throw FormatError.unsupported(path: path, reason: "data file '\(name)' (several files) is not supported; one data file is")
            }
            guard !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
                throw FormatError.invalidHeader(path: path, reason: "its data file '\(name)' is outside the header's folder; keep the .nhdr and its data together")
            }
            let dir = (path as NSString).deletingLastPathComponent
            dataFile = dir.isEmpty ? name : dir + "/" + name
        }
        func int(_ key: String) throws -> Int {
            guard let t = fields[key] else { return 0 }
            guard let v = Int(t), v >= -1 else { throw FormatError.invalidHeader(path: path, reason: "\(key) '\(t)' is not an integer >= -1") }
            return v
        }
        return NRRDHeader(sizes: sizes, valueAxis: valueAxes.first, storedType: type, bigEndian: bigEndian, encoding: encoding, affine: affine,
                          spacingIsKnown: known, dataFile: dataFile, dataOffset: dataOffset ?? 0, byteSkip: try int("byte skip"),
                          lineSkip: try int("line skip"), fields: fields, keyValues: keyValues, notes: notes)
    }

    /// The stored values in file order (fastest axis first), host byte order.
    static func readRaw(_ path: String, options: ReadOptions) throws -> (NRRDHeader, [UInt8]) {
        let h = try readHeader(path, options: options)
        let count = h.sizes.reduce(1, *), need = count * h.storedType.byteCount
        let dataPath = h.dataFile ?? path
        if h.dataFile != nil && FileIO.fileSize(dataPath) == nil {
            throw FormatError.invalidHeader(path: path, reason: "its data file \((dataPath as NSString).lastPathComponent) was not found at \(dataPath)")
        }
        var file = try FileIO.readAll(dataPath, limit: max(options.maxBytes, Int64(need)) + (1 << 24))
        var start = h.dataFile == nil ? h.dataOffset : 0
        for _ in 0..<h.lineSkip {
            guard let nl = file[start...].firstIndex(of: 0x0a) else { throw FormatError.truncated(path: dataPath, reason: "line skip \(h.lineSkip) passes the end of the file") }
            start = nl + 1
        }
        var raw: [UInt8]
        switch h.encoding {
        case "raw":
            if h.byteSkip == -1 { start = file.count - need } else { start += h.byteSkip }
            guard start >= 0, file.count - start >= need else {
                throw FormatError.truncated(path: dataPath, reason: "data needs \(need) bytes after offset \(start); the file has \(max(0, file.count - start))")
            }
            raw = Array(file[start..<(start + need)])
        case "gzip":
            guard start <= file.count else { throw FormatError.truncated(path: dataPath, reason: "no data after the header") }
            file = try Zlib.inflate(Array(file[start...]), expected: need, path: dataPath)
            let skip = h.byteSkip == -1 ? file.count - need : h.byteSkip
            guard skip >= 0, file.count - skip >= need else { throw FormatError.truncated(path: dataPath, reason: "byte skip \(h.byteSkip) leaves less than the data") }
            raw = Array(file[skip..<(skip + need)])
        default:
            raw = try text(Array(file[min(start, file.count)...]), hex: h.encoding == "hex", count: count, type: h.storedType, path: dataPath)
            return (h, raw)
        }
        if h.bigEndian { ElementConversion.swapBytes(&raw, elementSize: h.storedType.byteCount) }
        return (h, raw)
    }

    /// ASCII (numbers separated by white space or commas) or hex data as the stored type's bytes.
    static func text(_ bytes: [UInt8], hex: Bool, count: Int, type: VoxelType, path: String) throws -> [UInt8] {
        if hex {
            let digits = bytes.filter { !($0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09) }
            let need = count * type.byteCount
            guard digits.count >= 2 * need else { throw FormatError.truncated(path: path, reason: "hex data holds \(digits.count / 2) of \(need) bytes") }
            func nibble(_ c: UInt8) throws -> UInt8 {
                switch c {
                case 0x30...0x39: return c - 0x30
                case 0x61...0x66: return c - 0x57
                case 0x41...0x46: return c - 0x37
                default: throw FormatError.corrupt(path: path, reason: "hex data holds a character that is not a hex digit")
                }
            }
            return try (0..<need).map { try nibble(digits[2 * $0]) << 4 | nibble(digits[2 * $0 + 1]) }
        }
        var values: [Float] = []
        values.reserveCapacity(count)
        var i = 0
        while i < bytes.count && values.count < count {
            while i < bytes.count && (bytes[i] == 0x20 || bytes[i] == 0x0a || bytes[i] == 0x0d || bytes[i] == 0x09 || bytes[i] == 0x2c) { i += 1 }
            var j = i
            while j < bytes.count && !(bytes[j] == 0x20 || bytes[j] == 0x0a || bytes[j] == 0x0d || bytes[j] == 0x09 || bytes[j] == 0x2c) { j += 1 }
            if j > i {
                guard let v = Double(String(decoding: bytes[i..<j], as: UTF8.self)) else {
                    throw FormatError.corrupt(path: path, reason: "ASCII data holds '\(String(decoding: bytes[i..<min(j, i + 20)], as: UTF8.self))', not a number")
                }
                values.append(Float(v))
            }
            i = j
        }
        guard values.count == count else { throw FormatError.truncated(path: path, reason: "ASCII data holds \(values.count) of \(count) values") }
        return try ElementConversion.encode(values, as: type, path: path)
    }

    public static func read(_ path: String, options: ReadOptions = .default) throws -> MedicalImage {
        let (h, raw) = try readRaw(path, options: options)
        let n = h.sizes.reduce(1, *)
        var voxels = raw.withUnsafeBytes { ElementConversion.toFloat($0, type: h.storedType, count: n, slope: nil, inter: 0) }
        let spatial = (0..<h.sizes.count).filter { $0 != h.valueAxis }.map { h.sizes[$0] }
        let channels = h.valueAxis.map { h.sizes[$0] } ?? 1
        if let v = h.valueAxis, channels > 1 {
            // Values along axis v (interleaved when v is the fastest): planar channels, space axes in file order.
            let inner = h.sizes[..<v].reduce(1, *), outer = n / (inner * channels)
            var planar = [Float](repeating: 0, count: n)
            let plane = inner * outer
            for o in 0..<outer { for c in 0..<channels { for i in 0..<inner {
                planar[c * plane + o * inner + i] = voxels[(o * channels + c) * inner + i]
            } } }
            voxels = planar
        }
        var d = spatial
        while d.count < 4 { d.append(1) }
        let shape = ImageShape(d[0], d[1], d[2], d[3] * channels)
        let colour = h.valueAxis != nil && ["rgb-color", "rgba-color", "3-color", "4-color"].contains((h.fields["kinds"] ?? "").lowercased().split(separator: " ").map(String.init)[safe: h.valueAxis!] ?? "")
        let info = ImageInfo(storedType: h.storedType, format: "nrrd", spacingIsKnown: h.spacingIsKnown, components: colour ? .color : .scalar)
        return MedicalImage(shape: shape, voxels: voxels, affine: h.affine, info: info)
    }

    /// The stored values in NiBabel-like order: space axes (x fastest) then the value axis last, Fortran order.
    public static func readArray(_ path: String, options: ReadOptions = .default) throws -> NDArray {
        let (h, raw) = try readRaw(path, options: options)
        guard let v = h.valueAxis, v != h.sizes.count - 1 else {
            return NDArray(dtype: h.storedType, shape: h.sizes, fortranOrder: true, storage: raw)
        }
        let img = try read(path, options: options)
        let spatial = (0..<h.sizes.count).filter { $0 != v }.map { h.sizes[$0] }
        return NDArray(dtype: h.storedType, shape: spatial + [h.sizes[v]], fortranOrder: true,
                       storage: try ElementConversion.encode(img.voxels, as: h.storedType, path: path))
    }
}

extension Array {
    fileprivate subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}

/// Writes NRRD as 3D Slicer and ITK do: `space: left-posterior-superior`, space directions and origin, little endian,
/// gzip (`.nrrd`, attached) or raw/gzip beside a `.nhdr`; colour or several channels as a leading vector axis.
public enum NRRDWriter {
    static let names: [VoxelType: String] = [
        .uint8: "uint8", .int8: "int8", .uint16: "uint16", .int16: "int16", .uint32: "uint32", .int32: "int32",
        .uint64: "uint64", .int64: "int64", .float32: "float", .float64: "double",
    ]

    public struct Options: Sendable {
        public var storedType: VoxelType? = nil
        public var gzip = true
        /// Extra `key:=value` pairs (Slicer's segmentation fields).
        public var keyValues: [(String, String)] = []
        public init() {}
    }

    public static func write(_ image: MedicalImage, to path: String, options: Options = Options()) throws {
        let type = ElementConversion.writableType(of: image, requested: options.storedType)
        guard let name = names[type] else { throw FormatError.cannotRepresent(path: path, reason: "NRRD cannot store \(type.rawValue)") }
        let lower = path.lowercased()
        let detached = lower.hasSuffix(".nhdr")
        guard detached || lower.hasSuffix(".nrrd") else { throw FormatError.unsupported(path: path, reason: "an NRRD file name ends in .nrrd or .nhdr") }
        let s = image.shape
        let space = s.z > 1 ? [s.x, s.y, s.z] : [s.x, s.y, 1]
        let channels = s.t
        var voxels = image.voxels
        if channels > 1 {
            let n = s.spatialCount
            voxels = [Float](repeating: 0, count: n * channels)
            for i in 0..<n { for c in 0..<channels { voxels[i * channels + c] = image.voxels[c * n + i] } }
        }
        var data = try ElementConversion.encode(voxels, as: type, path: path)
        if options.gzip { data = try Zlib.deflate(data, gzip: true, path: path) }
        let a = image.affine
        func vector(_ column: Int) -> String {
            "(" + (0..<3).map { r in format((r < 2 ? -1 : 1) * a[r, column]) }.joined(separator: ",") + ")"
        }
        let colour = image.info.components == .color
        var header = "NRRD0004\n# Complete NRRD file format specification at:\n# http://teem.sourceforge.net/nrrd/format.html\n"
        header += "type: \(name)\ndimension: \((channels > 1 ? 1 : 0) + 3)\nspace: left-posterior-superior\n"
        header += "sizes: " + ((channels > 1 ? [channels] : []) + space).map(String.init).joined(separator: " ") + "\n"
        header += "space directions: " + (channels > 1 ? "none " : "") + (0..<3).map(vector).joined(separator: " ") + "\n"
        header += "kinds: " + (channels > 1 ? (colour && channels == 3 ? "RGB-color " : colour && channels == 4 ? "RGBA-color " : "vector ") : "") + "domain domain domain\n"
        header += "endian: little\nencoding: \(options.gzip ? "gzip" : "raw")\n"
        header += "space origin: (" + (0..<3).map { r in format((r < 2 ? -1 : 1) * a[r, 3]) }.joined(separator: ",") + ")\n"
        for (k, v) in options.keyValues { header += "\(k):=\(v)\n" }
        if detached {
            let dataName = ((path as NSString).lastPathComponent as NSString).deletingPathExtension + (options.gzip ? ".raw.gz" : ".raw")
            header += "data file: \(dataName)\n"
            let dataPath = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(dataName)
            try FileIO.writeAtomically(data, to: dataPath)
            try FileIO.writeAtomically(Array(header.utf8), to: path)
        } else {
            try FileIO.writeAtomically(Array((header + "\n").utf8) + data, to: path)
        }
    }

    /// Shortest text that reads back as the same Double ("0" for zero, no "-0").
    static func format(_ v: Double) -> String { v == 0 ? "0" : "\(v)" }
}
