import Foundation
internal import CMedKernels

/// Broadcasting as NumPy and PyTorch do it: shapes aligned at the right, dimensions of 1 stretch.
enum Broadcast {
    static func shape(_ a: [Int], _ b: [Int]) throws -> [Int] {
        let n = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: n - a.count) + a, pb = [Int](repeating: 1, count: n - b.count) + b
        return try (0..<n).map { i in
            if pa[i] == pb[i] || pb[i] == 1 { return pa[i] }
            if pa[i] == 1 { return pb[i] }
            throw TensorError.shapeMismatch("\(a) and \(b) do not broadcast")
        }
    }

    /// Element strides of `shape` seen through `out` (0 along stretched dimensions).
    static func strides(_ shape: [Int], in out: [Int]) -> [Int] {
        let padded = [Int](repeating: 1, count: out.count - shape.count) + shape
        var s = [Int](repeating: 0, count: out.count)
        var acc = 1
        for i in stride(from: out.count - 1, through: 0, by: -1) {
            s[i] = padded[i] == 1 && out[i] != 1 ? 0 : acc
            acc *= padded[i]
        }
        return s
    }

    /// Calls body(outIndex, aIndex, bIndex) for every output element.
    static func forEach(_ out: [Int], _ sa: [Int], _ sb: [Int], _ body: (Int, Int, Int) -> Void) {
        let n = out.reduce(1, *)
        guard n > 0 else { return }
        let r = out.count
        if r == 0 { body(0, 0, 0); return }
        var idx = [Int](repeating: 0, count: r)
        var ia = 0, ib = 0
        let inner = out[r - 1], ia1 = sa[r - 1], ib1 = sb[r - 1]
        var o = 0
        while o < n {
            for k in 0..<inner { body(o + k, ia + k * ia1, ib + k * ib1) }
            o += inner
            // Advance the outer index.
            var d = r - 2
            while d >= 0 {
                idx[d] += 1
                ia += sa[d]; ib += sb[d]
                if idx[d] < out[d] { break }
                ia -= sa[d] * out[d]; ib -= sb[d] * out[d]
                idx[d] = 0
                d -= 1
            }
        }
    }

    /// Sums a gradient of shape `out` down to `shape` (over stretched dimensions).
    static func reduce(_ g: [Float], from out: [Int], to shape: [Int]) -> [Float] {
        if out == shape { return g }
        var r = [Float](repeating: 0, count: shape.reduce(1, *))
        let s = strides(shape, in: out)
        let zero = [Int](repeating: 0, count: out.count)
        r.withUnsafeMutableBufferPointer { rp in
            g.withUnsafeBufferPointer { gp in
                forEach(out, s, zero) { o, i, _ in rp[i] += gp[o] }
            }
        }
        return r
    }
}

