import Foundation
import MedTensor
import MedFoundation

// HSSL (Zheng et al., MICCAI 2021): multi-domain self-supervised pretraining of a whole U-Net encoder-decoder with a
// contrastive and a classification loss. Our reading, documented in Docs/learning.md: two augmented views of each
// image; a global NT-Xent term on the pooled bottleneck through a projection head; a dense NT-Xent term on the last
// decoder block's feature maps at locations that correspond under the known crop and flip; a cross-entropy term
// classifying each image's domain (dataset, or dataset/site) from the pooled bottleneck.

/// Where a view came from: the square crop of the source image it shows and whether it was flipped left-right.
/// Coordinates are continuous source-pixel coordinates (pixel k covers [k, k + 1), its centre is k + 0.5).
public struct ViewGeometry: Sendable, Equatable {
    /// Left and top edges of the crop, and its side, in source pixels.
    public var x0: Float, y0: Float, side: Float
    public var flip: Bool
    /// The view's side in pixels (the source's side: crops are resized back).
    public var size: Int
    public init(x0: Float, y0: Float, side: Float, flip: Bool, size: Int) {
        self.x0 = x0; self.y0 = y0; self.side = side; self.flip = flip; self.size = size
    }
    /// The whole image, unflipped.
    public static func identity(size: Int) -> ViewGeometry { ViewGeometry(x0: 0, y0: 0, side: Float(size), flip: false, size: size) }

    var step: Float { side / Float(size) }

    /// The source point at the centre of view pixel (column i, row j).
    public func sourcePoint(i: Int, j: Int) -> (x: Float, y: Float) {
        let column = flip ? size - 1 - i : i
        return (x0 + (Float(column) + 0.5) * step, y0 + (Float(j) + 0.5) * step)
    }

    /// The view pixel (column, row) whose centre is nearest to the source point (x, y), clamped into the view.
    public func viewPixel(x: Float, y: Float) -> (i: Int, j: Int) {
        let column = min(max(Int(((x - x0) / step - 0.5).rounded()), 0), size - 1)
        let row = min(max(Int(((y - y0) / step - 0.5).rounded()), 0), size - 1)
        return (flip ? size - 1 - column : column, row)
    }

    /// The view of `channels` planes of side `size` (row-major, channel after channel): each view pixel takes the
    /// source bilinearly at ``sourcePoint(i:j:)`` (edges clamped).
    public func render(_ source: [Float], channels: Int) -> [Float] {
        let s = size
        var out = [Float](repeating: 0, count: channels * s * s)
        source.withUnsafeBufferPointer { src in
            for ch in 0..<channels {
                let base = ch * s * s
                for j in 0..<s { for i in 0..<s {
                    let p = sourcePoint(i: i, j: j)
                    // In pixel-index coordinates.
                    out[base + j * s + i] = bilinear(src.baseAddress! + base, width: s, height: s, x: p.x - 0.5, y: p.y - 0.5)
                } }
            }
        }
        return out
    }

    /// Pairs of view pixels (in `a`, in `b`) that show the same source point: the centres of a grid x grid
    /// partition of the two crops' overlap, each mapped into both views. Empty when the crops do not overlap.
    public static func correspondences(_ a: ViewGeometry, _ b: ViewGeometry, grid: Int) -> [(a: (i: Int, j: Int), b: (i: Int, j: Int))] {
        let left = max(a.x0, b.x0), right = min(a.x0 + a.side, b.x0 + b.side)
        let top = max(a.y0, b.y0), bottom = min(a.y0 + a.side, b.y0 + b.side)
        guard right > left, bottom > top, grid >= 1 else { return [] }
        var out: [(a: (i: Int, j: Int), b: (i: Int, j: Int))] = []
        for gy in 0..<grid { for gx in 0..<grid {
            let x = left + (Float(gx) + 0.5) * (right - left) / Float(grid), y = top + (Float(gy) + 0.5) * (bottom - top) / Float(grid)
            out.append((a.viewPixel(x: x, y: y), b.viewPixel(x: x, y: y)))
        } }
        return out
    }
}

