import Foundation
import MedCompute
import MedFoundation

/// xoshiro256** seeded through SplitMix64: the phantom generator's random source (fast, with independent streams
/// per site and case so that cases can be drawn in parallel and still give the same bytes).
struct PhantomRandom: RandomNumberGenerator {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64, streams: [Int] = []) {
        var x = seed
        for v in streams { x = SplitMix64.step(&x) ^ UInt64(bitPattern: Int64(v)) &* 0xD1B5_4A32_D192_ED03 }
        s = (SplitMix64.step(&x), SplitMix64.step(&x), SplitMix64.step(&x), SplitMix64.step(&x))
    }

    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Double = 0, _ hi: Double = 1) -> Double {
        lo + (hi - lo) * Double(next() >> 11) * 0x1p-53
    }

    /// Standard normal (Box-Muller).
    mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

/// Runs body(i) for i in 0..<count over the cores.
func phantomParallel(_ count: Int, _ body: @Sendable (Int) -> Void) {
    if count <= 1 { for i in 0..<count { body(i) }; return }
    parallelFor(count, body)
}

/// A Float32 plane (or a stack of planes), x fastest.
struct Plane {
    var width: Int
    var height: Int
    var data: [Float]

    init(_ width: Int, _ height: Int, value: Float = 0) {
        self.width = width
        self.height = height
        data = [Float](repeating: value, count: width * height)
    }