/// Element-wise binary operations with broadcasting.
extension Tensor {
    static func binary(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float,
                       grads: @escaping (_ g: [Float], _ a: [Float], _ b: [Float], _ out: [Float], _ sa: [Int], _ sb: [Int], _ shape: [Int]) -> ([Float]?, [Float]?)) throws -> Tensor {
        let shape = try Broadcast.shape(a.shape, b.shape)
        let n = shape.reduce(1, *)
        var out = [Float](repeating: 0, count: n)
        let sa = Broadcast.strides(a.shape, in: shape), sb = Broadcast.strides(b.shape, in: shape)
        // Equal shapes in one layout: element by element in that layout (the order does not matter).
        let lay: Layout = a.shape == b.shape && a.layout == b.layout ? a.layout : .plain
        let (ad, bd) = lay == .plain ? (a.data, b.data) : (a.storage, b.storage)
        if a.shape == b.shape {
            ad.withUnsafeBufferPointer { ap in bd.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { op in for i in 0..<n { op[i] = f(ap[i], bp[i]) } }
            } }
        } else {
            ad.withUnsafeBufferPointer { ap in bd.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { op in Broadcast.forEach(shape, sa, sb) { o, i, j in op[o] = f(ap[i], bp[j]) } }
            } }
        }
        let result = Tensor.result(shape: shape, data: out, layout: lay, inputs: [a, b]) { _ in }
        if let node = result.node {
            let outData = out
            result.node = GraphNode(inputs: node.inputs) { g in
                let (ga, gb) = grads(g, ad, bd, outData, sa, sb, shape)
                if let ga, a.requiresGrad { a.accumulate(Broadcast.reduce(ga, from: shape, to: a.shape), layout: lay) }
                if let gb, b.requiresGrad { b.accumulate(Broadcast.reduce(gb, from: shape, to: b.shape), layout: lay) }
            }
        }
        return result
    }

    /// Per-output-element gradient factors for a broadcast binary op: d out / d a and d out / d b at each element.
    static func perElement(_ g: [Float], _ a: [Float], _ b: [Float], _ sa: [Int], _ sb: [Int], _ shape: [Int],
                           _ da: ((Float, Float) -> Float)?, _ db: ((Float, Float) -> Float)?) -> ([Float]?, [Float]?) {
        let n = g.count
        var ga = da == nil ? nil : [Float](repeating: 0, count: n), gb = db == nil ? nil : [Float](repeating: 0, count: n)
        Broadcast.forEach(shape, sa, sb) { o, i, j in
            if let da { ga![o] = g[o] * da(a[i], b[j]) }
            if let db { gb![o] = g[o] * db(a[i], b[j]) }
        }
        return (ga, gb)
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        if let fast = fastAdd(a, b) { return fast }
        return try! binary(a, b, +) { g, _, _, _, _, _, _ in (g, g) }
    }

    /// a + b without the general broadcasting loop, for the two cases transformers use on every step: equal shapes
    /// in one layout (residual connections) and b repeated over a's leading dimensions (position embeddings); nil
    /// otherwise.
    static func fastAdd(_ a: Tensor, _ b: Tensor) -> Tensor? {
        if a.shape == b.shape && a.layout == b.layout {
            let (x, y, n, lay) = (a.storage, b.storage, a.count, a.layout)
            let out = [Float](unsafeUninitializedCapacity: n) { ob, initialized in
                x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { yp in mk_add(xp.baseAddress!, yp.baseAddress!, ob.baseAddress!, n) } }
                initialized = n
            }
            return Tensor.result(shape: a.shape, data: out, layout: lay, inputs: [a, b]) { g in
                a.accumulate(g, layout: lay)
                b.accumulate(g, layout: lay)
            }
        }
        guard b.rank >= 1, b.rank < a.rank, Array(a.shape.suffix(b.rank)) == b.shape, b.count > 0 else { return nil }
        let inner = b.count, rows = a.count / inner
        var out = a.data
        let bias = b.data
        out.withUnsafeMutableBufferPointer { op in bias.withUnsafeBufferPointer { bp in mk_add_bias(op.baseAddress!, bp.baseAddress!, rows, inner) } }
        return Tensor.result(shape: a.shape, data: out, inputs: [a, b]) { g in
            a.accumulate(g)
            if b.requiresGrad {
                var gb = [Float](unsafeUninitializedCapacity: inner) { _, initialized in initialized = inner }
                g.withUnsafeBufferPointer { gp in gb.withUnsafeMutableBufferPointer { gbp in mk_column_sums(gp.baseAddress!, gbp.baseAddress!, rows, inner) } }
                b.accumulate(gb)
            }
        }
    }
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        try! binary(a, b, -) { g, _, _, _, _, _, _ in (g, g.map { -$0 }) }
    }
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        try! binary(a, b, *) { g, ad, bd, _, sa, sb, shape in perElement(g, ad, bd, sa, sb, shape, { _, y in y }, { x, _ in x }) }
    }
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        try! binary(a, b, /) { g, ad, bd, _, sa, sb, shape in perElement(g, ad, bd, sa, sb, shape, { _, y in 1 / y }, { x, y in -x / (y * y) }) }
    }
    public static func + (a: Tensor, s: Float) -> Tensor { a + Tensor(scalar: s) }
    public static func - (a: Tensor, s: Float) -> Tensor { a - Tensor(scalar: s) }
    public static func * (a: Tensor, s: Float) -> Tensor { a * Tensor(scalar: s) }
    public static func * (s: Float, a: Tensor) -> Tensor { a * Tensor(scalar: s) }
    public static func - (s: Float, a: Tensor) -> Tensor { Tensor(scalar: s) - a }

    /// Same shapes required (a checked version of the operators, for user-facing code).
    public func adding(_ other: Tensor) throws -> Tensor { try Tensor.binary(self, other, +) { g, _, _, _, _, _, _ in (g, g) } }

    /// Element-wise unary operation with its derivative (from input x and output y).
    /// Keeps the input's layout.
    func unary(_ f: (Float) -> Float, derivative: @escaping (_ x: Float, _ y: Float) -> Float) -> Tensor {
        let x = storage, lay = layout
        var y = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in for i in 0..<xp.count { yp[i] = f(xp[i]) } } }
        let out = y
        return Tensor.result(shape: shape, data: y, layout: lay, inputs: [self]) { [self] g in
            var gx = [Float](repeating: 0, count: g.count)
            for i in 0..<g.count { gx[i] = g[i] * derivative(x[i], out[i]) }
            accumulate(gx, layout: lay)
        }
    }

    public func relu() -> Tensor {
        let x = storage, lay = layout
        let y = [Float](unsafeUninitializedCapacity: x.count) { yb, initialized in
            x.withUnsafeBufferPointer { xb in mk_relu(xb.baseAddress!, yb.baseAddress!, x.count) }
            initialized = x.count
        }
        return Tensor.result(shape: shape, data: y, layout: lay, inputs: [self]) { [self] g in
            let gx = [Float](unsafeUninitializedCapacity: g.count) { gxb, initialized in
                y.withUnsafeBufferPointer { yb in g.withUnsafeBufferPointer { gb in mk_relu_backward(yb.baseAddress!, gb.baseAddress!, gxb.baseAddress!, g.count) } }
                initialized = g.count
            }
            accumulate(gx, layout: lay)
        }
    }
    public func leakyRelu(_ slope: Float = 0.01) -> Tensor { unary({ $0 > 0 ? $0 : slope * $0 }, derivative: { x, _ in x > 0 ? 1 : slope }) }
    public func sigmoid() -> Tensor { unary({ 1 / (1 + Foundation.exp(-$0)) }, derivative: { _, y in y * (1 - y) }) }
    public func tanh() -> Tensor { unary({ Foundation.tanh($0) }, derivative: { _, y in 1 - y * y }) }
    public func exp() -> Tensor { unary({ Foundation.exp($0) }, derivative: { _, y in y }) }
    public func log() -> Tensor { unary({ Foundation.log($0) }, derivative: { x, _ in 1 / x }) }
    public func squared() -> Tensor { unary({ $0 * $0 }, derivative: { x, _ in 2 * x }) }
}
