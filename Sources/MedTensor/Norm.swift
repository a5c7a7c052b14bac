import Foundation
internal import CMedKernels

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
    /// result (in the input's layout) and the batch mean and (unbiased) variance for the running estimates. One fused
    /// kernel (``BlockedNorm``): y = γ (x − μ) / σ + β; backward dβ = Σ dy, dγ = Σ dy x̂,
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
        let c = shape[1]
        if let gamma, gamma.count != c { throw TensorError.shapeMismatch("batchNorm gamma \(gamma.shape) for \(c) channels") }
        if let beta, beta.count != c { throw TensorError.shapeMismatch("batchNorm beta \(beta.shape) for \(c) channels") }
        return normKernel(perImage: false, gamma: gamma, beta: beta, eps: eps, relu: relu)
    }

    /// Batch normalisation with fixed statistics (inference).
    public func batchNormInference(gamma: Tensor?, beta: Tensor?, mean: [Float], variance: [Float], eps: Float = 1e-5) throws -> Tensor {
        try batchNormInference(gamma: gamma, beta: beta, mean: mean, variance: variance, eps: eps, relu: false)
    }

    /// Batch normalisation with running statistics, then an optional ReLU. Without gradients (prediction) one fused
    /// pass in the input's layout: y = relu?(x · a + b) with a = γ/σ and b = β − μ·γ/σ per channel (``BlockedNorm``'s
    /// kernel); with gradients, the differentiable composition of elementwise operations.
    public func batchNormInference(gamma: Tensor?, beta: Tensor?, mean: [Float], variance: [Float], eps: Float = 1e-5, relu: Bool) throws -> Tensor {
        let c = shape[1]
        guard mean.count == c, variance.count == c else { throw TensorError.shapeMismatch("batchNormInference statistics for \(mean.count) channels, input \(shape)") }
        let needsGrad = GradMode.isEnabled && (requiresGrad || gamma?.requiresGrad == true || beta?.requiresGrad == true)
        if !needsGrad && rank >= 2 && c % layout.block == 0 {
            let (n, block) = (shape[0], layout.block), inner = shape[2...].reduce(1, *)
            let (scale, shift) = BlockedNorm.affine(c: c, block: block, gamma: gamma?.data, beta: beta?.data, mean: mean, variance: variance, eps: eps)
            let x = storage
            let out = [Float](unsafeUninitializedCapacity: x.count) { ob, initialized in
                x.withUnsafeBufferPointer { xb in scale.withUnsafeBufferPointer { sb in shift.withUnsafeBufferPointer { hb in
                    mk_norm_apply(xb.baseAddress!, ob.baseAddress!, n, c / block, inner, Int32(block), sb.baseAddress!, hb.baseAddress!, 0, relu ? 1 : 0)
                } } }
                initialized = x.count
            }
            return Tensor(shape: shape, storage: out, layout: layout, requiresGrad: false)
        }
        let y = try generalBatchNormInference(gamma: gamma, beta: beta, mean: mean, variance: variance, eps: eps)
        return relu ? y.relu() : y
    }

    func generalBatchNormInference(gamma: Tensor?, beta: Tensor?, mean: [Float], variance: [Float], eps: Float) throws -> Tensor {
        let c = shape[1]
        let bshape = [1, c] + [Int](repeating: 1, count: rank - 2)
        let scale = Tensor(shape: bshape, data: variance.map { 1 / ($0 + eps).squareRoot() })
        let shift = Tensor(shape: bshape, data: zip(mean, variance).map { -$0 / ($1 + eps).squareRoot() })
        return try (self * scale + shift).channelAffine(gamma, beta)
    }

    /// Instance normalisation: statistics per sample and channel, in one fused kernel (``BlockedNorm``) in the input's
    /// layout. (Group normalisation with one channel per group computes the same on the generic path.)
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
        return normKernel(perImage: true, gamma: gamma, beta: beta, eps: eps, relu: relu).0
    }

    /// The fused kernels (``BlockedNorm``) as a graph operation, in the input's layout; returns per-channel batch mean
    /// and unbiased variance (for running estimates; only meaningful for batch statistics).
    func normKernel(perImage: Bool, gamma: Tensor?, beta: Tensor?, eps: Float, relu: Bool) -> (Tensor, mean: [Float], variance: [Float]) {
        let (n, c) = (shape[0], shape[1]), inner = shape[2...].reduce(1, *), block = layout.block, lay = layout
        let x = storage, gd = gamma?.data, bd = beta?.data
        let (out, mean, variance) = BlockedNorm.forward(x, n: n, c: c, inner: inner, block: block, perImage: perImage, gamma: gd, beta: bd,
                                                        eps: eps, relu: relu)
        var inputs = [self]
        if let gamma { inputs.append(gamma) }
        if let beta { inputs.append(beta) }
        let result = Tensor.result(shape: shape, data: out, layout: lay, inputs: inputs) { [self] g in
            let (dx, dGamma, dBeta) = BlockedNorm.backward(g, x: x, n: n, c: c, inner: inner, block: block, perImage: perImage, gamma: gd, beta: bd,
                                                           eps: eps, relu: relu, mean: mean, variance: variance)
            accumulate(dx, layout: lay)
            gamma?.accumulate(dGamma)
            beta?.accumulate(dBeta)
        }
        guard !perImage else { return (result, [], []) }
        let m = Float(n * inner)
        return (result, mean, variance.map { m > 1 ? $0 * m / (m - 1) : $0 })
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

