import Foundation
import MedTensor
import MedFoundation

/// Images for self-supervised pretraining held in memory: [count, channels, size, size], row-major.
public struct ImageStack: Sendable {
    public var values: [Float]
    public var count: Int
    public var channels: Int
    public var size: Int
    public init(values: [Float], count: Int, channels: Int, size: Int) {
        precondition(values.count == count * channels * size * size, "image stack of \(count) x \(channels) x \(size)² holds \(values.count) values")
        self.values = values; self.count = count; self.channels = channels; self.size = size
    }
    /// Images `indices` as a batch tensor [k, channels, size, size].
    public func batch(_ indices: [Int]) -> Tensor {
        let per = channels * size * size
        var x = [Float](repeating: 0, count: indices.count * per)
        for (b, i) in indices.enumerated() { for k in 0..<per { x[b * per + k] = values[i * per + k] } }
        return Tensor(shape: [indices.count, channels, size, size], data: x)
    }
}

/// Settings of a masked-autoencoder pretraining run.
public struct PretrainingConfig: Sendable, Codable, Equatable {
    public var epochs = 50
    public var batchSize = 32
    /// Peak learning rate of AdamW, reached after the warm-up, then cosine decay to 0.
    public var learningRate: Float = 5e-4
    public var weightDecay: Float = 0.05
    /// Share of all steps spent warming the learning rate up linearly.
    public var warmupFraction = 0.05
    public var seed: UInt64 = 0
    /// Random horizontal flips (probability 0.5).
    public var flips = true
    /// Random resized crops: a square of area fraction in [cropScale, 1] at a random place, resized back (1: off).
    public var cropScale: Float = 0.5
    /// What the images were (counts and a hash of the case ids), so that a run folder is resumed only with its data.
    public var dataFingerprint: String? = nil
    public init() {}

    enum CodingKeys: String, CodingKey {
        case epochs, batchSize = "batch_size", learningRate = "learning_rate", weightDecay = "weight_decay", warmupFraction = "warmup_fraction"
        case seed, flips, cropScale = "crop_scale", dataFingerprint = "data"
    }

    /// The fields that differ from `other`, as "name: ours vs theirs" (the number of epochs may change: a run can
    /// be extended).
    func differences(from other: PretrainingConfig) -> [String] {
        var out: [String] = []
        func check<T: Equatable>(_ name: String, _ a: T, _ b: T) { if a != b { out.append("\(name) \(a) (this run) vs \(b) (the folder's run)") } }
        check("batch size", batchSize, other.batchSize); check("learning rate", learningRate, other.learningRate)
        check("weight decay", weightDecay, other.weightDecay); check("warm-up", warmupFraction, other.warmupFraction)
        check("seed", seed, other.seed); check("flips", flips, other.flips); check("crop scale", cropScale, other.cropScale)
        check("images", dataFingerprint ?? "", other.dataFingerprint ?? "")
        return out
    }
}

/// Pretrains a ``MaskedAutoencoder`` on the shared ``TrainingLoop``: shuffled batches, random resized crops and flips,
/// fresh masking noise per step (all from the epoch's seeded generator), AdamW without decay on biases, norms and
/// tokens, linear warm-up then cosine decay; validation is the reconstruction loss on held-out images with fixed
/// masks (lower is better).
public final class MAEPretrainer {
    public let model: MaskedAutoencoder
    public let config: PretrainingConfig
    let loop: TrainingLoop<MaskedAutoencoder>
    public var history: [EpochRecord] { loop.history }

    public init(model: MaskedAutoencoder, config: PretrainingConfig, folder: String) {
        self.model = model
        self.config = config
        var optimizer = Adam.adamW(model.parameters, learningRate: config.learningRate, weightDecay: config.weightDecay)
        optimizer.decays = model.decayMask
        optimizer.beta2 = 0.95   // the MAE recipe's betas (0.9, 0.95)
        let configJSON = String(decoding: (try? JSONEncoder().encode(config)) ?? Data(), as: UTF8.self)
        loop = TrainingLoop(model: model, description: ModelDescription(mae: model.configuration), optimizer: optimizer, folder: folder,
                            seed: config.seed, configuration: configJSON) { theirs in
            guard let other = try? JSONDecoder().decode(PretrainingConfig.self, from: Data(theirs.utf8)) else { return [] }
            return config.differences(from: other)
        }
        loop.validationColumn = "validation_loss"
    }

