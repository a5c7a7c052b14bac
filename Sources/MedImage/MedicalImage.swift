import Foundation

/// Voxel-grid dimensions: x (i), y (j), z (k) and a fourth axis for time points or channels.
public struct ImageShape: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    public var x: Int
    public var y: Int
    public var z: Int
    /// Time points or channels (RGB images have 3, RGBA 4).
    public var t: Int

    public init(_ x: Int, _ y: Int, _ z: Int = 1, _ t: Int = 1) {
        precondition(x > 0 && y > 0 && z > 0 && t > 0, "image dimensions must be positive, got \(x)x\(y)x\(z)x\(t)")
        self.x = x; self.y = y; self.z = z; self.t = t
    }

    /// Voxels in one volume (x * y * z).
    public var spatialCount: Int { x * y * z }
    /// All elements (x * y * z * t).
    public var count: Int { x * y * z * t }
    /// Dimensions as an array with trailing 1s removed beyond the first two (e.g. [256, 256] or [64, 64, 30, 3]).
    public var dimensions: [Int] {
        var d = [x, y, z, t]
        while d.count > 2 && d.last == 1 { d.removeLast() }
        return d
    }

    public var description: String { dimensions.map(String.init).joined(separator: "x") }
}

/// What the fourth axis means.
public enum ComponentKind: String, Sendable, Codable {
    /// A single scalar per voxel, possibly several time points.
    case scalar
    /// Colour samples (RGB or RGBA) or gray+alpha, one per slot of the fourth axis.
    case color
}

/// Facts about where an image came from, kept so that writers can reproduce it and reports can describe it.
public struct ImageInfo: Sendable, Equatable, Codable {
    /// Element type on disk.
    public var storedType: VoxelType
    /// Format name as reported by `inspect` ("nifti1", "nifti2", "png", "metaimage", "npy", ...).
    public var format: String?
    /// False when the file gave no physical spacing (a PNG without pHYs in metres): spacing is then 1 and unknown.
    public var spacingIsKnown: Bool
    /// Whether the fourth axis is time or colour.
    public var components: ComponentKind
    /// Free text from the header (NIfTI descrip).
    public var description: String
    /// NIfTI qform/sform codes when the image came from NIfTI (0 otherwise).
    public var qformCode: Int
    public var sformCode: Int
    /// Seconds between time points when known (NIfTI pixdim[4] converted to s).
    public var timeStep: Double?

    public init(storedType: VoxelType = .float32, format: String? = nil, spacingIsKnown: Bool = true,
                components: ComponentKind = .scalar, description: String = "", qformCode: Int = 0, sformCode: Int = 0,
                timeStep: Double? = nil) {
        self.storedType = storedType
        self.format = format
        self.spacingIsKnown = spacingIsKnown
        self.components = components
        self.description = description
        self.qformCode = qformCode
        self.sformCode = sformCode
        self.timeStep = timeStep
    }
}

/// An image: Float32 voxels, a voxel-to-world affine in RAS+ mm, and a kind.
///
/// Storage order is NIfTI's: index = i + nx * (j + ny * (k + nz * t)). Spacing, origin and orientation derive
/// from ``affine``. A ``Kind/labelMap`` holds integer labels and is always resampled with nearest neighbour.
public struct MedicalImage: Sendable, Equatable {
    /// Scalar intensities, or an integer label map.
    public enum Kind: String, Sendable, Codable {
        case scalar
        case labelMap
    }

    public var kind: Kind
    public private(set) var shape: ImageShape
    /// Voxels in storage order. Invariant: `voxels.count == shape.count` (change both with ``reshape(to:voxels:)``).
    public var voxels: [Float]
    public var affine: Affine
    public var info: ImageInfo

    public init(shape: ImageShape, voxels: [Float], affine: Affine = .identity, kind: Kind = .scalar,
                info: ImageInfo = ImageInfo()) {
        precondition(voxels.count == shape.count, "voxel count \(voxels.count) does not match shape \(shape)")
        self.shape = shape
        self.voxels = voxels
        self.affine = affine
        self.kind = kind
        self.info = info
    }

    /// A zero-filled image.
    public init(shape: ImageShape, affine: Affine = .identity, kind: Kind = .scalar, info: ImageInfo = ImageInfo()) {
        self.init(shape: shape, voxels: [Float](repeating: 0, count: shape.count), affine: affine, kind: kind, info: info)
    }

    /// Voxel size in mm along i, j, k.
    public var spacing: [Double] { affine.spacing }
    /// World position of voxel (0, 0, 0) in mm.
    public var origin: [Double] { affine.origin }
    /// Axis codes such as "RAS" (NiBabel's `aff2axcodes`).
    public var orientationCodes: String { affine.orientationCodes }
    /// True for a single-slice image (nz == 1).
    public var is2D: Bool { shape.z == 1 }

    @inline(__always)
    public func index(_ i: Int, _ j: Int, _ k: Int = 0, _ t: Int = 0) -> Int {
        i + shape.x * (j + shape.y * (k + shape.z * t))
    }

    public subscript(i: Int, j: Int, k: Int = 0, t: Int = 0) -> Float {
        get { voxels[index(i, j, k, t)] }
        set { voxels[index(i, j, k, t)] = newValue }
    }

    /// Replaces shape and voxels together (the only way to change the shape).
    public mutating func reshape(to newShape: ImageShape, voxels newVoxels: [Float]) {
        precondition(newVoxels.count == newShape.count, "voxel count \(newVoxels.count) does not match shape \(newShape)")
        shape = newShape
        voxels = newVoxels
    }

    /// Minimum, maximum and mean of the finite voxels (NaN and infinities ignored); nil when none is finite.
    public var statistics: (min: Float, max: Float, mean: Double)? {
        var lo = Float.infinity, hi = -Float.infinity
        var sum = 0.0
        var n = 0
        voxels.withUnsafeBufferPointer { buf in
            var blockSum: Float = 0
            var blockCount = 0
            for v in buf where v.isFinite {
                if v < lo { lo = v }
                if v > hi { hi = v }
                blockSum += v
                blockCount += 1
                if blockCount == 4096 { sum += Double(blockSum); blockSum = 0; n += blockCount; blockCount = 0 }
            }
            sum += Double(blockSum)
            n += blockCount
        }
        return n == 0 ? nil : (lo, hi, sum / Double(n))
    }

    /// How many voxels are NaN, +infinity and -infinity (``statistics`` covers the finite ones only).
    public var nonFiniteCounts: (nan: Int, positiveInfinity: Int, negativeInfinity: Int) {
        var nan = 0, pos = 0, neg = 0
        voxels.withUnsafeBufferPointer { buf in
            for v in buf where !v.isFinite {
                if v.isNaN { nan += 1 } else if v > 0 { pos += 1 } else { neg += 1 }
            }
        }
        return (nan, pos, neg)
    }

    /// Sorted distinct values (for label maps: the labels present, background included).
    public var distinctValues: [Float] {
        Array(Set(voxels)).sorted()
    }
}
