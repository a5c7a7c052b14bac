import Foundation
import Testing
import TestSupport
@testable import MedNN
@testable import MedTensor

/// Values and input gradients of `op` on an input stored as `layout` against the same operation on the plain input
/// through the reference path (`reference`), with one fixed output-gradient seed.
private func agree(_ x: Tensor, as layout: Layout, params: [Tensor] = [], tolerance: Float = 1e-4, _ op: (Tensor) throws -> Tensor,
                   reference: (Tensor) throws -> Tensor, sourceLocation: SourceLocation = #_sourceLocation) throws {
    for p in [x] + params { p.zeroGrad() }
    let y = try op(x.converted(to: layout))
    let seed = (0..<y.count).map { Float(($0 * 7919) % 13) - 6 }
    y.backward(seed: seed)
    let grads = ([x] + params).map { $0.grad ?? [] }
    for p in [x] + params { p.zeroGrad() }
    let r = try reference(x)
    r.backward(seed: seed)
    let refGrads = ([x] + params).map { $0.grad ?? [] }
    #expect(y.shape == r.shape, sourceLocation: sourceLocation)
    let (a, b) = (y.data, r.data)
    let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
    #expect(worst < tolerance, "values differ by \(worst)", sourceLocation: sourceLocation)
    for (i, (g, rg)) in zip(grads, refGrads).enumerated() {
        #expect(g.count == rg.count, sourceLocation: sourceLocation)
        let w = zip(g, rg).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        #expect(w < tolerance, "gradient \(i) differs by \(w)", sourceLocation: sourceLocation)
    }
}

/// Both blocked layouts: every kernel runs on both on any machine (the layout is data, not the processor).
private let blockedLayouts: [Layout] = [.blocked8, .blocked16]

@Suite("Blocked nChw8c / nChw16c layouts")
struct LayoutTests {
    @Test("blocked order is [n][c/B][h][w][c%B]; conversions round-trip and are recorded in the graph", arguments: blockedLayouts)
    func order(layout: Layout) throws {
        let (n, c, h, w, bs) = (2, 32, 3, 5, layout.block)
        let plain = (0..<(n * c * h * w)).map { Float($0) }
        let x = Tensor(shape: [n, c, h, w], data: plain, requiresGrad: true)
        let b = x.converted(to: layout)
        #expect(b.layout == layout && b.data == plain)
        for i in 0..<n { for ch in 0..<c { for y in 0..<h { for xx in 0..<w {
            #expect(b.storage[((i * (c / bs) + ch / bs) * h * w + y * w + xx) * bs + ch % bs] == plain[((i * c + ch) * h + y) * w + xx])
        } } } }
        // Blocked to the other block size directly, and back.
        let other: Layout = layout == .blocked8 ? .blocked16 : .blocked8
        #expect(b.converted(to: other).data == plain && b.converted(to: other).converted(to: layout).storage == b.storage)
        // Gradients of a blocked result come back to the plain leaf in plain order.
        b.backward(seed: plain)
        #expect(x.grad == plain)
        #expect(!layout.fits([2, 4, 3, 3]) && !layout.fits([16, 16]) && layout.fits([1, 16, 1, 1]) && Layout.plain.fits([7]))
        #expect(Layout.blocked8.fits([1, 8, 2, 2]) && !Layout.blocked16.fits([1, 8, 2, 2]))
        // Mutating `data` of a blocked tensor leaves it plain with the same values, and its gradient in plain order.
        let m = Tensor(shape: [n, c, h, w], data: plain).converted(to: layout)
        m.grad = b.storage
        m.data[1] += 100
        #expect(m.layout == .plain && m.data[1] == 101 && m.data[2] == 2 && m.grad == plain)
    }

