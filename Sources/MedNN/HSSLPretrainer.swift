import Foundation
import MedTensor
import MedFoundation

// HSSL's pretraining: its configuration and the training loop over pairs of views (HSSLViews.swift).

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
