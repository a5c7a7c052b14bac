import Foundation
internal import CMedKernels

/// Normalisation (batch or instance) with a per-channel scale and shift and an optional ReLU, forward and backward in
/// two passes each, on a tensor in any layout: blocks of 8 or 16 channels are the lanes of one vector register
/// (CMedKernels, at the machine's width), and the plain layout is the same computation with blocks of one channel.
///
/// Work is split over items, an item being one image's channel block (hw · block contiguous values). Statistics are
/// kept per "group lane": per image and channel for instance norm (group = item), per channel for batch norm
/// (group = channel block); lane arrays are indexed group · block + lane. Batch statistics combine the items' means and
/// centred sums of squares exactly as in Chan et al.'s parallel variance.
enum BlockedNorm {
    /// y = relu?(γ (x − μ) / σ + β). `inner` is the number of values per channel of one image (H·W). Returns the
    /// output (in the input's layout) and the statistics' means and biased variances per group lane.
    static func forward(_ x: [Float], n: Int, c: Int, inner: Int, block: Int, perImage: Bool, gamma: [Float]?, beta: [Float]?, eps: Float,
                        relu: Bool) -> (out: [Float], mean: [Float], variance: [Float]) {
        let blocks = c / block, items = n * blocks
        var itemMean = [Double](repeating: 0, count: items * block), itemM2 = itemMean
        x.withUnsafeBufferPointer { xb in itemMean.withUnsafeMutableBufferPointer { mb in itemM2.withUnsafeMutableBufferPointer { qb in
            mk_norm_stats(xb.baseAddress!, items, inner, Int32(block), mb.baseAddress!, qb.baseAddress!)
        } } }
        var mean: [Float], variance: [Float]
        if perImage {
            mean = itemMean.map { Float($0) }
            variance = itemM2.map { Float($0 / Double(inner)) }
        } else {
            mean = [Float](repeating: 0, count: c); variance = mean
            for ch in 0..<c {
                let (cb, l) = (ch / block, ch % block)
                var m = 0.0
                for b in 0..<n { m += itemMean[(b * blocks + cb) * block + l] }
                m /= Double(n)
                var q = 0.0
                for b in 0..<n {
                    let i = (b * blocks + cb) * block + l, d = itemMean[i] - m
                    q += itemM2[i] + d * d * Double(inner)
                }
                mean[ch] = Float(m); variance[ch] = Float(q / Double(n * inner))
            }
        }
        let (scale, shift) = affine(c: c, block: block, gamma: gamma, beta: beta, mean: mean, variance: variance, eps: eps)
        let out = [Float](unsafeUninitializedCapacity: x.count) { ob, initialized in
            x.withUnsafeBufferPointer { xb in scale.withUnsafeBufferPointer { sb in shift.withUnsafeBufferPointer { hb in
                mk_norm_apply(xb.baseAddress!, ob.baseAddress!, n, blocks, inner, Int32(block), sb.baseAddress!, hb.baseAddress!,
                              perImage ? 1 : 0, relu ? 1 : 0)
            } } }
            initialized = x.count
        }
        return (out, mean, variance)
    }

    /// The per-group-lane scale and shift of y = x · scale + shift; forward and backward both take them from here, so
    /// the backward pass recomputes exactly the forward values where it needs the ReLU's mask (instead of reading y).
    static func affine(c: Int, block: Int, gamma: [Float]?, beta: [Float]?, mean: [Float], variance: [Float], eps: Float)
        -> (scale: [Float], shift: [Float]) {
        var scale = [Float](repeating: 0, count: mean.count), shift = scale
        for g in 0..<mean.count {
            let ch = g % c   // group lanes run over images x channels (instance) or channels (batch), channel fastest
            let s = (gamma?[ch] ?? 1) * (1 / (variance[g] + eps).squareRoot())
            scale[g] = s
            shift[g] = (beta?[ch] ?? 0) - mean[g] * s
        }
        return (scale, shift)
    }

