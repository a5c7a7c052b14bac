import Foundation
import Synchronization
import MedCompute
internal import CMedKernels

/// oneDNN convolution plans (forward, backward data, backward weights), one per geometry, created on first use.
/// Key: n, c, h, w, o, kh, kw, stride, padding, dilation, bias (0/1), transposed (0/1).
/// MEDSELECT_CONV=im2col turns them off (the im2col + SGEMM path, kept as the reference and fallback).
enum ConvPlans {
    struct Key: Hashable { var dims: [Int] }
    static let useDNNL = ProcessInfo.processInfo.environment["MEDSELECT_CONV"] != "im2col"
    static let plans = Mutex([Key: UnsafeSendable]())

    struct UnsafeSendable: @unchecked Sendable { let pointer: OpaquePointer? }

    static func plan(_ dims: [Int], force: Bool = false) -> OpaquePointer? {
        guard useDNNL || force else { return nil }
        return plans.withLock { table -> OpaquePointer? in
            if let p = table[Key(dims: dims)] { return p.pointer }
            var message = [CChar](repeating: 0, count: 256)
            let p = mk_conv_create(Int32(dims[0]), Int32(dims[1]), Int32(dims[2]), Int32(dims[3]), Int32(dims[4]), Int32(dims[5]),
                                   Int32(dims[6]), Int32(dims[7]), Int32(dims[8]), Int32(dims[9]), Int32(dims[10]), Int32(dims[11]),
                                   &message, message.count)
            table[Key(dims: dims)] = UnsafeSendable(pointer: p)   // nil remembered too: fall back without retrying
            return p
        }
    }
}

/// Which convolution kernel to use.
public enum ConvKernel: Sendable {
    /// oneDNN unless MEDSELECT_CONV=im2col.
    case automatic
    case onednn
    /// im2col + OpenBLAS SGEMM (the reference path).
    case im2col
}

/// Geometry of a 2-D convolution.
public struct Conv2DGeometry: Sendable, Equatable {
    public var stride: Int
    public var padding: Int
    public var dilation: Int
    public init(stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        self.stride = stride; self.padding = padding; self.dilation = dilation
    }
    func outSize(_ n: Int, kernel: Int) -> Int { (n + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1 }
}

enum Im2Col {
    /// col[(c*kh + i)*kw + j][oy*wo + ox] = x[c][oy*s - p + i*d][ox*s - p + j*d] (0 outside).
    static func forward(_ x: UnsafePointer<Float>, c: Int, h: Int, w: Int, kh: Int, kw: Int, g: Conv2DGeometry, ho: Int, wo: Int,
                        into col: UnsafeMutablePointer<Float>) {
        for ch in 0..<c {
            for i in 0..<kh {
                for j in 0..<kw {
                    let row = col + ((ch * kh + i) * kw + j) * ho * wo
                    for oy in 0..<ho {
                        let y = oy * g.stride - g.padding + i * g.dilation
                        let line = row + oy * wo
                        if y < 0 || y >= h { for ox in 0..<wo { line[ox] = 0 }; continue }
                        let src = x + (ch * h + y) * w
                        for ox in 0..<wo {
                            let xx = ox * g.stride - g.padding + j * g.dilation
                            line[ox] = xx >= 0 && xx < w ? src[xx] : 0
                        }
                    }
                }
            }
        }
    }

