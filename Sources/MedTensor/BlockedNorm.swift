import Foundation

/// Normalisation (batch or instance) of a blocked nChw16c tensor with a per-channel scale and shift and an optional
/// ReLU, forward and backward in two passes each: the 16 channels of a block are the 16 lanes of one SIMD register.
/// Work is split over (image, channel block) items; batch statistics combine the items' partial results (means and
/// centred sums of squares, merged exactly as in Chan et al.'s parallel variance).
enum BlockedNorm {
    typealias V = SIMD16<Float>
    typealias D = SIMD16<Double>

    /// Sum of 16-lane vectors over `count` pixels, accumulated in chunks of 64 pixels into Double.
    @inline(__always)
    static func sum(_ p: UnsafeRawPointer, _ count: Int, _ f: (V, Int) -> V) -> D {
        var total = D()
        var i = 0
        while i < count {
            let end = min(count, i + 64)
            var a = V(), b = V()
            while i + 1 < end {
                a += f(p.loadUnaligned(fromByteOffset: i * 64, as: V.self), i)
                b += f(p.loadUnaligned(fromByteOffset: (i + 1) * 64, as: V.self), i + 1)
                i += 2
            }
            if i < end { a += f(p.loadUnaligned(fromByteOffset: i * 64, as: V.self), i); i += 1 }
            total += D(a + b)
        }
        return total
    }

    /// y = relu?(γ (x − μ) / σ + β) with statistics per image and channel (`perImage`, instance norm) or per channel
    /// over the batch (batch norm). Returns the output, the statistics' means and biased variances (one vector of 16
    /// per group: per item, or per channel block), and their count.
    static func forward(_ x: [Float], n: Int, c: Int, hw: Int, perImage: Bool, gamma: [Float]?, beta: [Float]?, eps: Float, relu: Bool)
        -> (out: [Float], mean: [V], variance: [V]) {
        let blocks = c / 16, items = n * blocks
        var itemMean = [V](repeating: V(), count: items), itemM2 = [D](repeating: D(), count: items)
        x.withUnsafeBufferPointer { xb in itemMean.withUnsafeMutableBufferPointer { mb in itemM2.withUnsafeMutableBufferPointer { qb in
            nonisolated(unsafe) let (xp, mp, qp) = (xb.baseAddress!, mb.baseAddress!, qb.baseAddress!)
            parallelFor(items) { item in
                let src = UnsafeRawPointer(xp + item * hw * 16)
                let mu = V(sum(src, hw) { v, _ in v } / Double(hw))
                mp[item] = mu
                qp[item] = sum(src, hw) { v, _ in let d = v - mu; return d * d }
            }
        } } }
        let groups = perImage ? items : blocks
        var mean = [V](repeating: V(), count: groups), variance = [V](repeating: V(), count: groups)
        if perImage {
            for g in 0..<groups { mean[g] = itemMean[g]; variance[g] = V(itemM2[g] / Double(hw)) }
        } else {
            for cb in 0..<blocks {
                var m = D()
                for b in 0..<n { m += D(itemMean[b * blocks + cb]) }
                m /= Double(n)
                var q = D()
                for b in 0..<n { let d = D(itemMean[b * blocks + cb]) - m; q += itemM2[b * blocks + cb] + d * d * Double(hw) }
                mean[cb] = V(m); variance[cb] = V(q / Double(n * hw))
            }
        }
        let (gv, bv) = (lanes(gamma, blocks, default: 1), lanes(beta, blocks, default: 0))
        let (mean0, variance0) = (mean, variance)
        let out = [Float](unsafeUninitializedCapacity: x.count) { ob, initialized in
            x.withUnsafeBufferPointer { xb in
                nonisolated(unsafe) let (xp, op) = (xb.baseAddress!, ob.baseAddress!)
                parallelFor(items) { item in
                    let cb = item % blocks, g = perImage ? item : cb
                    let (scale, shift) = affine(gv[cb], bv[cb], mean0[g], variance0[g], eps)
                    let src = UnsafeRawPointer(xp + item * hw * 16), dst = UnsafeMutableRawPointer(op + item * hw * 16)
                    let zero = V()
                    for i in 0..<hw {
                        var y = src.loadUnaligned(fromByteOffset: i * 64, as: V.self) * scale + shift
                        if relu { y.replace(with: zero, where: y .< zero) }
                        dst.storeBytes(of: y, toByteOffset: i * 64, as: V.self)
                    }
                }
            }
            initialized = x.count
        }
        return (out, mean, variance)
    }

    /// The per-lane scale and shift of y = x · scale + shift; forward and backward both take it from here, so the
    /// backward pass recomputes exactly the forward values where it needs the ReLU's mask (instead of reading y).
    @inline(__always)
    static func affine(_ gamma: V, _ beta: V, _ mean: V, _ variance: V, _ eps: Float) -> (scale: V, shift: V) {
        let scale = gamma * (1 / (variance + V(repeating: eps)).squareRoot())
        return (scale, beta - mean * scale)
    }