    /// Approximate Gaussian blur with standard deviation sigma (pixels) along x and y: three box passes per axis
    /// (running sums, cost independent of sigma), edges clamped. Rows are filtered in chunks; columns in bands of 64
    /// with one running sum per column, so both passes read memory in order.
    mutating func blur(sigmaX: Double, sigmaY: Double) {
        let (w, h) = (width, height)
        data.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let p = buffer.baseAddress!
            if sigmaX > 0.3 {
                let r = Plane.boxRadius(sigmaX)
                let chunks = min(h, 16)
                phantomParallel(chunks) { c in
                    var line = [Float](repeating: 0, count: w), tmp = line
                    for j in (c * h / chunks)..<((c + 1) * h / chunks) {
                        for i in 0..<w { line[i] = p[j * w + i] }
                        for _ in 0..<3 { Plane.box(&line, &tmp, r) }
                        for i in 0..<w { p[j * w + i] = line[i] }
                    }
                }
            }
            if sigmaY > 0.3 {
                let r = Plane.boxRadius(sigmaY)
                let band = 64
                phantomParallel((w + band - 1) / band) { b in
                    let c0 = b * band, bw = min(w, c0 + band) - c0
                    let src = UnsafeMutablePointer<Float>.allocate(capacity: h * bw), dst = UnsafeMutablePointer<Float>.allocate(capacity: h * bw)
                    let acc = UnsafeMutablePointer<Float>.allocate(capacity: bw)
                    defer { src.deallocate(); dst.deallocate(); acc.deallocate() }
                    for j in 0..<h { for i in 0..<bw { src[j * bw + i] = p[j * w + c0 + i] } }
                    let inv = 1 / Float(2 * r + 1)
                    var (a, z) = (src, dst)
                    for _ in 0..<3 {
                        for i in 0..<bw { acc[i] = 0 }
                        for k in -r...r { let row = a + min(max(k, 0), h - 1) * bw; for i in 0..<bw { acc[i] += row[i] } }
                        for j in 0..<h {
                            let out = z + j * bw, add = a + min(j + r + 1, h - 1) * bw, sub = a + max(j - r, 0) * bw
                            for i in 0..<bw { out[i] = acc[i] * inv; acc[i] += add[i] - sub[i] }
                        }
                        swap(&a, &z)
                    }
                    for j in 0..<h { for i in 0..<bw { p[j * w + c0 + i] = a[j * bw + i] } }
                }
            }
        }
    }

    /// Radius of a box whose three-fold convolution has about the given standard deviation.
    static func boxRadius(_ sigma: Double) -> Int { max(1, Int(((4 * sigma * sigma + 1).squareRoot() - 1) / 2 + 0.5)) }

    static func box(_ line: inout [Float], _ tmp: inout [Float], _ r: Int) {
        let n = line.count
        let inv = 1 / Float(2 * r + 1)
        line.withUnsafeBufferPointer { lb in tmp.withUnsafeMutableBufferPointer { tb in
            let (l, t) = (lb.baseAddress!, tb.baseAddress!)
            var acc: Float = 0
            for k in -r...r { acc += l[min(max(k, 0), n - 1)] }
            // Edges clamp; the middle needs no clamping.
            let lo = min(n, r), hi = max(lo, n - r - 1)
            for i in 0..<lo { t[i] = acc * inv; acc += l[min(i + r + 1, n - 1)] - l[max(i - r, 0)] }
            for i in lo..<hi { t[i] = acc * inv; acc += l[i + r + 1] - l[i - r] }
            for i in hi..<n { t[i] = acc * inv; acc += l[min(i + r + 1, n - 1)] - l[max(i - r, 0)] }
        } }
        swap(&line, &tmp)
    }

    /// A wide blur computed on a grid `factor` times coarser (area-averaged down, bilinear up): for smooth fields such
    /// as soft mask edges, where the detail lost is far below the blur.
    mutating func blurCoarse(sigma: Double) {
        let factor = max(1, Int(sigma / 3))
        guard factor > 1 else { blur(sigmaX: sigma, sigmaY: sigma); return }
        let (w, h) = (width, height)
        let cw = (w + factor - 1) / factor, ch = (h + factor - 1) / factor
        var coarse = Plane(cw, ch)
        data.withUnsafeBufferPointer { src in coarse.data.withUnsafeMutableBufferPointer { dst in
            for j in 0..<h {
                let row = src.baseAddress! + j * w, out = dst.baseAddress! + (j / factor) * cw
                for i in 0..<w { out[i / factor] += row[i] }
            }
        } }
        for cj in 0..<ch { for ci in 0..<cw {
            let n = (min(h, (cj + 1) * factor) - cj * factor) * (min(w, (ci + 1) * factor) - ci * factor)
            coarse.data[cj * cw + ci] /= Float(n)
        } }
        coarse.blur(sigmaX: sigma / Double(factor), sigmaY: sigma / Double(factor))
        let f = Float(factor)
        let cols = (0..<w).map { i -> (Int, Int, Float) in
            let cx = max(0, min(Float(cw - 1), (Float(i) + 0.5) / f - 0.5))
            let x0 = min(Int(cx), cw - 1)
            return (x0, min(x0 + 1, cw - 1), cx - Float(x0))
        }
        coarse.data.withUnsafeBufferPointer { cb in data.withUnsafeMutableBufferPointer { db in
            let (c, d) = (cb.baseAddress!, db.baseAddress!)
            for j in 0..<h {
                let cy = max(0, min(Float(ch - 1), (Float(j) + 0.5) / f - 0.5))
                let y0 = min(Int(cy), ch - 1), y1 = min(y0 + 1, ch - 1), ty = cy - Float(y0)
                let r0 = c + y0 * cw, r1 = c + y1 * cw, out = d + j * w
                for i in 0..<w {
                    let (x0, x1, tx) = cols[i]
                    let a = r0[x0] * (1 - tx) + r0[x1] * tx, b = r1[x0] * (1 - tx) + r1[x1] * tx
                    out[i] = a * (1 - ty) + b * ty
                }
            }
        } }
    }

    /// Fills a polygon (vertices in pixel coordinates, even-odd rule at pixel centres) with `value`.
    mutating func fill(polygon: [(Double, Double)], value: Float) {
        guard polygon.count >= 3 else { return }
        let ys = polygon.map(\.1)
        let j0 = max(0, Int((ys.min()! - 0.5).rounded(.up))), j1 = min(height - 1, Int((ys.max()! - 0.5).rounded(.down)))
        guard j0 <= j1 else { return }
        var xs: [Double] = []
        for j in j0...j1 {
            let y = Double(j) + 0.5
            xs.removeAll(keepingCapacity: true)
            for e in 0..<polygon.count {
                let (ax, ay) = polygon[e], (bx, by) = polygon[(e + 1) % polygon.count]
                if (ay <= y) != (by <= y) { xs.append(ax + (y - ay) / (by - ay) * (bx - ax)) }
            }
            xs.sort()
            var k = 0
            while k + 1 < xs.count {
                let i0 = max(0, Int((xs[k] - 0.5).rounded(.up))), i1 = min(width - 1, Int((xs[k + 1] - 0.5).rounded(.down)))
                if i0 <= i1 { for i in i0...i1 { data[j * width + i] = value } }
                k += 2
            }
        }
    }

    /// A smooth random field in [-1, 1]: a coarse random grid, bilinearly interpolated.
    static func smoothField(_ w: Int, _ h: Int, cells: Int, rng: inout PhantomRandom) -> Plane {
        let f = SmoothField(w, h, cells: cells, rng: &rng)
        var out = Plane(w, h)
        for j in 0..<h { for i in 0..<w { out.data[j * w + i] = f.value(i, j) } }
        return out
    }
}

