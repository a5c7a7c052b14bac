import Foundation
import MedTensor
import MedRandom

/// # MedNN
///
/// Layers with parameters, the 2-D U-Net, and (with the rest of issue 6) the training loop, built on MedTensor.
/// A layer owns its parameter tensors (``Layer/parameters``) and, for batch normalisation, running statistics; it is
/// in training or evaluation mode (``Layer/isTraining``).
public enum MedNNModule {}

/// Anything with parameters.
public protocol Layer: AnyObject {
    var parameters: [Tensor] { get }
    var isTraining: Bool { get set }
}

/// SplitMix64 for weight initialisation (seeded, reproducible): ``MedRandom/SplitMix64``.
public typealias InitRandom = SplitMix64

/// 2-D convolution layer; weights initialised as PyTorch does (Kaiming uniform with a = √5, i.e. U(±1/√fan_in)).
public final class Conv2d: Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public let geometry: Conv2DGeometry
    public var isTraining = true

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, padding: Int = 0, stride: Int = 1, bias: Bool = true, rng: inout InitRandom) {
        let fanIn = Float(inChannels * kernel * kernel)
        let bound = 1 / fanIn.squareRoot()
        weight = Tensor(shape: [outChannels, inChannels, kernel, kernel],
                        data: (0..<(outChannels * inChannels * kernel * kernel)).map { _ in Float.random(in: -bound...bound, using: &rng) }, requiresGrad: true)
        self.bias = bias ? Tensor(shape: [outChannels], data: (0..<outChannels).map { _ in Float.random(in: -bound...bound, using: &rng) }, requiresGrad: true) : nil
        geometry = Conv2DGeometry(stride: stride, padding: padding)
    }

    public var parameters: [Tensor] { [weight] + (bias.map { [$0] } ?? []) }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.conv2d(weight, bias: bias, geometry: geometry) }
}

/// Transposed convolution with kernel = stride (upsampling by the stride).
public final class ConvTranspose2d: Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int
    public var isTraining = true

    public init(_ inChannels: Int, _ outChannels: Int, stride: Int, rng: inout InitRandom) {
        // PyTorch's fan_in for ConvTranspose2d weight [in, out, k, k] is out · k · k.
        let bound = 1 / Float(outChannels * stride * stride).squareRoot()
        weight = Tensor(shape: [inChannels, outChannels, stride, stride],
                        data: (0..<(inChannels * outChannels * stride * stride)).map { _ in Float.random(in: -bound...bound, using: &rng) }, requiresGrad: true)
        bias = Tensor(shape: [outChannels], data: (0..<outChannels).map { _ in Float.random(in: -bound...bound, using: &rng) }, requiresGrad: true)
        self.stride = stride
    }

    public var parameters: [Tensor] { [weight] + (bias.map { [$0] } ?? []) }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.convTranspose2d(weight, bias: bias, stride: stride) }
}

/// Batch normalisation with running statistics (momentum 0.1, as PyTorch).
public final class BatchNorm2d: Layer {
    public let gamma: Tensor
    public let beta: Tensor
    public var runningMean: [Float]
    public var runningVariance: [Float]
    public var momentum: Float = 0.1
    public var isTraining = true

    public init(_ channels: Int) {
        gamma = Tensor(shape: [channels], data: [Float](repeating: 1, count: channels), requiresGrad: true)
        beta = Tensor(zeros: [channels], requiresGrad: true)
        runningMean = [Float](repeating: 0, count: channels)
        runningVariance = [Float](repeating: 1, count: channels)
    }

    public var parameters: [Tensor] { [gamma, beta] }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try apply(x, relu: false) }

    /// Batch norm then ReLU (fused in training mode).
    public func withReLU(_ x: Tensor) throws -> Tensor { try apply(x, relu: true) }

    func apply(_ x: Tensor, relu: Bool) throws -> Tensor {
        guard isTraining else {
            let y = try x.batchNormInference(gamma: gamma, beta: beta, mean: runningMean, variance: runningVariance)
            return relu ? y.relu() : y
        }
        let (y, mean, variance) = relu ? try x.batchNormReLU(gamma: gamma, beta: beta) : try x.batchNorm(gamma: gamma, beta: beta)
        for c in 0..<runningMean.count {
            runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean[c]
            runningVariance[c] = (1 - momentum) * runningVariance[c] + momentum * variance[c]
        }
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

    public var parameters: [Tensor] { [gamma, beta] }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.instanceNorm(gamma: gamma, beta: beta) }
    public func withReLU(_ x: Tensor) throws -> Tensor { try x.instanceNormReLU(gamma: gamma, beta: beta) }
}
