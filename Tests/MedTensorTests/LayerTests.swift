import Foundation
import Testing
import TestSupport
@testable import MedTensor

/// Direct convolution, for reference values.
func naiveConv(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: Conv2DGeometry) -> [Float] {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
    let ho = (h + 2 * g.padding - g.dilation * (kh - 1) - 1) / g.stride + 1, wo = (wd + 2 * g.padding - g.dilation * (kw - 1) - 1) / g.stride + 1
    var out = [Float](repeating: 0, count: n * o * ho * wo)
    for img in 0..<n { for oc in 0..<o { for oy in 0..<ho { for ox in 0..<wo {
        var acc = Double(bias?.data[oc] ?? 0)
        for ic in 0..<c { for i in 0..<kh { for j in 0..<kw {
            let y = oy * g.stride - g.padding + i * g.dilation, xx = ox * g.stride - g.padding + j * g.dilation
            if y >= 0 && y < h && xx >= 0 && xx < wd { acc += Double(x.data[((img * c + ic) * h + y) * wd + xx]) * Double(w.data[((oc * c + ic) * kh + i) * kw + j]) }
        } } }
        out[((img * o + oc) * ho + oy) * wo + ox] = Float(acc)
    } } } }
    return out
}

@Suite("Layers: convolution, pooling, normalisation, losses, optimisers")
struct LayerTests {
    @Test("conv2d equals a direct convolution for strides, padding and dilation; backward equals finite differences",
          arguments: [Conv2DGeometry(), Conv2DGeometry(stride: 2, padding: 1), Conv2DGeometry(padding: 2, dilation: 2)])
    func conv(g: Conv2DGeometry) throws {
        let x = random([2, 3, 7, 6], seed: 20), w = random([4, 3, 3, 3], seed: 21, scale: 0.5), b = random([4], seed: 22)
        let ref = naiveConv(x, w, b, g)
        // Both kernels: oneDNN's primitives and the im2col + SGEMM reference path.
        for dnnl in [true, false] {
            let y = try x.conv2d(w, bias: b, geometry: g, kernel: dnnl ? .onednn : .im2col)
            #expect(y.data.count == ref.count && zip(y.data, ref).allSatisfy { abs($0 - $1) < 1e-4 }, "oneDNN: \(dnnl)")
            try gradientCheck([x, w, b]) { try $0[0].conv2d($0[1], bias: $0[2], geometry: g, kernel: dnnl ? .onednn : .im2col) }
            try gradientCheck([x, w]) { try $0[0].conv2d($0[1], geometry: g, kernel: dnnl ? .onednn : .im2col) }
        }
    }

    @Test("transposed convolution (kernel = stride 2) and 1x1 convolution")
    func convTranspose() throws {
        let x = random([2, 3, 3, 4], seed: 23), w = random([3, 2, 2, 2], seed: 24), b = random([2], seed: 25)
        try gradientCheck([x, w, b]) { try $0[0].convTranspose2d($0[1], bias: $0[2], stride: 2) }
        // Value check: each input pixel spreads its weighted channels over a 2x2 block.
        let y = try x.convTranspose2d(w, bias: b, stride: 2)
        let (yy, xx, i, j, o) = (1, 2, 1, 0, 1)
        var expect = b.data[o]
        for c in 0..<3 { expect += x.data[((0 * 3 + c) * 3 + yy) * 4 + xx] * w.data[((c * 2 + o) * 2 + i) * 2 + j] }
        #expect(abs(y.data[((0 * 2 + o) * 6 + yy * 2 + i) * 8 + xx * 2 + j] - expect) < 1e-5)
        let w1 = random([5, 3, 1, 1], seed: 26)
        try gradientCheck([x, w1]) { try $0[0].conv2d($0[1]) }
    }

    @Test("max and average pooling")
    func pooling() throws {
        let x = random([2, 2, 4, 6], seed: 27)
        try gradientCheck([x]) { try $0[0].maxPool2d(2) }
        try gradientCheck([x]) { try $0[0].avgPool2d(2) }
        let m = try Tensor(shape: [1, 1, 2, 2], data: [1, 5, 3, 2]).maxPool2d(2)
        #expect(m.data == [5])
    }