/// A smooth random field evaluated on demand (no full-size buffer): a (cells + 1)² random grid in [-1, 1], bilinear.
struct SmoothField {
    let w: Int, h: Int, cells: Int
    let grid: [Float]

    init(_ w: Int, _ h: Int, cells: Int, rng: inout PhantomRandom) {
        self.w = w; self.h = h; self.cells = cells
        grid = (0..<((cells + 1) * (cells + 1))).map { _ in Float(rng.uniform(-1, 1)) }
    }

    @inline(__always) func value(_ i: Int, _ j: Int) -> Float {
        let gw = cells + 1
        let fy = Double(j) / Double(max(1, h - 1)) * Double(cells)
        let y0 = min(Int(fy), cells - 1), ty = Float(fy - Double(y0))
        let fx = Double(i) / Double(max(1, w - 1)) * Double(cells)
        let x0 = min(Int(fx), cells - 1), tx = Float(fx - Double(x0))
        let a = grid[y0 * gw + x0], b = grid[y0 * gw + x0 + 1], c = grid[(y0 + 1) * gw + x0], d = grid[(y0 + 1) * gw + x0 + 1]
        return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty
    }
}

/// The scanner model applied to a normalised [0, 1] signal: s' = offset + contrast · s^gamma (times `gain`).
@inline(__always) func transfer(_ s: Float, gamma: Float, contrast: Float, offset: Float, gain: Float = 1) -> Float {
    offset + contrast * gain * (gamma == 1 ? max(0, s) : Foundation.pow(max(0, s), gamma))
}

/// Adds noise of standard deviation sigma to `data` (rows drawn from their own streams, in parallel): Gaussian, or
/// Rician (the magnitude of the signal plus complex Gaussian noise) for MRI.
func addNoise(_ data: inout [Float], rowLength: Int, sigma: Double, rician: Bool, seed: UInt64, streams: [Int]) {
    guard sigma > 0 else { return }
    let rows = data.count / rowLength
    let sg = Float(sigma)
    data.withUnsafeMutableBufferPointer { buffer in
        nonisolated(unsafe) let p = buffer.baseAddress!
        phantomParallel((rows + 63) / 64) { block in
            var rng = PhantomRandom(seed: seed, streams: streams + [block])
            for r in (block * 64)..<min(rows, (block + 1) * 64) {
                var i = 0
                while i < rowLength {
                    let k = r * rowLength + i
                    // Marsaglia's polar method: two independent normals from one accepted pair of uniforms.
                    var u: Float = 0, v: Float = 0, q: Float = 0
                    repeat {
                        u = Float(rng.uniform(-1, 1)); v = Float(rng.uniform(-1, 1)); q = u * u + v * v
                    } while q >= 1 || q == 0
                    let f = (-2 * Foundation.log(q) / q).squareRoot() * sg
                    let n1 = u * f, n2 = v * f
                    if rician {
                        p[k] = ((p[k] + n1) * (p[k] + n1) + n2 * n2).squareRoot()
                        i += 1
                    } else {
                        p[k] += n1
                        if i + 1 < rowLength { p[k + 1] += n2 }
                        i += 2
                    }
                }
            }
        }
    }
}
