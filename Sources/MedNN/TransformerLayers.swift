import Foundation
import MedTensor
import MedFoundation

// The transformer's layers (PyTorch's names and initialisation), used by the masked autoencoder.

/// A linear layer (PyTorch's `nn.Linear`): weight [out, in], bias [out]; initialised Xavier-uniform with zero bias,
/// as the MAE reference initialises its linear layers.
public final class Linear: Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public var isTraining = true

    public init(_ inputs: Int, _ outputs: Int, bias: Bool = true, rng: inout SplitMix64) {
        let bound = (6 / Float(inputs + outputs)).squareRoot()
        weight = Tensor(shape: [outputs, inputs], data: (0..<(outputs * inputs)).map { _ in Float.random(in: -bound...bound, using: &rng) },
                        requiresGrad: true)
        self.bias = bias ? Tensor(zeros: [outputs], requiresGrad: true) : nil
    }

    public var localParameters: [(String, Tensor)] { [("weight", weight)] + (bias.map { [("bias", $0)] } ?? []) }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.linear(weight, bias: bias) }
}

/// Layer normalisation over the last dimension (PyTorch's `nn.LayerNorm`, eps 1e-5): weight 1, bias 0.
public final class LayerNorm: Layer {
    public let weight: Tensor
    public let bias: Tensor
    public var isTraining = true
    public init(_ dimension: Int) {
        weight = Tensor(shape: [dimension], data: [Float](repeating: 1, count: dimension), requiresGrad: true)
        bias = Tensor(zeros: [dimension], requiresGrad: true)
    }
    public var localParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.layerNorm(gamma: weight, beta: bias) }
}

/// A pre-norm transformer block: x + proj(attention(qkv(norm1(x)))), then x + fc2(GELU(fc1(norm2(x)))); named as
/// the block of Scripts/reference/torch_mae_step.py (`norm1`, `qkv`, `proj`, `norm2`, `fc1`, `fc2`).
public final class TransformerBlock: Layer {
    public let heads: Int
    let norm1: LayerNorm, qkv: Linear, proj: Linear, norm2: LayerNorm, fc1: Linear, fc2: Linear
    public var isTraining = true

    public init(width: Int, heads: Int, mlpRatio: Int, rng: inout SplitMix64) {
        self.heads = heads
        norm1 = LayerNorm(width); qkv = Linear(width, 3 * width, rng: &rng); proj = Linear(width, width, rng: &rng)
        norm2 = LayerNorm(width); fc1 = Linear(width, mlpRatio * width, rng: &rng); fc2 = Linear(mlpRatio * width, width, rng: &rng)
    }

    public var children: [(String, any Layer)] {
        [("norm1", norm1), ("qkv", qkv), ("proj", proj), ("norm2", norm2), ("fc1", fc1), ("fc2", fc2)]
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = x + (try proj(try qkv(try norm1(x)).multiHeadAttention(heads: heads)))
        return h + (try fc2(try fc1(try norm2(h)).gelu()))
    }
}
