import Foundation
import MedCompute

/// How values between voxel centres are computed.
public enum Interpolation: String, Sendable, Codable, CaseIterable {
    /// The value of the voxel whose footprint holds the point. Always used for label maps.
    case nearest
    /// Triangle kernel: bilinear in 2-D, trilinear in 3-D.
    case linear
    /// Keys cubic convolution (a = -0.5, as Pillow and OpenCV).
    case cubic
}

/// Separable resampling with precomputed weights, in the manner of Pillow's `ImagingResample`: output voxel o covers
/// [o, o+1) in its own grid, i.e. the input interval [o f, (o+1) f) with f = n_in / n_out (half-voxel-centred, the
/// physical extent is kept). With antialiasing, a downsampling kernel is stretched by f, so every input voxel
/// contributes (a 4000 -> 256 reduction averages 16-pixel footprints instead of picking one pixel in 16).
enum AxisResampler {
    struct Plan {
        var starts: [Int]      // first input index per output index
        var counts: [Int]      // taps per output index
        var weights: [Float]   // taps x maxTaps, normalised
        var maxTaps: Int
    }

    static func kernel(_ mode: Interpolation, _ x: Double) -> Double {
        let a = abs(x)
        switch mode {
        case .nearest: return a < 0.5 ? 1 : 0
        case .linear: return a < 1 ? 1 - a : 0
        case .cubic:
            let c = -0.5
            if a < 1 { return ((c + 2) * a - (c + 3)) * a * a + 1 }
            if a < 2 { return (((a - 5) * a + 8) * a - 4) * c }
            return 0
        }
    }

    static func support(_ mode: Interpolation) -> Double {
        switch mode { case .nearest: 0.5; case .linear: 1; case .cubic: 2 }
    }

    static func plan(input n: Int, output m: Int, mode: Interpolation, antialias: Bool) -> Plan {
        let f = Double(n) / Double(m)
        if mode == .nearest {
            let starts = (0..<m).map { min(n - 1, Int(((Double($0) + 0.5) * f).rounded(.down))) }
            return Plan(starts: starts, counts: [Int](repeating: 1, count: m), weights: [Float](repeating: 1, count: m), maxTaps: 1)
        }
        let scale = antialias ? max(f, 1) : 1
        let half = support(mode) * scale
        let maxTaps = Int((2 * half).rounded(.up)) + 2
        var starts = [Int](repeating: 0, count: m)
        var counts = [Int](repeating: 0, count: m)
        var weights = [Float](repeating: 0, count: m * maxTaps)
        for o in 0..<m {
            let centre = (Double(o) + 0.5) * f
            let lo = max(0, Int((centre - half).rounded(.down)))
            let hi = min(n, Int((centre + half).rounded(.up)) + 1)
            var ws: [Double] = []
            for i in lo..<hi { ws.append(kernel(mode, (Double(i) + 0.5 - centre) / scale)) }
            // Trim zero weights at both ends.
            var first = 0, last = ws.count - 1
            while first < last && ws[first] == 0 { first += 1 }
            while last > first && ws[last] == 0 { last -= 1 }
            let used = Array(ws[first...last])
            let total = used.reduce(0, +)
            starts[o] = lo + first
            counts[o] = used.count
            for (t, w) in used.enumerated() { weights[o * maxTaps + t] = Float(total != 0 ? w / total : (t == 0 ? 1 : 0)) }
        }
        return Plan(starts: starts, counts: counts, weights: weights, maxTaps: maxTaps)
    }

