import Foundation
import MedImage

/// Reads NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): every integer and float type, booleans, both byte
/// orders, C and Fortran order. Structured and object arrays are refused.
public enum NPYReader {
    static let magic: [UInt8] = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]  // \x93NUMPY

    public static func read(_ path: String, options: ReadOptions = .default) throws -> NDArray {
        let bytes = try FileIO.readAll(path, limit: options.maxBytes + (1 << 20))
        return try decode(bytes, path: path, options: options)
    }

    /// Parses the header and returns (dtype, big-endian, shape, fortran order, data offset).
    static func parseHeader(_ bytes: [UInt8], path: String) throws -> (VoxelType, Bool, [Int], Bool, Int) {
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw FormatError.unsupported(path: path, reason: "not a .npy file (bad magic)")
        }
        let major = bytes[6]
        var headerLength: Int
        var start: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            start = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw FormatError.truncated(path: path, reason: "header length is cut off") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            start = 12
        default:
            throw FormatError.unsupported(path: path, reason: ".npy format version \(major) is not supported (1-3 are)")
        }
        guard start + headerLength <= bytes.count else {
            throw FormatError.truncated(path: path, reason: "header says \(headerLength) bytes; the file ends first")
        }
        guard let text = String(bytes: bytes[start..<(start + headerLength)], encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw FormatError.invalidHeader(path: path, reason: "header is not text")
        }
        func value(_ key: String) -> Substring? {
            for q in ["'", "\""] {
                if let r = text.range(of: "\(q)\(key)\(q)") {
                    var rest = text[r.upperBound...].drop { $0 == " " }
                    guard rest.first == ":" else { continue }
                    rest = rest.dropFirst().drop { $0 == " " }
                    return rest
                }
            }
            return nil
        }
        guard let d = value("descr") else { throw FormatError.invalidHeader(path: path, reason: "header has no 'descr'") }
        guard let q = d.first, q == "'" || q == "\"", let close = d.dropFirst().firstIndex(of: q) else {
            throw FormatError.unsupported(path: path, reason: "structured dtype \(d.prefix(40)) is not supported")
        }
        let descr = String(d[d.index(after: d.startIndex)..<close])
        guard let fo = value("fortran_order") else { throw FormatError.invalidHeader(path: path, reason: "header has no 'fortran_order'") }
        let fortran: Bool
        if fo.hasPrefix("True") { fortran = true } else if fo.hasPrefix("False") { fortran = false } else {
            throw FormatError.invalidHeader(path: path, reason: "fortran_order is neither True nor False")
        }
        guard let sh = value("shape"), sh.first == "(", let end = sh.firstIndex(of: ")") else {
            throw FormatError.invalidHeader(path: path, reason: "header has no 'shape' tuple")
        }
        let inner = sh[sh.index(after: sh.startIndex)..<end]
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "L"))
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0 else {
                throw FormatError.invalidHeader(path: path, reason: "shape entry '\(t)' is not a non-negative integer")
            }
            shape.append(v)
        }
        guard descr.count >= 2 else { throw FormatError.invalidHeader(path: path, reason: "dtype '\(descr)'") }
        let order = descr.first!
        let code = String(descr.dropFirst())
        let big = order == ">"
        let types: [String: VoxelType] = [
            "b1": .bool, "u1": .uint8, "i1": .int8, "u2": .uint16, "i2": .int16, "u4": .uint32, "i4": .int32,
            "u8": .uint64, "i8": .int64, "f2": .float16, "f4": .float32, "f8": .float64,
        ]
        guard "<>|=".contains(order), let type = types[code] else {
            throw FormatError.unsupported(path: path, reason: "dtype '\(descr)' is not supported")
        }
        return (type, big, shape, fortran, start + headerLength)
    }

    public static func decode(_ bytes: [UInt8], path: String, options: ReadOptions = .default) throws -> NDArray {
        let (type, big, shape, fortran, offset) = try parseHeader(bytes, path: path)
        guard let count = checkedProduct(shape.map(Int64.init)) else {
            throw FormatError.tooLarge(path: path, bytes: Int64.max, limit: options.maxBytes)
        }
        try options.check(elements: count, bytesPerElement: type.byteCount, path: path)
        let need = Int(count) * type.byteCount
        guard bytes.count - offset >= need else {
            throw FormatError.truncated(path: path, reason: "data needs \(need) bytes; the file has \(bytes.count - offset)")
        }
        var storage = Array(bytes[offset..<(offset + need)])
        if big { ElementConversion.swapBytes(&storage, elementSize: type.byteCount) }
        return NDArray(dtype: type, shape: shape, fortranOrder: fortran, storage: storage)
    }
}

/// Writes `.npy` (version 1.0, or 2.0 when the header needs it), little-endian.
public enum NPYWriter {
    static let codes: [VoxelType: String] = [
        .bool: "|b1", .uint8: "|u1", .int8: "|i1", .uint16: "<u2", .int16: "<i2", .uint32: "<u4", .int32: "<i4",
        .uint64: "<u8", .int64: "<i8", .float16: "<f2", .float32: "<f4", .float64: "<f8",
    ]

