import Foundation

/// Exact Euclidean distance transforms with anisotropic spacing (Felzenszwalb & Huttenlocher 2012, "Distance
/// Transforms of Sampled Functions"): the squared distance is separable, so one linear-time lower-envelope pass per
/// axis (weighted by that axis' spacing squared) gives exact results in O(N).
public enum DistanceTransform {
    /// Squared distance (mm^2) from every voxel to the nearest voxel where `isFeature` is true; +infinity everywhere
    /// when there is no feature. `dims` = (nx, ny, nz), x fastest.
    public static func squaredDistance(toFeatures isFeature: [Bool], dims: [Int], spacing: [Double]) -> [Double] {
        precondition(dims.count == 3 && isFeature.count == dims[0] * dims[1] * dims[2], "dims do not match the mask")
        var f = isFeature.map { $0 ? 0.0 : Double.infinity }
        let (nx, ny, nz) = (dims[0], dims[1], dims[2])
        for axis in 0..<3 where dims[axis] > 1 || axis == 0 {
            let n = dims[axis]
            if n == 1 { continue }
            let w = spacing[axis] * spacing[axis]
            let stride = axis == 0 ? 1 : (axis == 1 ? nx : nx * ny)
            let lines = axis == 0 ? ny * nz : (axis == 1 ? nx * nz : nx * ny)
            f.withUnsafeMutableBufferPointer { buf in
                let base = buf.baseAddress!
                parallelFor(lines) { line in
                    let start: Int
                    switch axis {
                    case 0: start = line * nx
                    case 1: start = (line % nx) + (line / nx) * nx * ny
                    default: start = line
                    }
                    var g = [Double](repeating: 0, count: n)
                    for i in 0..<n { g[i] = base[start + i * stride] }
                    let d = envelope(g, weight: w)
                    for i in 0..<n { base[start + i * stride] = d[i] }
                }
            }
        }
        return f
    }

    /// 1-D: d(p) = min_q (w (p - q)^2 + f(q)).
    static func envelope(_ f: [Double], weight w: Double) -> [Double] {
        let n = f.count
        var d = [Double](repeating: .infinity, count: n)
        var v = [Int](repeating: 0, count: n)       // parabola vertices
        var z = [Double](repeating: 0, count: n + 1) // boundaries
        var k = -1
        for q in 0..<n where f[q].isFinite {
            if k < 0 {
                k = 0; v[0] = q; z[0] = -.infinity; z[1] = .infinity
                continue
            }
            var s: Double
            repeat {
                let p = v[k]
                s = ((f[q] + w * Double(q * q)) - (f[p] + w * Double(p * p))) / (2 * w * Double(q - p))
                if s <= z[k] { k -= 1 } else { break }
            } while k >= 0
            k += 1
            v[k] = q; z[k] = s; z[k + 1] = .infinity
        }
        if k < 0 { return d }
        var j = 0
        for q in 0..<n {
            while z[j + 1] < Double(q) { j += 1 }
            let p = v[j]
            d[q] = w * Double((q - p) * (q - p)) + f[p]
        }
        return d
    }

    /// SciPy's `distance_transform_edt(image, sampling=spacing)`: for every non-zero voxel the distance (mm) to the
    /// nearest zero voxel; zero voxels get 0. (+infinity everywhere when the image has no zero voxel.)
    public static func euclidean(_ image: MedicalImage) -> MedicalImage {
        let n = image.shape.spatialCount
        let background = (0..<n).map { image.voxels[$0] == 0 }
        let d2 = squaredDistance(toFeatures: background, dims: [image.shape.x, image.shape.y, image.shape.z], spacing: image.spacing)
        var out = MedicalImage(shape: ImageShape(image.shape.x, image.shape.y, image.shape.z), voxels: d2.map { Float($0.squareRoot()) },
                               affine: image.affine)
        out.info.storedType = .float32
        return out
    }
}