    public var checkpointPath: String { loop.checkpointPath }

    /// Runs (or resumes) pretraining. `epochEnded` receives each epoch's record; `stepEnded` (epoch, step, steps per
    /// epoch, loss) every step.
    @discardableResult
    public func fit(train: ImageStack, validation: ImageStack?, stopAfterEpoch: Int? = nil,
                    stepEnded: ((Int, Int, Int, Float) -> Void)? = nil, epochEnded: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        let c = model.configuration
        guard train.channels == c.channels, train.size == c.imageSize else {
            throw TensorError.shapeMismatch("images of \(train.channels) channel(s) at \(train.size) px for a model of \(c.channels) at \(c.imageSize) px")
        }
        let steps = max(1, train.count / config.batchSize)      // full batches only
        let batch = min(config.batchSize, train.count)
        var order: [Int] = []
        var task = TrainingLoop<MaskedAutoencoder>.Task(stepsPerEpoch: steps) { [self] _, s, rng in
            let idx = Array(order[(s * batch)..<((s + 1) * batch)])
            var x = train.batch(idx)
            augment(&x, rng: &rng)
            return try model.forward(x, noise: model.noise(batch: idx.count, rng: &rng)).loss
        }
        task.beginEpoch = { _, rng in
            order = Array(0..<train.count)
            order.shuffle(using: &rng)
        }
        task.higherIsBetter = false
        if let validation, validation.count > 0 { task.validate = { [self] in try validationLoss(validation) } }
        if let stepEnded { task.stepEnded = { e, s, l in stepEnded(e, s, steps, l) } }
        let total = config.epochs * steps
        let schedule = LearningRateSchedule.cosine(initial: config.learningRate, warmupSteps: max(1, Int(Double(total) * config.warmupFraction)),
                                                   totalSteps: total)
        return try loop.fit(task, epochs: config.epochs, schedule: schedule, stopAfterEpoch: stopAfterEpoch, progress: epochEnded)
    }

    /// Random resized crop (square, area fraction in [cropScale, 1], bilinear) and horizontal flip per image.
    func augment(_ x: inout Tensor, rng: inout SplitMix64) {
        guard config.cropScale < 1 || config.flips else { return }
        let (n, c, s) = (x.shape[0], x.shape[1], x.shape[2])
        var data = x.data
        for b in 0..<n {
            let area = config.cropScale < 1 ? Float.random(in: config.cropScale...1, using: &rng) : 1
            let side = Float(s) * area.squareRoot()
            let x0 = Float.random(in: 0...(Float(s) - side), using: &rng), y0 = Float.random(in: 0...(Float(s) - side), using: &rng)
            let flip = config.flips && Bool.random(using: &rng)
            guard area < 1 || flip else { continue }
            let step = side / Float(s)
            for ch in 0..<c {
                let base = (b * c + ch) * s * s
                let src = Array(data[base..<(base + s * s)])
                src.withUnsafeBufferPointer { src in
                    for j in 0..<s { for i in 0..<s {
                        let sx = x0 + (Float(flip ? s - 1 - i : i) + 0.5) * step - 0.5, sy = y0 + (Float(j) + 0.5) * step - 0.5
                        data[base + j * s + i] = bilinear(src.baseAddress!, width: s, height: s, x: sx, y: sy)
                    } }
                }
            }
        }
        x = Tensor(shape: x.shape, data: data)
    }

    /// Fixed masking noise for held-out image i (the same in every epoch and run).
    func validationNoise(_ i: Int) -> [Float] {
        var g = SplitMix64(seed: config.seed ^ 0x5eed_0f_7a11 &+ UInt64(i) &* 0x9E37_79B9)
        return model.noise(batch: 1, rng: &g)[0]
    }

