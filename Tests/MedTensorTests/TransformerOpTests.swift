import Foundation
import Testing
import TestSupport
@testable import MedTensor

@Suite("Transformer operations")
struct TransformerOpTests {
    @Test("linear: backward equals finite differences; a Conv2d-shaped weight on patches equals the strided convolution")
    func linear() throws {
        let x = random([2, 3, 4], seed: 1), w = random([5, 4], seed: 2), b = random([5], seed: 3)
        try gradientCheck([x, w, b]) { try $0[0].linear($0[1], bias: $0[2]) }
        // By hand: [1, 2] · [[1, 0], [2, 1], [0, 3]]ᵀ + [0.5, 0, -1] = [1.5, 4, 5].
        let y = try Tensor(shape: [1, 2], data: [1, 2]).linear(Tensor(shape: [3, 2], data: [1, 0, 2, 1, 0, 3]), bias: Tensor(shape: [3], data: [0.5, 0, -1]))
        #expect(y.data == [1.5, 4, 5])
        // Patch embedding: patches (channel, row, column order) times the conv weight = conv with kernel = stride = 4.
        let image = random([2, 3, 8, 8], seed: 4), conv = random([6, 3, 4, 4], seed: 5), cb = random([6], seed: 6)
        let viaPatches = try image.patches(4).linear(conv, bias: cb)                      // [2, 4, 6]
        let direct = try image.conv2d(conv, bias: cb, geometry: Conv2DGeometry(stride: 4, padding: 0)).data   // [2, 6, 2, 2]
        for s in 0..<2 { for p in 0..<4 { for o in 0..<6 {
            #expect(abs(viaPatches.data[(s * 4 + p) * 6 + o] - direct[(s * 6 + o) * 4 + p]) < 1e-4)
        } } }
        try gradientCheck([random([1, 2, 4, 4], seed: 7)]) { try $0[0].patches(2) }
        try gradientCheck([random([1, 2, 4, 4], seed: 8)]) { try $0[0].patches(2, channelsLast: true) }
        // Channels last: patch 0 of a 2-channel 2x2 image with p = 2 is (r0c0: ch0, ch1), (r0c1: ...), ...
        let two = Tensor(shape: [1, 2, 2, 2], data: [1, 2, 3, 4, 10, 20, 30, 40])
        #expect(try two.patches(2, channelsLast: true).data == [1, 10, 2, 20, 3, 30, 4, 40])
        #expect(try two.patches(2).data == [1, 2, 3, 4, 10, 20, 30, 40])
    }

    @Test("layer norm: values by hand, backward equals finite differences")
    func layerNorm() throws {
        let x = Tensor(shape: [1, 4], data: [1, 2, 3, 6])
        // mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5.
        let y = try x.layerNorm(gamma: Tensor(shape: [4], data: [1, 1, 1, 2]), beta: Tensor(shape: [4], data: [0, 0, 0, 1]), eps: 0)
        let s = Float(3.5).squareRoot()
        #expect(zip(y.data, [-2 / s, -1 / s, 0, 2 * 3 / s + 1]).allSatisfy { abs($0 - $1) < 1e-5 })
        try gradientCheck([random([3, 2, 5], seed: 9), random([5], seed: 10), random([5], seed: 11)]) {
            try $0[0].layerNorm(gamma: $0[1], beta: $0[2])
        }
    }

    @Test("GELU: exact values against erf, backward equals finite differences; the tanh form too")
    func gelu() throws {
        let x = Tensor(shape: [9], data: [-6, -3, -1, -0.5, 0, 0.3, 1, 2.5, 7])
        let y = x.gelu().data
        for (v, g) in zip(x.data, y) {
            let exact = 0.5 * Double(v) * (1 + erf(Double(v) / 2.0.squareRoot()))
            #expect(abs(Double(g) - exact) < 2e-6 * max(1, abs(exact)), "GELU(\(v)) = \(g), erf gives \(exact)")
        }
        try gradientCheck([random([4, 6], seed: 12, scale: 3)]) { $0[0].gelu() }
        try gradientCheck([random([4, 6], seed: 13, scale: 3)]) { $0[0].gelu(approximate: true) }
    }

