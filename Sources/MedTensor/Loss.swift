import Foundation
import MedCompute

/// Loss functions (means over the batch unless said otherwise).
public enum Loss {
    /// Cross-entropy of logits [N, C, ...] against integer labels [N, ...] (stored as Float), with optional class
    /// weights (PyTorch's weighted mean: Σ w_y · nll / Σ w_y) and an ignored label.
    public static func crossEntropy(_ logits: Tensor, _ labels: [Float], weights: [Float]? = nil, ignore: Int? = nil) throws -> Tensor {
        let c = logits.shape[1]
        let inner = logits.shape[2...].reduce(1, *), n = logits.shape[0]
        guard labels.count == n * inner else { throw TensorError.shapeMismatch("\(labels.count) labels for logits \(logits.shape)") }
        if let weights, weights.count != c { throw TensorError.shapeMismatch("\(weights.count) class weights for \(c) classes") }
        let logp = logits.logSoftmax(axis: 1)
        // Select −w_y log p_y with a constant mask tensor; normalise by the total weight.
        var mask = [Float](repeating: 0, count: logits.count)
        var total: Float = 0
        for b in 0..<n {
            for i in 0..<inner {
                let y = Int(labels[b * inner + i])
                if let ignore, y == ignore { continue }
                guard y >= 0 && y < c else { throw TensorError.shapeMismatch("label \(y) outside 0..<\(c)") }
                let w = weights?[y] ?? 1
                mask[(b * c + y) * inner + i] = -w
                total += w
            }
        }
        return (logp * Tensor(shape: logits.shape, data: mask)).sum() * (1 / max(total, 1e-12))
    }

    /// One-hot encoding of labels [N, ...] to [N, C, ...].
    public static func oneHot(_ labels: [Float], shape: [Int]) -> Tensor {
        let c = shape[1], inner = shape[2...].reduce(1, *)
        var out = [Float](repeating: 0, count: shape.reduce(1, *))
        for b in 0..<shape[0] { for i in 0..<inner { let y = Int(labels[b * inner + i]); if y >= 0 && y < c { out[(b * c + y) * inner + i] = 1 } } }
        return Tensor(shape: shape, data: out)
    }

    /// Soft Dice loss 1 − mean_c (2 Σ p·t + ε) / (Σ p + Σ t + ε) on softmax probabilities; sums over the batch and
    /// the spatial axes per class (`perImage`: per image and class, then the mean).
    public static func softDice(_ logits: Tensor, _ labels: [Float], eps: Float = 1e-5, perImage: Bool = false) throws -> Tensor {
        let p = logits.softmax(axis: 1)
        let t = oneHot(labels, shape: logits.shape)
        let axes = perImage ? Array(2..<logits.rank) : [0] + Array(2..<logits.rank)
        let inter = (p * t).sum(axes: axes)
        let denom = p.sum(axes: axes) + t.sum(axes: axes)
        let dice = (inter * 2 + eps) / (denom + eps)
        return 1 - dice.mean()
    }