    /// Mean reconstruction loss over `images` (each with its fixed mask), in evaluation mode, without gradients.
    public func validationLoss(_ images: ImageStack) throws -> Double {
        var total = 0.0
        try GradMode.disabled {
            for start in stride(from: 0, to: images.count, by: config.batchSize) {
                let idx = Array(start..<min(images.count, start + config.batchSize))
                let (loss, _, _) = try model.forward(images.batch(idx), noise: idx.map(validationNoise))
                total += Double(loss.item) * Double(idx.count)
            }
        }
        return total / Double(max(1, images.count))
    }

    /// For a preview: each image as the encoder saw it (hidden patches set to the image minimum) and its
    /// reconstruction (visible patches as they were, hidden ones from the decoder; per-patch normalised predictions
    /// brought back to the patch's own mean and spread). Both [k, channels, size, size].
    public func reconstructions(_ images: ImageStack) throws -> (masked: [Float], reconstructed: [Float]) {
        let c = model.configuration, p = c.patch, g = c.imageSize / p, per = c.channels * p * p
        let idx = Array(0..<images.count)
        let x = images.batch(idx)
        let (_, predicted, mask) = try GradMode.disabled { try model.forward(x, noise: idx.map(validationNoise)) }
        let pred = predicted.data, original = images.values
        var masked = original, rebuilt = original
        let low = original.min() ?? 0
        for b in idx { for patch in 0..<(g * g) where mask[b][patch] != 0 {
            let (py0, px0) = ((patch / g) * p, (patch % g) * p)
            var values: [Float] = []
            for ch in 0..<c.channels { for y in 0..<p { for xx in 0..<p {
                values.append(original[((b * c.channels + ch) * c.imageSize + py0 + y) * c.imageSize + px0 + xx])
            } } }
            let mean = values.reduce(0, +) / Float(values.count)
            let sd = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(max(1, values.count - 1)) + 1e-6).squareRoot()
            for ch in 0..<c.channels { for y in 0..<p { for xx in 0..<p {
                let k = ((b * c.channels + ch) * c.imageSize + py0 + y) * c.imageSize + px0 + xx
                var v = pred[(b * (g * g + 1) + 1 + patch) * per + (y * p + xx) * c.channels + ch]
                if c.normalizedTargets { v = v * sd + mean }
                masked[k] = low
                rebuilt[k] = v
            } } }
        } }
        return (masked, rebuilt)
    }

    /// Writes the encoder (patch embedding, class token, positions, blocks, final norm) with its description
    /// (architecture "mae-encoder") and `metadata`: what `medselect embed --encoder` reads.
    public static func writeEncoder(_ model: MaskedAutoencoder, metadata: [String: String], to path: String) throws {
        var meta = metadata
        meta["model"] = ModelDescription(mae: model.configuration, encoderOnly: true).json
        meta["format"] = "medselect-state-dict-1"
        try Safetensors.write(model.encoderStateDict, metadata: meta, to: path)
    }

    /// A model whose encoder holds the weights of an encoder file (the decoder stays as initialised).
    public static func loadEncoder(_ path: String) throws -> (MaskedAutoencoder, [String: String]) {
        let (tensors, description, metadata) = try ModelFile.read(path)
        guard let configuration = description.mae, description.architecture == "mae-encoder" || description.architecture == "mae" else {
            throw TensorError.checkpoint(path: path, reason: "holds a \(description.summary), not a masked-autoencoder encoder")
        }
        if let problem = configuration.problem { throw TensorError.checkpoint(path: path, reason: "its model description is invalid: \(problem)") }
        let model = MaskedAutoencoder(configuration)
        for (name, t) in model.encoderStateDict {
            guard let source = tensors[name] else { throw TensorError.checkpoint(path: path, reason: "lacks the encoder tensor '\(name)'") }
            guard source.shape == t.shape else { throw TensorError.checkpoint(path: path, reason: "'\(name)' is \(source.shape), the encoder needs \(t.shape)") }
            t.data = source.data
        }
        return (model, metadata)
    }
}
