/// The element type a file stores voxels in. Images are worked on as Float32; this records what was on disk so that
/// a round trip can write the same type back.
public enum VoxelType: String, Sendable, Codable, CaseIterable {
    case bool, uint8, int8, int16, uint16, int32, uint32, int64, uint64, float16, float32, float64
    /// Three interleaved uint8 samples per voxel (NIfTI DT_RGB24).
    case rgb24
    /// Four interleaved uint8 samples per voxel (NIfTI DT_RGBA32).
    case rgba32

    /// Bytes for one element (for rgb24/rgba32: one whole voxel).
    public var byteCount: Int {
        switch self {
        case .bool, .uint8, .int8: 1
        case .int16, .uint16, .float16: 2
        case .int32, .uint32, .float32: 4
        case .int64, .uint64, .float64: 8
        case .rgb24: 3
        case .rgba32: 4
        }
    }

    public var isInteger: Bool {
        switch self {
        case .float16, .float32, .float64: false
        default: true
        }
    }

    public var isSigned: Bool {
        switch self {
        case .int8, .int16, .int32, .int64, .float16, .float32, .float64: true
        default: false
        }
    }

    /// The representable range for integer types (as Double), nil for floating point.
    public var integerRange: ClosedRange<Double>? {
        switch self {
        case .bool: 0...1
        case .uint8, .rgb24, .rgba32: 0...255
        case .int8: -128...127
        case .int16: -32768...32767
        case .uint16: 0...65535
        case .int32: -2147483648...2147483647
        case .uint32: 0...4294967295
        case .int64: -9.223372036854775808e18...9.223372036854775807e18
        case .uint64: 0...1.8446744073709551615e19
        case .float16, .float32, .float64: nil
        }
    }
}