    /// Gradients for ``forward``: dx (in the input's layout), dγ and dβ (per channel). Reads x and the output
    /// gradient only.
    static func backward(_ g: [Float], x: [Float], n: Int, c: Int, inner: Int, block: Int, perImage: Bool, gamma: [Float]?, beta: [Float]?,
                         eps: Float, relu: Bool, mean: [Float], variance: [Float]) -> (dx: [Float], dGamma: [Float], dBeta: [Float]) {
        let blocks = c / block, items = n * blocks
        let (scale, shift) = affine(c: c, block: block, gamma: gamma, beta: beta, mean: mean, variance: variance, eps: eps)
        // Per item and lane: Σ dy and Σ dy (x − μ), dy taken through the ReLU.
        var sdy = [Double](repeating: 0, count: items * block), sdyx = sdy
        g.withUnsafeBufferPointer { gb in x.withUnsafeBufferPointer { xb in
            scale.withUnsafeBufferPointer { sb in shift.withUnsafeBufferPointer { hb in mean.withUnsafeBufferPointer { mb in
                sdy.withUnsafeMutableBufferPointer { ab in sdyx.withUnsafeMutableBufferPointer { bb in
                    mk_norm_backward_sums(gb.baseAddress!, xb.baseAddress!, n, blocks, inner, Int32(block), sb.baseAddress!, hb.baseAddress!,
                                          mb.baseAddress!, perImage ? 1 : 0, relu ? 1 : 0, ab.baseAddress!, bb.baseAddress!)
                } }
            } } }
        } }
        // Per group lane (per image and channel, or per channel), index g · block + lane = image · c + channel or channel.
        let lanes = mean.count
        var gsum = [Double](repeating: 0, count: lanes), gxsum = gsum
        if perImage { gsum = sdy; gxsum = sdyx } else {
            for i in 0..<(items * block) { let ch = i % c; gsum[ch] += sdy[i]; gxsum[ch] += sdyx[i] }
        }
        let m = Float(perImage ? inner : n * inner)
        var dGamma = [Float](repeating: 0, count: c), dBeta = dGamma
        var k = [Float](repeating: 0, count: lanes), sdyLanes = k, cterm = k
        for gl in 0..<lanes {
            let ch = gl % c
            let istd = 1 / (variance[gl] + eps).squareRoot()
            let s1 = Float(gsum[gl]), s2 = Float(gxsum[gl]) * istd
            // dβ = Σ dy, dγ = Σ dy x̂ per channel (summed over images for instance norm).
            dBeta[ch] += s1; dGamma[ch] += s2
            // dx = γ σ⁻¹ / M · (M dy − Σdy − (x − μ) σ⁻¹ Σ dy x̂)
            k[gl] = (gamma?[ch] ?? 1) * istd / m
            sdyLanes[gl] = s1
            cterm[gl] = istd * s2
        }
        let dx = [Float](unsafeUninitializedCapacity: x.count) { ob, initialized in
            g.withUnsafeBufferPointer { gb in x.withUnsafeBufferPointer { xb in
                scale.withUnsafeBufferPointer { sb in shift.withUnsafeBufferPointer { hb in mean.withUnsafeBufferPointer { mb in
                    k.withUnsafeBufferPointer { kb in sdyLanes.withUnsafeBufferPointer { db in cterm.withUnsafeBufferPointer { cb in
                        mk_norm_backward_apply(gb.baseAddress!, xb.baseAddress!, ob.baseAddress!, n, blocks, inner, Int32(block), sb.baseAddress!,
                                               hb.baseAddress!, mb.baseAddress!, kb.baseAddress!, db.baseAddress!, cb.baseAddress!, m,
                                               perImage ? 1 : 0, relu ? 1 : 0)
                    } } }
                } } }
            } }
            initialized = x.count
        }
        return (dx, dGamma, dBeta)
    }
}
