import Foundation
import Synchronization
internal import COpenBLAS
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

/// Row-major SGEMM through oneDNN, OpenBLAS when oneDNN refuses.
func sgemmRowMajor(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                   _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    let rc = mk_sgemm(CChar(UInt8(ascii: ta ? "T" : "N")), CChar(UInt8(ascii: tb ? "T" : "N")), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    if rc != 0 {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
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
        if kernel != .im2col, let plan = ConvPlans.plan([n, c, h, w, o, kh, kw, g.stride, g.padding, g.dilation, bias == nil ? 0 : 1, 0],
                                                        force: kernel == .onednn) {
            return try dnnlConv(plan, weight, bias, outShape: [n, o, ho, wo], what: "convolution")
        }
        var out = [Float](repeating: 0, count: n * o * p)
        var cols = [Float](repeating: 0, count: n * k * p)
        let x = data, wt = weight.data, bd = bias?.data
        x.withUnsafeBufferPointer { xp in cols.withUnsafeMutableBufferPointer { cp in wt.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer { op in
            for b in 0..<n {
                Im2Col.forward(xp.baseAddress! + b * c * h * w, c: c, h: h, w: w, kh: kh, kw: kw, g: g, ho: ho, wo: wo, into: cp.baseAddress! + b * k * p)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(o), Int32(p), Int32(k), 1, wp.baseAddress!, Int32(k),
                            cp.baseAddress! + b * k * p, Int32(p), 0, op.baseAddress! + b * o * p, Int32(p))
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
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(o), Int32(k), Int32(p), 1, gp.baseAddress! + b * o * p, Int32(p),
                                        cp.baseAddress! + b * k * p, Int32(p), 1, gwp.baseAddress!, Int32(k))
                        }
                        if input.requiresGrad {
                            // dcol = Wᵀ [k, o] · dOut_b [o, p], then col2im.
                            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(k), Int32(p), Int32(o), 1, wp.baseAddress!, Int32(k),
                                        gp.baseAddress! + b * o * p, Int32(p), 0, gcp.baseAddress!, Int32(p))
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

    /// The oneDNN path of ``conv2d(_:bias:geometry:)`` and ``convTranspose2d(_:bias:stride:)``. The input goes in in its
    /// own layout; the output (and the input's gradient) come out blocked when the primitive works blocked.
    func dnnlConv(_ plan: OpaquePointer, _ weight: Tensor, _ bias: Tensor?, outShape: [Int], what: String) throws -> Tensor {
        let outLayout: Layout = mk_conv_blocked(plan, Int32(MK_DST)) != 0 && Layout.canBlock(outShape) ? .blocked16 : .plain
        let inLayout = layout
        let x = storage, wt = weight.data
        let zero: [Float] = [0]
        var rc: Int32 = 0
        let out = [Float](unsafeUninitializedCapacity: outShape.reduce(1, *)) { op, initialized in
            rc = x.withUnsafeBufferPointer { xp in wt.withUnsafeBufferPointer { wp in
                (bias?.data ?? zero).withUnsafeBufferPointer { bp in
                    mk_conv_forward(plan, xp.baseAddress!, inLayout == .blocked16 ? 1 : 0, wp.baseAddress!, bp.baseAddress!, op.baseAddress!,
                                    outLayout == .blocked16 ? 1 : 0)
                }
            } }
            initialized = op.count
        }
        guard rc == 0 else { throw TensorError.shapeMismatch("oneDNN \(what) failed for input \(shape), weight \(weight.shape)") }
        let input = self
        var inputs = [input, weight]
        if let bias { inputs.append(bias) }
        return Tensor.result(shape: outShape, data: out, layout: outLayout, inputs: inputs) { g in
            let needX = input.requiresGrad, needW = weight.requiresGrad || (bias?.requiresGrad ?? false)
            var gw = [Float](repeating: 0, count: needW ? weight.count : 0)
            var gb = [Float](repeating: 0, count: max(1, bias?.count ?? 1))
            let gx = [Float](unsafeUninitializedCapacity: needX ? input.count : 0) { xgp, initialized in
                _ = x.withUnsafeBufferPointer { xp in g.withUnsafeBufferPointer { gp in wt.withUnsafeBufferPointer { wp in
                    gw.withUnsafeMutableBufferPointer { wgp in gb.withUnsafeMutableBufferPointer { bgp in
                        mk_conv_backward(plan, xp.baseAddress!, inLayout == .blocked16 ? 1 : 0, gp.baseAddress!, outLayout == .blocked16 ? 1 : 0,
                                         wp.baseAddress!, needX ? xgp.baseAddress! : nil, inLayout == .blocked16 ? 1 : 0,
                                         needW ? wgp.baseAddress! : nil, bias == nil ? nil : bgp.baseAddress!)
                    } }
                } } }
                initialized = xgp.count
            }
            if needX { input.accumulate(gx, layout: inLayout) }
            if needW {
                weight.accumulate(gw)
                bias?.accumulate(gb)
            }
        }
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
        if kernel == .automatic && layout == .blocked16 && o % 16 == 0,
           let plan = ConvPlans.plan([n, c, h, w, o * s * s, 1, 1, 1, 0, 1, 0, 0]), mk_conv_blocked(plan, Int32(MK_DST)) != 0 {
            return try shuffledConvTranspose(plan, weight, bias: bias, stride: s)
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
                sgemmRowMajor(true, false, o * kk, p, c, 1, wp.baseAddress!, o * kk, xp.baseAddress! + b * c * p, p, 0, tp.baseAddress!, p)
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
                            sgemmRowMajor(false, false, c, p, o * kk, 1, wp.baseAddress!, o * kk, tp.baseAddress!, p, 0, gxp.baseAddress! + b * c * p, p)
                        }
                        if weight.requiresGrad {
                            // dW [c, o*kk] += X_b [c, p] · dY_bᵀ [p, o*kk]
                            sgemmRowMajor(false, true, c, o * kk, p, 1, xp.baseAddress! + b * c * p, p, tp.baseAddress!, p, 1, gwp.baseAddress!, o * kk)
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
    /// shuffle (depth to space), all in the blocked layout: output channel q·O + o of the 1 x 1 convolution, q = i·s + j,
    /// holds weight W[·, o, i, j] and becomes pixel (s·y + i, s·x + j) of output channel o. With O a multiple of 16, each
    /// 16-channel block moves as one vector. oneDNN's 1 x 1 kernels are several times faster than its deconvolution
    /// forward pass here. Backward: the gradient is shuffled back (space to depth) and the 1 x 1 convolution's backward
    /// pass gives the input and weight gradients; the bias gradient is the output gradient summed per channel.
    func shuffledConvTranspose(_ plan: OpaquePointer, _ weight: Tensor, bias: Tensor?, stride s: Int) throws -> Tensor {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let o = weight.shape[1], kk = s * s, ob = o / 16, hw = h * w, ho = h * s, wo = w * s
        let wd = weight.data
        // The 1 x 1 weights [kk·o, c]: W1[q·o + oc][ci] = W[ci][oc][i][j].
        var w1 = [Float](repeating: 0, count: kk * o * c)
        for ci in 0..<c { for oc in 0..<o { for q in 0..<kk { w1[(q * o + oc) * c + ci] = wd[(ci * o + oc) * kk + q] } } }
        let bd = bias?.data ?? [Float](repeating: 0, count: o)
        let x = storage, zero: [Float] = [0]
        var rc: Int32 = 0
        let z = [Float](unsafeUninitializedCapacity: n * kk * o * hw) { zb, initialized in
            rc = x.withUnsafeBufferPointer { xp in w1.withUnsafeBufferPointer { wp in zero.withUnsafeBufferPointer { bp in
                mk_conv_forward(plan, xp.baseAddress!, 1, wp.baseAddress!, bp.baseAddress!, zb.baseAddress!, 1)
            } } }
            initialized = zb.count
        }
        guard rc == 0 else { throw TensorError.shapeMismatch("oneDNN 1x1 convolution failed for input \(shape), weight \(weight.shape)") }
        // Offsets (in floats) of one 16-lane vector: in z (block q·ob + b, pixel y·w + x) and in the output (block b,
        // pixel (s·y + i)·wo + s·x + j).
        @Sendable @inline(__always) func zOffset(_ img: Int, _ q: Int, _ b: Int, _ p: Int) -> Int { ((img * kk * ob + q * ob + b) * hw + p) * 16 }
        @Sendable @inline(__always) func outOffset(_ img: Int, _ b: Int, _ y: Int, _ xx: Int, _ i: Int, _ j: Int) -> Int {
            ((img * ob + b) * ho * wo + (s * y + i) * wo + s * xx + j) * 16
        }
        let out = [Float](unsafeUninitializedCapacity: n * o * ho * wo) { ob2, initialized in
            z.withUnsafeBufferPointer { zb in bd.withUnsafeBufferPointer { bb in
                nonisolated(unsafe) let (zp, bp, op) = (zb.baseAddress!, bb.baseAddress!, ob2.baseAddress!)
                parallelFor(n * ob * h) { item in
                    let img = item / (ob * h), b = (item / h) % ob, y = item % h
                    let bias = UnsafeRawPointer(bp + b * 16).loadUnaligned(as: SIMD16<Float>.self)
                    for xx in 0..<w { for i in 0..<s { for j in 0..<s {
                        let v = UnsafeRawPointer(zp + zOffset(img, i * s + j, b, y * w + xx)).loadUnaligned(as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(op + outOffset(img, b, y, xx, i, j)).storeBytes(of: v + bias, as: SIMD16<Float>.self)
                    } } }
                }
            } }
            initialized = ob2.count
        }
        let input = self
        var inputs = [input, weight]
        if let bias { inputs.append(bias) }
        return Tensor.result(shape: [n, o, ho, wo], data: out, layout: .blocked16, inputs: inputs) { g in
            // Space to depth: the gradient in z's order; per-channel sums for the bias.
            var partial = [SIMD16<Float>](repeating: SIMD16<Float>(), count: n * ob * h)
            let gz = [Float](unsafeUninitializedCapacity: z.count) { gzb, initialized in
                g.withUnsafeBufferPointer { gb in partial.withUnsafeMutableBufferPointer { pb in
                    nonisolated(unsafe) let (gp, zp, pp) = (gb.baseAddress!, gzb.baseAddress!, pb.baseAddress!)
                    parallelFor(n * ob * h) { item in
                        let img = item / (ob * h), b = (item / h) % ob, y = item % h
                        var sum = SIMD16<Float>()
                        for xx in 0..<w { for i in 0..<s { for j in 0..<s {
                            let v = UnsafeRawPointer(gp + outOffset(img, b, y, xx, i, j)).loadUnaligned(as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(zp + zOffset(img, i * s + j, b, y * w + xx)).storeBytes(of: v, as: SIMD16<Float>.self)
                            sum += v
                        } } }
                        pp[item] = sum
                    }
                } }
                initialized = gzb.count
            }
            let needX = input.requiresGrad, needW = weight.requiresGrad
            var dw1 = [Float](repeating: 0, count: needW ? w1.count : 0)
            var unusedBias: [Float] = [0]
            let gx = [Float](unsafeUninitializedCapacity: needX ? input.count : 0) { gxb, initialized in
                _ = x.withUnsafeBufferPointer { xp in gz.withUnsafeBufferPointer { gp in w1.withUnsafeBufferPointer { wp in
                    dw1.withUnsafeMutableBufferPointer { dwp in unusedBias.withUnsafeMutableBufferPointer { _ in
                        mk_conv_backward(plan, xp.baseAddress!, 1, gp.baseAddress!, 1, wp.baseAddress!, needX ? gxb.baseAddress! : nil, 1,
                                         needW ? dwp.baseAddress! : nil, nil)
                    } }
                } } }
                initialized = gxb.count
            }
            if needX { input.accumulate(gx, layout: .blocked16) }
            if needW {
                var dw = [Float](repeating: 0, count: weight.count)
                for ci in 0..<c { for oc in 0..<o { for q in 0..<kk { dw[(ci * o + oc) * kk + q] = dw1[(q * o + oc) * c + ci] } } }
                weight.accumulate(dw)
            }
            if let bias, bias.requiresGrad {
                var db = [Float](repeating: 0, count: o)
                for item in 0..<partial.count { let b = (item / h) % ob; for l in 0..<16 { db[b * 16 + l] += partial[item][l] } }
                bias.accumulate(db)
            }
        }
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
                if lay == .blocked16 {
                    let lanes = SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
                    parallelFor(n * c / 16) { item in
                        let src = UnsafeRawPointer(xp + item * h * w * 16)
                        for oy in 0..<ho { for ox in 0..<wo {
                            var best = SIMD16<Float>(repeating: -.infinity)
                            var at = lanes &+ Int32((item * h * w + oy * k * w + ox * k) * 16)
                            for i in 0..<k { for j in 0..<k {
                                let pos = (oy * k + i) * w + ox * k + j
                                let v = src.loadUnaligned(fromByteOffset: pos * 64, as: SIMD16<Float>.self)
                                let better = v .> best
                                best.replace(with: v, where: better)
                                at.replace(with: lanes &+ Int32((item * h * w + pos) * 16), where: better)
                            } }
                            let o = (item * ho * wo + oy * wo + ox) * 16
                            UnsafeMutableRawPointer(op + o).storeBytes(of: best, as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(ap + o).storeBytes(of: at, as: SIMD16<Int32>.self)
                        } }
                    }
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
