import Foundation

extension Tensor {
    /// Scaled dot-product attention softmax(Q Kᵀ / √d) V over the last two dimensions ([..., L, d]), composed of
    /// matmul and softmax (the reference the fused ``multiHeadAttention(heads:)`` is tested against).
    public static func scaledDotProductAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor) throws -> Tensor {
        guard q.rank >= 2, q.shape.last == k.shape.last, k.shape.dropLast() == v.shape.dropLast() else {
            throw TensorError.shapeMismatch("attention of q \(q.shape), k \(k.shape), v \(v.shape)")
        }
        let d = Float(q.shape.last!)
        var order = Array(0..<k.rank)
        order.swapAt(k.rank - 1, k.rank - 2)
        let scores = try q.matmul(try k.permuted(order)) * (1 / d.squareRoot())
        return try scores.softmax(axis: -1 + scores.rank).matmul(v)
    }

    /// Elements `range` along `axis`.
    public func sliced(axis: Int, _ range: Range<Int>) throws -> Tensor {
        let ax = axis < 0 ? axis + rank : axis
        guard ax >= 0, ax < rank, range.lowerBound >= 0, range.upperBound <= shape[ax] else {
            throw TensorError.shapeMismatch("slice \(range) of axis \(axis) of \(shape)")
        }
        let (outer, len, inner) = split(ax)
        let m = range.count
        var out = [Float](repeating: 0, count: outer * m * inner)
        let x = data   // plain values, converted once (a blocked tensor's `data` converts on every read)
        for o in 0..<outer { for i in 0..<(m * inner) { out[o * m * inner + i] = x[(o * len + range.lowerBound) * inner + i] } }
        var s = shape
        s[ax] = m
        let total = count
        return Tensor.result(shape: s, data: out, inputs: [self]) { [self] g in
            var gx = [Float](repeating: 0, count: total)
            for o in 0..<outer { for i in 0..<(m * inner) { gx[(o * len + range.lowerBound) * inner + i] = g[o * m * inner + i] } }
            accumulate(gx)
        }
    }

    /// Rows of a table [V, D] for integer indices: result [indices.count, D]; the backward pass scatter-adds.
    public func gatherRows(_ indices: [Int]) throws -> Tensor {
        guard rank == 2, indices.allSatisfy({ $0 >= 0 && $0 < shape[0] }) else {
            throw TensorError.shapeMismatch("row indices outside 0..<\(shape.first ?? 0) of \(shape)")
        }
        let d = shape[1]
        var out = [Float](repeating: 0, count: indices.count * d)
        let x = data   // plain values, read once
        for (r, i) in indices.enumerated() { for j in 0..<d { out[r * d + j] = x[i * d + j] } }
        let total = count
        return Tensor.result(shape: [indices.count, d], data: out, inputs: [self]) { [self] g in
            var gx = [Float](repeating: 0, count: total)
            for (r, i) in indices.enumerated() { for j in 0..<d { gx[i * d + j] += g[r * d + j] } }
            accumulate(gx)
        }
    }

    /// Inverted dropout: zeroes each element with probability p and scales the rest by 1 / (1 − p); seeded.
    public func dropout<G: RandomNumberGenerator>(_ p: Float, generator: inout G) -> Tensor {
        guard p > 0, GradMode.isEnabled || requiresGrad else { return self }
        let keep = 1 - p
        let mask = (0..<count).map { _ in Float.random(in: 0..<1, using: &generator) < keep ? 1 / keep : Float(0) }
        return self * Tensor(shape: shape, data: mask)
    }

    /// The fixed sine-cosine position encoding of Vaswani et al.: [positions, dim], PE(p, 2i) = sin(p / 10000^(2i/d)),
    /// PE(p, 2i+1) = cos(...). (ViT/MAE use its 2-D version, built from two of these.)
    public static func sinusoidalPositions(_ positions: Int, dim: Int) -> Tensor {
        var out = [Float](repeating: 0, count: positions * dim)
        for p in 0..<positions {
            for i in 0..<dim {
                let f = Foundation.pow(10000, Double(2 * (i / 2)) / Double(dim))
                out[p * dim + i] = Float(i % 2 == 0 ? sin(Double(p) / f) : cos(Double(p) / f))
            }
        }
        return Tensor(shape: [positions, dim], data: out)
    }
}

extension Tensor {
    /// Feature vectors of a feature map [N, C, H, W] at integer locations: result [points.count, C], row k the C
    /// values at (image, y, x) of point k; the backward pass scatter-adds (a location may be taken more than once).
    /// HSSL's dense contrastive term takes corresponding locations of two views this way.
    public func gatherPixels(_ points: [(image: Int, y: Int, x: Int)]) throws -> Tensor {
        guard rank == 4 else { throw TensorError.shapeMismatch("gatherPixels needs [N, C, H, W], got \(shape)") }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        if let bad = points.first(where: { !(0..<n).contains($0.image) || !(0..<h).contains($0.y) || !(0..<w).contains($0.x) }) {
            throw TensorError.shapeMismatch("pixel (\(bad.image), \(bad.y), \(bad.x)) outside \(shape)")
        }
        let x = data, plane = h * w
        var out = [Float](repeating: 0, count: points.count * c)
        for (k, p) in points.enumerated() {
            let base = p.image * c * plane + p.y * w + p.x
            for ch in 0..<c { out[k * c + ch] = x[base + ch * plane] }
        }
        let total = count
        return Tensor.result(shape: [points.count, c], data: out, inputs: [self]) { [self] g in
            var gx = [Float](repeating: 0, count: total)
            for (k, p) in points.enumerated() {
                let base = p.image * c * plane + p.y * w + p.x
                for ch in 0..<c { gx[base + ch * plane] += g[k * c + ch] }
            }
            accumulate(gx)
        }
    }
}