    @Test("fused multi-head attention equals matmul-softmax-matmul per head, in values and gradients")
    func attention() throws {
        let (b, t, heads, dh) = (2, 5, 3, 4)
        let d = heads * dh
        let qkv = random([b, t, 3 * d], seed: 14)
        try gradientCheck([qkv]) { try $0[0].multiHeadAttention(heads: heads) }
        // The reference: split into [3, b, heads, t, dh] and attend with the composed operation.
        let ref = Tensor(shape: qkv.shape, data: qkv.data, requiresGrad: true)
        let split = try ref.reshaped([b, t, 3, heads, dh]).permuted([2, 0, 3, 1, 4])      // [3, b, heads, t, dh]
        let q = try split.sliced(axis: 0, 0..<1).reshaped([b, heads, t, dh])
        let k = try split.sliced(axis: 0, 1..<2).reshaped([b, heads, t, dh])
        let v = try split.sliced(axis: 0, 2..<3).reshaped([b, heads, t, dh])
        let composed = try Tensor.scaledDotProductAttention(q, k, v).permuted([0, 2, 1, 3]).reshaped([b, t, d])
        qkv.zeroGrad()
        let fused = try qkv.multiHeadAttention(heads: heads)
        #expect(zip(fused.data, composed.data).allSatisfy { abs($0 - $1) < 1e-5 })
        let w = random([b, t, d], seed: 15).data
        fused.backward(seed: w)
        composed.backward(seed: w)
        #expect(zip(qkv.grad!, ref.grad!).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(throws: TensorError.self) { try random([2, 5, 10], seed: 1).multiHeadAttention(heads: 3) }
        // Fewer tokens than the head size (the masked autoencoder's encoder: 5 tokens of 16).
        try gradientCheck([random([1, 3, 3 * 2 * 16], seed: 23, scale: 0.5)], tolerance: 3e-2) { try $0[0].multiHeadAttention(heads: 2) }
    }

    @Test("token gathering and restoring: hand-built sequences, backward equals finite differences")
    func tokens() throws {
        // 2 samples, 4 tokens of 1 value: sample 0 keeps tokens 2 and 0, sample 1 keeps 1 and 3.
        let x = Tensor(shape: [2, 4, 1], data: [10, 11, 12, 13, 20, 21, 22, 23])
        #expect(try x.gatherTokens([[2, 0], [1, 3]]).data == [12, 10, 21, 23])
        try gradientCheck([random([2, 4, 3], seed: 16)]) { try $0[0].gatherTokens([[2, 0], [1, 3]]) }
        #expect(try x.prependingToken(Tensor(shape: [1], data: [7])).data == [7, 10, 11, 12, 13, 7, 20, 21, 22, 23])
        try gradientCheck([random([2, 3, 2], seed: 21), random([2], seed: 22)]) { try $0[0].prependingToken($0[1]) }
        // Restore: sample 0 kept (shuffle order) 2, 0 -> restore[pos] = rank of pos in the shuffle: [1, 2, 0, 3].
        let visible = Tensor(shape: [1, 3, 1], data: [99, 12, 10])       // class token, then the kept tokens
        let full = try Tensor.restoreTokens(visible, maskToken: Tensor(shape: [1], data: [-1]), restore: [[1, 2, 0, 3]])
        #expect(full.data == [99, 10, -1, 12, -1])
        try gradientCheck([random([2, 3, 2], seed: 17), random([2], seed: 18)]) {
            try Tensor.restoreTokens($0[0], maskToken: $0[1], restore: [[1, 2, 0, 3], [0, 3, 2, 1]])
        }
    }

    @Test("masked MSE: the mean over hidden patches of each patch's mean squared error; backward equals finite differences")
    func maskedLoss() throws {
        // One sample, class token + 2 patches of 2 values; only patch 1 is hidden: ((1 - 0)² + (3 - 1)²) / 2 = 2.5.
        let pred = Tensor(shape: [1, 3, 2], data: [100, 100, 5, 5, 1, 3])
        let loss = try Tensor.maskedMSE(pred, target: [0, 0, 0, 1], mask: [[0, 1]])
        #expect(loss.item == 2.5)
        let target = random([2, 3, 4], seed: 19).data
        try gradientCheck([random([2, 4, 4], seed: 20)]) { try Tensor.maskedMSE($0[0], target: target, mask: [[1, 0, 1], [0, 0, 1]]) }
        #expect(throws: TensorError.self) { try Tensor.maskedMSE(pred, target: [0, 0, 0, 1], mask: [[0, 0]]) }
    }
}