    @Test("normalisations on blocked tensors equal the plain kernels and the textbook formula, values and gradients",
          arguments: blockedLayouts)
    func norms(layout: Layout) throws {
        let x = random([3, 32, 5, 4], seed: 101, scale: 2)
        let gamma = random([32], seed: 102), beta = random([32], seed: 103)
        for relu in [false, true] {
            try agree(x, as: layout, params: [gamma, beta]) { try $0.batchNorm(gamma: gamma, beta: beta, eps: 1e-5, relu: relu).0 } reference: {
                try $0.batchNorm(gamma: gamma, beta: beta, eps: 1e-5, relu: relu).0
            }
            // Instance norm = group norm with one channel per group (the generic path).
            try agree(x, as: layout, params: [gamma, beta]) {
                relu ? try $0.instanceNormReLU(gamma: gamma, beta: beta) : try $0.instanceNorm(gamma: gamma, beta: beta)
            } reference: { let y = try $0.groupNorm(groups: 32, gamma: gamma, beta: beta); return relu ? y.relu() : y }
        }
        // Batch norm against the formula, computed here per channel in Double.
        let xd = x.data, (gd, bd) = (gamma.data, beta.data)
        let y = try x.converted(to: layout).batchNormReLU(gamma: gamma, beta: beta)
        let yd = y.0.data
        for ch in 0..<32 {
            var values: [Double] = []
            for i in 0..<3 { for p in 0..<20 { values.append(Double(xd[(i * 32 + ch) * 20 + p])) } }
            let mu = values.reduce(0, +) / 60, v = values.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / 60
            #expect(abs(Double(y.mean[ch]) - mu) < 1e-5 && abs(Double(y.variance[ch]) - v * 60 / 59) < 1e-4)
            for i in 0..<3 { for p in 0..<20 {
                let expected = max(0, Double(gd[ch]) * (Double(xd[(i * 32 + ch) * 20 + p]) - mu) / (v + 1e-5).squareRoot() + Double(bd[ch]))
                #expect(abs(Double(yd[(i * 32 + ch) * 20 + p]) - expected) < 1e-4)
            } }
        }
        #expect(y.0.layout == layout)
        // Large offsets (mean 1000, spread 1): the centred statistics keep the normalised values accurate.
        let big = Tensor(shape: [2, 16, 8, 8], data: random([2, 16, 8, 8], seed: 104).data.map { $0 + 1000 })
        let yb = try big.converted(to: layout).batchNorm(gamma: nil, beta: nil).0.data
        let yp = try big.batchNorm(gamma: nil, beta: nil).0.data
        #expect(zip(yb, yp).allSatisfy { abs($0 - $1) < 2e-3 })
    }

    @Test("blocked instance and batch norm: backward equals finite differences", arguments: blockedLayouts)
    func normGradients(layout: Layout) throws {
        let x = random([2, 16, 3, 3], seed: 105, scale: 2), gamma = random([16], seed: 106), beta = random([16], seed: 107)
        try gradientCheck([x, gamma, beta]) { try $0[0].converted(to: layout).instanceNorm(gamma: $0[1], beta: $0[2]) }
        try gradientCheck([x, gamma, beta]) { try $0[0].converted(to: layout).batchNorm(gamma: $0[1], beta: $0[2]).0 }
        // Plain tensors of other ranks and channel counts take the same kernel with blocks of one channel.
        let x3 = random([3, 5, 7], seed: 108, scale: 2), g3 = random([5], seed: 109), b3 = random([5], seed: 110)
        try gradientCheck([x3, g3, b3]) { try $0[0].batchNorm(gamma: $0[1], beta: $0[2]).0 }
        try gradientCheck([x3, g3, b3]) { try $0[0].instanceNormReLU(gamma: $0[1], beta: $0[2]) }
    }