/// SimCLR-style augmentation for (z-scored) medical images, each view with its geometry: a random square crop of
/// area fraction [cropScale, 1] resized back, a left-right flip (p 0.5), intensity scale and shift, a 3x3 blur
/// (p 0.5) and Gaussian noise (p 0.5). Every draw comes from the generator given, so views are reproducible.
public struct ContrastiveAugmentation: Sendable, Codable, Equatable {
    public var cropScale: Float = 0.3
    public var flips = true
    /// Intensity x U(1 − s, 1 + s) + U(−t, t).
    public var intensityScale: Float = 0.25, intensityShift: Float = 0.25
    public var blurProbability: Float = 0.5
    public var noiseProbability: Float = 0.5, noiseSigma: Float = 0.1
    public init() {}
    /// No augmentation: the whole image unchanged (both views equal; for tests and ablations).
    public static var none: ContrastiveAugmentation {
        var a = ContrastiveAugmentation()
        a.cropScale = 1; a.flips = false; a.intensityScale = 0; a.intensityShift = 0; a.blurProbability = 0; a.noiseProbability = 0
        return a
    }
    enum CodingKeys: String, CodingKey {
        case cropScale = "crop_scale", flips, intensityScale = "intensity_scale", intensityShift = "intensity_shift"
        case blurProbability = "blur_p", noiseProbability = "noise_p", noiseSigma = "noise_sigma"
    }

    /// A random geometry for an image of side `size`.
    public func geometry(size: Int, rng: inout SplitMix64) -> ViewGeometry {
        let area = cropScale < 1 ? Float.random(in: cropScale...1, using: &rng) : 1
        let side = Float(size) * area.squareRoot()
        let x0 = Float.random(in: 0...(Float(size) - side), using: &rng), y0 = Float.random(in: 0...(Float(size) - side), using: &rng)
        let flip = flips && Bool.random(using: &rng)
        return ViewGeometry(x0: x0, y0: y0, side: side, flip: flip, size: size)
    }

    /// One view of an image ([channels, size, size] values) and where it came from.
    public func view(of image: [Float], channels: Int, size: Int, rng: inout SplitMix64) -> (values: [Float], geometry: ViewGeometry) {
        let g = geometry(size: size, rng: &rng)
        var v = g.render(image, channels: channels)
        let scale = 1 + Float.random(in: -intensityScale...intensityScale, using: &rng), shift = Float.random(in: -intensityShift...intensityShift, using: &rng)
        for k in v.indices { v[k] = v[k] * scale + shift }
        if Float.random(in: 0..<1, using: &rng) < blurProbability { v = Self.blur(v, channels: channels, size: size) }
        if Float.random(in: 0..<1, using: &rng) < noiseProbability {
            let sigma = Float.random(in: 0...noiseSigma, using: &rng)
            for k in stride(from: 0, to: v.count, by: 2) {
                // Box-Muller: two normal draws per pair of uniforms.
                let u1 = max(Float.random(in: 0..<1, using: &rng), 1e-7), u2 = Float.random(in: 0..<1, using: &rng)
                let r = (-2 * Foundation.log(u1)).squareRoot()
                v[k] += sigma * r * Foundation.cos(2 * .pi * u2)
                if k + 1 < v.count { v[k + 1] += sigma * r * Foundation.sin(2 * .pi * u2) }
            }
        }
        return (v, g)
    }

    /// Separable [1, 2, 1] / 4 blur per plane (edges clamped).
    static func blur(_ v: [Float], channels: Int, size s: Int) -> [Float] {
        var tmp = v, out = v
        for ch in 0..<channels {
            let base = ch * s * s
            for j in 0..<s { for i in 0..<s {
                tmp[base + j * s + i] = 0.25 * v[base + j * s + max(i - 1, 0)] + 0.5 * v[base + j * s + i] + 0.25 * v[base + j * s + min(i + 1, s - 1)]
            } }
            for j in 0..<s { for i in 0..<s {
                out[base + j * s + i] = 0.25 * tmp[base + max(j - 1, 0) * s + i] + 0.5 * tmp[base + j * s + i] + 0.25 * tmp[base + min(j + 1, s - 1) * s + i]
            } }
        }
        return out
    }
}

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

