import Foundation
import MedCompute

/// Exact Euclidean distance transforms with anisotropic spacing (Felzenszwalb & Huttenlocher 2012, "Distance
/// Transforms of Sampled Functions"): the squared distance is separable, so one linear-time lower-envelope pass per
/// axis (weighted by that axis' spacing squared) gives exact results in O(N).
public enum DistanceTransform {
    /// Squared distance (mm^2) from every voxel to the nearest voxel where `isFeature` is true; +infinity everywhere
    /// when there is no feature. `dims` = (nx, ny, nz), x fastest.
    public static func squaredDistance(toFeatures isFeature: [Bool], dims: [Int], spacing: [Double]) -> [Double] {
        precondition(dims.count == 3 && isFeature.count == dims[0] * dims[1] * dims[2], "dims do not match the mask")
        var f = [Double](unsafeUninitializedCapacity: isFeature.count) { buf, n in
            isFeature.withUnsafeBufferPointer { src in
                for i in 0..<src.count { buf[i] = src[i] ? 0 : .infinity }
            }
            n = isFeature.count
        }
        let (nx, ny, nz) = (dims[0], dims[1], dims[2])
        for axis in 0..<3 where dims[axis] > 1 {
            let n = dims[axis]
            let w = spacing[axis] * spacing[axis]
            let stride = axis == 0 ? 1 : (axis == 1 ? nx : nx * ny)
            let lines = axis == 0 ? ny * nz : (axis == 1 ? nx * nz : nx * ny)
            let workers = max(1, min(lines, ProcessInfo.processInfo.activeProcessorCount * 4))
            f.withUnsafeMutableBufferPointer { buf in
                let base = buf.baseAddress!
                parallelFor(workers) { worker in
                    // Lines are handled in tiles of up to 16 neighbours along x, so the strided gathers along y and z
                    // read contiguous runs; scratch is per worker and reused.
                    let tileMax = axis == 0 ? 1 : 16
                    let g = UnsafeMutablePointer<Double>.allocate(capacity: n * tileMax)
                    let d = UnsafeMutablePointer<Double>.allocate(capacity: n)
                    let v = UnsafeMutablePointer<Int>.allocate(capacity: n)
                    let z = UnsafeMutablePointer<Double>.allocate(capacity: n + 1)
                    defer { g.deallocate(); d.deallocate(); v.deallocate(); z.deallocate() }
                    let lo = worker * lines / workers, hi = (worker + 1) * lines / workers
                    var line = lo
                    while line < hi {
                        let start: Int
                        var tile = min(tileMax, hi - line)
                        switch axis {
                        case 0: start = line * nx
                        case 1:
                            start = (line % nx) + (line / nx) * nx * ny
                            tile = min(tile, nx - line % nx)
                        default: start = line
                        }
                        for i in 0..<n {
                            let row = base + start + i * stride
                            for l in 0..<tile { g[l * n + i] = row[l] }
                        }
                        for l in 0..<tile {
                            let gl = g + l * n
                            var any = false
                            for i in 0..<n where gl[i].isFinite { any = true; break }
                            if !any { continue }         // no feature on this line: stays infinite
                            envelope(gl, count: n, weight: w, out: d, vertices: v, boundaries: z)
                            for i in 0..<n { gl[i] = d[i] }
                        }
                        for i in 0..<n {
                            let row = base + start + i * stride
                            for l in 0..<tile { row[l] = g[l * n + i] }
                        }
                        line += tile
                    }
                }
            }
        }
        return f
    }

    /// 1-D: d(p) = min_q (w (p - q)^2 + f(q)), the lower envelope of parabolas (f has at least one finite value).
    static func envelope(_ f: UnsafeMutablePointer<Double>, count n: Int, weight w: Double, out d: UnsafeMutablePointer<Double>,
                         vertices v: UnsafeMutablePointer<Int>, boundaries z: UnsafeMutablePointer<Double>) {
        var k = -1
        for q in 0..<n where f[q].isFinite {
            if k < 0 {
                k = 0; v[0] = q; z[0] = -.infinity; z[1] = .infinity
                continue
            }
            let fq = f[q] + w * Double(q * q)
            var s: Double
            repeat {
                let p = v[k]
                s = (fq - (f[p] + w * Double(p * p))) / (2 * w * Double(q - p))
                if s <= z[k] { k -= 1 } else { break }
            } while k >= 0
            k += 1
            v[k] = q; z[k] = s; z[k + 1] = .infinity
        }
        var j = 0
        for q in 0..<n {
            while z[j + 1] < Double(q) { j += 1 }
            let p = v[j]
            d[q] = w * Double((q - p) * (q - p)) + f[p]
        }
    }

    /// SciPy's `distance_transform_edt(image, sampling=spacing)`: for every non-zero voxel the distance (mm) to the
    /// nearest zero voxel; zero voxels get 0. (+infinity everywhere when the image has no zero voxel.)
    public static func euclidean(_ image: MedicalImage) -> MedicalImage {
        let n = image.shape.spatialCount
        let background = [Bool](unsafeUninitializedCapacity: n) { buf, count in
            image.voxels.withUnsafeBufferPointer { v in for i in 0..<n { buf[i] = v[i] == 0 } }
            count = n
        }
        let d2 = squaredDistance(toFeatures: background, dims: [image.shape.x, image.shape.y, image.shape.z], spacing: image.spacing)
        let distances = [Float](unsafeUninitializedCapacity: n) { buf, count in
            d2.withUnsafeBufferPointer { d in for i in 0..<n { buf[i] = Float(d[i].squareRoot()) } }
            count = n
        }
        var out = MedicalImage(shape: ImageShape(image.shape.x, image.shape.y, image.shape.z), voxels: distances,
                               affine: image.affine)
        out.info.storedType = .float32
        return out
    }
}