    @Test("pooling, ReLU, concatenation and element-wise arithmetic keep the blocked layout and agree with plain",
          arguments: blockedLayouts)
    func layoutPreserving(layout: Layout) throws {
        let x = random([2, 16, 6, 4], seed: 108)
        let pooled = try x.converted(to: layout).maxPool2d(2)
        #expect(pooled.layout == layout)
        try agree(x, as: layout) { try $0.maxPool2d(2) } reference: { try $0.maxPool2d(2) }
        // Finite differences need each window's maximum clear of the rest by more than the step: distinct values 0.05 apart.
        let distinct = Tensor(shape: [2, 16, 6, 4], data: (0..<768).map { Float(($0 * 37) % 768) * 0.05 }, requiresGrad: true)
        try gradientCheck([distinct]) { try $0[0].converted(to: layout).maxPool2d(2) }
        try agree(x, as: layout) { $0.relu() } reference: { $0.relu() }
        #expect(x.converted(to: layout).relu().layout == layout)
        try agree(x, as: layout) { $0.leakyRelu(0.1) } reference: { $0.leakyRelu(0.1) }
        let other = random([2, 32, 6, 4], seed: 109)
        let cat = try Tensor.concat([x.converted(to: layout), other.converted(to: layout)], axis: 1)
        #expect(cat.layout == layout)
        try agree(x, as: layout, params: [other]) { try Tensor.concat([$0, other.converted(to: layout)], axis: 1) }
            reference: { try Tensor.concat([$0, other], axis: 1) }
        // Mixed layouts fall back to plain and still agree.
        #expect(try Tensor.concat([x.converted(to: .blocked8), other.converted(to: .blocked16)], axis: 1).layout == .plain)
        try agree(x, as: layout, params: [other]) { try Tensor.concat([$0, other], axis: 1) } reference: { try Tensor.concat([$0, other], axis: 1) }
        let y = random([2, 16, 6, 4], seed: 110)
        try agree(x, as: layout, params: [y]) { $0 * y.converted(to: layout) + $0 } reference: { $0 * y + $0 }
        try agree(x, as: layout, params: [y]) { $0 - y } reference: { $0 - y }
    }

    @Test("pixel shuffle of blocked channels: depth to space plus bias as written out by hand; space to depth is its adjoint",
          arguments: blockedLayouts)
    func pixelShuffle(layout: Layout) throws {
        let (n, o, h, w, s) = (2, 16, 3, 2, 2), kk = 4
        let z = random([n, kk * o, h, w], seed: 130), bias = random([o], seed: 131).data
        let zb = z.converted(to: layout).storage
        let out = Tensor.depthToSpace(zb, bias: bias, n: n, o: o, h: h, w: w, stride: s, layout: layout)
        let plainOut = Layout.convert(out, shape: [n, o, h * s, w * s], from: layout, to: .plain), zd = z.data
        for img in 0..<n { for oc in 0..<o { for y in 0..<h { for xx in 0..<w { for i in 0..<s { for j in 0..<s {
            let expected = zd[((img * kk * o + (i * s + j) * o + oc) * h + y) * w + xx] + bias[oc]
            #expect(plainOut[((img * o + oc) * h * s + s * y + i) * w * s + s * xx + j] == expected)
        } } } } } }
        // <D(z), g> = <z, Dᵀ(g)> (without the bias), and the partial sums add up to the per-channel sums of g.
        let g = random([n, o, h * s, w * s], seed: 132).converted(to: layout).storage
        let noBias = Tensor.depthToSpace(zb, bias: [Float](repeating: 0, count: o), n: n, o: o, h: h, w: w, stride: s, layout: layout)
        let (gz, channelSums) = Tensor.spaceToDepth(g, n: n, o: o, h: h, w: w, stride: s, layout: layout)
        let lhs = zip(noBias, g).map { Double($0) * Double($1) }.reduce(0, +), rhs = zip(zb, gz).map { Double($0) * Double($1) }.reduce(0, +)
        #expect(abs(lhs - rhs) < 1e-3)
        let gPlain = Layout.convert(g, shape: [n, o, h * s, w * s], from: layout, to: .plain)
        for oc in 0..<o {
            var sum: Float = 0
            for img in 0..<n { for p in 0..<(h * s * w * s) { sum += gPlain[(img * o + oc) * h * s * w * s + p] } }
            #expect(abs(channelSums[oc] - sum) < 1e-4)
        }
    }