    /// nnU-Net's and the benchmark's loss: cross-entropy + soft Dice (batch Dice, ε = 1e-5), the same value and
    /// gradient as ``crossEntropy(_:_:weights:ignore:)`` + ``softDice(_:_:eps:perImage:)`` in one fused kernel:
    /// forward softmax and the per-class sums once; backward per pixel
    /// dL/dz_k = (p_k − t_k) / M + p_k (G_k − Σ_j p_j G_j) with G_c = −(2 t_c − D_c) / (C (S_c + ε)),
    /// D_c the class's Dice and S_c = Σ p_c + Σ t_c.
    public static func diceCE(_ logits: Tensor, _ labels: [Float]) throws -> Tensor {
        guard logits.rank >= 2 else { throw TensorError.shapeMismatch("diceCE of logits \(logits.shape)") }
        let n = logits.shape[0], c = logits.shape[1], inner = logits.shape[2...].reduce(1, *)
        guard labels.count == n * inner else { throw TensorError.shapeMismatch("\(labels.count) labels for logits \(logits.shape)") }
        if let bad = labels.first(where: { !($0 >= 0 && $0 < Float(c)) || $0 != $0.rounded() }) {
            throw TensorError.shapeMismatch("label \(bad) outside 0..<\(c)")
        }
        let z = logits.data, eps: Float = 1e-5
        // Softmax per pixel; per image: Σ log p_y, and per class Σ p·t, Σ p, Σ t.
        var logpY = [Double](repeating: 0, count: n)
        var sums = [Double](repeating: 0, count: n * c * 3)
        let p = [Float](unsafeUninitializedCapacity: z.count) { pb, initialized in
            z.withUnsafeBufferPointer { zb in labels.withUnsafeBufferPointer { lb in
                logpY.withUnsafeMutableBufferPointer { yb in sums.withUnsafeMutableBufferPointer { sb in
                    nonisolated(unsafe) let (zp, lp, pp, yp, sp) = (zb.baseAddress!, lb.baseAddress!, pb.baseAddress!, yb.baseAddress!, sb.baseAddress!)
                    parallelFor(n) { b in
                        var ly: Double = 0
                        var inter = [Double](repeating: 0, count: c), psum = inter, tsum = inter
                        for i in 0..<inner {
                            let base = b * c * inner + i
                            var m = -Float.infinity
                            for k in 0..<c { m = max(m, zp[base + k * inner]) }
                            var total: Float = 0
                            for k in 0..<c { let e = Foundation.exp(zp[base + k * inner] - m); pp[base + k * inner] = e; total += e }
                            let inv = 1 / total, y = Int(lp[b * inner + i])
                            for k in 0..<c { pp[base + k * inner] *= inv; psum[k] += Double(pp[base + k * inner]) }
                            inter[y] += Double(pp[base + y * inner]); tsum[y] += 1
                            ly += Double(zp[base + y * inner] - m - Foundation.log(total))
                        }
                        yp[b] = ly
                        for k in 0..<c { sp[(b * c + k) * 3] = inter[k]; sp[(b * c + k) * 3 + 1] = psum[k]; sp[(b * c + k) * 3 + 2] = tsum[k] }
                    }
                } }
            } }
            initialized = z.count
        }
        let m = Double(n * inner)
        let ce = -logpY.reduce(0, +) / m
        var dice = [Float](repeating: 0, count: c), denom = [Float](repeating: 0, count: c)
        for k in 0..<c {
            var inter = 0.0, ps = 0.0, ts = 0.0
            for b in 0..<n { inter += sums[(b * c + k) * 3]; ps += sums[(b * c + k) * 3 + 1]; ts += sums[(b * c + k) * 3 + 2] }
            denom[k] = Float(ps + ts) + eps
            dice[k] = (2 * Float(inter) + eps) / denom[k]
        }
        let loss = Float(ce) + 1 - dice.reduce(0, +) / Float(c)
        let (diceC, denomC) = (dice, denom)
        return Tensor.result(shape: [], data: [loss], inputs: [logits]) { g in
            let scale = g[0], invM = 1 / Float(m), invC = 1 / Float(c)
            let gz = [Float](unsafeUninitializedCapacity: p.count) { gb, initialized in
                p.withUnsafeBufferPointer { pb in labels.withUnsafeBufferPointer { lb in
                    nonisolated(unsafe) let (pp, lp, gp) = (pb.baseAddress!, lb.baseAddress!, gb.baseAddress!)
                    parallelFor(n) { b in
                        var gd = [Float](repeating: 0, count: c)
                        for i in 0..<inner {
                            let base = b * c * inner + i, y = Int(lp[b * inner + i])
                            var dot: Float = 0
                            for k in 0..<c {
                                gd[k] = -invC * ((k == y ? 2 : 0) - diceC[k]) / denomC[k]
                                dot += pp[base + k * inner] * gd[k]
                            }
                            for k in 0..<c {
                                let pk = pp[base + k * inner]
                                gp[base + k * inner] = scale * ((pk - (k == y ? 1 : 0)) * invM + pk * (gd[k] - dot))
                            }
                        }
                    }
                } }
                initialized = p.count
            }
            logits.accumulate(gz)
        }
    }

    /// Mean squared error, optionally only where `mask` is 1 (the MAE's masked patches).
    public static func mse(_ prediction: Tensor, _ target: Tensor, mask: [Float]? = nil) throws -> Tensor {
        let d = (prediction - target).squared()
        guard let mask else { return d.mean() }
        guard mask.count == d.count else { throw TensorError.shapeMismatch("mask of \(mask.count) for \(d.shape)") }
        return (d * Tensor(shape: d.shape, data: mask)).sum() * (1 / max(1, mask.reduce(0, +)))
    }

    /// InfoNCE / NT-Xent for 2N embeddings [2N, D] where rows i and i + N are positives: cosine similarities over a
    /// temperature, cross-entropy against the positive, self-similarity excluded.
    public static func ntXent(_ z: Tensor, temperature: Float = 0.1) throws -> Tensor {
        guard z.rank == 2, z.shape[0] % 2 == 0 else { throw TensorError.shapeMismatch("NT-Xent needs [2N, D], got \(z.shape)") }
        let m = z.shape[0], half = m / 2
        let norm = (z.squared().sum(axes: [1], keepDims: true) + 1e-12).log() * Tensor(scalar: -0.5)
        let u = z * norm.exp()
        let sim = try u.matmul(try u.permuted([1, 0])) * (1 / temperature)
        // Exclude the diagonal by a large negative constant.
        var diag = [Float](repeating: 0, count: m * m)
        for i in 0..<m { diag[i * m + i] = -1e9 }
        let logits = sim + Tensor(shape: [m, m], data: diag)
        let targets = (0..<m).map { Float($0 < half ? $0 + half : $0 - half) }
        return try crossEntropy(logits, targets)
    }
}
