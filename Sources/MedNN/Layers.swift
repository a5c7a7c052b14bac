import Foundation
import MedTensor
import MedFoundation

/// # MedNN
///
/// Layers with parameters, the 2-D U-Net, the ViT masked autoencoder, and the training loop, built on MedTensor.
///
/// Networks are trees of ``Layer``s. A layer declares only what is its own — its parameters and buffers by local
/// name, its sub-layers by local name — and everything else is derived from the tree: PyTorch-style dotted names
/// (`down.0.1.weight`, `blocks.3.attn.qkv.bias`), the parameter list an optimiser takes, the training or evaluation
/// mode (``Layer/setTraining(_:)``), the state dictionary saved in checkpoints (parameters and buffers, named exactly
/// as PyTorch's `state_dict()` names the same model) and loading it back (``Layer/load(_:strict:origin:)``).
public enum MedNNModule {}

/// A node of a network.
public protocol Layer: AnyObject {
    /// Trainable tensors of this layer itself, by local name ("weight", "bias").
    var localParameters: [(String, Tensor)] { get }
    /// Saved but not trained (batch normalisation's running statistics), by local name.
    var localBuffers: [(String, Tensor)] { get }
    /// Direct sub-layers by local name, in declaration order.
    var children: [(String, any Layer)] { get }
    /// Training (batch statistics) or evaluation mode of this layer alone; ``setTraining(_:)`` sets a whole tree.
    var isTraining: Bool { get set }
}

extension Layer {
    public var localParameters: [(String, Tensor)] { [] }
    public var localBuffers: [(String, Tensor)] { [] }
    public var children: [(String, any Layer)] { [] }

    /// `own` of every layer in the tree with its dotted name, depth first in declaration order.
    func walk(_ own: (any Layer) -> [(String, Tensor)], prefix: String = "") -> [(String, Tensor)] {
        var out = own(self).map { (prefix + $0.0, $0.1) }
        for (name, child) in children { out += child.walk(own, prefix: prefix + name + ".") }
        return out
    }

    /// Every parameter with its dotted name, as PyTorch's `named_parameters()`.
    public var namedParameters: [(String, Tensor)] { walk { $0.localParameters } }
    /// Every buffer with its dotted name, as PyTorch's `named_buffers()`.
    public var namedBuffers: [(String, Tensor)] { walk { $0.localBuffers } }
    /// The parameters in ``namedParameters`` order (what an optimiser updates).
    public var parameters: [Tensor] { namedParameters.map(\.1) }
    /// Parameters and buffers by dotted name: what checkpoints store, named as PyTorch's `state_dict()`.
    public var stateDict: [String: Tensor] {
        Dictionary((namedParameters + namedBuffers).map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
    }

    /// Sets training or evaluation mode on this layer and every layer below it.
    public func setTraining(_ on: Bool) {
        isTraining = on
        for (_, child) in children { child.setTraining(on) }
    }

    /// Copies values in by dotted name (a state dictionary, e.g. read from a safetensors file written by PyTorch or by
    /// ``stateDict``). Every parameter and buffer must be present with its shape; with `strict`, names the model does
    /// not have are refused too. `origin` (a file path) goes into the error.
    public func load(_ tensors: [String: Tensor], strict: Bool = true, origin: String = "weights") throws {
        let own = namedParameters + namedBuffers
        var missing: [String] = []
        for (name, t) in own {
            guard let source = tensors[name] else { missing.append(name); continue }
            guard source.shape == t.shape else {
                throw TensorError.checkpoint(path: origin, reason: "'\(name)' is \(source.shape), the model needs \(t.shape)")
            }
        }
        if !missing.isEmpty {
            throw TensorError.checkpoint(path: origin, reason: "lacks \(missing.count) of the model's \(own.count) tensors (first: '\(missing[0])')")
        }
        if strict {
            let names = Set(own.map(\.0))
            let unexpected = tensors.keys.filter { !names.contains($0) }.sorted()
            if !unexpected.isEmpty {
                throw TensorError.checkpoint(path: origin, reason: "holds \(unexpected.count) tensors the model does not have (first: '\(unexpected[0])'): another architecture?")
            }
        }
        for (name, t) in own { t.data = tensors[name]!.data }
    }
}

/// An ordered list of layers named "0", "1", ... (PyTorch's `ModuleList`).
public final class LayerList<Element: Layer>: Layer, RandomAccessCollection {
    public let items: [Element]
    public var isTraining = true
    public init(_ items: [Element]) { self.items = items }
    public var children: [(String, any Layer)] { items.enumerated().map { (String($0.offset), $0.element as any Layer) } }
    public var startIndex: Int { items.startIndex }
    public var endIndex: Int { items.endIndex }
    public subscript(i: Int) -> Element { items[i] }
}


/// 2-D convolution layer; weights initialised as PyTorch does (Kaiming uniform with a = √5, i.e. U(±1/√fan_in)).
public final class Conv2d: Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public let geometry: Conv2DGeometry
    public var isTraining = true

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, padding: Int = 0, stride: Int = 1, bias: Bool = true, rng: inout SplitMix64) {
        let fanIn = Float(inChannels * kernel * kernel)
        let bound = 1 / fanIn.squareRoot()
        weight = Tensor(shape: [outChannels, inChannels, kernel, kernel],
                        data: (0..<(outChannels * inChannels * kernel * kernel)).map { _ in Float.random(in: -bound...bound, using: &rng) }, requiresGrad: true)
        self.bias = bias ? Tensor(shape: [outChannels], data: (0..<outChannels).map { _ in Float.random(in: -bound...bound, using: &rng) }, requiresGrad: true) : nil
        geometry = Conv2DGeometry(stride: stride, padding: padding)
    }

    public var localParameters: [(String, Tensor)] { [("weight", weight)] + (bias.map { [("bias", $0)] } ?? []) }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.conv2d(weight, bias: bias, geometry: geometry) }
}

