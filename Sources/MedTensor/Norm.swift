import Foundation

extension Tensor {
    /// Normalises each group of elements to zero mean and unit variance (biased variance, as PyTorch's training
    /// mode): `group(i)` names the group of flat element i. Returns the result and the groups' means and variances.
    func normalized(groups: Int, eps: Float, group: (Int) -> Int) -> (Tensor, mean: [Float], variance: [Float]) {
        let data = self.data   // plain values, read once
        let n = count
        var ids = [Int32](repeating: 0, count: n)
        var sum = [Double](repeating: 0, count: groups), sq = [Double](repeating: 0, count: groups), cnt = [Double](repeating: 0, count: groups)
        for i in 0..<n { let g = group(i); ids[i] = Int32(g); sum[g] += Double(data[i]); cnt[g] += 1 }
        let mean = (0..<groups).map { cnt[$0] > 0 ? sum[$0] / cnt[$0] : 0 }
        for i in 0..<n { let g = Int(ids[i]); let d = Double(data[i]) - mean[g]; sq[g] += d * d }
        let variance = (0..<groups).map { cnt[$0] > 0 ? sq[$0] / cnt[$0] : 0 }
        let inv = variance.map { Float(1 / ($0 + Double(eps)).squareRoot()) }
        var xhat = [Float](repeating: 0, count: n)
        for i in 0..<n { let g = Int(ids[i]); xhat[i] = (data[i] - Float(mean[g])) * inv[g] }
        let y = xhat
        let t = Tensor.result(shape: shape, data: xhat, inputs: [self]) { [self] gy in
            // dx = inv · (dy − mean_g(dy) − x̂ · mean_g(dy · x̂))
            var m1 = [Double](repeating: 0, count: groups), m2 = [Double](repeating: 0, count: groups)
            for i in 0..<n { let g = Int(ids[i]); m1[g] += Double(gy[i]); m2[g] += Double(gy[i] * y[i]) }
            for g in 0..<groups where cnt[g] > 0 { m1[g] /= cnt[g]; m2[g] /= cnt[g] }
            var gx = [Float](repeating: 0, count: n)
            for i in 0..<n { let g = Int(ids[i]); gx[i] = inv[g] * (gy[i] - Float(m1[g]) - y[i] * Float(m2[g])) }
            accumulate(gx)
        }
        return (t, mean.map(Float.init), variance.map(Float.init))
    }

    /// Per-channel scale and shift of an NCHW (or NC) tensor: x · γ[c] + β[c].
    func channelAffine(_ gamma: Tensor?, _ beta: Tensor?) throws -> Tensor {
        let c = shape[1]
        let bshape = [1, c] + [Int](repeating: 1, count: rank - 2)
        var y = self
        if let gamma { y = y * (try gamma.reshaped(bshape)) }
        if let beta { y = y + (try beta.reshaped(bshape)) }
        return y
    }

    /// Batch normalisation of [N, C, ...] in training mode (statistics over N and the spatial axes); returns the
    /// result and the batch mean and (unbiased) variance for the running estimates. One fused kernel per channel
    /// (channels in parallel): y = γ (x − μ) / σ + β; backward dβ = Σ dy, dγ = Σ dy x̂,
    /// dx = γ / (σ M) · (M dy − dβ − x̂ dγ) over the M = N·H·W values of the channel.
    public func batchNorm(gamma: Tensor?, beta: Tensor?, eps: Float = 1e-5) throws -> (Tensor, mean: [Float], variance: [Float]) {
        try batchNorm(gamma: gamma, beta: beta, eps: eps, relu: false)
    }

    /// Batch normalisation followed by ReLU in one pass (forward and backward), as the U-Net's blocks use it.
    public func batchNormReLU(gamma: Tensor?, beta: Tensor?, eps: Float = 1e-5) throws -> (Tensor, mean: [Float], variance: [Float]) {
        try batchNorm(gamma: gamma, beta: beta, eps: eps, relu: true)
    }

