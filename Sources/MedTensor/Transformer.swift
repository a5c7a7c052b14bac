import Foundation
import MedCompute
internal import CMedKernels

/// The operations of a vision transformer on contiguous row-major buffers: linear layers as one SGEMM over all
/// tokens, LayerNorm, exact GELU, fused multi-head attention from a QKV projection, token gathering and restoring
/// (the masked autoencoder's shuffle), image patches, and the masked reconstruction loss. The hot loops are the
/// CMedKernels transformer kernels, compiled for AVX-512, AVX2 and the baseline and run on both cores.
extension Tensor {
    /// x · Wᵀ + b over the last dimension: x [..., in], weight [out, ...] with `in` values per output (PyTorch's
    /// Linear layout, or a Conv2d weight [out, C, p, p] applied to flattened patches), bias [out]. One SGEMM over
    /// all rows, no transposed copy of the weight; backward dx = dy · W, dW = dyᵀ · x, db = Σ dy.
    public func linear(_ weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        let out = weight.shape.first ?? 0, inner = weight.count / max(1, out)
        guard rank >= 1, weight.rank >= 2, shape.last == inner else {
            throw TensorError.shapeMismatch("linear of \(shape) with weight \(weight.shape)")
        }
        if let bias, bias.count != out { throw TensorError.shapeMismatch("linear bias \(bias.shape) for \(out) outputs") }
        let rows = count / max(1, inner)
        let x = data, w = weight.data
        var y = uninitializedFloats(rows * out)
        x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
            Compute.sgemm(transB: true, m: rows, n: out, k: inner, a: xp.baseAddress!, lda: inner, b: wp.baseAddress!, ldb: inner,
                          c: yp.baseAddress!, ldc: out)
            if let bias { bias.data.withUnsafeBufferPointer { bp in mk_add_bias(yp.baseAddress!, bp.baseAddress!, rows, out) } }
        } } }
        let inputs = [self, weight] + (bias.map { [$0] } ?? [])
        return Tensor.result(shape: Array(shape.dropLast()) + [out], data: y, inputs: inputs) { [self] g in
            g.withUnsafeBufferPointer { gp in
                if requiresGrad {
                    var gx = uninitializedFloats(rows * inner)
                    w.withUnsafeBufferPointer { wp in gx.withUnsafeMutableBufferPointer { gxp in
                        Compute.sgemm(m: rows, n: inner, k: out, a: gp.baseAddress!, lda: out, b: wp.baseAddress!, ldb: inner,
                                      c: gxp.baseAddress!, ldc: inner)
                    } }
                    accumulate(gx)
                }
                if weight.requiresGrad {
                    var gw = uninitializedFloats(out * inner)
                    x.withUnsafeBufferPointer { xp in gw.withUnsafeMutableBufferPointer { gwp in
                        Compute.sgemm(transA: true, m: out, n: inner, k: rows, a: gp.baseAddress!, lda: out, b: xp.baseAddress!, ldb: inner,
                                      c: gwp.baseAddress!, ldc: inner)
                    } }
                    weight.accumulate(gw)
                }
                if let bias, bias.requiresGrad {
                    var gb = uninitializedFloats(out)
                    gb.withUnsafeMutableBufferPointer { gbp in mk_column_sums(gp.baseAddress!, gbp.baseAddress!, rows, out) }
                    bias.accumulate(gb)
                }
            }
        }
    }

    /// Layer normalisation over the last dimension (PyTorch's LayerNorm: biased variance, eps inside the root).
    public func layerNorm(gamma: Tensor, beta: Tensor, eps: Float = 1e-5) throws -> Tensor {
        guard let d = shape.last, d > 0, gamma.count == d, beta.count == d else {
            throw TensorError.shapeMismatch("layerNorm of \(shape) with weight \(gamma.shape) and bias \(beta.shape)")
        }
        let rows = count / d
        let x = data, gv = gamma.data, bv = beta.data
        var y = uninitializedFloats(count), mean = uninitializedFloats(rows), rstd = uninitializedFloats(rows)
        x.withUnsafeBufferPointer { xp in gv.withUnsafeBufferPointer { gp in bv.withUnsafeBufferPointer { bp in
            y.withUnsafeMutableBufferPointer { yp in mean.withUnsafeMutableBufferPointer { mp in rstd.withUnsafeMutableBufferPointer { rp in
                mk_layernorm(xp.baseAddress!, gp.baseAddress!, bp.baseAddress!, yp.baseAddress!, mp.baseAddress!, rp.baseAddress!, rows, d, eps)
            } } }
        } } }
        return Tensor.result(shape: shape, data: y, inputs: [self, gamma, beta]) { [self] g in
            var gx = uninitializedFloats(rows * d), gg = [Float](repeating: 0, count: d), gb = gg
            g.withUnsafeBufferPointer { dy in x.withUnsafeBufferPointer { xp in gv.withUnsafeBufferPointer { gp in
                mean.withUnsafeBufferPointer { mp in rstd.withUnsafeBufferPointer { rp in
                    gx.withUnsafeMutableBufferPointer { gxp in gg.withUnsafeMutableBufferPointer { ggp in gb.withUnsafeMutableBufferPointer { gbp in
                        mk_layernorm_backward(dy.baseAddress!, xp.baseAddress!, gp.baseAddress!, mp.baseAddress!, rp.baseAddress!,
                                              gxp.baseAddress!, ggp.baseAddress!, gbp.baseAddress!, rows, d)
                    } } }
                } }
            } } }
            accumulate(gx)
            gamma.accumulate(gg)
            beta.accumulate(gb)
        }
    }

    /// GELU: exact (x Φ(x) with erf, PyTorch's default) or, with `approximate`, the tanh form (PyTorch's
    /// approximate="tanh").
    public func gelu(approximate: Bool = false) -> Tensor {
        if approximate {
            let c = Float((2 / Double.pi).squareRoot())
            return unary({ x in 0.5 * x * (1 + Foundation.tanh(c * (x + 0.044715 * x * x * x))) }, derivative: { x, _ in
                let u = c * (x + 0.044715 * x * x * x), t = Foundation.tanh(u)
                return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
            })
        }
        let x = data, n = count
        let y = [Float](unsafeUninitializedCapacity: n) { yb, initialized in
            x.withUnsafeBufferPointer { xb in mk_gelu(xb.baseAddress!, yb.baseAddress!, n) }
            initialized = n
        }
        return Tensor.result(shape: shape, data: y, inputs: [self]) { [self] g in
            let gx = [Float](unsafeUninitializedCapacity: n) { gxb, initialized in
                x.withUnsafeBufferPointer { xb in g.withUnsafeBufferPointer { gb in mk_gelu_backward(xb.baseAddress!, gb.baseAddress!, gxb.baseAddress!, n) } }
                initialized = n
            }
            accumulate(gx)
        }
    }

    /// Multi-head self-attention softmax(Q Kᵀ / √d) V from a fused QKV projection: self [B, T, 3·D] holding, per
    /// token, Q, K and V each as `heads` groups of D / heads values (PyTorch's `qkv.reshape(B, T, 3, heads, D / heads)`);
    /// result [B, T, D] with the heads side by side, ready for the output projection.
    public func multiHeadAttention(heads: Int) throws -> Tensor {
        guard rank == 3, heads > 0, shape[2] % (3 * heads) == 0 else {
            throw TensorError.shapeMismatch("multiHeadAttention(heads: \(heads)) of \(shape) (needs [batch, tokens, 3 x heads x head size])")
        }
        let (b, t, d) = (shape[0], shape[1], shape[2] / 3)
        let dh = d / heads, scale = 1 / Float(dh).squareRoot()
        let qkv = data
        var out = uninitializedFloats(b * t * d), probs = uninitializedFloats(b * heads * t * t)
        qkv.withUnsafeBufferPointer { qp in out.withUnsafeMutableBufferPointer { op in probs.withUnsafeMutableBufferPointer { pp in
            mk_attention(qp.baseAddress!, op.baseAddress!, pp.baseAddress!, b, t, heads, dh, scale)
        } } }
        let p = probs
        return Tensor.result(shape: [b, t, d], data: out, inputs: [self]) { [self] g in
            var gqkv = uninitializedFloats(b * t * 3 * d)
            qkv.withUnsafeBufferPointer { qp in p.withUnsafeBufferPointer { pp in g.withUnsafeBufferPointer { gp in
                gqkv.withUnsafeMutableBufferPointer { gq in
                    mk_attention_backward(qp.baseAddress!, pp.baseAddress!, gp.baseAddress!, gq.baseAddress!, b, t, heads, dh, scale)
                }
            } } }
            accumulate(gqkv)
        }
    }

    /// Tokens `indices[b]` of each sample of self [B, N, D]: result [B, k, D] (every sample keeps k tokens).
    public func gatherTokens(_ indices: [[Int]]) throws -> Tensor {
        guard rank == 3, indices.count == shape[0], let k = indices.first?.count, indices.allSatisfy({ $0.count == k }),
              indices.allSatisfy({ $0.allSatisfy { $0 >= 0 && $0 < shape[1] } }) else {
            throw TensorError.shapeMismatch("gatherTokens of \(shape) with \(indices.count) index lists")
        }
        let (b, n, d) = (shape[0], shape[1], shape[2])
        let x = data
        var out = [Float](repeating: 0, count: b * k * d)
        for s in 0..<b { for (r, i) in indices[s].enumerated() { for j in 0..<d { out[(s * k + r) * d + j] = x[(s * n + i) * d + j] } } }
        return Tensor.result(shape: [b, k, d], data: out, inputs: [self]) { [self] g in
            var gx = [Float](repeating: 0, count: b * n * d)
            for s in 0..<b { for (r, i) in indices[s].enumerated() { for j in 0..<d { gx[(s * n + i) * d + j] += g[(s * k + r) * d + j] } } }
            accumulate(gx)
        }
    }

    /// A token (D values, e.g. a class token plus its position) in front of every sample's sequence: self [B, T, D]
    /// becomes [B, 1 + T, D]; the token's gradient is the sum over the samples.
    public func prependingToken(_ token: Tensor) throws -> Tensor {
        guard rank == 3, token.count == shape[2] else { throw TensorError.shapeMismatch("prependingToken \(token.shape) to \(shape)") }
        let (b, t, d) = (shape[0], shape[1], shape[2])
        let x = data, tk = token.data
        var out = [Float](repeating: 0, count: b * (t + 1) * d)
        for s in 0..<b {
            for j in 0..<d { out[s * (t + 1) * d + j] = tk[j] }
            for i in 0..<(t * d) { out[s * (t + 1) * d + d + i] = x[s * t * d + i] }
        }
        return Tensor.result(shape: [b, t + 1, d], data: out, inputs: [self, token]) { [self] g in
            var gx = [Float](repeating: 0, count: b * t * d), gt = [Float](repeating: 0, count: d)
            for s in 0..<b {
                for j in 0..<d { gt[j] += g[s * (t + 1) * d + j] }
                for i in 0..<(t * d) { gx[s * t * d + i] = g[s * (t + 1) * d + d + i] }
            }
            accumulate(gx)
            token.accumulate(gt)
        }
    }

    /// The masked autoencoder's decoder input: from `visible` [B, 1 + k, D] (a class token, then the k kept tokens in
    /// shuffled order) and a learned `maskToken` (D values), the full sequence [B, 1 + N, D] in original order: the
    /// class token, then for each position n the kept token `restore[b][n]` when that is below k, else the mask token.
    public static func restoreTokens(_ visible: Tensor, maskToken: Tensor, restore: [[Int]]) throws -> Tensor {
        guard visible.rank == 3, restore.count == visible.shape[0], maskToken.count == visible.shape[2],
              let n = restore.first?.count, restore.allSatisfy({ $0.count == n && $0.allSatisfy { $0 >= 0 && $0 < n } }) else {
            throw TensorError.shapeMismatch("restoreTokens of \(visible.shape) with mask token \(maskToken.shape) and \(restore.count) orders")
        }
        let (b, kept, d) = (visible.shape[0], visible.shape[1] - 1, visible.shape[2])
        let v = visible.data, m = maskToken.data
        var out = [Float](repeating: 0, count: b * (n + 1) * d)
        for s in 0..<b {
            for j in 0..<d { out[s * (n + 1) * d + j] = v[s * (kept + 1) * d + j] }
            for pos in 0..<n {
                let r = restore[s][pos], dst = (s * (n + 1) + 1 + pos) * d
                if r < kept { for j in 0..<d { out[dst + j] = v[(s * (kept + 1) + 1 + r) * d + j] } } else { for j in 0..<d { out[dst + j] = m[j] } }
            }
        }
        return Tensor.result(shape: [b, n + 1, d], data: out, inputs: [visible, maskToken]) { g in
            var gv = [Float](repeating: 0, count: visible.count), gm = [Float](repeating: 0, count: d)
            for s in 0..<b {
                for j in 0..<d { gv[s * (kept + 1) * d + j] = g[s * (n + 1) * d + j] }
                for pos in 0..<n {
                    let r = restore[s][pos], src = (s * (n + 1) + 1 + pos) * d
                    if r < kept { for j in 0..<d { gv[(s * (kept + 1) + 1 + r) * d + j] += g[src + j] } } else { for j in 0..<d { gm[j] += g[src + j] } }
                }
            }
            visible.accumulate(gv)
            maskToken.accumulate(gm)
        }
    }

    /// Non-overlapping p x p patches of images [B, C, H, W]: result [B, (H/p)·(W/p), C·p·p], patches in row-major order.
    /// `channelsLast`: each patch's values ordered (row, column, channel), as the MAE reference's `patchify` (its
    /// reconstruction targets); otherwise (channel, row, column), the order of a Conv2d weight [D, C, p, p], so
    /// that `patches(p).linear(convWeight)` equals the convolution with kernel and stride p.
    public func patches(_ p: Int, channelsLast: Bool = false) throws -> Tensor {
        guard rank == 4, p > 0, shape[2] % p == 0, shape[3] % p == 0 else { throw TensorError.shapeMismatch("patches(\(p)) of \(shape)") }
        let (b, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (gh, gw) = (h / p, w / p), per = c * p * p
        // Within a patch, element (channel, row, column) sits at (ch·p + py)·p + px (channels first) or
        // (py·p + px)·c + ch (channels last); either way a source row segment of p pixels lands at a fixed stride.
        let columnStride = channelsLast ? c : 1
        func base(_ ch: Int, _ py: Int) -> Int { channelsLast ? py * p * c + ch : (ch * p + py) * p }
        /// Calls move(source offset, destination offset) for every source row segment of p pixels.
        func forEachSegment(_ move: (Int, Int) -> Void) {
            for s in 0..<b { for ch in 0..<c { for y in 0..<h {
                let (py, patchRow) = (y % p, y / p)
                for px0 in 0..<gw {
                    move(((s * c + ch) * h + y) * w + px0 * p, (s * gh * gw + patchRow * gw + px0) * per + base(ch, py))
                }
            } } }
        }
        let x = data
        let out = [Float](unsafeUninitializedCapacity: count) { ob, initialized in
            x.withUnsafeBufferPointer { xb in
                forEachSegment { src, dst in for k in 0..<p { ob[dst + k * columnStride] = xb[src + k] } }
            }
            initialized = count
        }
        return Tensor.result(shape: [b, gh * gw, per], data: out, inputs: [self]) { [self] g in
            let gx = [Float](unsafeUninitializedCapacity: g.count) { gb, initialized in
                g.withUnsafeBufferPointer { gp in forEachSegment { src, dst in for k in 0..<p { gb[src + k] = gp[dst + k * columnStride] } } }
                initialized = g.count
            }
            accumulate(gx)
        }
    }

    /// The masked autoencoder's loss: the mean over masked patches of each patch's mean squared error,
    /// Σ_n mask[b][n] · mean_j (pred[b, offset + n, j] − target[b, n, j])² / Σ mask. `prediction` [B, offset + N, P]
    /// (offset 1 skips the class token), `target` [B, N, P] (no gradient), `mask` [B][N] (1: hidden).
    public static func maskedMSE(_ prediction: Tensor, target: [Float], mask: [[Float]], offset: Int = 1) throws -> Tensor {
        guard prediction.rank == 3, mask.count == prediction.shape[0], let n = mask.first?.count, mask.allSatisfy({ $0.count == n }),
              prediction.shape[1] == n + offset, target.count == prediction.shape[0] * n * prediction.shape[2] else {
            throw TensorError.shapeMismatch("maskedMSE of \(prediction.shape) with \(target.count) targets and \(mask.count) masks")
        }
        let (b, t, pd) = (prediction.shape[0], prediction.shape[1], prediction.shape[2])
        let total = mask.reduce(0) { $0 + $1.reduce(0, +) }
        guard total > 0 else { throw TensorError.shapeMismatch("maskedMSE with no masked patch") }
        let pv = prediction.data
        var loss = 0.0
        for s in 0..<b { for i in 0..<n where mask[s][i] != 0 {
            var e = 0.0
            for j in 0..<pd { let diff = Double(pv[(s * t + offset + i) * pd + j] - target[(s * n + i) * pd + j]); e += diff * diff }
            loss += Double(mask[s][i]) * e / Double(pd)
        } }
        return Tensor.result(shape: [], data: [Float(loss / Double(total))], inputs: [prediction]) { g in
            var gp = [Float](repeating: 0, count: prediction.count)
            let scale = g[0] * 2 / (Float(pd) * total)
            for s in 0..<b { for i in 0..<n where mask[s][i] != 0 {
                for j in 0..<pd {
                    let k = (s * t + offset + i) * pd + j
                    gp[k] = scale * mask[s][i] * (pv[k] - target[(s * n + i) * pd + j])
                }
            } }
            prediction.accumulate(gp)
        }
    }
}

/// An array of `count` floats whose values the caller overwrites in full (no zero fill).
@inline(__always)
func uninitializedFloats(_ count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}