    @Test("batch, instance, group and layer normalisation")
    func norms() throws {
        let x = random([3, 4, 3, 2], seed: 28, scale: 2), gamma = random([4], seed: 29), beta = random([4], seed: 30)
        try gradientCheck([x, gamma, beta]) { try $0[0].batchNorm(gamma: $0[1], beta: $0[2]).0 }
        // Fused with ReLU: the same values and gradients as the two checked steps (finite differences straddle the kink).
        let seed = (0..<x.count).map { Float($0 % 7) - 3 }
        for p in [x, gamma, beta] { p.zeroGrad() }
        let fused = try x.batchNormReLU(gamma: gamma, beta: beta).0
        fused.backward(seed: seed)
        let fusedGrads = [x.grad!, gamma.grad!, beta.grad!]
        for p in [x, gamma, beta] { p.zeroGrad() }
        let twoStep = try x.batchNorm(gamma: gamma, beta: beta).0.relu()
        twoStep.backward(seed: seed)
        #expect(fused.data == twoStep.data)
        for (a, b) in zip(fusedGrads, [x.grad!, gamma.grad!, beta.grad!]) { #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-5 }) }
        try gradientCheck([x, gamma, beta]) { try $0[0].instanceNorm(gamma: $0[1], beta: $0[2]) }
        try gradientCheck([x, gamma, beta]) { try $0[0].groupNorm(groups: 2, gamma: $0[1], beta: $0[2]) }
        let t = random([3, 5], seed: 31), lg = random([5], seed: 32), lb = random([5], seed: 33)
        try gradientCheck([t, lg, lb]) { try $0[0].layerNorm(gamma: $0[1], beta: $0[2]) }
        // Statistics: per channel, zero mean and unit variance before the affine part.
        let (y, mean, variance) = try x.batchNorm(gamma: nil, beta: nil)
        for c in 0..<4 {
            var vals: [Float] = []
            for b in 0..<3 { for i in 0..<6 { vals.append(y.data[(b * 4 + c) * 6 + i]) } }
            let m = vals.reduce(0, +) / 18
            #expect(abs(m) < 1e-5)
            #expect(abs(vals.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 18 - 1) < 1e-3)
        }
        #expect(mean.count == 4 && variance.allSatisfy { $0 > 0 })
    }

    @Test("batch normalisation with running statistics: the fused prediction pass equals the formula, plain and blocked, with and without ReLU")
    func batchNormInference() throws {
        let c = 16
        let x = random([2, c, 3, 5], seed: 40, scale: 3), gamma = random([c], seed: 41), beta = random([c], seed: 42)
        let mean = (0..<c).map { Float($0) * 0.1 - 0.7 }, variance = (0..<c).map { 0.5 + Float($0) * 0.2 }
        for relu in [false, true] {
            // y = γ (x − μ) / √(σ² + ε) + β by hand, element by element.
            var expected = [Float](repeating: 0, count: x.count)
            for i in 0..<x.count {
                let ch = (i / 15) % c
                let v = gamma.data[ch] * (x.data[i] - mean[ch]) / (variance[ch] + 1e-5).squareRoot() + beta.data[ch]
                expected[i] = relu ? max(0, v) : v
            }
            for layout in [Layout.plain, .blocked8, .blocked16] {
                let y = try GradMode.disabled { try x.converted(to: layout).batchNormInference(gamma: gamma, beta: beta, mean: mean, variance: variance, relu: relu) }
                #expect(y.layout == layout)
                #expect(zip(y.data, expected).allSatisfy { abs($0 - $1) < 1e-5 }, "\(layout) relu \(relu)")
            }
            // With gradients the differentiable path gives the same values.
            let g = try x.batchNormInference(gamma: gamma, beta: beta, mean: mean, variance: variance, relu: relu)
            #expect(zip(g.data, expected).allSatisfy { abs($0 - $1) < 1e-5 })
        }
    }

    @Test("losses: cross-entropy (weights, ignore), soft Dice, Dice+CE, masked MSE, NT-Xent")
    func losses() throws {
        let logits = random([2, 3, 2, 2], seed: 34, scale: 2)
        let labels: [Float] = [0, 1, 2, 1, 2, 2, 0, 255]
        try gradientCheck([logits]) { try Loss.crossEntropy($0[0], labels, weights: [1, 2, 0.5], ignore: 255) }
        let plain: [Float] = [0, 1, 2, 1, 2, 2, 0, 1]
        try gradientCheck([logits]) { try Loss.softDice($0[0], plain) }
        try gradientCheck([logits]) { try Loss.softDice($0[0], plain, perImage: true) }
        try gradientCheck([logits]) { try Loss.diceCE($0[0], plain) }
        // The fused Dice+CE kernel: the same value and gradient as its two composed parts.
        let big = random([3, 4, 5, 7], seed: 120, scale: 3)
        let bigLabels = (0..<105).map { Float(($0 * 31 + $0 / 7) % 4) }
        big.zeroGrad()
        let fusedLoss = try Loss.diceCE(big, bigLabels)
        fusedLoss.backward()
        let fusedGrad = big.grad!
        big.zeroGrad()
        let composed = try Loss.crossEntropy(big, bigLabels) + Loss.softDice(big, bigLabels)
        composed.backward()
        #expect(abs(fusedLoss.item - composed.item) < 1e-5)
        #expect(zip(fusedGrad, big.grad!).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(throws: TensorError.self) { try Loss.diceCE(big, bigLabels.map { $0 == 3 ? 4 : $0 }) }
        #expect(throws: TensorError.self) { try Loss.diceCE(big, Array(bigLabels.dropLast())) }
        let target = random([2, 3, 2, 2], seed: 35)
        let mask = (0..<24).map { Float($0 % 3 == 0 ? 1 : 0) }
        try gradientCheck([logits]) { try Loss.mse($0[0], target, mask: mask) }
        let z = random([4, 3], seed: 36)
        try gradientCheck([z]) { try Loss.ntXent($0[0], temperature: 0.5) }
        // Hand-computed cross-entropy: two pixels, logits (0, ln 3) -> p = (1/4, 3/4).
        let l = Tensor(shape: [1, 2, 1, 2], data: [0, 0, Float(Foundation.log(3.0)), 0])
        let ce = try Loss.crossEntropy(l, [1, 0])
        #expect(abs(ce.item - Float((-Foundation.log(0.75) - Foundation.log(0.5)) / 2)) < 1e-6)
        // A perfect prediction has Dice loss near 0.
        let sure = Tensor(shape: [1, 2, 1, 2], data: [20, -20, -20, 20])
        #expect(try Loss.softDice(sure, [0, 1]).item < 1e-4)
    }

    @Test("Adam, AdamW and SGD follow their update rules; schedules; gradient clipping")
    func optimisers() throws {
        // One Adam step moves each parameter by lr · sign(g) (bias-corrected m/√v = g/|g|).
        let p = Tensor(shape: [3], data: [1, -2, 3], requiresGrad: true)
        p.grad = [0.5, -4, 0]
        var adam = Adam([p], learningRate: 0.1)
        adam.step()
        #expect(zip(p.data, [0.9, -1.9, 3]).allSatisfy { abs($0 - $1) < 1e-5 })
        let q = Tensor(shape: [1], data: [2], requiresGrad: true)
        q.grad = [0]
        var adamW = Adam.adamW([q], learningRate: 0.1, weightDecay: 0.5)
        adamW.step()
        #expect(abs(q.data[0] - 1.9) < 1e-6)
        let s = Tensor(shape: [1], data: [1], requiresGrad: true)
        var sgd = SGD([s], learningRate: 0.1, momentum: 0.9)
        s.grad = [1]; sgd.step(); s.grad = [1]; sgd.step()
        #expect(abs(s.data[0] - (1 - 0.1 - 0.19)) < 1e-6)
        #expect(LearningRateSchedule.poly(initial: 0.01, totalSteps: 100).rate(at: 0) == 0.01)
        #expect(abs(LearningRateSchedule.poly(initial: 0.01, totalSteps: 100).rate(at: 50) - 0.01 * Float(Foundation.pow(0.5, 0.9))) < 1e-7)
        let cos = LearningRateSchedule.cosine(initial: 1, warmupSteps: 10, totalSteps: 110)
        #expect(abs(cos.rate(at: 4) - 0.5) < 1e-6 && abs(cos.rate(at: 60) - 0.5) < 1e-6 && cos.rate(at: 110) < 1e-6)
        let c = Tensor(shape: [2], data: [0, 0], requiresGrad: true)
        c.grad = [3, 4]
        #expect(clipGradNorm([c], maxNorm: 1) == 5)
        #expect(abs(c.grad![0] - 0.6) < 1e-5 && abs(c.grad![1] - 0.8) < 1e-5)
        // Training a 1-D linear fit with Adam reaches the least-squares answer.
        let w = Tensor(shape: [1, 1], data: [0], requiresGrad: true), b = Tensor(shape: [1], data: [0], requiresGrad: true)
        let xs = Tensor(shape: [8, 1], data: (0..<8).map(Float.init)), ys = Tensor(shape: [8, 1], data: (0..<8).map { 2 * Float($0) + 1 })
        var opt = Adam([w, b], learningRate: 0.1)
        for _ in 0..<800 {
            opt.zeroGrad()
            let loss = try Loss.mse(try xs.matmul(w) + b, ys)
            loss.backward()
            opt.step()
        }
        #expect(abs(w.data[0] - 2) < 1e-2 && abs(b.data[0] - 1) < 5e-2)
    }
}