    func batchNorm(gamma: Tensor?, beta: Tensor?, eps: Float, relu: Bool) throws -> (Tensor, mean: [Float], variance: [Float]) {
        guard rank >= 2 else { throw TensorError.shapeMismatch("batchNorm of \(shape)") }
        let n = shape[0], c = shape[1], inner = shape[2...].reduce(1, *)
        if let gamma, gamma.count != c { throw TensorError.shapeMismatch("batchNorm gamma \(gamma.shape) for \(c) channels") }
        if let beta, beta.count != c { throw TensorError.shapeMismatch("batchNorm beta \(beta.shape) for \(c) channels") }
        if layout == .blocked16 { return blockedNorm(perImage: false, gamma: gamma, beta: beta, eps: eps, relu: relu) }
        let m = n * inner
        var out = [Float](repeating: 0, count: count)
        var mean = [Float](repeating: 0, count: c), invStd = [Float](repeating: 0, count: c), variance = [Float](repeating: 0, count: c)
        let gd = gamma?.data, bd = beta?.data
        data.withUnsafeBufferPointer { xb in out.withUnsafeMutableBufferPointer { ob in
            mean.withUnsafeMutableBufferPointer { mb in invStd.withUnsafeMutableBufferPointer { ib in variance.withUnsafeMutableBufferPointer { vb in
                nonisolated(unsafe) let (xp, op, mp, ip, vp) = (xb.baseAddress!, ob.baseAddress!, mb.baseAddress!, ib.baseAddress!, vb.baseAddress!)
                parallelChannels(c) { ch in
                    // Sums per image in 16 lanes, accumulated over images in Double.
                    let wide = inner / 16 * 16
                    var s: Double = 0
                    for b in 0..<n {
                        let base = xp + (b * c + ch) * inner, raw = UnsafeRawPointer(base)
                        var v = SIMD16<Float>(), acc: Float = 0
                        var i = 0
                        while i < wide { v += raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self); i += 16 }
                        while i < inner { acc += base[i]; i += 1 }
                        s += Double(v.sum() + acc)
                    }
                    let mu = Float(s / Double(m))
                    var q: Double = 0
                    let vmu = SIMD16<Float>(repeating: mu)
                    for b in 0..<n {
                        let base = xp + (b * c + ch) * inner, raw = UnsafeRawPointer(base)
                        var v = SIMD16<Float>(), acc: Float = 0
                        var i = 0
                        while i < wide { let d = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) - vmu; v += d * d; i += 16 }
                        while i < inner { let d = base[i] - mu; acc += d * d; i += 1 }
                        q += Double(v.sum() + acc)
                    }
                    let v = Float(q / Double(m))
                    let istd = 1 / (v + eps).squareRoot()
                    mp[ch] = mu; ip[ch] = istd; vp[ch] = m > 1 ? v * Float(m) / Float(m - 1) : v
                    let gm = gd?[ch] ?? 1, bt = bd?[ch] ?? 0
                    let scale = gm * istd, shift = bt - mu * scale
                    for b in 0..<n {
                        let src = xp + (b * c + ch) * inner, dst = op + (b * c + ch) * inner
                        if relu { for i in 0..<inner { dst[i] = max(0, src[i] * scale + shift) } }
                        else { for i in 0..<inner { dst[i] = src[i] * scale + shift } }
                    }
                }
            } } }
        } }
        let x = data, total = count
        var inputs = [self]
        if let gamma { inputs.append(gamma) }
        if let beta { inputs.append(beta) }
        let (meanC, invC) = (mean, invStd)
        let y = out
        let result = Tensor.result(shape: shape, data: out, inputs: inputs) { [self] g in
            var gx = [Float](repeating: 0, count: total), gGamma = [Float](repeating: 0, count: c), gBeta = [Float](repeating: 0, count: c)
            x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in gx.withUnsafeMutableBufferPointer { gxb in
                gGamma.withUnsafeMutableBufferPointer { ggb in gBeta.withUnsafeMutableBufferPointer { gbb in y.withUnsafeBufferPointer { yb in
                    nonisolated(unsafe) let (xp, gp, gxp, ggp, gbp, yp) = (xb.baseAddress!, gb.baseAddress!, gxb.baseAddress!, ggb.baseAddress!, gbb.baseAddress!, yb.baseAddress!)
                    parallelChannels(c) { ch in
                        let mu = meanC[ch], istd = invC[ch]
                        // Through the ReLU first (no gradient where the output was clipped), then batch norm; 16 lanes.
                        var vdy = SIMD16<Float>(), vdyx = SIMD16<Float>()
                        var sdy: Float = 0, sdyx: Float = 0
                        let vmu = SIMD16<Float>(repeating: mu), zero = SIMD16<Float>()
                        let wide = inner / 16 * 16
                        for b in 0..<n {
                            let off = (b * c + ch) * inner
                            let xs = UnsafeRawPointer(xp + off), gs = UnsafeRawPointer(gp + off), ys = UnsafeRawPointer(yp + off)
                            var i = 0
                            while i < wide {
                                var gv = gs.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                                if relu { gv.replace(with: zero, where: ys.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) .<= zero) }
                                vdy += gv
                                vdyx += gv * (xs.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) - vmu)
                                i += 16
                            }
                            while i < inner {
                                let gv = relu && (yp + off)[i] <= 0 ? 0 : (gp + off)[i]
                                sdy += gv; sdyx += gv * ((xp + off)[i] - mu)
                                i += 1
                            }
                        }
                        sdy += vdy.sum(); sdyx = (sdyx + vdyx.sum()) * istd
                        gbp[ch] = sdy; ggp[ch] = sdyx
                        let gm = gd?[ch] ?? 1
                        let k = gm * istd / Float(m)
                        let fm = Float(m)
                        let vk = SIMD16<Float>(repeating: k), vfm = SIMD16<Float>(repeating: fm), vsdy = SIMD16<Float>(repeating: sdy)
                        let vc = SIMD16<Float>(repeating: istd * sdyx)
                        for b in 0..<n {
                            let off = (b * c + ch) * inner
                            let xs = UnsafeRawPointer(xp + off), gs = UnsafeRawPointer(gp + off), ys = UnsafeRawPointer(yp + off)
                            let dst = UnsafeMutableRawPointer(gxp + off)
                            var i = 0
                            while i < wide {
                                var gv = gs.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                                if relu { gv.replace(with: zero, where: ys.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) .<= zero) }
                                let xv = xs.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                                dst.storeBytes(of: vk * (vfm * gv - vsdy - (xv - vmu) * vc), toByteOffset: 4 * i, as: SIMD16<Float>.self)
                                i += 16
                            }
                            while i < inner {
                                let gv = relu && (yp + off)[i] <= 0 ? 0 : (gp + off)[i]
                                (gxp + off)[i] = k * (fm * gv - sdy - ((xp + off)[i] - mu) * istd * sdyx)
                                i += 1
                            }
                        }
                    }
                } } }
            } } }
            accumulate(gx)
            gamma?.accumulate(gGamma)
            beta?.accumulate(gBeta)
        }
        return (result, mean, variance)
    }

    /// Batch normalisation with fixed statistics (inference).
    public func batchNormInference(gamma: Tensor?, beta: Tensor?, mean: [Float], variance: [Float], eps: Float = 1e-5) throws -> Tensor {
        let c = shape[1]
        let bshape = [1, c] + [Int](repeating: 1, count: rank - 2)
        let scale = Tensor(shape: bshape, data: variance.map { 1 / ($0 + eps).squareRoot() })
        let shift = Tensor(shape: bshape, data: zip(mean, variance).map { -$0 / ($1 + eps).squareRoot() })
        return try (self * scale + shift).channelAffine(gamma, beta)
    }

    /// Instance normalisation: statistics per sample and channel. 4-D tensors with a multiple of 16 channels run
    /// blocked in one fused kernel (the result is then blocked); others on the generic path.
    public func instanceNorm(gamma: Tensor?, beta: Tensor?, eps: Float = 1e-5) throws -> Tensor {
        try instanceNorm(gamma: gamma, beta: beta, eps: eps, relu: false)
    }

    /// Instance normalisation followed by ReLU (fused on the blocked path).
    public func instanceNormReLU(gamma: Tensor?, beta: Tensor?, eps: Float = 1e-5) throws -> Tensor {
        try instanceNorm(gamma: gamma, beta: beta, eps: eps, relu: true)
    }

    func instanceNorm(gamma: Tensor?, beta: Tensor?, eps: Float, relu: Bool) throws -> Tensor {
        guard rank >= 3 else { throw TensorError.shapeMismatch("instanceNorm of \(shape)") }
        if let gamma, gamma.count != shape[1] { throw TensorError.shapeMismatch("instanceNorm gamma \(gamma.shape) for \(shape[1]) channels") }
        if let beta, beta.count != shape[1] { throw TensorError.shapeMismatch("instanceNorm beta \(beta.shape) for \(shape[1]) channels") }
        if Layout.canBlock(shape) {
            return converted(to: .blocked16).blockedNorm(perImage: true, gamma: gamma, beta: beta, eps: eps, relu: relu).0
        }
        let inner = shape[2...].reduce(1, *)
        let y = try normalized(groups: shape[0] * shape[1], eps: eps) { $0 / inner }.0.channelAffine(gamma, beta)
        return relu ? y.relu() : y
    }

    /// The blocked kernels (``BlockedNorm``) as a graph operation; returns per-channel batch mean and unbiased variance
    /// (for running estimates; only meaningful for batch statistics).
    func blockedNorm(perImage: Bool, gamma: Tensor?, beta: Tensor?, eps: Float, relu: Bool) -> (Tensor, mean: [Float], variance: [Float]) {
        let (n, c) = (shape[0], shape[1]), hw = shape[2] * shape[3]
        let x = storage, gd = gamma?.data, bd = beta?.data
        let (out, mean, variance) = BlockedNorm.forward(x, n: n, c: c, hw: hw, perImage: perImage, gamma: gd, beta: bd, eps: eps, relu: relu)
        var inputs = [self]
        if let gamma { inputs.append(gamma) }
        if let beta { inputs.append(beta) }
        let result = Tensor.result(shape: shape, data: out, layout: .blocked16, inputs: inputs) { [self] g in
            let (dx, dGamma, dBeta) = BlockedNorm.backward(g, x: x, n: n, c: c, hw: hw, perImage: perImage, gamma: gd, beta: bd, eps: eps,
                                                           relu: relu, mean: mean, variance: variance)
            accumulate(dx, layout: .blocked16)
            gamma?.accumulate(dGamma)
            beta?.accumulate(dBeta)
        }
        guard !perImage else { return (result, [], []) }
        let m = Float(n * hw)
        let meanC = (0..<c).map { mean[$0 / 16][$0 % 16] }
        let varC = (0..<c).map { ch -> Float in let v = variance[ch / 16][ch % 16]; return m > 1 ? v * m / (m - 1) : v }
        return (result, meanC, varC)
    }

    /// Group normalisation: statistics per sample over `groups` groups of channels.
    public func groupNorm(groups: Int, gamma: Tensor?, beta: Tensor?, eps: Float = 1e-5) throws -> Tensor {
        guard rank >= 2, shape[1] % groups == 0 else { throw TensorError.shapeMismatch("groupNorm(\(groups)) of \(shape)") }
        let inner = shape[2...].reduce(1, *) * (shape[1] / groups)
        return try normalized(groups: shape[0] * groups, eps: eps) { $0 / inner }.0.channelAffine(gamma, beta)
    }

    /// Layer normalisation over the last dimension, with γ, β of that size.
    public func layerNorm(gamma: Tensor?, beta: Tensor?, eps: Float = 1e-5) throws -> Tensor {
        let d = shape.last ?? 1
        var y = normalized(groups: count / max(1, d), eps: eps) { $0 / d }.0
        if let gamma { y = y * gamma }
        if let beta { y = y + beta }
        return y
    }
}

/// Runs body(channel) for every channel over the cores.
func parallelChannels(_ c: Int, _ body: @Sendable (Int) -> Void) {
    if c < 2 { for ch in 0..<c { body(ch) }; return }
    DispatchQueue.concurrentPerform(iterations: c, execute: body)
}