    @Test("oneDNN convolutions read either block size and write the processor's; same as the reference path", arguments: blockedLayouts)
    func convolutions(layout: Layout) throws {
        let x = random([2, 16, 8, 8], seed: 111)
        let w = random([32, 16, 3, 3], seed: 112, scale: 0.3), b = random([32], seed: 113)
        let g = Conv2DGeometry(stride: 1, padding: 1)
        let out = try x.converted(to: layout).conv2d(w, bias: b, geometry: g, kernel: .onednn)
        #expect(out.layout == Layout.native)
        try agree(x, as: layout, params: [w, b]) { try $0.conv2d(w, bias: b, geometry: g, kernel: .onednn) }
            reference: { try $0.conv2d(w, bias: b, geometry: g, kernel: .im2col) }
        // Strided and dilated, and a head with 2 outputs (plain result).
        try agree(x, as: layout, params: [w]) { try $0.conv2d(w, geometry: Conv2DGeometry(stride: 2, padding: 2, dilation: 2), kernel: .onednn) }
            reference: { try $0.conv2d(w, geometry: Conv2DGeometry(stride: 2, padding: 2, dilation: 2), kernel: .im2col) }
        let head = random([2, 16, 1, 1], seed: 114)
        try agree(x, as: layout, params: [head]) { try $0.conv2d(head, kernel: .onednn) } reference: { try $0.conv2d(head, kernel: .im2col) }
        // Transposed convolution (PyTorch weight layout [in, out, k, k]) to 16 and to 3 channels.
        for o in [16, 3] {
            let wt = random([16, o, 2, 2], seed: 115 + UInt64(o), scale: 0.5), bt = random([o], seed: 116)
            try agree(x, as: layout, params: [wt, bt]) { try $0.convTranspose2d(wt, bias: bt, stride: 2, kernel: .onednn) }
                reference: { try $0.convTranspose2d(wt, bias: bt, stride: 2, kernel: .im2col) }
            // Automatic with a blocked input: the 1 x 1 convolution + pixel shuffle path for 16 outputs.
            try agree(x, as: layout, params: [wt, bt]) { try $0.convTranspose2d(wt, bias: bt, stride: 2) }
                reference: { try $0.convTranspose2d(wt, bias: bt, stride: 2, kernel: .im2col) }
        }
        let x32 = random([2, 32, 3, 5], seed: 120), w32 = random([32, 32, 2, 2], seed: 121, scale: 0.5), b32 = random([32], seed: 122)
        #expect(try x32.converted(to: layout).convTranspose2d(w32, bias: b32, stride: 2).layout == Layout.native)
        try agree(x32, as: layout, params: [w32, b32]) { try $0.convTranspose2d(w32, bias: b32, stride: 2) }
            reference: { try $0.convTranspose2d(w32, bias: b32, stride: 2, kernel: .im2col) }
        let w3 = random([32, 16, 3, 3], seed: 126, scale: 0.5)
        try agree(x32, as: layout, params: [w3]) { try $0.convTranspose2d(w3, stride: 3) } reference: { try $0.convTranspose2d(w3, stride: 3, kernel: .im2col) }
        let s16 = random([1, 16, 2, 3], seed: 123), ws = random([16, 16, 2, 2], seed: 124, scale: 0.5), bs = random([16], seed: 125)
        try gradientCheck([s16, ws, bs]) { try $0[0].converted(to: layout).convTranspose2d($0[1], bias: $0[2], stride: 2) }
        // Plain input, blocked-capable output: the oneDNN transposed convolution against finite differences.
        let small = random([1, 16, 2, 2], seed: 117), wt = random([16, 16, 2, 2], seed: 118, scale: 0.5), bt = random([16], seed: 119)
        try gradientCheck([small, wt, bt]) { try $0[0].convTranspose2d($0[1], bias: $0[2], stride: 2, kernel: .onednn) }
    }