    /// Gradients for ``forward``: dx (blocked), dγ and dβ (per channel). Reads x and the output gradient only.
    static func backward(_ g: [Float], x: [Float], n: Int, c: Int, hw: Int, perImage: Bool, gamma: [Float]?, beta: [Float]?, eps: Float,
                         relu: Bool, mean: [V], variance: [V]) -> (dx: [Float], dGamma: [Float], dBeta: [Float]) {
        let blocks = c / 16, items = n * blocks
        let (gv, bv) = (lanes(gamma, blocks, default: 1), lanes(beta, blocks, default: 0))
        // Per item: Σ dy and Σ dy (x − μ) with dy taken through the ReLU.
        var sdy = [D](repeating: D(), count: items), sdyx = [D](repeating: D(), count: items)
        let zero = V()
        g.withUnsafeBufferPointer { gb in x.withUnsafeBufferPointer { xb in
            sdy.withUnsafeMutableBufferPointer { ab in sdyx.withUnsafeMutableBufferPointer { bb in
                nonisolated(unsafe) let (gp, xp, ap, bp) = (gb.baseAddress!, xb.baseAddress!, ab.baseAddress!, bb.baseAddress!)
                parallelFor(items) { item in
                    let off = item * hw * 16
                    let gs = UnsafeRawPointer(gp + off), xs = UnsafeRawPointer(xp + off)
                    let cb = item % blocks, gi = perImage ? item : cb
                    let mu = mean[gi]
                    let (scale, shift) = affine(gv[cb], bv[cb], mu, variance[gi], eps)
                    // One pass for both sums, in chunks of 64 pixels accumulated into Double.
                    var s1 = D(), s2 = D()
                    var i = 0
                    while i < hw {
                        let end = min(hw, i + 64)
                        var a = V(), b = V()
                        while i < end {
                            var d = gs.loadUnaligned(fromByteOffset: i * 64, as: V.self)
                            let xv = xs.loadUnaligned(fromByteOffset: i * 64, as: V.self)
                            if relu { d.replace(with: zero, where: xv * scale + shift .<= zero) }
                            a += d
                            b += d * (xv - mu)
                            i += 1
                        }
                        s1 += D(a); s2 += D(b)
                    }
                    ap[item] = s1; bp[item] = s2
                }
            } }
        } }
        let groups = perImage ? items : blocks
        var gsum = [D](repeating: D(), count: groups), gxsum = [D](repeating: D(), count: groups)
        for item in 0..<items { let gi = perImage ? item : item % blocks; gsum[gi] += sdy[item]; gxsum[gi] += sdyx[item] }
        let m = Float(perImage ? hw : n * hw)
        let istd = (0..<groups).map { 1 / (variance[$0] + V(repeating: eps)).squareRoot() }
        // dβ = Σ dy, dγ = Σ dy x̂ per channel (summed over images for instance norm).
        var dGamma = [Float](repeating: 0, count: c), dBeta = [Float](repeating: 0, count: c)
        for gi in 0..<groups {
            let cb = perImage ? gi % blocks : gi
            let dyv = V(gsum[gi]), dyx = V(gxsum[gi]) * istd[gi]
            for l in 0..<16 { dBeta[cb * 16 + l] += dyv[l]; dGamma[cb * 16 + l] += dyx[l] }
        }
        let (gsum0, gxsum0) = (gsum, gxsum)
        let dx = [Float](unsafeUninitializedCapacity: x.count) { ob, initialized in
            g.withUnsafeBufferPointer { gb in x.withUnsafeBufferPointer { xb in
                nonisolated(unsafe) let (gp, xp, op) = (gb.baseAddress!, xb.baseAddress!, ob.baseAddress!)
                parallelFor(items) { item in
                    let cb = item % blocks, gi = perImage ? item : cb
                    let mu = mean[gi], s = istd[gi]
                    let (scale, shift) = affine(gv[cb], bv[cb], mu, variance[gi], eps)
                    let sdyV = V(gsum0[gi]), sdyxV = V(gxsum0[gi]) * s
                    // dx = γ σ⁻¹ / M · (M dy − Σdy − x̂ Σ dy x̂)
                    let k = gv[cb] * s / V(repeating: m), mv = V(repeating: m), cterm = s * sdyxV
                    let off = item * hw * 16
                    let gs = UnsafeRawPointer(gp + off), xs = UnsafeRawPointer(xp + off)
                    let dst = UnsafeMutableRawPointer(op + off)
                    for i in 0..<hw {
                        var d = gs.loadUnaligned(fromByteOffset: i * 64, as: V.self)
                        let xv = xs.loadUnaligned(fromByteOffset: i * 64, as: V.self)
                        if relu { d.replace(with: zero, where: xv * scale + shift .<= zero) }
                        dst.storeBytes(of: k * (mv * d - sdyV - (xv - mu) * cterm), toByteOffset: i * 64, as: V.self)
                    }
                }
            } }
            initialized = x.count
        }
        return (dx, dGamma, dBeta)
    }

    /// Per-channel values as one 16-lane vector per channel block.
    static func lanes(_ values: [Float]?, _ blocks: Int, default value: Float) -> [V] {
        (0..<blocks).map { cb in values.map { v in V((0..<16).map { v[cb * 16 + $0] }) } ?? V(repeating: value) }
    }
}