    /// Resamples along one axis of a volume stored x-fastest with dims (d0, d1, d2, d3).
    static func apply(_ input: [Float], dims: [Int], axis: Int, output m: Int, plan p: Plan) -> [Float] {
        var outDims = dims
        outDims[axis] = m
        let outCount = outDims.reduce(1, *)
        var out = [Float](repeating: 0, count: outCount)
        let inner = dims[0..<axis].reduce(1, *)             // contiguous run length below the axis
        let outer = dims[(axis + 1)...].reduce(1, *)         // independent blocks above the axis
        let n = dims[axis]
        input.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
            p.weights.withUnsafeBufferPointer { wbuf in
            p.starts.withUnsafeBufferPointer { sbuf in
            p.counts.withUnsafeBufferPointer { cbuf in
                let s = src.baseAddress!, d = dst.baseAddress!
                let weights = wbuf.baseAddress!, starts = sbuf.baseAddress!, counts = cbuf.baseAddress!
                let maxTaps = p.maxTaps
                parallelFor(outer) { block in
                    let inBase = block * n * inner, outBase = block * m * inner
                    if inner == 1 {
                        for o in 0..<m {
                            let st = starts[o], w = weights + o * maxTaps, line = s + inBase + st
                            let c = counts[o]
                            // four partial sums so the loop pipelines
                            var a0: Float = 0, a1: Float = 0, a2: Float = 0, a3: Float = 0
                            var t = 0
                            while t + 4 <= c {
                                a0 += w[t] * line[t]; a1 += w[t + 1] * line[t + 1]
                                a2 += w[t + 2] * line[t + 2]; a3 += w[t + 3] * line[t + 3]
                                t += 4
                            }
                            while t < c { a0 += w[t] * line[t]; t += 1 }
                            d[outBase + o] = (a0 + a1) + (a2 + a3)
                        }
                    } else {
                        for o in 0..<m {
                            let row = d + outBase + o * inner
                            let st = starts[o], w = weights + o * maxTaps
                            for t in 0..<counts[o] {
                                let wt = w[t]
                                let srow = s + inBase + (st + t) * inner
                                if t == 0 { for x in 0..<inner { row[x] = wt * srow[x] } }
                                else { for x in 0..<inner { row[x] += wt * srow[x] } }
                            }
                        }
                    }
                }
            }
            }
            }
            }
        }
        return out
    }
}

extension MedicalImage {
    /// Resamples to a new grid shape (x, y, z) keeping the physical extent: the affine's columns are scaled by
    /// n_in / n_out and the origin moved so the field of view's edges stay put. Label maps always use nearest
    /// neighbour without antialiasing, whatever `interpolation` says.
    public func resampled(toShape size: [Int], interpolation: Interpolation = .linear, antialias: Bool = true) throws -> MedicalImage {
        guard size.count == 3, size.allSatisfy({ $0 > 0 }) else {
            throw ImageError.invalidArgument("target shape must be 3 positive sizes, got \(size)")
        }
        try MemoryLimit.check(dimensions: size + [shape.t, MemoryLayout<Float>.size],
                              what: "resampling to \(size.map(String.init).joined(separator: " x "))\(shape.t > 1 ? " x \(shape.t) channels" : "")")
        let mode: Interpolation = kind == .labelMap ? .nearest : interpolation
        var data = voxels
        var dims = [shape.x, shape.y, shape.z, shape.t]
        // Most-shrinking axis first (less data for the later passes); on ties the strided axes (z, then y) go first,
        // because their passes vectorise across whole rows while the x pass is a dot product per output voxel.
        let order = (0..<3).sorted { a, b in
            let ra = Double(size[a]) / Double(dims[a]), rb = Double(size[b]) / Double(dims[b])
            return ra != rb ? ra < rb : a > b
        }
        for axis in order where dims[axis] != size[axis] {
            let plan = AxisResampler.plan(input: dims[axis], output: size[axis], mode: mode, antialias: antialias && mode != .nearest)
            data = AxisResampler.apply(data, dims: dims, axis: axis, output: size[axis], plan: plan)
            dims[axis] = size[axis]
        }
        var a = affine
        let old = [shape.x, shape.y, shape.z]
        for c in 0..<3 {
            let f = Double(old[c]) / Double(size[c])
            for r in 0..<3 { a[r, c] = affine[r, c] * f }
        }
        // Voxel 0 of the new grid has its centre at old continuous index (0.5 f - 0.5) along each axis.
        let shift = (0..<3).map { (0.5 * Double(old[$0]) / Double(size[$0])) - 0.5 }
        let (ox, oy, oz) = affine.apply((shift[0], shift[1], shift[2]))
        a[0, 3] = ox; a[1, 3] = oy; a[2, 3] = oz
        var result = self
        result.reshape(to: ImageShape(size[0], size[1], size[2], shape.t), voxels: data)
        result.affine = a
        return result
    }

