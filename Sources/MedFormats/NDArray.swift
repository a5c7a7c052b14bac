import Foundation
import MedCompute
import MedImage

/// An n-dimensional array of one element type, in host byte order: what `.npy` files hold, and what readers give
/// when the exact on-disk values matter (conversion to `.npy`, conformance checks).
///
/// `shape` and `fortranOrder` follow NumPy: with `fortranOrder` the first index varies fastest in `storage`.
public struct NDArray: Sendable, Equatable {
    public var dtype: VoxelType
    public var shape: [Int]
    public var fortranOrder: Bool
    /// Elements in host (little-endian) byte order; `storage.count == count * dtype.byteCount`.
    public var storage: [UInt8]

    public init(dtype: VoxelType, shape: [Int], fortranOrder: Bool, storage: [UInt8]) {
        precondition(shape.reduce(1, *) * dtype.byteCount == storage.count,
                     "storage of \(storage.count) bytes does not hold \(shape) elements of \(dtype)")
        self.dtype = dtype
        self.shape = shape
        self.fortranOrder = fortranOrder
        self.storage = storage
    }

    /// A float32 array from values.
    public init(float32 values: [Float], shape: [Int], fortranOrder: Bool) {
        precondition(shape.reduce(1, *) == values.count, "\(values.count) values do not fill shape \(shape)")
        self.dtype = .float32
        self.shape = shape
        self.fortranOrder = fortranOrder
        self.storage = values.withUnsafeBytes { Array($0) }
    }

    public var count: Int { shape.reduce(1, *) }

    /// Elements converted to Float32 in storage order (`value * slope + inter` when a slope is given, in Float64).
    public func floats(slope: Double? = nil, inter: Double = 0) -> [Float] {
        storage.withUnsafeBytes { ElementConversion.toFloat($0, type: dtype, count: count, slope: slope, inter: inter) }
    }

    /// Elements as Float64 in storage order (exact for every integer type up to 2^53).
    public func doubles() -> [Double] {
        storage.withUnsafeBytes { ElementConversion.toDouble($0, type: dtype, count: count) }
    }
}

/// Converting between on-disk element types and the Float32 working type, on contiguous buffers, using both cores
/// for large arrays.
enum ElementConversion {
    /// Arrays above this many elements are converted in parallel chunks.
    static let parallelThreshold = 1 << 19

    static func parallelChunks(_ count: Int, minimum: Int = parallelThreshold, _ body: (Range<Int>) -> Void) {
        if count < minimum {
            body(0..<count)
            return
        }
        parallelRanges(count, chunk: (count + 3) / 4, body)
    }

