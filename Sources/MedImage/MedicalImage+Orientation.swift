import Foundation
import MedFoundation

extension MedicalImage {
    /// The image with its voxel axes permuted and flipped so that they run along `codes` (default "RAS"), like
    /// NiBabel's `as_closest_canonical`: no interpolation, the affine updated so every voxel keeps its world position.
    ///
    /// Each target axis takes the source axis whose closest world direction (``Orientation``) it names; an image
    /// whose orientation is already `codes` is returned unchanged. Fails when the affine has a degenerate axis.
    public func reoriented(to codes: String = "RAS") throws -> MedicalImage {
        guard let target = Orientation(codes: codes) else {
            throw ImageError.invalidArgument("orientation codes must name R/L, A/P and S/I once each, got '\(codes)'")
        }
        let current = Orientation(affine: affine)
        guard !current.axes.contains(-1) else {
            throw ImageError.invalidArgument("the affine has a degenerate axis; orientation is undefined")
        }
        if current == target { return self }
        let sizes = [shape.x, shape.y, shape.z]
        // For each target axis b: the source axis a and whether it is reversed.
        var source = [Int](repeating: 0, count: 3)
        var reversed = [Bool](repeating: false, count: 3)
        for b in 0..<3 {
            let a = current.axes.firstIndex(of: target.axes[b])!
            source[b] = a
            reversed[b] = current.flips[a] != target.flips[b]
        }
        let newSizes = source.map { sizes[$0] }
        let newShape = ImageShape(newSizes[0], newSizes[1], newSizes[2], shape.t)
        // T maps a new index to the old index: old_a = reversed ? (n_a - 1 - new_b) : new_b.
        var t = Affine(rowMajor: [Double](repeating: 0, count: 16))
        t[3, 3] = 1
        for b in 0..<3 {
            let a = source[b]
            t[a, b] = reversed[b] ? -1 : 1
            if reversed[b] { t[a, 3] = Double(sizes[a] - 1) }
        }
        let strides = [1, shape.x, shape.x * shape.y]
        var out = [Float](repeating: 0, count: shape.count)
        let volume = shape.spatialCount
        voxels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for c in 0..<shape.t {
                    var n = c * volume
                    for k in 0..<newSizes[2] {
                        for j in 0..<newSizes[1] {
                            for i in 0..<newSizes[0] {
                                let idx = [i, j, k]
                                var o = c * volume
                                for b in 0..<3 {
                                    let a = source[b]
                                    let v = reversed[b] ? sizes[a] - 1 - idx[b] : idx[b]
                                    o += v * strides[a]
                                }
                                dst[n] = src[o]
                                n += 1
                            }
                        }
                    }
                }
            }
        }
        var result = self
        result.reshape(to: newShape, voxels: out)
        result.affine = affine * t
        return result
    }
}

/// Errors of image operations: a bad argument or geometry a caller can fix, or a result larger than the memory limit.
public enum ImageError: MedError, Sendable, Equatable {
    case invalidArgument(String)
    case geometryMismatch(String)
    /// `what` would need `bytes`, above `limit` (``MemoryLimit``).
    case tooLarge(what: String, bytes: Int64, limit: Int64)

    public var path: String { "" }
    public var reason: String {
        switch self {
        case .invalidArgument(let s): return s
        case .geometryMismatch(let s): return s
        case .tooLarge(let what, let bytes, let limit):
            return "\(what) needs \(MemoryLimit.describe(bytes)), above the memory limit of \(MemoryLimit.describe(limit)) "
                + "(raise it with --max-memory MiB or MEDSELECT_MAX_BYTES, or choose a coarser spacing or smaller shape)"
        }
    }
}
