import Foundation
import MedTensor

/// A 2-D U-Net: `levels` encoder blocks of two (3x3 conv -> batch norm -> ReLU) with base · 2^i channels and 2x2
/// max pooling between them, a bottleneck block at twice the last width, decoder blocks after a 2x2 transposed
/// convolution and concatenation with the skip, and a 1x1 head. The default is the benchmark configuration of
/// Scripts/reference/torch_unet_step.py: 1 input channel, 2 classes, 16-32-64-128, bottleneck 256; convolutions before
/// a norm have no bias. Options: instance instead of batch normalisation (nnU-Net's choice), and deep supervision
/// (1x1 heads on the decoder's lower-resolution outputs, trained with down-sampled labels; see ``forwardAll(_:)``).
public final class UNet: Layer {
    public enum Normalization: String, Sendable, Codable { case batch, instance }

    final class DoubleConv {
        let c1: Conv2d, n1: any NormReLU, c2: Conv2d, n2: any NormReLU
        init(_ cin: Int, _ cout: Int, norm: Normalization, rng: inout InitRandom) {
            func make(_ c: Int) -> any NormReLU { norm == .batch ? BatchNorm2d(c) : InstanceNorm2d(c) }
            c1 = Conv2d(cin, cout, kernel: 3, padding: 1, bias: false, rng: &rng); n1 = make(cout)
            c2 = Conv2d(cout, cout, kernel: 3, padding: 1, bias: false, rng: &rng); n2 = make(cout)
        }
        var layers: [any Layer] { [c1, n1, c2, n2] }
        func callAsFunction(_ x: Tensor) throws -> Tensor { try n2.withReLU(c2(n1.withReLU(c1(x)))) }
    }

    public let inChannels: Int, classes: Int, base: Int, levels: Int
    public let normalization: Normalization
    public let deepSupervision: Bool
    let down: [DoubleConv]
    let bottleneck: DoubleConv
    let upconv: [ConvTranspose2d]
    let up: [DoubleConv]
    let head: Conv2d
    /// Deep-supervision heads for decoder outputs at 1/2, 1/4, ... of the resolution (empty when off).
    let auxHeads: [Conv2d]
    public var isTraining = true {
        didSet { for l in allLayers { l.isTraining = isTraining } }
    }

    public init(inChannels: Int = 1, classes: Int = 2, base: Int = 16, levels: Int = 4, normalization: Normalization = .batch,
                deepSupervision: Bool = false, seed: UInt64 = 0) {
        self.inChannels = inChannels; self.classes = classes; self.base = base; self.levels = levels
        self.normalization = normalization; self.deepSupervision = deepSupervision
        var rng = InitRandom(seed: seed)
        let widths = (0..<levels).map { base << $0 }
        var c = inChannels
        var down: [DoubleConv] = []
        for w in widths { down.append(DoubleConv(c, w, norm: normalization, rng: &rng)); c = w }
        self.down = down
        bottleneck = DoubleConv(c, c * 2, norm: normalization, rng: &rng)
        c *= 2
        var upconv: [ConvTranspose2d] = [], up: [DoubleConv] = []
        for w in widths.reversed() {
            upconv.append(ConvTranspose2d(c, w, stride: 2, rng: &rng))
            up.append(DoubleConv(w * 2, w, norm: normalization, rng: &rng))
            c = w
        }
        self.upconv = upconv; self.up = up
        head = Conv2d(c, classes, kernel: 1, rng: &rng)
        // One head per decoder level except the last (full resolution), coarsest first in `widths.reversed()` order.
        auxHeads = deepSupervision ? widths.reversed().dropLast().map { Conv2d($0, classes, kernel: 1, rng: &rng) } : []
    }

    var allLayers: [any Layer] {
        down.flatMap(\.layers) + bottleneck.layers + upconv.map { $0 as any Layer } + up.flatMap(\.layers) + [head]
            + auxHeads.map { $0 as any Layer }
    }

    public var parameters: [Tensor] { allLayers.flatMap(\.parameters) }

    /// The batch-norm layers, in a fixed order (their running statistics go into checkpoints).
    public var batchNorms: [BatchNorm2d] { allLayers.compactMap { $0 as? BatchNorm2d } }

    /// Parameters with the names PyTorch's `state_dict()` gives the same model in Scripts/reference/torch_unet_step.py
    /// (`down.0.0.weight`, `down.0.1.weight`, ..., `upconv.0.bias`, `head.weight`), so weights move both ways.
    public var namedParameters: [(String, Tensor)] {
        func block(_ prefix: String, _ b: DoubleConv) -> [(String, Tensor)] {
            [("\(prefix).0.weight", b.c1.weight), ("\(prefix).1.weight", b.n1.gamma), ("\(prefix).1.bias", b.n1.beta),
             ("\(prefix).3.weight", b.c2.weight), ("\(prefix).4.weight", b.n2.gamma), ("\(prefix).4.bias", b.n2.beta)]
        }
        var out: [(String, Tensor)] = []
        for (i, b) in down.enumerated() { out += block("down.\(i)", b) }
        out += block("bottleneck", bottleneck)
        for (i, b) in up.enumerated() { out += block("up.\(i)", b) }
        for (i, u) in upconv.enumerated() { out += [("upconv.\(i).weight", u.weight), ("upconv.\(i).bias", u.bias!)] }
        out += [("head.weight", head.weight), ("head.bias", head.bias!)]
        for (i, h) in auxHeads.enumerated() { out += [("ds_heads.\(i).weight", h.weight), ("ds_heads.\(i).bias", h.bias!)] }
        return out
    }

    /// Copies weights in by name (e.g. from a safetensors file written by PyTorch); every parameter must be present
    /// with its shape.
    public func load(_ tensors: [String: Tensor]) throws {
        for (name, p) in namedParameters {
            guard let t = tensors[name] else { throw TensorError.shapeMismatch("weights lack '\(name)'") }
            guard t.shape == p.shape else { throw TensorError.shapeMismatch("'\(name)' is \(t.shape), the model needs \(p.shape)") }
            p.data = t.data
        }
    }

    /// Logits [N, classes, H, W] for input [N, inChannels, H, W] (H, W divisible by 2^levels).
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try forwardAll(x, auxiliary: false)[0] }

    /// The full-resolution logits first, then (with deep supervision) the auxiliary logits at 1/2, 1/4, ... resolution.
    public func forwardAll(_ x: Tensor) throws -> [Tensor] { try forwardAll(x, auxiliary: true) }

    func forwardAll(_ x: Tensor, auxiliary: Bool) throws -> [Tensor] {
        var h = x
        var skips: [Tensor] = []
        for block in down {
            h = try block(h)
            skips.append(h)
            h = try h.maxPool2d(2)
        }
        h = try bottleneck(h)
        var aux: [Tensor] = []
        for (i, block) in up.enumerated() {
            h = try upconv[i](h)
            h = try block(try Tensor.concat([h, skips[skips.count - 1 - i]], axis: 1))
            if auxiliary && i < auxHeads.count { aux.append(try auxHeads[i](h)) }
        }
        // aux holds coarsest first; return finest first after the main output.
        return [try head(h)] + aux.reversed()
    }
}
