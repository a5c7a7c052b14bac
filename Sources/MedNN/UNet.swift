import Foundation
import MedTensor
import MedFoundation

/// A 2-D U-Net: `levels` encoder blocks of two (3x3 conv -> batch norm -> ReLU) with base · 2^i channels and 2x2
/// max pooling between them, a bottleneck block at twice the last width, decoder blocks after a 2x2 transposed
/// convolution and concatenation with the skip, and a 1x1 head. The default is the benchmark configuration of
/// Scripts/reference/torch_unet_step.py: 1 input channel, 2 classes, 16-32-64-128, bottleneck 256; convolutions before
/// a norm have no bias. Options: instance instead of batch normalisation (nnU-Net's choice), and deep supervision
/// (1x1 heads on the decoder's lower-resolution outputs, trained with down-sampled labels; see ``forwardAll(_:)``).
public final class UNet: Layer {
    public enum Normalization: String, Sendable, Codable { case batch, instance }

    /// What a U-Net is made of: enough to rebuild it (stored in checkpoints).
    public struct Configuration: Sendable, Codable, Equatable {
        public var inChannels = 1, classes = 2, base = 16, levels = 4
        public var normalization = Normalization.batch
        public var deepSupervision = false
        public init(inChannels: Int = 1, classes: Int = 2, base: Int = 16, levels: Int = 4, normalization: Normalization = .batch,
                    deepSupervision: Bool = false) {
            self.inChannels = inChannels; self.classes = classes; self.base = base; self.levels = levels
            self.normalization = normalization; self.deepSupervision = deepSupervision
        }
        enum CodingKeys: String, CodingKey {
            case inChannels = "in_channels", classes, base, levels, normalization, deepSupervision = "deep_supervision"
        }
        /// "1 in, 2 classes, base 16, 4 levels, batch norm".
        public var summary: String {
            "\(inChannels) in, \(classes) classes, base \(base), \(levels) levels, \(normalization.rawValue) norm" + (deepSupervision ? ", deep supervision" : "")
        }
    }

    /// Two (3x3 conv -> norm -> ReLU), named as PyTorch's `nn.Sequential` of six (the ReLUs at 2 and 5 hold nothing).
    final class DoubleConv: Layer {
        let c1: Conv2d, n1: any NormReLU, c2: Conv2d, n2: any NormReLU
        var isTraining = true
        init(_ cin: Int, _ cout: Int, norm: Normalization, rng: inout SplitMix64) {
            func make(_ c: Int) -> any NormReLU { norm == .batch ? BatchNorm2d(c) : InstanceNorm2d(c) }
            c1 = Conv2d(cin, cout, kernel: 3, padding: 1, bias: false, rng: &rng); n1 = make(cout)
            c2 = Conv2d(cout, cout, kernel: 3, padding: 1, bias: false, rng: &rng); n2 = make(cout)
        }
        var children: [(String, any Layer)] { [("0", c1), ("1", n1), ("3", c2), ("4", n2)] }
        func callAsFunction(_ x: Tensor) throws -> Tensor { try n2.withReLU(c2(n1.withReLU(c1(x)))) }
    }

    public let configuration: Configuration
    public var inChannels: Int { configuration.inChannels }
    public var classes: Int { configuration.classes }
    public var base: Int { configuration.base }
    public var levels: Int { configuration.levels }
    public var normalization: Normalization { configuration.normalization }
    public var deepSupervision: Bool { configuration.deepSupervision }
    let down: LayerList<DoubleConv>
    let bottleneck: DoubleConv
    let upconv: LayerList<ConvTranspose2d>
    let up: LayerList<DoubleConv>
    let head: Conv2d
    /// Deep-supervision heads for decoder outputs at 1/2, 1/4, ... of the resolution (empty when off).
    let auxHeads: LayerList<Conv2d>
    public var isTraining = true

    public convenience init(inChannels: Int = 1, classes: Int = 2, base: Int = 16, levels: Int = 4, normalization: Normalization = .batch,
                            deepSupervision: Bool = false, seed: UInt64 = 0) {
        self.init(Configuration(inChannels: inChannels, classes: classes, base: base, levels: levels, normalization: normalization,
                                deepSupervision: deepSupervision), seed: seed)
    }

