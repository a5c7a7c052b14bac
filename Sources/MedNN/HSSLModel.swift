import Foundation
import MedTensor
import MedFoundation

// HSSL's network: the U-Net with a projection head and a domain classifier (Docs/learning.md, HSSLViews.swift).

/// Linear -> ReLU -> Linear, named as PyTorch's `nn.Sequential(Linear, ReLU, Linear)` ("0", "2").
public final class ProjectionHead: Layer {
    let first: Linear, second: Linear
    public var isTraining = true
    public init(_ inputs: Int, hidden: Int, outputs: Int, rng: inout SplitMix64) {
        first = Linear(inputs, hidden, rng: &rng); second = Linear(hidden, outputs, rng: &rng)
    }
    public var children: [(String, any Layer)] { [("0", first), ("2", second)] }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try second(try first(x).relu()) }
}

/// The HSSL pretraining network: a ``UNet`` (`unet.*`, the part fine-tuning starts from) with a global projection
/// head on the pooled bottleneck (`global_head`), a dense projection head on decoder features (`local_head`) and a
/// domain classifier on the pooled bottleneck (`domain_head`).
public final class HSSLModel: Layer {
    public struct Configuration: Sendable, Codable, Equatable {
        public var unet = UNet.Configuration()
        public var imageSize = 128
        /// Domain names, in label order (dataset, or dataset/site).
        public var domains: [String] = []
        public var projectionHidden = 256, projection = 128, localProjection = 64
        /// Corresponding locations per image pair: grid x grid.
        public var grid = 4
        public var temperature: Float = 0.2, localTemperature: Float = 0.2
        /// Weights of the global contrastive, dense contrastive and domain terms.
        public var globalWeight: Float = 1, localWeight: Float = 1, domainWeight: Float = 1
        public init() {}
        enum CodingKeys: String, CodingKey {
            case unet, imageSize = "image_size", domains, projectionHidden = "projection_hidden", projection, localProjection = "local_projection"
            case grid, temperature, localTemperature = "local_temperature", globalWeight = "global_weight", localWeight = "local_weight"
            case domainWeight = "domain_weight"
        }
        public var bottleneckChannels: Int { unet.base << unet.levels }
        public var problem: String? {
            if imageSize < 1 << unet.levels || imageSize % (1 << unet.levels) != 0 { return "the image size \(imageSize) must be a multiple of \(1 << unet.levels) (2^levels)" }
            if grid < 1 { return "the grid must be at least 1" }
            if !(temperature > 0) || !(localTemperature > 0) { return "temperatures must be positive" }
            if globalWeight < 0 || localWeight < 0 || domainWeight < 0 || globalWeight + localWeight + domainWeight <= 0 {
                return "the loss weights must be >= 0 and not all 0"
            }
            return nil
        }
        public var summary: String {
            "U-Net \(unet.summary), \(imageSize) px, \(domains.count) domain\(domains.count == 1 ? "" : "s"), weights global \(globalWeight) / dense \(localWeight) / domain \(domainWeight)"
        }
    }

    /// The terms of one step's loss (total = weighted sum).
    public struct Losses {
        public var total: Tensor
        public var global: Float, local: Float, domain: Float
    }

    public let configuration: Configuration
    public let unet: UNet
    let globalHead: ProjectionHead, localHead: ProjectionHead
    let domainHead: Linear
    public var isTraining = true

    public init(_ configuration: Configuration, seed: UInt64 = 0) {
        precondition(configuration.problem == nil, configuration.problem ?? "")
        self.configuration = configuration
        unet = UNet(configuration.unet, seed: seed)
        var rng = SplitMix64(seed: seed ^ 0x4855_5353)
        let c = configuration
        globalHead = ProjectionHead(c.bottleneckChannels, hidden: c.projectionHidden, outputs: c.projection, rng: &rng)
        localHead = ProjectionHead(c.unet.base, hidden: c.localProjection, outputs: c.localProjection, rng: &rng)
        domainHead = Linear(c.bottleneckChannels, max(1, c.domains.count), rng: &rng)
    }

    public var children: [(String, any Layer)] {
        [("unet", unet), ("global_head", globalHead), ("local_head", localHead), ("domain_head", domainHead)]
    }

    /// The loss of a batch of view pairs: `first` and `second` [B, C, S, S] (image b's two views at row b), their
    /// geometries, and each image's domain label.
    public func losses(_ first: Tensor, _ second: Tensor, geometries: [(ViewGeometry, ViewGeometry)], domains: [Int]) throws -> Losses {
        let c = configuration, n = first.shape[0]
        guard second.shape == first.shape, geometries.count == n, domains.count == n else {
            throw TensorError.shapeMismatch("HSSL views \(first.shape) and \(second.shape) with \(geometries.count) geometries and \(domains.count) domain labels")
        }
        let (bottleneck, decoder) = try unet.features(try Tensor.concat([first, second], axis: 0))
        let pooled = bottleneck.mean(axes: [2, 3])
        var total = Tensor(scalar: 0)
        var terms: (Float, Float, Float) = (0, 0, 0)
        if c.globalWeight > 0 {
            let g = try Loss.ntXent(try globalHead(pooled), temperature: c.temperature)
            total = total + g * c.globalWeight; terms.0 = g.item
        }
        if c.localWeight > 0 {
            var a: [(image: Int, y: Int, x: Int)] = [], b: [(image: Int, y: Int, x: Int)] = []
            for (k, (ga, gb)) in geometries.enumerated() {
                for pair in ViewGeometry.correspondences(ga, gb, grid: c.grid) {
                    a.append((k, pair.a.j, pair.a.i)); b.append((n + k, pair.b.j, pair.b.i))
                }
            }
            if !a.isEmpty {
                let l = try Loss.ntXent(try localHead(try decoder.gatherPixels(a + b)), temperature: c.localTemperature)
                total = total + l * c.localWeight; terms.1 = l.item
            }
        }
        if c.domainWeight > 0 && c.domains.count > 1 {
            let d = try Loss.crossEntropy(try domainHead(pooled), (domains + domains).map(Float.init))
            total = total + d * c.domainWeight; terms.2 = d.item
        }
        return Losses(total: total, global: terms.0, local: terms.1, domain: terms.2)
    }
}