/// Settings of an HSSL pretraining run (the loss's settings are the model's ``HSSLModel/Configuration``).
public struct HSSLPretrainingConfig: Sendable, Codable, Equatable {
    public var epochs = 50
    public var batchSize = 16
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 1e-4
    public var warmupFraction = 0.05
    public var seed: UInt64 = 0
    public var augmentation = ContrastiveAugmentation()
    public var dataFingerprint: String? = nil
    public init() {}
    enum CodingKeys: String, CodingKey {
        case epochs, batchSize = "batch_size", learningRate = "learning_rate", weightDecay = "weight_decay", warmupFraction = "warmup_fraction"
        case seed, augmentation, dataFingerprint = "data"
    }

    func differences(from other: HSSLPretrainingConfig) -> [String] {
        var out: [String] = []
        func check<T: Equatable>(_ name: String, _ a: T, _ b: T) { if a != b { out.append("\(name) \(a) (this run) vs \(b) (the folder's run)") } }
        check("batch size", batchSize, other.batchSize); check("learning rate", learningRate, other.learningRate)
        check("weight decay", weightDecay, other.weightDecay); check("warm-up", warmupFraction, other.warmupFraction)
        check("seed", seed, other.seed); check("augmentation", augmentation, other.augmentation)
        check("images", dataFingerprint ?? "", other.dataFingerprint ?? "")
        return out
    }
}

/// Pretrains an ``HSSLModel`` on the shared ``TrainingLoop``: shuffled batches of images from every domain, two
/// augmented views each (all draws from the epoch's seeded generator), AdamW with linear warm-up and cosine decay;
/// validation is the same loss on held-out images with fixed views (lower is better).
public final class HSSLPretrainer {
    public let model: HSSLModel
    public let config: HSSLPretrainingConfig
    let loop: TrainingLoop<HSSLModel>
    public var history: [EpochRecord] { loop.history }
    /// The terms of the last step (global, dense, domain), for progress lines.
    public private(set) var lastTerms: (global: Float, local: Float, domain: Float) = (0, 0, 0)

    public init(model: HSSLModel, config: HSSLPretrainingConfig, folder: String) {
        self.model = model
        self.config = config
        let optimizer = Adam.adamW(model.parameters, learningRate: config.learningRate, weightDecay: config.weightDecay)
        let configJSON = String(decoding: (try? JSONEncoder().encode(config)) ?? Data(), as: UTF8.self)
        loop = TrainingLoop(model: model, description: ModelDescription(hssl: model.configuration), optimizer: optimizer, folder: folder,
                            seed: config.seed, configuration: configJSON) { theirs in
            guard let other = try? JSONDecoder().decode(HSSLPretrainingConfig.self, from: Data(theirs.utf8)) else { return [] }
            return config.differences(from: other)
        }
        loop.validationColumn = "validation_loss"
    }

    public var checkpointPath: String { loop.checkpointPath }

    /// Two views of each of `indices` as batch tensors, their geometries and domains.
    public func views(_ images: ImageStack, _ domains: [Int], _ indices: [Int], rng: inout SplitMix64)
        -> (Tensor, Tensor, [(ViewGeometry, ViewGeometry)], [Int]) {
        let (c, s) = (images.channels, images.size), per = c * s * s
        var a: [Float] = [], b: [Float] = [], g: [(ViewGeometry, ViewGeometry)] = []
        a.reserveCapacity(indices.count * per); b.reserveCapacity(indices.count * per)
        for i in indices {
            let image = Array(images.values[(i * per)..<((i + 1) * per)])
            let v1 = config.augmentation.view(of: image, channels: c, size: s, rng: &rng)
            let v2 = config.augmentation.view(of: image, channels: c, size: s, rng: &rng)
            a += v1.values; b += v2.values; g.append((v1.geometry, v2.geometry))
        }
        let shape = [indices.count, c, s, s]
        return (Tensor(shape: shape, data: a), Tensor(shape: shape, data: b), g, indices.map { domains[$0] })
    }

