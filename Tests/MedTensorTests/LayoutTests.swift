import Foundation
import Testing
@testable import MedTensor

/// Values and input gradients of `op` on a blocked input against the same operation on the plain input through the
/// reference path (`reference`), with one random output-gradient seed.
private func agree(_ x: Tensor, params: [Tensor] = [], tolerance: Float = 1e-4, _ op: (Tensor) throws -> Tensor,
                   reference: (Tensor) throws -> Tensor, sourceLocation: SourceLocation = #_sourceLocation) throws {
    for p in [x] + params { p.zeroGrad() }
    let y = try op(x.converted(to: .blocked16))
    let seed = (0..<y.count).map { Float(($0 * 7919) % 13) - 6 }
    y.backward(seed: seed)
    let grads = ([x] + params).map { $0.grad ?? [] }
    for p in [x] + params { p.zeroGrad() }
    let r = try reference(x)
    #expect(r.layout == .plain, sourceLocation: sourceLocation)
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

@Suite("Blocked nChw16c layout")
struct LayoutTests {
    @Test("blocked order is [n][c/16][h][w][c%16]; conversion round-trips and is recorded in the graph")
    func order() throws {
        let (n, c, h, w) = (2, 32, 3, 5)
        let plain = (0..<(n * c * h * w)).map { Float($0) }
        let x = Tensor(shape: [n, c, h, w], data: plain, requiresGrad: true)
        let b = x.converted(to: .blocked16)
        #expect(b.layout == .blocked16 && b.data == plain)
        for i in 0..<n { for ch in 0..<c { for y in 0..<h { for xx in 0..<w {
            #expect(b.storage[((i * (c / 16) + ch / 16) * h * w + y * w + xx) * 16 + ch % 16] == plain[((i * c + ch) * h + y) * w + xx])
        } } } }
        // Gradients of a blocked result come back to the plain leaf in plain order.
        b.backward(seed: plain)
        #expect(x.grad == plain)
        #expect(!Layout.canBlock([2, 8, 3, 3]) && !Layout.canBlock([16, 16]) && Layout.canBlock([1, 16, 1, 1]))
        // Mutating `data` of a blocked tensor leaves it plain with the same values, and its gradient in plain order.
        let m = Tensor(shape: [n, c, h, w], data: plain).converted(to: .blocked16)
        m.grad = b.storage
        m.data[1] += 100
        #expect(m.layout == .plain && m.data[1] == 101 && m.data[2] == 2 && m.grad == plain)
    }

    @Test("normalisations on blocked tensors equal the plain kernels, values and gradients")
    func norms() throws {
        let x = random([3, 32, 5, 4], seed: 101, scale: 2)
        let gamma = random([32], seed: 102), beta = random([32], seed: 103)
        for relu in [false, true] {
            try agree(x, params: [gamma, beta]) { try $0.batchNorm(gamma: gamma, beta: beta, eps: 1e-5, relu: relu).0 } reference: {
                try $0.batchNorm(gamma: gamma, beta: beta, eps: 1e-5, relu: relu).0
            }
            // Instance norm = group norm with one channel per group (the generic path).
            try agree(x, params: [gamma, beta]) { relu ? try $0.instanceNormReLU(gamma: gamma, beta: beta) : try $0.instanceNorm(gamma: gamma, beta: beta) }
                reference: { let y = try $0.groupNorm(groups: 32, gamma: gamma, beta: beta); return relu ? y.relu() : y }
        }
        // Batch statistics for the running estimates: the same mean and unbiased variance as the plain kernel.
        let (_, m1, v1) = try x.converted(to: .blocked16).batchNorm(gamma: nil, beta: nil)
        let (_, m2, v2) = try x.batchNorm(gamma: nil, beta: nil)
        #expect(zip(m1, m2).allSatisfy { abs($0 - $1) < 1e-5 } && zip(v1, v2).allSatisfy { abs($0 - $1) < 1e-4 })
        // Large offsets (mean 1000, spread 1): the centred statistics keep the normalised values accurate.
        let big = Tensor(shape: [2, 16, 8, 8], data: random([2, 16, 8, 8], seed: 104).data.map { $0 + 1000 })
        let yb = try big.converted(to: .blocked16).batchNorm(gamma: nil, beta: nil).0.data
        let yp = try big.batchNorm(gamma: nil, beta: nil).0.data
        #expect(zip(yb, yp).allSatisfy { abs($0 - $1) < 2e-3 })
    }

    @Test("instance norm on the blocked path: backward equals finite differences")
    func instanceNormGradient() throws {
        let x = random([2, 16, 3, 3], seed: 105, scale: 2), gamma = random([16], seed: 106), beta = random([16], seed: 107)
        try gradientCheck([x, gamma, beta]) { try $0[0].converted(to: .blocked16).instanceNorm(gamma: $0[1], beta: $0[2]) }
        try gradientCheck([x, gamma, beta]) { try $0[0].converted(to: .blocked16).batchNorm(gamma: $0[1], beta: $0[2]).0 }
    }

    @Test("pooling, ReLU, concatenation and element-wise arithmetic keep the blocked layout and agree with plain")
    func layoutPreserving() throws {
        let x = random([2, 16, 6, 4], seed: 108)
        let pooled = try x.converted(to: .blocked16).maxPool2d(2)
        #expect(pooled.layout == .blocked16)
        try agree(x) { try $0.maxPool2d(2) } reference: { try $0.maxPool2d(2) }
        // Finite differences need each window's maximum clear of the rest by more than the step: distinct values 0.05 apart.
        let distinct = Tensor(shape: [2, 16, 6, 4], data: (0..<768).map { Float(($0 * 37) % 768) * 0.05 }, requiresGrad: true)
        try gradientCheck([distinct]) { try $0[0].converted(to: .blocked16).maxPool2d(2) }
        try agree(x) { $0.relu() } reference: { $0.relu() }
        try agree(x) { $0.leakyRelu(0.1) } reference: { $0.leakyRelu(0.1) }
        let other = random([2, 32, 6, 4], seed: 109)
        let cat = try Tensor.concat([x.converted(to: .blocked16), other.converted(to: .blocked16)], axis: 1)
        #expect(cat.layout == .blocked16)
        try agree(x, params: [other]) { try Tensor.concat([$0, other.converted(to: .blocked16)], axis: 1) }
            reference: { try Tensor.concat([$0, other], axis: 1) }
        // Mixed layouts fall back to plain and still agree.
        try agree(x, params: [other]) { try Tensor.concat([$0, other], axis: 1) } reference: { try Tensor.concat([$0, other], axis: 1) }
        let y = random([2, 16, 6, 4], seed: 110)
        try agree(x, params: [y]) { $0 * y.converted(to: .blocked16) + $0 } reference: { $0 * y + $0 }
        try agree(x, params: [y]) { $0 - y } reference: { $0 - y }
    }

    @Test("oneDNN convolutions and transposed convolutions read and write blocked tensors; same as the reference path")
    func convolutions() throws {
        let x = random([2, 16, 8, 8], seed: 111)
        let w = random([32, 16, 3, 3], seed: 112, scale: 0.3), b = random([32], seed: 113)
        let g = Conv2DGeometry(stride: 1, padding: 1)
        let out = try x.converted(to: .blocked16).conv2d(w, bias: b, geometry: g, kernel: .onednn)
        #expect(out.layout == .blocked16)
        try agree(x, params: [w, b]) { try $0.conv2d(w, bias: b, geometry: g, kernel: .onednn) }
            reference: { try $0.conv2d(w, bias: b, geometry: g, kernel: .im2col) }
        // Strided and dilated, and a head with 2 outputs (plain result).
        try agree(x, params: [w]) { try $0.conv2d(w, geometry: Conv2DGeometry(stride: 2, padding: 2, dilation: 2), kernel: .onednn) }
            reference: { try $0.conv2d(w, geometry: Conv2DGeometry(stride: 2, padding: 2, dilation: 2), kernel: .im2col) }
        let head = random([2, 16, 1, 1], seed: 114)
        try agree(x, params: [head]) { try $0.conv2d(head, kernel: .onednn) } reference: { try $0.conv2d(head, kernel: .im2col) }
        // Transposed convolution (PyTorch weight layout [in, out, k, k]) to 16 and to 3 channels.
        for o in [16, 3] {
            let wt = random([16, o, 2, 2], seed: 115 + UInt64(o), scale: 0.5), bt = random([o], seed: 116)
            try agree(x, params: [wt, bt]) { try $0.convTranspose2d(wt, bias: bt, stride: 2, kernel: .onednn) }
                reference: { try $0.convTranspose2d(wt, bias: bt, stride: 2, kernel: .im2col) }
            // Automatic with a blocked input: the 1 x 1 convolution + pixel shuffle path for 16 outputs.
            try agree(x, params: [wt, bt]) { try $0.convTranspose2d(wt, bias: bt, stride: 2) }
                reference: { try $0.convTranspose2d(wt, bias: bt, stride: 2, kernel: .im2col) }
        }
        let x32 = random([2, 32, 3, 5], seed: 120), w32 = random([32, 32, 2, 2], seed: 121, scale: 0.5), b32 = random([32], seed: 122)
        #expect(try x32.converted(to: .blocked16).convTranspose2d(w32, bias: b32, stride: 2).layout == .blocked16)
        try agree(x32, params: [w32, b32]) { try $0.convTranspose2d(w32, bias: b32, stride: 2) }
            reference: { try $0.convTranspose2d(w32, bias: b32, stride: 2, kernel: .im2col) }
        let w3 = random([32, 16, 3, 3], seed: 126, scale: 0.5)
        try agree(x32, params: [w3]) { try $0.convTranspose2d(w3, stride: 3) } reference: { try $0.convTranspose2d(w3, stride: 3, kernel: .im2col) }
        let s16 = random([1, 16, 2, 3], seed: 123), ws = random([16, 16, 2, 2], seed: 124, scale: 0.5), bs = random([16], seed: 125)
        try gradientCheck([s16, ws, bs]) { try $0[0].converted(to: .blocked16).convTranspose2d($0[1], bias: $0[2], stride: 2) }
        // Plain input, blocked-capable output: the oneDNN transposed convolution against finite differences.
        let small = random([1, 16, 2, 2], seed: 117), wt = random([16, 16, 2, 2], seed: 118, scale: 0.5), bt = random([16], seed: 119)
        try gradientCheck([small, wt, bt]) { try $0[0].convTranspose2d($0[1], bias: $0[2], stride: 2, kernel: .onednn) }
    }
}