    public static func encode(_ array: NDArray, path: String = "<memory>") throws -> [UInt8] {
        guard let descr = codes[array.dtype] else {
            throw FormatError.cannotRepresent(path: path, reason: ".npy has no plain dtype for \(array.dtype.rawValue)")
        }
        let shapeText = array.shape.count == 1 ? "(\(array.shape[0]),)" : "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': \(array.fortranOrder ? "True" : "False"), 'shape': \(shapeText), }"
        var prefixLength = 10
        var version: UInt8 = 1
        if header.utf8.count + 11 > 65535 { prefixLength = 12; version = 2 }
        let total = prefixLength + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var out = NPYReader.magic + [version, 0]
        let n = header.utf8.count
        if version == 1 { out += [UInt8(n & 0xff), UInt8(n >> 8)] } else {
            out += [UInt8(n & 0xff), UInt8((n >> 8) & 0xff), UInt8((n >> 16) & 0xff), UInt8(n >> 24)]
        }
        out += Array(header.utf8)
        out += array.storage
        return out
    }

    public static func write(_ array: NDArray, to path: String) throws {
        try FileIO.writeAtomically(try encode(array, path: path), to: path)
    }

    /// Writes a Float32 matrix (rows x columns, row-major), e.g. embeddings.
    public static func write(matrix: [Float], rows: Int, columns: Int, to path: String) throws {
        try write(NDArray(float32: matrix, shape: [rows, columns], fortranOrder: false), to: path)
    }
}

extension NPYReader {
    /// A 2-D array (N, D) as Float32 rows, read through a memory mapping of the file: the file is not read into a
    /// buffer first; its elements are converted once, from the mapped pages, into the result (both cores for large
    /// arrays). Peak memory is the matrix itself, e.g. 1 GB for 1,000,000 x 256 float32, where ``read(_:options:)``
    /// followed by `floats()` holds three copies. Any numeric dtype and either byte order; Fortran order is transposed.
    /// What the embeddings-reading commands (`select`, `sites`, experiments, `embed-merge`) use.
    public static func readMatrix(_ path: String, options: ReadOptions = .default) throws -> (values: [Float], rows: Int, columns: Int) {
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            _ = try FileIO.readAll(path, limit: 0)     // the same typed error (missing, unreadable) as other readers
            throw FormatError.unreadable(path: path, reason: "cannot open")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FormatError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw FormatError.unreadable(path: path, reason: "is a folder, not a file") }
        let size = Int(st.st_size)
        guard size >= 10 else { throw FormatError.truncated(path: path, reason: "\(size) bytes: shorter than a .npy header") }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw FormatError.unreadable(path: path, reason: "cannot map the file: \(String(cString: strerror(errno)))")
        }
        defer { munmap(base, size) }
        _ = madvise(base, size, MADV_SEQUENTIAL)
        let bytes = UnsafeRawBufferPointer(start: base, count: size)
        let (type, big, shape, fortran, offset) = try parseHeader(Array(bytes.prefix(min(size, 1 << 20))), path: path)
        guard shape.count == 2 else {
            throw FormatError.unsupported(path: path, reason: "embeddings must be a 2-D array (N, D); this one has shape \(shape)")
        }
        guard shape[0] > 0, shape[1] > 0 else {
            throw FormatError.unsupported(path: path, reason: shape[0] == 0 ? "the embedding has no rows (shape (0, \(shape[1]))): no case was embedded"
                                          : "the embedding's rows have no dimensions (shape (\(shape[0]), 0))")
        }
        guard type != .bool else { throw FormatError.unsupported(path: path, reason: "boolean arrays are not embeddings") }
        let (n, d) = (shape[0], shape[1])
        guard let count = checkedProduct([Int64(n), Int64(d)]) else { throw FormatError.tooLarge(path: path, bytes: Int64.max, limit: options.maxBytes) }
        try options.check(elements: count, bytesPerElement: 4, path: path)
        let need = n * d * type.byteCount
        guard size - offset >= need else { throw FormatError.truncated(path: path, reason: "data needs \(need) bytes; the file has \(size - offset)") }
        var values: [Float]
        let data = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + need)])
        if big && type.byteCount > 1 {
            var swapped = Array(data)
            ElementConversion.swapBytes(&swapped, elementSize: type.byteCount)
            values = swapped.withUnsafeBytes { ElementConversion.toFloat($0, type: type, count: n * d, slope: nil, inter: 0) }
        } else {
            // In chunks of about 64 MB of the file, each released from memory once converted (MADV_DONTNEED on a
            // read-only private mapping drops the pages; the file is unchanged), so that the mapping never holds
            // more than one chunk besides the result.
            values = []
            values.reserveCapacity(n * d)
            let chunkElements = max(1, (64 << 20) / type.byteCount / d) * d
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            var done = 0
            while done < n * d {
                let k = min(chunkElements, n * d - done)
                let lo = offset + done * type.byteCount, hi = lo + k * type.byteCount
                values += ElementConversion.toFloat(UnsafeRawBufferPointer(rebasing: bytes[lo..<hi]), type: type, count: k, slope: nil, inter: 0)
                let releaseEnd = hi / page * page
                if releaseEnd > 0 { _ = madvise(base, releaseEnd, MADV_DONTNEED) }
                done += k
            }
        }
        if fortran {
            var t = [Float](repeating: 0, count: n * d)
            for i in 0..<n { for j in 0..<d { t[i * d + j] = values[j * n + i] } }
            values = t
        }
        return (values, n, d)
    }
}
