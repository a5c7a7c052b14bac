import Foundation
import MedCompute

extension Tensor {
    /// Sum of all elements (a scalar).
    public func sum() -> Tensor {
        var s: Float = 0
        for v in data { s += v }
        let n = count
        return Tensor.result(shape: [], data: [s], inputs: [self]) { [self] g in accumulate([Float](repeating: g[0], count: n)) }
    }

    public func mean() -> Tensor { sum() * (1 / Float(max(1, count))) }

    /// Sum over `axes` (kept as size-1 dimensions when `keepDims`).
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let axesSet = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
        let kept = shape.enumerated().map { axesSet.contains($0.offset) ? 1 : $0.element }
        var out = [Float](repeating: 0, count: kept.reduce(1, *))
        let s = Broadcast.strides(kept, in: shape), zero = [Int](repeating: 0, count: rank)
        data.withUnsafeBufferPointer { dp in out.withUnsafeMutableBufferPointer { op in
            Broadcast.forEach(shape, s, zero) { o, i, _ in op[i] += dp[o] }
        } }
        let finalShape = keepDims ? kept : shape.enumerated().filter { !axesSet.contains($0.offset) }.map(\.element)
        let full = shape
        return Tensor.result(shape: finalShape, data: out, inputs: [self]) { [self] g in
            var gx = [Float](repeating: 0, count: full.reduce(1, *))
            Broadcast.forEach(full, s, zero) { o, i, _ in gx[o] = g[i] }
            accumulate(gx)
        }
    }

    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = axes.map { shape[$0 < 0 ? $0 + rank : $0] }.reduce(1, *)
        return sum(axes: axes, keepDims: keepDims) * (1 / Float(max(1, n)))
    }

    /// The same values in another shape (one dimension may be -1).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var s = newShape
        if let k = s.firstIndex(of: -1) {
            let rest = s.enumerated().filter { $0.offset != k }.map(\.element).reduce(1, *)
            guard rest > 0, count % rest == 0 else { throw TensorError.shapeMismatch("cannot reshape \(shape) to \(newShape)") }
            s[k] = count / rest
        }
        guard s.reduce(1, *) == count else { throw TensorError.shapeMismatch("cannot reshape \(shape) to \(newShape)") }
        return Tensor.result(shape: s, data: data, inputs: [self]) { [self] g in accumulate(g) }
    }

    /// Reorders dimensions: result dimension i is input dimension `order[i]`.
    public func permuted(_ order: [Int]) throws -> Tensor {
        guard order.sorted() == Array(0..<rank) else { throw TensorError.shapeMismatch("\(order) is not a permutation of \(rank) axes") }
        let outShape = order.map { shape[$0] }
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let s = order.map { inStrides[$0] }, zero = [Int](repeating: 0, count: rank)
        var out = [Float](repeating: 0, count: count)
        data.withUnsafeBufferPointer { dp in out.withUnsafeMutableBufferPointer { op in
            Broadcast.forEach(outShape, s, zero) { o, i, _ in op[o] = dp[i] }
        } }
        let n = count
        return Tensor.result(shape: outShape, data: out, inputs: [self]) { [self] g in
            var gx = [Float](repeating: 0, count: n)
            Broadcast.forEach(outShape, s, zero) { o, i, _ in gx[i] = g[o] }
            accumulate(gx)
        }
    }

    /// Concatenation along `axis` (all other dimensions equal).
    public static func concat(_ parts: [Tensor], axis: Int) throws -> Tensor {
        guard let first = parts.first else { throw TensorError.shapeMismatch("nothing to concatenate") }
        let r = first.rank
        let ax = axis < 0 ? axis + r : axis
        for p in parts where p.rank != r || (0..<r).contains(where: { $0 != ax && p.shape[$0] != first.shape[$0] }) {
            throw TensorError.shapeMismatch("cannot concatenate \(p.shape) with \(first.shape) along \(axis)")
        }
        let outer = first.shape[..<ax].reduce(1, *), inner = first.shape[(ax + 1)...].reduce(1, *)
        let sizes = parts.map { $0.shape[ax] }
        let total = sizes.reduce(0, +)
        var outShape = first.shape
        outShape[ax] = total
        // Parts blocked alike along the channels stay blocked: an image's channel blocks are contiguous in both layouts.
        let lay: Layout = ax == 1 && parts.allSatisfy({ $0.layout == first.layout }) ? first.layout : .plain
        let values = parts.map { lay == .plain ? $0.data : $0.storage }
        let out = [Float](unsafeUninitializedCapacity: outer * total * inner) { ob, initialized in
            var offset = 0
            for (v, sz) in zip(values, sizes) {
                v.withUnsafeBufferPointer { vb in
                    for o in 0..<outer {
                        (ob.baseAddress! + (o * total + offset) * inner).update(from: vb.baseAddress! + o * sz * inner, count: sz * inner)
                    }
                }
                offset += sz
            }
            initialized = ob.count
        }
        return Tensor.result(shape: outShape, data: out, layout: lay, inputs: parts) { g in
            var offset = 0
            for (p, sz) in zip(parts, sizes) {
                if p.requiresGrad {
                    let gp = [Float](unsafeUninitializedCapacity: outer * sz * inner) { gb, initialized in
                        g.withUnsafeBufferPointer { src in
                            for o in 0..<outer {
                                (gb.baseAddress! + o * sz * inner).update(from: src.baseAddress! + (o * total + offset) * inner, count: sz * inner)
                            }
                        }
                        initialized = gb.count
                    }
                    p.accumulate(gp, layout: lay)
                }
                offset += sz
            }
        }
    }

    /// Matrix product of the last two dimensions, batched over the leading ones (which must be equal or absent on b).
    public func matmul(_ b: Tensor) throws -> Tensor {
        guard rank >= 2, b.rank >= 2, shape[rank - 1] == b.shape[b.rank - 2] else {
            throw TensorError.shapeMismatch("matmul of \(shape) and \(b.shape)")
        }
        let m = shape[rank - 2], k = shape[rank - 1], n = b.shape[b.rank - 1]
        let batch = shape.dropLast(2).reduce(1, *)
        let bBatch = b.shape.dropLast(2).reduce(1, *)
        guard bBatch == 1 || bBatch == batch else { throw TensorError.shapeMismatch("matmul batch of \(shape) and \(b.shape)") }
        var out = [Float](repeating: 0, count: batch * m * n)
        let (ad, bd) = (data, b.data)
        for i in 0..<batch {
            ad.withUnsafeBufferPointer { ap in bd.withUnsafeBufferPointer { bp in out.withUnsafeMutableBufferPointer { op in
                Compute.sgemm(m: m, n: n, k: k, a: ap.baseAddress! + i * m * k, lda: k, b: bp.baseAddress! + (bBatch == 1 ? 0 : i) * k * n, ldb: n,
                              c: op.baseAddress! + i * m * n, ldc: n)
            } } }
        }
        let outShape = Array(shape.dropLast(2)) + [m, n]
        let a = self
        return Tensor.result(shape: outShape, data: out, inputs: [a, b]) { g in
            // dA = G Bᵀ, dB = Aᵀ G (summed over the batch when B is shared).
            var ga = [Float](repeating: 0, count: ad.count), gb = [Float](repeating: 0, count: bd.count)
            for i in 0..<batch {
                g.withUnsafeBufferPointer { gp in ad.withUnsafeBufferPointer { ap in bd.withUnsafeBufferPointer { bp in
                    ga.withUnsafeMutableBufferPointer { gap in gb.withUnsafeMutableBufferPointer { gbp in
                        if a.requiresGrad {
                            Compute.sgemm(transB: true, m: m, n: k, k: n, a: gp.baseAddress! + i * m * n, lda: n,
                                          b: bp.baseAddress! + (bBatch == 1 ? 0 : i) * k * n, ldb: n, c: gap.baseAddress! + i * m * k, ldc: k)
                        }
                        if b.requiresGrad {
                            Compute.sgemm(transA: true, m: k, n: n, k: m, a: ap.baseAddress! + i * m * k, lda: k, b: gp.baseAddress! + i * m * n, ldb: n,
                                          beta: bBatch == 1 && i > 0 ? 1 : 0, c: gbp.baseAddress! + (bBatch == 1 ? 0 : i) * k * n, ldc: n)
                        }
                    } }
                } } }
            }
            a.accumulate(ga)
            b.accumulate(gb)
        }
    }

    /// Softmax (or its logarithm) along the middle axis of plain values viewed as [outer, length, inner]: the
    /// maximum is subtracted first, so large logits do not overflow. The one kernel of ``softmax(axis:)`` and
    /// ``logSoftmax(axis:)``.
    static func softmaxKernel(_ data: [Float], outer: Int, length len: Int, inner: Int, log: Bool) -> [Float] {
        var out = [Float](repeating: 0, count: data.count)
        for o in 0..<outer {
            for i in 0..<inner {
                var m = -Float.infinity
                for c in 0..<len { m = max(m, data[(o * len + c) * inner + i]) }
                var s: Float = 0
                for c in 0..<len {
                    let e = Foundation.exp(data[(o * len + c) * inner + i] - m)
                    if !log { out[(o * len + c) * inner + i] = e }
                    s += e
                }
                if log {
                    let lse = m + Foundation.log(s)
                    for c in 0..<len { out[(o * len + c) * inner + i] = data[(o * len + c) * inner + i] - lse }
                } else {
                    for c in 0..<len { out[(o * len + c) * inner + i] /= s }
                }
            }
        }
        return out
    }

    /// Softmax over `axis` (numerically stable).
    public func softmax(axis: Int) -> Tensor {
        let (outer, len, inner) = split(axis)
        let out = Self.softmaxKernel(data, outer: outer, length: len, inner: inner, log: false)
        let y = out
        return Tensor.result(shape: shape, data: out, inputs: [self]) { [self] g in
            // dx = y (g - Σ g y)
            var gx = [Float](repeating: 0, count: g.count)
            for o in 0..<outer {
                for i in 0..<inner {
                    var dot: Float = 0
                    for c in 0..<len { let k = (o * len + c) * inner + i; dot += g[k] * y[k] }
                    for c in 0..<len { let k = (o * len + c) * inner + i; gx[k] = y[k] * (g[k] - dot) }
                }
            }
            accumulate(gx)
        }
    }

    /// log(softmax) over `axis`.
    public func logSoftmax(axis: Int) -> Tensor {
        let (outer, len, inner) = split(axis)
        let out = Self.softmaxKernel(data, outer: outer, length: len, inner: inner, log: true)
        let y = out
        return Tensor.result(shape: shape, data: out, inputs: [self]) { [self] g in
            // dx = g - softmax · Σ g
            var gx = [Float](repeating: 0, count: g.count)
            for o in 0..<outer {
                for i in 0..<inner {
                    var s: Float = 0
                    for c in 0..<len { s += g[(o * len + c) * inner + i] }
                    for c in 0..<len { let k = (o * len + c) * inner + i; gx[k] = g[k] - Foundation.exp(y[k]) * s }
                }
            }
            accumulate(gx)
        }
    }

    /// (product of dimensions before axis, size of axis, product after).
    func split(_ axis: Int) -> (Int, Int, Int) {
        let ax = axis < 0 ? axis + rank : axis
        return (shape[..<ax].reduce(1, *), shape[ax], shape[(ax + 1)...].reduce(1, *))
    }
}