    /// Runs (or resumes) pretraining; `domains[i]` is image i's domain label (an index into the model's domains).
    @discardableResult
    public func fit(train: ImageStack, domains: [Int], validation: ImageStack?, validationDomains: [Int] = [], stopAfterEpoch: Int? = nil,
                    stepEnded: ((Int, Int, Int, Float) -> Void)? = nil, epochEnded: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        let c = model.configuration
        guard train.channels == c.unet.inChannels, train.size == c.imageSize, domains.count == train.count else {
            throw TensorError.shapeMismatch("\(train.count) images of \(train.channels) channel(s) at \(train.size) px with \(domains.count) domain labels for a model of \(c.unet.inChannels) channel(s) at \(c.imageSize) px")
        }
        guard train.count >= 2 else { throw TensorError.shapeMismatch("contrastive pretraining needs at least 2 images, got \(train.count)") }
        let batch = max(2, min(config.batchSize, train.count))
        let steps = max(1, train.count / batch)      // full batches only
        var order: [Int] = []
        var task = TrainingLoop<HSSLModel>.Task(stepsPerEpoch: steps) { [self] _, s, rng in
            let (x1, x2, g, d) = views(train, domains, Array(order[(s * batch)..<((s + 1) * batch)]), rng: &rng)
            let l = try model.losses(x1, x2, geometries: g, domains: d)
            lastTerms = (l.global, l.local, l.domain)
            return l.total
        }
        task.beginEpoch = { _, rng in
            order = Array(0..<train.count)
            order.shuffle(using: &rng)
        }
        task.higherIsBetter = false
        if let validation, validation.count >= 2 {
            task.validate = { [self] in try validationLoss(validation, domains: validationDomains) }
        }
        if let stepEnded { task.stepEnded = { e, s, l in stepEnded(e, s, steps, l) } }
        let total = config.epochs * steps
        let schedule = LearningRateSchedule.cosine(initial: config.learningRate, warmupSteps: max(1, Int(Double(total) * config.warmupFraction)),
                                                   totalSteps: total)
        return try loop.fit(task, epochs: config.epochs, schedule: schedule, stopAfterEpoch: stopAfterEpoch, progress: epochEnded)
    }

    /// The mean loss over `images` in batches, each image with fixed views (the same in every epoch and run), in
    /// evaluation mode, without gradients.
    public func validationLoss(_ images: ImageStack, domains: [Int]) throws -> Double {
        var rng = SplitMix64(seed: config.seed ^ 0x7661_6c69_6461_7465)
        let batch = max(2, min(config.batchSize, images.count))
        var total = 0.0, counted = 0
        try GradMode.disabled {
            for start in stride(from: 0, to: images.count - 1, by: batch) {
                let idx = Array(start..<min(images.count, start + batch))
                guard idx.count >= 2 else { break }
                let (x1, x2, g, d) = views(images, domains.isEmpty ? [Int](repeating: 0, count: images.count) : domains, idx, rng: &rng)
                total += Double(try model.losses(x1, x2, geometries: g, domains: d).total.item) * Double(idx.count)
                counted += idx.count
            }
        }
        return total / Double(max(1, counted))
    }

    /// The U-Net tensors an encoder file keeps: every tensor of the encoder-decoder except the segmentation heads
    /// (`head.*`, `ds_heads.*`), which pretraining never trains.
    public static func pretrainedTensors(_ unet: UNet) -> [String: Tensor] {
        unet.stateDict.filter { !$0.key.hasPrefix("head.") && !$0.key.hasPrefix("ds_heads.") }
    }

