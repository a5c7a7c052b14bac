import Foundation
import Testing
import TestSupport
@testable import MedTensor

@Suite("Tensor operations: backward equals finite differences")
struct GradientTests {
    @Test("element-wise arithmetic with broadcasting")
    func arithmetic() throws {
        let a = random([2, 3, 4], seed: 1), b = random([3, 1], seed: 2), c = random([4], seed: 3)
        let d = Tensor(shape: [2, 3, 4], data: random([2, 3, 4], seed: 4).data.map { $0 + 2.5 }, requiresGrad: true)
        try gradientCheck([a, b]) { $0[0] + $0[1] }
        try gradientCheck([a, c]) { $0[0] - $0[1] }
        try gradientCheck([a, b]) { $0[0] * $0[1] }
        try gradientCheck([a, d]) { $0[0] / $0[1] }
        try gradientCheck([a]) { 3 * $0[0] - 1 }
        #expect(throws: TensorError.self) { try a.adding(random([5], seed: 9)) }
    }

    @Test("activations")
    func activations() throws {
        // Keep away from ReLU's kink where finite differences are undefined.
        let x = Tensor(shape: [3, 5], data: random([3, 5], seed: 5).data.map { $0 + ($0 >= 0 ? 0.1 : -0.1) }, requiresGrad: true)
        try gradientCheck([x]) { $0[0].relu() }
        try gradientCheck([x]) { $0[0].leakyRelu(0.1) }
        try gradientCheck([x]) { $0[0].sigmoid() }
        try gradientCheck([x]) { $0[0].tanh() }
        try gradientCheck([x]) { $0[0].gelu() }
        try gradientCheck([x]) { $0[0].exp() }
        try gradientCheck([x]) { $0[0].squared() }
        let p = Tensor(shape: [4], data: [0.5, 1, 2, 3], requiresGrad: true)
        try gradientCheck([p]) { $0[0].log() }
    }

    @Test("reductions, reshape, permute, concatenation")
    func shapes() throws {
        let x = random([2, 3, 4], seed: 6), y = random([2, 2, 4], seed: 7)
        try gradientCheck([x]) { $0[0].sum() }
        try gradientCheck([x]) { $0[0].mean(axes: [0, 2]) }
        try gradientCheck([x]) { $0[0].sum(axes: [1], keepDims: true) }
        try gradientCheck([x]) { try $0[0].reshaped([4, -1]) }
        try gradientCheck([x]) { try $0[0].permuted([2, 0, 1]) }
        try gradientCheck([x, y]) { try Tensor.concat([$0[0], $0[1]], axis: 1) }
        // Values, not just gradients.
        let p = try Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]).permuted([1, 0])
        #expect(p.shape == [3, 2] && p.data == [1, 4, 2, 5, 3, 6])
        #expect(Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]).sum(axes: [0]).data == [5, 7, 9])
    }

    @Test("matrix products, plain and batched with a shared right operand")
    func matmul() throws {
        let a = random([3, 4], seed: 8), b = random([4, 5], seed: 9)
        try gradientCheck([a, b]) { try $0[0].matmul($0[1]) }
        let ba = random([2, 3, 4], seed: 10), bb = random([2, 4, 2], seed: 11)
        try gradientCheck([ba, bb]) { try $0[0].matmul($0[1]) }
        try gradientCheck([ba, b]) { try $0[0].matmul($0[1]) }
        let m = try Tensor(shape: [2, 2], data: [1, 2, 3, 4]).matmul(Tensor(shape: [2, 1], data: [5, 6]))
        #expect(m.data == [17, 39])
    }

    @Test("softmax and log-softmax over the channel axis")
    func softmax() throws {
        let x = random([2, 3, 2, 2], seed: 12, scale: 2)
        try gradientCheck([x]) { $0[0].softmax(axis: 1) }
        try gradientCheck([x]) { $0[0].logSoftmax(axis: 1) }
        let s = x.softmax(axis: 1)
        for o in 0..<2 { for i in 0..<4 {
            let total = (0..<3).reduce(Float(0)) { $0 + s.data[(o * 3 + $1) * 4 + i] }
            #expect(abs(total - 1) < 1e-5)
        } }
    }

    @Test("no graph is recorded with gradients disabled")
    func noGrad() throws {
        let x = random([3], seed: 13)
        let y = GradMode.disabled { (x * x).sum() }
        #expect(!y.requiresGrad)
        let z = (x * x).sum()
        z.backward()
        #expect(zip(x.grad!, x.data).allSatisfy { abs($0 - 2 * $1) < 1e-6 })
    }
}

@Suite("Attention building blocks")
struct AttentionTests {
    @Test("linear, scaled dot-product attention, slicing, row gathering, dropout, positions")
    func blocks() throws {
        let x = random([2, 3, 4], seed: 40), w = random([5, 4], seed: 41), b = random([5], seed: 42)
        try gradientCheck([x, w, b]) { try $0[0].linear($0[1], bias: $0[2]) }
        let q = random([2, 3, 4], seed: 43), k = random([2, 5, 4], seed: 44), v = random([2, 5, 2], seed: 45)
        try gradientCheck([q, k, v]) { try Tensor.scaledDotProductAttention($0[0], $0[1], $0[2]) }
        // With identical keys attention averages the values.
        let same = Tensor(shape: [1, 2, 2], data: [1, 0, 1, 0])
        let vals = Tensor(shape: [1, 2, 1], data: [2, 4])
        let avg = try Tensor.scaledDotProductAttention(Tensor(shape: [1, 1, 2], data: [0.3, 0.7]), same, vals)
        #expect(abs(avg.data[0] - 3) < 1e-6)
        try gradientCheck([x]) { try $0[0].sliced(axis: 1, 1..<3) }
        let table = random([6, 3], seed: 46)
        try gradientCheck([table]) { try $0[0].gatherRows([0, 5, 5, 2]) }
        var g = SplitMix(state: 1)
        let ones = Tensor(shape: [10_000], data: [Float](repeating: 1, count: 10_000), requiresGrad: true)
        let dropped = ones.dropout(0.25, generator: &g)
        let zeros = dropped.data.filter { $0 == 0 }.count
        #expect(abs(Double(zeros) / 10_000 - 0.25) < 0.02)
        #expect(abs(dropped.data.reduce(0, +) / 10_000 - 1) < 0.03)
        let pe = Tensor.sinusoidalPositions(4, dim: 6)
        #expect(pe.data[0] == 0 && pe.data[1] == 1 && abs(pe.data[6] - Float(sin(1.0))) < 1e-6)
    }
}