    @Test("a first layer's weight gradient from a blocked output gradient equals the reference convolution's",
          arguments: blockedLayouts)
    func firstLayerWeightGradient(layout: Layout) throws {
        let x = random([2, 3, 7, 6], seed: 150), w = random([16, 3, 3, 3], seed: 151, scale: 0.3), b = random([16], seed: 152)
        let geometry = Conv2DGeometry(stride: 2, padding: 1)
        let y = try x.conv2d(w, bias: b, geometry: geometry, kernel: .im2col)
        let seed = random(y.shape, seed: 153)
        w.zeroGrad(); b.zeroGrad()
        y.backward(seed: seed.data)
        let (gw, gb) = Tensor.weightGradient(input: x.data, inputShape: x.shape, outputGradient: seed.converted(to: layout).storage,
                                             outputShape: y.shape, layout: layout, kernel: (3, 3), geometry: geometry)
        #expect(zip(gw, w.grad!).allSatisfy { abs($0 - $1) < 1e-4 } && zip(gb, b.grad!).allSatisfy { abs($0 - $1) < 1e-4 })
    }

    @Test("oneDNN's converted copy of the weights is reused only while they are unchanged")
    func weightCache() throws {
        let x = random([2, 16, 6, 6], seed: 160).converted(to: Layout.native == .plain ? .blocked16 : Layout.native)
        let w = random([16, 16, 3, 3], seed: 161, scale: 0.3)
        let g = Conv2DGeometry(stride: 1, padding: 1)
        for step in 0..<3 {
            let fast = try x.conv2d(w, geometry: g, kernel: .onednn).data, reference = try x.conv2d(w, geometry: g, kernel: .im2col).data
            #expect(zip(fast, reference).allSatisfy { abs($0 - $1) < 1e-4 }, "step \(step)")
            w.data[step * 7] += 0.5          // as an optimiser step does
        }
    }

    @Test("the native block follows the processor (16 with AVX-512, 8 with AVX2 or ONEDNN_MAX_CPU_ISA=AVX2)")
    func nativeBlock() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        let words = Set(flags.split(separator: " ").map(String.init))
        let isa = ProcessInfo.processInfo.environment["ONEDNN_MAX_CPU_ISA"]?.uppercased()
        guard ConvPlans.useDNNL else { #expect(Layout.native == .plain); return }
        if words.contains("avx512f") && words.contains("avx512bw") && (isa == nil || isa!.hasPrefix("AVX512") || isa == "ALL") {
            #expect(Layout.native == .blocked16)
        } else if words.contains("avx2") {
            #expect(Layout.native == .blocked8)
        }
    }

    @Test("a U-Net training step (batch and instance norm, deep supervision) converts no activation (64 px: at 2 x 2 pixels oneDNN's AVX2 backward-weights kernels want plain layouts)")
    func noReorders() throws {
        guard Layout.native != .plain else { return }
        for norm in [UNet.Normalization.batch, .instance] {
            let model = UNet(inChannels: 1, classes: 2, base: 16, levels: 4, normalization: norm, deepSupervision: norm == .instance, seed: 3)
            let x = random([2, 1, 64, 64], seed: 140).detached()   // an image: no gradient wanted
            let labels = (0..<(2 * 64 * 64)).map { Float(($0 / 7) % 2) }
            var opt = Adam(model.parameters, learningRate: 1e-3)
            for step in 0..<2 {
                let before = activationReordersOnThisThread
                opt.zeroGrad()
                let outputs = try model.forwardAll(x)
                var loss = try Loss.diceCE(outputs[0], labels)
                for o in outputs.dropFirst() { loss = loss + o.mean() }
                loss.backward()
                opt.step()
                #expect(activationReordersOnThisThread == before, "step \(step) with \(norm) norm converted activations")
            }
        }
    }
}