    /// Resamples to a target spacing (mm) per axis: the new shape is round(n * spacing / target), at least 1, and the
    /// physical extent is kept (so the achieved spacing differs from the target by the rounding).
    public func resampled(toSpacing target: [Double], interpolation: Interpolation = .linear, antialias: Bool = true) throws -> MedicalImage {
        guard target.count == 3, target.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw ImageError.invalidArgument("target spacing must be 3 positive numbers in mm, got \(target)")
        }
        let sp = spacing
        let old = [shape.x, shape.y, shape.z]
        let exact = (0..<3).map { Double(old[$0]) * sp[$0] / target[$0] }
        guard exact.allSatisfy({ $0 < Double(Int32.max) }) else {
            throw ImageError.tooLarge(what: "resampling to spacing \(target.map { String($0) }.joined(separator: ", ")) mm (\(exact.map { String(format: "%.3g", $0) }.joined(separator: " x ")) voxels)",
                                      bytes: .max, limit: MemoryLimit.maxBytes)
        }
        let size = exact.map { max(1, Int($0.rounded())) }
        return try resampled(toShape: size, interpolation: interpolation, antialias: antialias)
    }

    /// Resamples onto another grid through world coordinates (both affines): e.g. a prediction made on a resampled,
    /// reoriented image brought back to the original image's space. Points outside this image get `fill`.
    /// Supports nearest and linear (cubic falls back to linear); label maps always use nearest.
    public func resampled(ontoShape target: ImageShape, affine targetAffine: Affine, interpolation: Interpolation = .linear,
                          fill: Float = 0) throws -> MedicalImage {
        guard let inv = affine.inverse else { throw ImageError.invalidArgument("this image's affine is singular") }
        let m = inv * targetAffine          // target index -> this image's index
        let mode: Interpolation = kind == .labelMap ? .nearest : (interpolation == .nearest ? .nearest : .linear)
        let (nx, ny, nz) = (shape.x, shape.y, shape.z)
        let (tx, ty, tz) = (target.x, target.y, target.z)
        try MemoryLimit.check(dimensions: [tx, ty, tz, shape.t, MemoryLayout<Float>.size], what: "resampling onto a \(tx) x \(ty) x \(tz) grid")
        let outShape = ImageShape(tx, ty, tz, shape.t)
        var out = [Float](repeating: fill, count: outShape.count)
        let vol = shape.spatialCount, tvol = tx * ty * tz
        voxels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(tz * ty) { row in
                    let k = row / ty, j = row % ty
                    for i in 0..<tx {
                        let p = m.apply((Double(i), Double(j), Double(k)))
                        let (x, y, z) = p
                        // Inside when within half a voxel of the grid (nz == 1 images accept any z within 0.5).
                        if x < -0.5 || y < -0.5 || z < -0.5 || x > Double(nx) - 0.5 || y > Double(ny) - 0.5 || z > Double(nz) - 0.5 { continue }
                        for c in 0..<shape.t {
                            let o = c * tvol + i + tx * (j + ty * k)
                            if mode == .nearest {
                                let xi = min(nx - 1, max(0, Int((x + 0.5).rounded(.down))))
                                let yi = min(ny - 1, max(0, Int((y + 0.5).rounded(.down))))
                                let zi = min(nz - 1, max(0, Int((z + 0.5).rounded(.down))))
                                d[o] = s[c * vol + xi + nx * (yi + ny * zi)]
                            } else {
                                let xc = min(max(x, 0), Double(nx - 1)), yc = min(max(y, 0), Double(ny - 1)), zc = min(max(z, 0), Double(nz - 1))
                                let x0 = min(Int(xc), max(0, nx - 2)), y0 = min(Int(yc), max(0, ny - 2)), z0 = min(Int(zc), max(0, nz - 2))
                                let x1 = min(x0 + 1, nx - 1), y1 = min(y0 + 1, ny - 1), z1 = min(z0 + 1, nz - 1)
                                let fx = Float(xc - Double(x0)), fy = Float(yc - Double(y0)), fz = Float(zc - Double(z0))
                                let b = c * vol
                                func v(_ a: Int, _ bb: Int, _ cc: Int) -> Float { s[b + a + nx * (bb + ny * cc)] }
                                let c00 = v(x0, y0, z0) * (1 - fx) + v(x1, y0, z0) * fx
                                let c10 = v(x0, y1, z0) * (1 - fx) + v(x1, y1, z0) * fx
                                let c01 = v(x0, y0, z1) * (1 - fx) + v(x1, y0, z1) * fx
                                let c11 = v(x0, y1, z1) * (1 - fx) + v(x1, y1, z1) * fx
                                let c0 = c00 * (1 - fy) + c10 * fy, c1 = c01 * (1 - fy) + c11 * fy
                                d[o] = c0 * (1 - fz) + c1 * fz
                            }
                        }
                    }
                }
            }
        }
        return MedicalImage(shape: outShape, voxels: out, affine: targetAffine, kind: kind, info: info)
    }

    /// Resamples onto `reference`'s grid (shape and affine).
    public func resampled(onto reference: MedicalImage, interpolation: Interpolation = .linear, fill: Float = 0) throws -> MedicalImage {
        try resampled(ontoShape: ImageShape(reference.shape.x, reference.shape.y, reference.shape.z, 1),
                      affine: reference.affine, interpolation: interpolation, fill: fill)
    }
}