    /// Writes the pretrained U-Net (architecture "hssl-unet", U-Net names, no heads) with its description and
    /// `metadata`: what `medselect train --init-from` and `medselect embed --encoder` read.
    public static func writeEncoder(_ model: HSSLModel, metadata: [String: String], to path: String) throws {
        var meta = metadata
        meta["model"] = ModelDescription(hsslEncoder: model.configuration).json
        meta["format"] = "medselect-state-dict-1"
        try Safetensors.write(pretrainedTensors(model.unet), metadata: meta, to: path)
    }
}

/// Which pretrained tensors fine-tuning starts from.
public enum InitPart: String, Sendable, CaseIterable {
    /// The contracting path and the bottleneck (`down.*`, `bottleneck.*`).
    case encoder
    /// Everything the file holds (a pretrained encoder-decoder: also `upconv.*` and `up.*`; a U-Net checkpoint: also
    /// its heads).
    case all

    public func includes(_ name: String) -> Bool {
        self == .all || name.hasPrefix("down.") || name.hasPrefix("bottleneck.")
    }
}

extension UNet {
    /// Copies pretrained tensors into this U-Net: those of `part` that `tensors` holds (a HSSL encoder file or a
    /// U-Net checkpoint). Every tensor of the part must be there with this network's shape; tensors outside the part
    /// (e.g. the segmentation head) keep their fresh initialisation. Returns the names loaded, sorted.
    @discardableResult
    public func initialize(from tensors: [String: Tensor], part: InitPart, origin: String) throws -> [String] {
        // The heads are loaded when the file has them (a U-Net checkpoint) and otherwise stay fresh (a pretrained file).
        func isHead(_ name: String) -> Bool { name.hasPrefix("head.") || name.hasPrefix("ds_heads.") }
        let own = (namedParameters + namedBuffers).filter { part.includes($0.0) && (!isHead($0.0) || tensors[$0.0] != nil) }
        var loaded: [String] = []
        for (name, t) in own {
            guard let source = tensors[name] else { throw TensorError.checkpoint(path: origin, reason: "lacks '\(name)', which --init-part \(part.rawValue) loads") }
            if name == "down.0.0.weight", source.rank == 4, t.rank == 4, source.shape[1] == 1, t.shape[1] > 1,
               source.shape[0] == t.shape[0], source.shape[2...] == t.shape[2...] {
                // A gray-pretrained first convolution for colour input: each input channel gets the gray kernel times
                // its luminance weight (BT.601 for 3 channels, 1/C otherwise), so that a colour image responds as
                // its luminance image did in pretraining.
                t.data = Self.expandGrayKernel(source.data, outputs: t.shape[0], channels: t.shape[1], kernel: t.shape[2] * t.shape[3])
                loaded.append(name)
                continue
            }
            guard source.shape == t.shape else { throw TensorError.checkpoint(path: origin, reason: "'\(name)' is \(source.shape), this U-Net needs \(t.shape)") }
            t.data = source.data
            loaded.append(name)
        }
        guard !loaded.isEmpty else { throw TensorError.checkpoint(path: origin, reason: "holds none of this U-Net's tensors") }
        return loaded.sorted()
    }

    /// Kernels [O, 1, k] of a gray first convolution as [O, C, k]: channel c gets the kernel times w_c, w = BT.601
    /// luminance weights (0.299, 0.587, 0.114) for C = 3, 1/C otherwise (the weights sum to 1).
    public static func expandGrayKernel(_ gray: [Float], outputs: Int, channels: Int, kernel: Int) -> [Float] {
        let w: [Float] = channels == 3 ? [0.299, 0.587, 0.114] : [Float](repeating: 1 / Float(channels), count: channels)
        var out = [Float](repeating: 0, count: outputs * channels * kernel)
        for o in 0..<outputs { for c in 0..<channels { for k in 0..<kernel { out[(o * channels + c) * kernel + k] = gray[o * kernel + k] * w[c] } } }
        return out
    }
}