    /// The adjoint: adds col back into x.
    static func backward(_ col: UnsafePointer<Float>, c: Int, h: Int, w: Int, kh: Int, kw: Int, g: Conv2DGeometry, ho: Int, wo: Int,
                         into x: UnsafeMutablePointer<Float>) {
        for ch in 0..<c {
            for i in 0..<kh {
                for j in 0..<kw {
                    let row = col + ((ch * kh + i) * kw + j) * ho * wo
                    for oy in 0..<ho {
                        let y = oy * g.stride - g.padding + i * g.dilation
                        if y < 0 || y >= h { continue }
                        let dst = x + (ch * h + y) * w, line = row + oy * wo
                        for ox in 0..<wo {
                            let xx = ox * g.stride - g.padding + j * g.dilation
                            if xx >= 0 && xx < w { dst[xx] += line[ox] }
                        }
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// 2-D convolution (cross-correlation, as PyTorch): input [N, C, H, W], weight [O, C, kh, kw], optional bias [O].
    /// im2col + SGEMM per image.
    public func conv2d(_ weight: Tensor, bias: Tensor? = nil, geometry g: Conv2DGeometry = Conv2DGeometry(),
                       kernel: ConvKernel = .automatic) throws -> Tensor {
        guard rank == 4, weight.rank == 4, weight.shape[1] == shape[1] else {
            throw TensorError.shapeMismatch("conv2d of input \(shape) with weight \(weight.shape)")
        }
        if let b = bias, b.shape != [weight.shape[0]] { throw TensorError.shapeMismatch("conv2d bias \(b.shape) for \(weight.shape[0]) outputs") }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let ho = g.outSize(h, kernel: kh), wo = g.outSize(w, kernel: kw)
        guard ho > 0, wo > 0 else { throw TensorError.shapeMismatch("conv2d output of \(shape) with kernel \(kh)x\(kw) would be empty") }
        let k = c * kh * kw, p = ho * wo
        if kernel != .im2col && layout != .plain && kh == 1 && kw == 1 && g == Conv2DGeometry() && o % layout.block != 0 {
            return pointwiseToPlain(weight, bias: bias)
        }
        if kernel != .im2col, let plan = ConvPlans.plan([n, c, h, w, o, kh, kw, g.stride, g.padding, g.dilation, bias == nil ? 0 : 1, 0],
                                                        force: kernel == .onednn) {
            return try dnnlConv(plan, weight, bias, outShape: [n, o, ho, wo], what: "convolution", geometry: g)
        }
        var out = [Float](repeating: 0, count: n * o * p)
        var cols = [Float](repeating: 0, count: n * k * p)
        let x = data, wt = weight.data, bd = bias?.data
        x.withUnsafeBufferPointer { xp in cols.withUnsafeMutableBufferPointer { cp in wt.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer { op in
            for b in 0..<n {
                Im2Col.forward(xp.baseAddress! + b * c * h * w, c: c, h: h, w: w, kh: kh, kw: kw, g: g, ho: ho, wo: wo, into: cp.baseAddress! + b * k * p)
                Compute.sgemm(m: o, n: p, k: k, a: wp.baseAddress!, lda: k, b: cp.baseAddress! + b * k * p, ldb: p,
                              c: op.baseAddress! + b * o * p, ldc: p)
                if let bd { for oc in 0..<o { let base = op.baseAddress! + (b * o + oc) * p; for i in 0..<p { base[i] += bd[oc] } } }
            }
        } } } }
        let input = self
        let colsSaved = cols
        var inputs = [input, weight]
        if let bias { inputs.append(bias) }
        return Tensor.result(shape: [n, o, ho, wo], data: out, inputs: inputs) { gout in
            var gw = [Float](repeating: 0, count: weight.count), gx = [Float](repeating: 0, count: input.count)
            var gcol = [Float](repeating: 0, count: k * p)
            gout.withUnsafeBufferPointer { gp in colsSaved.withUnsafeBufferPointer { cp in wt.withUnsafeBufferPointer { wp in
                gw.withUnsafeMutableBufferPointer { gwp in gx.withUnsafeMutableBufferPointer { gxp in gcol.withUnsafeMutableBufferPointer { gcp in
                    for b in 0..<n {
                        if weight.requiresGrad {
                            // dW += dOut_b [o, p] · col_bᵀ [p, k]
                            Compute.sgemm(transB: true, m: o, n: k, k: p, a: gp.baseAddress! + b * o * p, lda: p,
                                          b: cp.baseAddress! + b * k * p, ldb: p, beta: 1, c: gwp.baseAddress!, ldc: k)
                        }
                        if input.requiresGrad {
                            // dcol = Wᵀ [k, o] · dOut_b [o, p], then col2im.
                            Compute.sgemm(transA: true, m: k, n: p, k: o, a: wp.baseAddress!, lda: k, b: gp.baseAddress! + b * o * p, ldb: p,
                                          c: gcp.baseAddress!, ldc: p)
                            Im2Col.backward(gcp.baseAddress!, c: c, h: h, w: w, kh: kh, kw: kw, g: g, ho: ho, wo: wo, into: gxp.baseAddress! + b * c * h * w)
                        }
                    }
                } } }
            } } }
            weight.accumulate(gw)
            input.accumulate(gx)
            if let bias, bias.requiresGrad {
                var gb = [Float](repeating: 0, count: o)
                for b in 0..<n { for oc in 0..<o { var s: Float = 0; for i in 0..<p { s += gout[(b * o + oc) * p + i] }; gb[oc] += s } }
                bias.accumulate(gb)
            }
        }
    }

    /// A 1 x 1 convolution from a blocked input to a few plain output channels (a segmentation head's class maps, which
    /// fill no block): per image and channel block one SGEMM, out (o x hw) += W[:, block] (o x B) · X_blockᵀ (B x hw),
    /// reading the blocked values where they are. (oneDNN would pad the output to a block and convert it, or convert
    /// the input to plain.) Backward: dW[:, block] += G (o x hw) · X_block (hw x B), dX_block = Gᵀ (hw x o) · W[:, block].
    func pointwiseToPlain(_ weight: Tensor, bias: Tensor?) -> Tensor {
        let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3]), o = weight.shape[0], lay = layout, bs = layout.block, blocks = c / bs
        let x = storage, wt = weight.data, bd = bias?.data
        let out = [Float](unsafeUninitializedCapacity: n * o * hw) { ob, initialized in
            x.withUnsafeBufferPointer { xb in wt.withUnsafeBufferPointer { wb in
                for img in 0..<n {
                    let dst = ob.baseAddress! + img * o * hw
                    for cb in 0..<blocks {
                        Compute.sgemm(transB: true, m: o, n: hw, k: bs, a: wb.baseAddress! + cb * bs, lda: c,
                                      b: xb.baseAddress! + (img * blocks + cb) * hw * bs, ldb: bs, beta: cb == 0 ? 0 : 1, c: dst, ldc: hw)
                    }
                    if let bd { for oc in 0..<o { let row = dst + oc * hw, v = bd[oc]; for p in 0..<hw { row[p] += v } } }
                }
            } }
            initialized = ob.count
        }
        let input = self
        var inputs = [input, weight]
        if let bias { inputs.append(bias) }
        return Tensor.result(shape: [n, o, shape[2], shape[3]], data: out, inputs: inputs) { g in
            var gw = [Float](repeating: 0, count: weight.requiresGrad ? weight.count : 0)
            let gx = [Float](unsafeUninitializedCapacity: input.requiresGrad ? input.count : 0) { gxb, initialized in
                g.withUnsafeBufferPointer { gb in x.withUnsafeBufferPointer { xb in wt.withUnsafeBufferPointer { wb in gw.withUnsafeMutableBufferPointer { gwb in
                    for img in 0..<n {
                        let gi = gb.baseAddress! + img * o * hw
                        for cb in 0..<blocks {
                            let xo = (img * blocks + cb) * hw * bs
                            if weight.requiresGrad {
                                Compute.sgemm(m: o, n: bs, k: hw, a: gi, lda: hw, b: xb.baseAddress! + xo, ldb: bs, beta: 1,
                                              c: gwb.baseAddress! + cb * bs, ldc: c)
                            }
                            if input.requiresGrad {
                                Compute.sgemm(transA: true, m: hw, n: bs, k: o, a: gi, lda: hw, b: wb.baseAddress! + cb * bs, ldb: c,
                                              c: gxb.baseAddress! + xo, ldc: bs)
                            }
                        }
                    }
                } } } }
                initialized = gxb.count
            }
            if input.requiresGrad { input.accumulate(gx, layout: lay) }
            if weight.requiresGrad { weight.accumulate(gw) }
            if let bias, bias.requiresGrad {
                var gb = [Float](repeating: 0, count: o)
                for img in 0..<n { for oc in 0..<o { var s: Float = 0; for p in 0..<hw { s += g[(img * o + oc) * hw + p] }; gb[oc] += s } }
                bias.accumulate(gb)
            }
        }
    }

    /// The oneDNN path of ``conv2d(_:bias:geometry:)`` and ``convTranspose2d(_:bias:stride:)``. The input goes in in its
    /// own layout; the output comes out blocked when the primitive works blocked (in its block size), and the input's
    /// gradient in the input's layout.
    ///
    /// When oneDNN's backward-weights primitive would convert a blocked output gradient (it does for a first layer
    /// with a plain few-channel input on AVX2), the weight gradient of a convolution (`geometry` given) is computed
    /// here instead: im2col of the small input and one SGEMM per image and channel block against the blocked gradient.
    func dnnlConv(_ plan: OpaquePointer, _ weight: Tensor, _ bias: Tensor?, outShape: [Int], what: String,
                  geometry: Conv2DGeometry? = nil) throws -> Tensor {
        let outLayout = Layout.blocked(Int(mk_conv_block(plan, Int32(MK_DST)))).flatMap { $0.fits(outShape) ? $0 : nil } ?? .plain
        let inLayout = layout
        let x = storage, wt = weight.data, stamp = weight.stamp
        let zero: [Float] = [0]
        var rc: Int32 = 0
        let out = [Float](unsafeUninitializedCapacity: outShape.reduce(1, *)) { op, initialized in
            rc = x.withUnsafeBufferPointer { xp in wt.withUnsafeBufferPointer { wp in
                (bias?.data ?? zero).withUnsafeBufferPointer { bp in
                    mk_conv_forward(plan, xp.baseAddress!, inLayout.cBlock, wp.baseAddress!, stamp, bp.baseAddress!, op.baseAddress!, outLayout.cBlock)
                }
            } }
            initialized = op.count
        }
        guard rc == 0 else { throw TensorError.backend("oneDNN \(what) failed (status \(rc)) for input \(shape), weight \(weight.shape)") }
        let input = self
        var inputs = [input, weight]
        if let bias { inputs.append(bias) }
        let ownWeightGradient = geometry != nil && inLayout == .plain && outLayout != .plain
            && Int(mk_conv_block(plan, Int32(MK_DIFF_DST_WEIGHTS))) != outLayout.block
        return Tensor.result(shape: outShape, data: out, layout: outLayout, inputs: inputs) { g in
            let needX = input.requiresGrad, needW = weight.requiresGrad || (bias?.requiresGrad ?? false)
            let dnnlW = needW && !ownWeightGradient
            var gw = [Float](repeating: 0, count: dnnlW ? weight.count : 0)
            var gb = [Float](repeating: 0, count: max(1, bias?.count ?? 1))
            if needX || dnnlW {
                let gx = [Float](unsafeUninitializedCapacity: needX ? input.count : 0) { xgp, initialized in
                    _ = x.withUnsafeBufferPointer { xp in g.withUnsafeBufferPointer { gp in wt.withUnsafeBufferPointer { wp in
                        gw.withUnsafeMutableBufferPointer { wgp in gb.withUnsafeMutableBufferPointer { bgp in
                            mk_conv_backward(plan, xp.baseAddress!, inLayout.cBlock, gp.baseAddress!, outLayout.cBlock, wp.baseAddress!, stamp,
                                             needX ? xgp.baseAddress! : nil, inLayout.cBlock, dnnlW ? wgp.baseAddress! : nil,
                                             bias == nil || !dnnlW ? nil : bgp.baseAddress!)
                        } }
                    } } }
                    initialized = xgp.count
                }
                if needX { input.accumulate(gx, layout: inLayout) }
            }
            if needW, ownWeightGradient, let geometry {
                (gw, gb) = Tensor.weightGradient(input: x, inputShape: input.shape, outputGradient: g, outputShape: outShape, layout: outLayout,
                                                 kernel: (weight.shape[2], weight.shape[3]), geometry: geometry)
            }
            if needW {
                weight.accumulate(gw)
                bias?.accumulate(gb)
            }
        }
    }

    /// dW [o, c·kh·kw] = Σ over images and channel blocks of G_blockᵀ (B x P) · col (P x c·kh·kw), with G blocked and
    /// col the im2col of a plain input; and the bias gradient (per-channel sums of G).
    static func weightGradient(input x: [Float], inputShape: [Int], outputGradient g: [Float], outputShape: [Int], layout: Layout,
                               kernel: (Int, Int), geometry: Conv2DGeometry) -> (weights: [Float], bias: [Float]) {
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let (o, ho, wo) = (outputShape[1], outputShape[2], outputShape[3]), p = ho * wo, k = c * kernel.0 * kernel.1, bs = layout.block
        var gw = [Float](repeating: 0, count: o * k)
        var col = [Float](repeating: 0, count: k * p)
        x.withUnsafeBufferPointer { xp in g.withUnsafeBufferPointer { gp in col.withUnsafeMutableBufferPointer { cp in gw.withUnsafeMutableBufferPointer { wp in
            for b in 0..<n {
                Im2Col.forward(xp.baseAddress! + b * c * h * w, c: c, h: h, w: w, kh: kernel.0, kw: kernel.1, g: geometry, ho: ho, wo: wo, into: cp.baseAddress!)
                for ob in 0..<(o / bs) {
                    Compute.sgemm(transA: true, transB: true, m: bs, n: k, k: p, a: gp.baseAddress! + (b * (o / bs) + ob) * p * bs, lda: bs,
                                  b: cp.baseAddress!, ldb: p, beta: 1, c: wp.baseAddress! + ob * bs * k, ldc: k)
                }
            }
        } } } }
        var gb = [Float](repeating: 0, count: o)
        for item in 0..<(n * o / bs) {
            let base = item * p * bs, ob = item % (o / bs)
            for q in 0..<p { for l in 0..<bs { gb[ob * bs + l] += g[base + q * bs + l] } }
        }
        return (gw, gb)
    }

    /// Transposed 2-D convolution with kernel = stride and no padding (the U-Net's upsampling): input [N, C, H, W],
    /// weight [C, O, k, k] (PyTorch's layout), output [N, O, H·k, W·k].
    /// oneDNN's deconvolution unless `kernel` is `.im2col` (then SGEMM and a scatter, the reference path).
    public func convTranspose2d(_ weight: Tensor, bias: Tensor? = nil, stride s: Int, kernel: ConvKernel = .automatic) throws -> Tensor {
        guard rank == 4, weight.rank == 4, weight.shape[0] == shape[1], weight.shape[2] == s, weight.shape[3] == s else {
            throw TensorError.shapeMismatch("convTranspose2d of input \(shape) with weight \(weight.shape), stride \(s)")
        }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let o = weight.shape[1]
        if kernel == .automatic && layout != .plain && Layout.native != .plain && o % Layout.native.block == 0,
           let plan = ConvPlans.plan([n, c, h, w, o * s * s, 1, 1, 1, 0, 1, 0, 0]), let zLayout = Layout.blocked(Int(mk_conv_block(plan, Int32(MK_DST)))),
           o % zLayout.block == 0 {
            return try shuffledConvTranspose(plan, weight, bias: bias, stride: s, layout: zLayout)
        }
        if kernel != .im2col, let plan = ConvPlans.plan([n, c, h, w, o, s, s, s, 0, 1, bias == nil ? 0 : 1, 1], force: kernel == .onednn) {
            return try dnnlConv(plan, weight, bias, outShape: [n, o, h * s, w * s], what: "transposed convolution")
        }
        let kk = s * s, p = h * w
        // Y_b [o*kk, p] = Wᵀ [o*kk, c] · X_b [c, p]; then scatter each (oc, i, j) plane to the strided output.
        var out = [Float](repeating: 0, count: n * o * h * s * w * s)
        var tmp = [Float](repeating: 0, count: o * kk * p)
        let x = data, wt = weight.data, bd = bias?.data
        for b in 0..<n {
            x.withUnsafeBufferPointer { xp in wt.withUnsafeBufferPointer { wp in tmp.withUnsafeMutableBufferPointer { tp in
                Compute.sgemm(transA: true, m: o * kk, n: p, k: c, a: wp.baseAddress!, lda: o * kk, b: xp.baseAddress! + b * c * p, ldb: p,
                              c: tp.baseAddress!, ldc: p)
            } } }
            for oc in 0..<o {
                for i in 0..<s { for j in 0..<s {
                    let plane = (oc * kk + i * s + j) * p
                    for y in 0..<h { for xx in 0..<w {
                        out[((b * o + oc) * h * s + y * s + i) * w * s + xx * s + j] = tmp[plane + y * w + xx] + (bd?[oc] ?? 0)
                    } }
                } }
            }
        }
        let input = self
        var inputs = [input, weight]
        if let bias { inputs.append(bias) }
        return Tensor.result(shape: [n, o, h * s, w * s], data: out, inputs: inputs) { gout in
            var gx = [Float](repeating: 0, count: input.count), gw = [Float](repeating: 0, count: weight.count)
            var gt = [Float](repeating: 0, count: o * kk * p)
            for b in 0..<n {
                for oc in 0..<o { for i in 0..<s { for j in 0..<s {
                    let plane = (oc * kk + i * s + j) * p
                    for y in 0..<h { for xx in 0..<w { gt[plane + y * w + xx] = gout[((b * o + oc) * h * s + y * s + i) * w * s + xx * s + j] } }
                } } }
                gt.withUnsafeBufferPointer { tp in x.withUnsafeBufferPointer { xp in wt.withUnsafeBufferPointer { wp in
                    gx.withUnsafeMutableBufferPointer { gxp in gw.withUnsafeMutableBufferPointer { gwp in
                        if input.requiresGrad {
                            // dX_b [c, p] = W [c, o*kk] · dY_b [o*kk, p]
                            Compute.sgemm(m: c, n: p, k: o * kk, a: wp.baseAddress!, lda: o * kk, b: tp.baseAddress!, ldb: p,
                                          c: gxp.baseAddress! + b * c * p, ldc: p)
                        }
                        if weight.requiresGrad {
                            // dW [c, o*kk] += X_b [c, p] · dY_bᵀ [p, o*kk]
                            Compute.sgemm(transB: true, m: c, n: o * kk, k: p, a: xp.baseAddress! + b * c * p, lda: p, b: tp.baseAddress!, ldb: p,
                                          beta: 1, c: gwp.baseAddress!, ldc: o * kk)
                        }
                    } }
                } } }
            }
            input.accumulate(gx)
            weight.accumulate(gw)
            if let bias, bias.requiresGrad {
                var gb = [Float](repeating: 0, count: o)
                let q = h * s * w * s
                for b in 0..<n { for oc in 0..<o { for i in 0..<q { gb[oc] += gout[(b * o + oc) * q + i] } } }
                bias.accumulate(gb)
            }
        }
    }

    /// Transposed convolution with kernel = stride s as a 1 x 1 convolution to s·s·O channels followed by a pixel
    /// shuffle (depth to space), all in the blocked layout `zLayout` (the one the 1 x 1 convolution writes): output
    /// channel q·O + o of the 1 x 1 convolution, q = i·s + j, holds weight W[·, o, i, j] and becomes pixel
    /// (s·y + i, s·x + j) of output channel o. With O a multiple of the block, each block moves as one vector. oneDNN's
    /// 1 x 1 kernels are several times faster than its deconvolution forward pass here. Backward: the gradient is
    /// shuffled back (space to depth) and the 1 x 1 convolution's backward pass gives the input and weight gradients;
    /// the bias gradient is the output gradient summed per channel.
    func shuffledConvTranspose(_ plan: OpaquePointer, _ weight: Tensor, bias: Tensor?, stride s: Int, layout zLayout: Layout) throws -> Tensor {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let o = weight.shape[1], kk = s * s, ho = h * s, wo = w * s, block = zLayout.block
        let wd = weight.data
        // The 1 x 1 weights [kk·o, c]: W1[q·o + oc][ci] = W[ci][oc][i][j].
        var w1 = [Float](repeating: 0, count: kk * o * c)
        for ci in 0..<c { for oc in 0..<o { for q in 0..<kk { w1[(q * o + oc) * c + ci] = wd[(ci * o + oc) * kk + q] } } }
        let bd = bias?.data ?? [Float](repeating: 0, count: o)
        let x = storage, inLayout = layout, zero: [Float] = [0], stamp = weight.stamp   // w1 is a function of weight
        var rc: Int32 = 0
        let z = [Float](unsafeUninitializedCapacity: n * kk * o * h * w) { zb, initialized in
            rc = x.withUnsafeBufferPointer { xp in w1.withUnsafeBufferPointer { wp in zero.withUnsafeBufferPointer { bp in
                mk_conv_forward(plan, xp.baseAddress!, inLayout.cBlock, wp.baseAddress!, stamp, bp.baseAddress!, zb.baseAddress!, Int32(block))
            } } }
            initialized = zb.count
        }
        guard rc == 0 else { throw TensorError.backend("oneDNN 1x1 convolution failed (status \(rc)) for input \(shape), weight \(weight.shape)") }
        let out = Tensor.depthToSpace(z, bias: bd, n: n, o: o, h: h, w: w, stride: s, layout: zLayout)
        let input = self
        var inputs = [input, weight]
        if let bias { inputs.append(bias) }
        return Tensor.result(shape: [n, o, ho, wo], data: out, layout: zLayout, inputs: inputs) { g in
            let (gz, db) = Tensor.spaceToDepth(g, n: n, o: o, h: h, w: w, stride: s, layout: zLayout)
            let needX = input.requiresGrad, needW = weight.requiresGrad
            var dw1 = [Float](repeating: 0, count: needW ? w1.count : 0)
            let gx = [Float](unsafeUninitializedCapacity: needX ? input.count : 0) { gxb, initialized in
                _ = x.withUnsafeBufferPointer { xp in gz.withUnsafeBufferPointer { gp in w1.withUnsafeBufferPointer { wp in
                    dw1.withUnsafeMutableBufferPointer { dwp in
                        mk_conv_backward(plan, xp.baseAddress!, inLayout.cBlock, gp.baseAddress!, Int32(block), wp.baseAddress!, stamp,
                                         needX ? gxb.baseAddress! : nil, inLayout.cBlock, needW ? dwp.baseAddress! : nil, nil)
                    }
                } } }
                initialized = gxb.count
            }
            if needX { input.accumulate(gx, layout: inLayout) }
            if needW {
                var dw = [Float](repeating: 0, count: weight.count)
                for ci in 0..<c { for oc in 0..<o { for q in 0..<kk { dw[(ci * o + oc) * kk + q] = dw1[(q * o + oc) * c + ci] } } }
                weight.accumulate(dw)
            }
            if let bias, bias.requiresGrad { bias.accumulate(db) }
        }
    }

    /// Depth to space of blocked channels: `z` holds s·s·o channels of h x w (channel q·o + c, q = i·s + j) in
    /// `layout`; the result holds o channels of (h·s) x (w·s) in the same layout, pixel (s·y + i, s·x + j) of channel c
    /// being z's channel q·o + c at (y, x), plus bias[c]. o must be a multiple of the block.
    static func depthToSpace(_ z: [Float], bias: [Float], n: Int, o: Int, h: Int, w: Int, stride s: Int, layout: Layout) -> [Float] {
        [Float](unsafeUninitializedCapacity: n * o * h * s * w * s) { ob, initialized in
            z.withUnsafeBufferPointer { zb in bias.withUnsafeBufferPointer { bb in
                mk_depth_to_space(zb.baseAddress!, bb.baseAddress!, ob.baseAddress!, n, o, h, w, s, layout.cBlock)
            } }
            initialized = ob.count
        }
    }

    /// The adjoint of ``depthToSpace(_:bias:n:o:h:w:stride:layout:)`` (space to depth), and the per-channel sums of
    /// `g` (the bias gradient).
    static func spaceToDepth(_ g: [Float], n: Int, o: Int, h: Int, w: Int, stride s: Int, layout: Layout) -> (values: [Float], channelSums: [Float]) {
        let block = layout.block, blocks = o / block
        var partial = [Float](repeating: 0, count: n * o * h)
        let gz = [Float](unsafeUninitializedCapacity: g.count) { gzb, initialized in
            g.withUnsafeBufferPointer { gb in partial.withUnsafeMutableBufferPointer { pb in
                mk_space_to_depth(gb.baseAddress!, gzb.baseAddress!, pb.baseAddress!, n, o, h, w, s, layout.cBlock)
            } }
            initialized = gzb.count
        }
        // partial[item · block + lane], item = (image, channel block, row).
        var sums = [Float](repeating: 0, count: o)
        for item in 0..<(n * blocks * h) {
            let b = (item / h) % blocks
            for l in 0..<block { sums[b * block + l] += partial[item * block + l] }
        }
        return (gz, sums)
    }

    /// Max pooling with a k x k window and stride k (input H, W divisible by k). Keeps the input's layout; the first
    /// maximum of a window takes the gradient.
    public func maxPool2d(_ k: Int) throws -> Tensor {
        guard rank == 4, k > 0, shape[2] % k == 0, shape[3] % k == 0 else { throw TensorError.shapeMismatch("maxPool2d(\(k)) of \(shape)") }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let ho = h / k, wo = w / k, outCount = n * c * ho * wo
        let lay = layout, x = storage
        // arg[i]: the storage index of output i's maximum.
        var arg = [Int32](repeating: 0, count: outCount)
        let out = [Float](unsafeUninitializedCapacity: outCount) { ob, initialized in
            x.withUnsafeBufferPointer { xb in arg.withUnsafeMutableBufferPointer { ab in
                nonisolated(unsafe) let (xp, op, ap) = (xb.baseAddress!, ob.baseAddress!, ab.baseAddress!)
                if lay != .plain {
                    mk_maxpool_blocked(xp, op, ap, n * c / lay.block, h, w, k, Int32(lay.block))
                } else {
                    parallelFor(n * c) { plane in
                        for oy in 0..<ho { for ox in 0..<wo {
                            var best = -Float.infinity, at = (plane * h + oy * k) * w + ox * k
                            for i in 0..<k { for j in 0..<k {
                                let idx = (plane * h + oy * k + i) * w + ox * k + j
                                if xp[idx] > best { best = xp[idx]; at = idx }
                            } }
                            op[(plane * ho + oy) * wo + ox] = best
                            ap[(plane * ho + oy) * wo + ox] = Int32(at)
                        } }
                    }
                }
            } }
            initialized = outCount
        }
        let total = count, argmax = arg
        return Tensor.result(shape: [n, c, ho, wo], data: out, layout: lay, inputs: [self]) { [self] g in
            var gx = [Float](repeating: 0, count: total)
            gx.withUnsafeMutableBufferPointer { gxp in g.withUnsafeBufferPointer { gp in argmax.withUnsafeBufferPointer { ap in
                for i in 0..<gp.count { gxp[Int(ap[i])] += gp[i] }
            } } }
            accumulate(gx, layout: lay)
        }
    }

    /// Average pooling with a k x k window and stride k.
    public func avgPool2d(_ k: Int) throws -> Tensor {
        guard rank == 4, shape[2] % k == 0, shape[3] % k == 0 else { throw TensorError.shapeMismatch("avgPool2d(\(k)) of \(shape)") }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let ho = h / k, wo = w / k, inv = 1 / Float(k * k)
        var out = [Float](repeating: 0, count: n * c * ho * wo)
        let xd = data
        for plane in 0..<(n * c) { for y in 0..<h { for x in 0..<w { out[(plane * ho + y / k) * wo + x / k] += xd[(plane * h + y) * w + x] * inv } } }
        let total = count
        return Tensor.result(shape: [n, c, ho, wo], data: out, inputs: [self]) { [self] g in
            var gx = [Float](repeating: 0, count: total)
            for plane in 0..<(n * c) { for y in 0..<h { for x in 0..<w { gx[(plane * h + y) * w + x] = g[(plane * ho + y / k) * wo + x / k] * inv } } }
            accumulate(gx)
        }
    }
}