/// Transposed convolution with kernel = stride (upsampling by the stride).
public final class ConvTranspose2d: Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int
    public var isTraining = true

    public init(_ inChannels: Int, _ outChannels: Int, stride: Int, rng: inout SplitMix64) {
        // PyTorch's fan_in for ConvTranspose2d weight [in, out, k, k] is out · k · k.
        let bound = 1 / Float(outChannels * stride * stride).squareRoot()
        weight = Tensor(shape: [inChannels, outChannels, stride, stride],
                        data: (0..<(inChannels * outChannels * stride * stride)).map { _ in Float.random(in: -bound...bound, using: &rng) }, requiresGrad: true)
        bias = Tensor(shape: [outChannels], data: (0..<outChannels).map { _ in Float.random(in: -bound...bound, using: &rng) }, requiresGrad: true)
        self.stride = stride
    }

    public var localParameters: [(String, Tensor)] { [("weight", weight)] + (bias.map { [("bias", $0)] } ?? []) }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.convTranspose2d(weight, bias: bias, stride: stride) }
}

/// Batch normalisation with running statistics (momentum 0.1, as PyTorch); parameters `weight` (γ) and `bias` (β),
/// buffers `running_mean` and `running_var` (PyTorch's names; its `num_batches_tracked` counter is not kept: PyTorch
/// fills it in when a state dictionary lacks it).
public final class BatchNorm2d: Layer {
    public let gamma: Tensor
    public let beta: Tensor
    /// Running estimates of the per-channel mean and (unbiased) variance, used in evaluation mode.
    public let runningMean: Tensor
    public let runningVariance: Tensor
    public var momentum: Float = 0.1
    public var isTraining = true

    public init(_ channels: Int) {
        gamma = Tensor(shape: [channels], data: [Float](repeating: 1, count: channels), requiresGrad: true)
        beta = Tensor(zeros: [channels], requiresGrad: true)
        runningMean = Tensor(zeros: [channels])
        runningVariance = Tensor(shape: [channels], data: [Float](repeating: 1, count: channels))
    }

    public var localParameters: [(String, Tensor)] { [("weight", gamma), ("bias", beta)] }
    public var localBuffers: [(String, Tensor)] { [("running_mean", runningMean), ("running_var", runningVariance)] }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try apply(x, relu: false) }

    /// Batch norm then ReLU (fused in training mode).
    public func withReLU(_ x: Tensor) throws -> Tensor { try apply(x, relu: true) }

    func apply(_ x: Tensor, relu: Bool) throws -> Tensor {
        guard isTraining else {
            return try x.batchNormInference(gamma: gamma, beta: beta, mean: runningMean.data, variance: runningVariance.data, relu: relu)
        }
        let (y, mean, variance) = relu ? try x.batchNormReLU(gamma: gamma, beta: beta) : try x.batchNorm(gamma: gamma, beta: beta)
        var (m, v) = (runningMean.data, runningVariance.data)
        for c in 0..<m.count {
            m[c] = (1 - momentum) * m[c] + momentum * mean[c]
            v[c] = (1 - momentum) * v[c] + momentum * variance[c]
        }
        runningMean.data = m; runningVariance.data = v
        return y
    }
}

/// A normalisation layer followed by ReLU, as the U-Net's blocks use it.
public protocol NormReLU: Layer {
    var gamma: Tensor { get }
    var beta: Tensor { get }
    func withReLU(_ x: Tensor) throws -> Tensor
}

extension BatchNorm2d: NormReLU {}

/// Instance normalisation with a learned per-channel scale and shift (PyTorch's InstanceNorm2d(affine=True)):
/// statistics per image and channel, the same in training and evaluation.
public final class InstanceNorm2d: NormReLU {
    public let gamma: Tensor
    public let beta: Tensor
    public var isTraining = true

    public init(_ channels: Int) {
        gamma = Tensor(shape: [channels], data: [Float](repeating: 1, count: channels), requiresGrad: true)
        beta = Tensor(zeros: [channels], requiresGrad: true)
    }

    public var localParameters: [(String, Tensor)] { [("weight", gamma), ("bias", beta)] }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.instanceNorm(gamma: gamma, beta: beta) }
    public func withReLU(_ x: Tensor) throws -> Tensor { try x.instanceNormReLU(gamma: gamma, beta: beta) }
}