    public init(_ configuration: Configuration, seed: UInt64 = 0) {
        self.configuration = configuration
        let (inChannels, base, levels, normalization) = (configuration.inChannels, configuration.base, configuration.levels, configuration.normalization)
        var rng = SplitMix64(seed: seed)
        let widths = (0..<levels).map { base << $0 }
        var c = inChannels
        var down: [DoubleConv] = []
        for w in widths { down.append(DoubleConv(c, w, norm: normalization, rng: &rng)); c = w }
        self.down = LayerList(down)
        bottleneck = DoubleConv(c, c * 2, norm: normalization, rng: &rng)
        c *= 2
        var upconv: [ConvTranspose2d] = [], up: [DoubleConv] = []
        for w in widths.reversed() {
            upconv.append(ConvTranspose2d(c, w, stride: 2, rng: &rng))
            up.append(DoubleConv(w * 2, w, norm: normalization, rng: &rng))
            c = w
        }
        self.upconv = LayerList(upconv); self.up = LayerList(up)
        head = Conv2d(c, configuration.classes, kernel: 1, rng: &rng)
        // One head per decoder level except the last (full resolution), coarsest first in `widths.reversed()` order.
        auxHeads = LayerList(configuration.deepSupervision ? widths.reversed().dropLast().map { Conv2d($0, configuration.classes, kernel: 1, rng: &rng) } : [])
    }

    /// Named as PyTorch's `state_dict()` names the same model in Scripts/reference/torch_unet_step.py
    /// (`down.0.0.weight`, `down.0.1.running_mean`, ..., `upconv.0.bias`, `head.weight`, `ds_heads.0.weight`).
    public var children: [(String, any Layer)] {
        [("down", down), ("bottleneck", bottleneck), ("up", up), ("upconv", upconv), ("head", head)] + (deepSupervision ? [("ds_heads", auxHeads)] : [])
    }

    /// Logits [N, classes, H, W] for input [N, inChannels, H, W] (H, W divisible by 2^levels).
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try forwardAll(x, auxiliary: false)[0] }

    /// The full-resolution logits first, then (with deep supervision) the auxiliary logits at 1/2, 1/4, ... resolution.
    public func forwardAll(_ x: Tensor) throws -> [Tensor] { try forwardAll(x, auxiliary: true) }

    func forwardAll(_ x: Tensor, auxiliary: Bool) throws -> [Tensor] {
        let (_, decoded, aux) = try run(x, auxiliary: auxiliary)
        // aux holds coarsest first; return finest first after the main output.
        return [try head(decoded)] + aux.reversed()
    }

    /// What self-supervised pretraining (HSSL) contrasts: the bottleneck block's output [N, 2·base·2^(levels−1), H/2^levels,
    /// W/2^levels] and the last decoder block's output [N, base, H, W] (the input of the 1x1 head).
    public func features(_ x: Tensor) throws -> (bottleneck: Tensor, decoder: Tensor) {
        let (b, d, _) = try run(x, auxiliary: false)
        return (b, d)
    }

    /// The bottleneck's output alone (the encoder's part of the network): what `embed` pools for HSSL encoders.
    public func encode(_ x: Tensor) throws -> Tensor {
        var h = x
        for block in down { h = try block(h).maxPool2d(2) }
        return try bottleneck(h)
    }

    func run(_ x: Tensor, auxiliary: Bool) throws -> (bottleneck: Tensor, decoded: Tensor, aux: [Tensor]) {
        var h = x
        var skips: [Tensor] = []
        for block in down {
            h = try block(h)
            skips.append(h)
            h = try h.maxPool2d(2)
        }
        h = try bottleneck(h)
        let b = h
        var aux: [Tensor] = []
        for (i, block) in up.enumerated() {
            h = try upconv[i](h)
            h = try block(try Tensor.concat([h, skips[skips.count - 1 - i]], axis: 1))
            if auxiliary && i < auxHeads.count { aux.append(try auxHeads[i](h)) }
        }
        return (b, h, aux)
    }
}