    static func toFloat(_ raw: UnsafeRawBufferPointer, type: VoxelType, count: Int, slope: Double?, inter: Double) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { out, initialized in
            let dst = out.baseAddress!
            convert(raw, type: type, count: count, slope: slope, inter: inter, into: dst)
            initialized = count
        }
    }

    /// Converts `count` elements of `type` at `raw` into `dst` (`dst` may alias `raw` only for float32 without slope).
    static func convert(_ raw: UnsafeRawBufferPointer, type: VoxelType, count: Int, slope: Double?, inter: Double,
                        into dst: UnsafeMutablePointer<Float>) {
        let src = raw.baseAddress!
        func run<T>(_ t: T.Type, _ f: @escaping (T) -> Double) where T: BinaryInteger {
            let p = src.assumingMemoryBound(to: T.self)
            if let s = slope {
                parallelChunks(count) { r in for i in r { dst[i] = Float(f(p[i]) * s + inter) } }
            } else {
                parallelChunks(count) { r in for i in r { dst[i] = Float(f(p[i])) } }
            }
        }
        switch type {
        case .bool, .uint8, .rgb24, .rgba32:
            let p = src.assumingMemoryBound(to: UInt8.self)
            if let s = slope { parallelChunks(count) { r in for i in r { dst[i] = Float(Double(p[i]) * s + inter) } } }
            else { parallelChunks(count) { r in for i in r { dst[i] = Float(p[i]) } } }
        case .int8: run(Int8.self) { Double($0) }
        case .int16:
            let p = src.assumingMemoryBound(to: Int16.self)
            if let s = slope { parallelChunks(count) { r in for i in r { dst[i] = Float(Double(p[i]) * s + inter) } } }
            else { parallelChunks(count) { r in for i in r { dst[i] = Float(p[i]) } } }
        case .uint16:
            let p = src.assumingMemoryBound(to: UInt16.self)
            if let s = slope { parallelChunks(count) { r in for i in r { dst[i] = Float(Double(p[i]) * s + inter) } } }
            else { parallelChunks(count) { r in for i in r { dst[i] = Float(p[i]) } } }
        case .int32: run(Int32.self) { Double($0) }
        case .uint32: run(UInt32.self) { Double($0) }
        case .int64: run(Int64.self) { Double($0) }
        case .uint64: run(UInt64.self) { Double($0) }
        case .float16:
            let p = src.assumingMemoryBound(to: UInt16.self)
            parallelChunks(count) { r in
                for i in r {
                    let v = Double(Float(Float16(bitPattern: p[i])))
                    dst[i] = Float(slope.map { v * $0 + inter } ?? v)
                }
            }
        case .float32:
            let p = src.assumingMemoryBound(to: Float.self)
            if let s = slope { parallelChunks(count) { r in for i in r { dst[i] = Float(Double(p[i]) * s + inter) } } }
            else if UnsafeRawPointer(dst) != src { parallelChunks(count) { r in (dst + r.lowerBound).update(from: p + r.lowerBound, count: r.count) } }
        case .float64:
            let p = src.assumingMemoryBound(to: Double.self)
            if let s = slope { parallelChunks(count) { r in for i in r { dst[i] = Float(p[i] * s + inter) } } }
            else { parallelChunks(count) { r in for i in r { dst[i] = Float(p[i]) } } }
        }
    }

    static func toDouble(_ raw: UnsafeRawBufferPointer, type: VoxelType, count: Int) -> [Double] {
        let src = raw.baseAddress!
        func load<T>(_ t: T.Type, _ f: (T) -> Double) -> [Double] {
            let p = src.assumingMemoryBound(to: T.self)
            return (0..<count).map { f(p[$0]) }
        }
        switch type {
        case .bool, .uint8, .rgb24, .rgba32: return load(UInt8.self) { Double($0) }
        case .int8: return load(Int8.self) { Double($0) }
        case .int16: return load(Int16.self) { Double($0) }
        case .uint16: return load(UInt16.self) { Double($0) }
        case .int32: return load(Int32.self) { Double($0) }
        case .uint32: return load(UInt32.self) { Double($0) }
        case .int64: return load(Int64.self) { Double($0) }
        case .uint64: return load(UInt64.self) { Double($0) }
        case .float16: return load(UInt16.self) { Double(Float(Float16(bitPattern: $0))) }
        case .float32: return load(Float.self) { Double($0) }
        case .float64: return load(Double.self) { $0 }
        }
    }

    /// Encodes Float32 values as `type` (host byte order). Integer types round to nearest and must fit exactly:
    /// values outside the type's range or not integral (after rounding by more than 1e-3) are refused, so that a
    /// writer never stores a silently wrong value.
    /// The integer or float type a writer stores `image` as: `requested` when given, else the image's own type
    /// (colour and bool as uint8, float16 as float32); a label map without a request as uint8 when its labels fit,
    /// else int16.
    static func writableType(of image: MedicalImage, requested: VoxelType?) -> VoxelType {
        var type = requested ?? image.info.storedType
        if type == .rgb24 || type == .rgba32 || type == .bool { type = .uint8 }
        if type == .float16 { type = .float32 }
        if image.kind == .labelMap && requested == nil {
            let s = image.statistics
            type = (s?.min ?? 0) >= 0 && (s?.max ?? 0) <= 255 ? .uint8 : .int16
        }
        return type
    }

    static func encode(_ values: [Float], as type: VoxelType, path: String) throws -> [UInt8] {
        let n = values.count
        var out = [UInt8](repeating: 0, count: n * (type == .rgb24 || type == .rgba32 ? 1 : type.byteCount))
        if let range = type.integerRange {
            var bad: Float? = nil
            for v in values where !(v.isFinite && Double(v) >= range.lowerBound - 0.5 && Double(v) <= range.upperBound + 0.5) {
                bad = v; break
            }
            if let b = bad {
                throw FormatError.cannotRepresent(path: path, reason: "value \(b) does not fit \(type.rawValue) "
                    + "(range \(Int64(range.lowerBound))...\(UInt64(range.upperBound))); rescale or choose another type")
            }
        }
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { raw in
                let s = src.baseAddress!
                // Through Int64 (one cvttss2si; the range was checked above), not the generic
                // BinaryInteger-from-Float init, which decomposes every value and took half of a conversion's time;
                // a whole value needs no rounding (roundf is a library call on baseline x86-64).
                func put<T: FixedWidthInteger>(_ t: T.Type) {
                    let d = raw.baseAddress!.assumingMemoryBound(to: T.self)
                    if T.self == UInt64.self {
                        let d = raw.baseAddress!.assumingMemoryBound(to: UInt64.self)
                        parallelChunks(n) { r in for i in r { d[i] = UInt64(s[i].rounded()) } }
                    } else {
                        // Whole values (nearly always: integer images) skip the rounding call.
                        parallelChunks(n) { r in
                            for i in r {
                                let v = s[i], t = Int64(v)
                                d[i] = T(truncatingIfNeeded: Float(t) == v ? t : Int64(v.rounded()))
                            }
                        }
                    }
                }
                switch type {
                case .bool: put(UInt8.self)
                case .uint8, .rgb24, .rgba32: put(UInt8.self)
                case .int8: put(Int8.self)
                case .int16: put(Int16.self)
                case .uint16: put(UInt16.self)
                case .int32: put(Int32.self)
                case .uint32: put(UInt32.self)
                case .int64: put(Int64.self)
                case .uint64: put(UInt64.self)
                case .float16:
                    let d = raw.baseAddress!.assumingMemoryBound(to: UInt16.self)
                    for i in 0..<n { d[i] = Float16(s[i]).bitPattern }
                case .float32:
                    raw.baseAddress!.copyMemory(from: s, byteCount: n * 4)
                case .float64:
                    let d = raw.baseAddress!.assumingMemoryBound(to: Double.self)
                    parallelChunks(n) { r in for i in r { d[i] = Double(s[i]) } }
                }
            }
        }
        return out
    }

    /// Reverses the bytes of each `size`-byte element in place.
    static func swapBytes(_ bytes: inout [UInt8], elementSize size: Int) {
        guard size > 1 else { return }
        bytes.withUnsafeMutableBytes { raw in
            let n = raw.count / size
            switch size {
            case 2:
                let p = raw.baseAddress!.assumingMemoryBound(to: UInt16.self)
                for i in 0..<n { p[i] = p[i].byteSwapped }
            case 4:
                let p = raw.baseAddress!.assumingMemoryBound(to: UInt32.self)
                for i in 0..<n { p[i] = p[i].byteSwapped }
            case 8:
                let p = raw.baseAddress!.assumingMemoryBound(to: UInt64.self)
                for i in 0..<n { p[i] = p[i].byteSwapped }
            default:
                for i in 0..<n {
                    var a = i * size, b = a + size - 1
                    while a < b { raw.swapAt(a, b); a += 1; b -= 1 }
                }
            }
        }
    }
}
