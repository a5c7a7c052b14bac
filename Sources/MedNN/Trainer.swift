import Foundation
import MedTensor

/// 2-D segmentation training data held in memory: images [N, C, H, W] and integer label maps [N, H, W] (as Float).
public struct SegmentationData: Sendable {
    public var images: [Float]
    public var labels: [Float]
    public var count: Int
    public var channels: Int
    public var height: Int
    public var width: Int
    public init(images: [Float], labels: [Float], count: Int, channels: Int, height: Int, width: Int) {
        precondition(images.count == count * channels * height * width && labels.count == count * height * width, "segmentation data sizes")
        self.images = images; self.labels = labels; self.count = count; self.channels = channels; self.height = height; self.width = width
    }
    /// Rows `indices` as a batch (image tensor, labels).
    public func batch(_ indices: [Int]) -> (Tensor, [Float]) {
        let per = channels * height * width, plane = height * width
        var x = [Float](repeating: 0, count: indices.count * per), y = [Float](repeating: 0, count: indices.count * plane)
        for (b, i) in indices.enumerated() {
            for k in 0..<per { x[b * per + k] = images[i * per + k] }
            for k in 0..<plane { y[b * plane + k] = labels[i * plane + k] }
        }
        return (Tensor(shape: [indices.count, channels, height, width], data: x), y)
    }
}

/// Settings of a training run.
public struct TrainingConfig: Sendable, Codable, Equatable {
    public var epochs = 40
    public var batchSize = 8
    public var learningRate: Float = 1e-3
    public var seed: UInt64 = 0
    /// Random horizontal / vertical flips, each with probability 0.5.
    public var flips = true
    /// Random intensity scale in [1 − s, 1 + s] and shift in [−s, s] per image, with probability 0.5 (nnU-Net-like).
    public var intensityJitter: Float = 0.1
    /// Probability of a random rotation (±15°) and scaling (0.85-1.15) per image (image bilinear, labels nearest).
    public var spatialProbability: Float = 0.2
    /// Probability of a gamma change (0.7-1.5, on the image rescaled to [0, 1]) per image.
    public var gammaProbability: Float = 0.3
    /// Probability of added Gaussian noise (standard deviation up to 0.1) per image.
    public var noiseProbability: Float = 0.15
    /// Probability of a Gaussian blur (sigma 0.5-1.5 px) per image.
    public var blurProbability: Float = 0.2
    /// Probability of an elastic deformation (smooth random displacements, up to about a sixteenth of the side).
    public var elasticProbability: Float = 0.1
    /// Share of batch slots given to a random image that contains foreground (nnU-Net oversamples foreground 1/3).
    public var foregroundOversampling: Float = 0.33
    /// Stop when validation Dice has not improved for this many epochs (0: never).
    public var patience = 0
    /// Side of the square images the model was trained on (recorded for prediction).
    public var imageSize: Int? = nil
    /// What the training and validation data were (e.g. a hash of the case ids), so that a run folder is resumed
    /// only with the data it was started with.
    public var dataFingerprint: String? = nil
    public init() {}

    /// The fields that differ from `other`, as "name: ours vs theirs".
    func differences(from other: TrainingConfig) -> [String] {
        let names = ["imageSize": "image size", "batchSize": "batch size", "learningRate": "learning rate", "dataFingerprint": "cases",
                     "intensityJitter": "intensity jitter", "spatialProbability": "spatial augmentation",
                     "gammaProbability": "gamma augmentation", "noiseProbability": "noise augmentation", "blurProbability": "blur augmentation",
                     "elasticProbability": "elastic augmentation", "foregroundOversampling": "foreground oversampling"]
        func text(_ value: Any) -> String {
            let s = "\(value)"
            return s.hasPrefix("Optional(") ? String(s.dropFirst(9).dropLast()) : s
        }
        let a = Mirror(reflecting: self).children, b = Mirror(reflecting: other).children
        return zip(a, b).compactMap { x, y in
            let (u, v) = (text(x.value), text(y.value))
            let name = names[x.label ?? ""] ?? x.label ?? "?"
            return u == v ? nil : "\(name) \(u) (this run) vs \(v) (the folder's run)"
        }
    }

    /// Turns every augmentation off (flips, intensity jitter, spatial, gamma, noise, blur, elastic) and foreground
    /// oversampling: batches show the training images as they are.
    public mutating func disableAugmentation() {
        flips = false; intensityJitter = 0
        spatialProbability = 0; gammaProbability = 0; noiseProbability = 0
        blurProbability = 0; elasticProbability = 0; foregroundOversampling = 0
    }
}

/// Trains a U-Net with Dice + CE, Adam and a poly learning-rate schedule on the shared ``TrainingLoop``; validates
/// (mean foreground Dice of the argmax) after every epoch. Batches: the epoch's shuffled order, with a share of slots
/// given to images that contain foreground, augmented by ``Augmenter``.
public final class Trainer {
    public let model: UNet
    public let config: TrainingConfig
    public let folder: String
    let loop: TrainingLoop<UNet>
    public var history: [EpochRecord] { loop.history }

    public init(model: UNet, config: TrainingConfig, folder: String) {
        self.model = model
        self.config = config
        self.folder = folder
        let configJSON = String(decoding: (try? JSONEncoder().encode(config)) ?? Data(), as: UTF8.self)
        loop = TrainingLoop(model: model, description: ModelDescription(unet: model.configuration),
                            optimizer: Adam(model.parameters, learningRate: config.learningRate), folder: folder, seed: config.seed,
                            configuration: configJSON) { theirs in
            guard let other = try? JSONDecoder().decode(TrainingConfig.self, from: Data(theirs.utf8)) else { return [] }
            return config.differences(from: other)
        }
        loop.validationColumn = "validation_dice"
    }

    var checkpointPath: String { loop.checkpointPath }

    /// Validate after every n-th epoch and the last (``TrainingLoop/validateEvery``; the model is the same for any n).
    public var validateEvery: Int {
        get { loop.validateEvery }
        set { loop.validateEvery = newValue }
    }

    /// Runs (or resumes) training; `progress` receives one line per epoch.
    @discardableResult
    public func fit(train: SegmentationData, validation: SegmentationData?, stopAfterEpoch: Int? = nil,
                    progress: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        let steps = max(1, (train.count + config.batchSize - 1) / config.batchSize)
        let plane = train.height * train.width
        let withForeground = (0..<train.count).filter { i in train.labels[(i * plane)..<((i + 1) * plane)].contains { $0 > 0 } }
        let augmenter = Augmenter(config)
        var order: [Int] = []
        var task = TrainingLoop<UNet>.Task(stepsPerEpoch: steps) { [self] _, s, rng in
            var idx = Array(order[(s * config.batchSize)..<min(train.count, (s + 1) * config.batchSize)])
            if config.foregroundOversampling > 0 && !withForeground.isEmpty {
                for k in idx.indices where Float.random(in: 0..<1, using: &rng) < config.foregroundOversampling {
                    idx[k] = withForeground[Int.random(in: 0..<withForeground.count, using: &rng)]
                }
            }
            guard idx.count > 1 else { return nil }     // batch norm needs two images
            var (x, y) = train.batch(idx)
            augmenter.apply(&x, &y, rng: &rng)
            return try supervisedLoss(x, y)
        }
        task.beginEpoch = { _, rng in
            order = Array(0..<train.count)
            order.shuffle(using: &rng)
        }
        if let validation { task.validate = { [self] in try evaluate(validation) } }
        let schedule = LearningRateSchedule.poly(initial: config.learningRate, totalSteps: config.epochs * steps)
        return try loop.fit(task, epochs: config.epochs, schedule: schedule, patience: config.patience, stopAfterEpoch: stopAfterEpoch,
                            progress: progress)
    }

    /// Dice + CE of the full-resolution output; with deep supervision, plus the auxiliary outputs against labels taken
    /// every 2^k pixels (nearest), weighted 1, 1/2, 1/4, ... and normalised to sum 1 (as nnU-Net does).
    func supervisedLoss(_ x: Tensor, _ y: [Float]) throws -> Tensor {
        guard model.deepSupervision else { return try Loss.diceCE(try model(x), y) }
        let outputs = try model.forwardAll(x)
        let weights = (0..<outputs.count).map { 1 / Float(1 << $0) }
        let total = weights.reduce(0, +)
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        var loss = try Loss.diceCE(outputs[0], y) * (weights[0] / total)
        for k in 1..<outputs.count {
            let f = 1 << k, (hk, wk) = (outputs[k].shape[2], outputs[k].shape[3])
            var yk = [Float](repeating: 0, count: n * hk * wk)
            for b in 0..<n { for j in 0..<hk { for i in 0..<wk { yk[(b * hk + j) * wk + i] = y[(b * h + min(h - 1, j * f)) * w + min(w - 1, i * f)] } } }
            loss = loss + (try Loss.diceCE(outputs[k], yk)) * (weights[k] / total)
        }
        return loss
    }

    /// Label maps (argmax) for images [N, C, H, W], in evaluation mode.
    public func predict(_ data: SegmentationData) throws -> [Float] {
        let wasTraining = model.isTraining
        model.setTraining(false)
        defer { model.setTraining(wasTraining) }
        var out: [Float] = []
        for start in stride(from: 0, to: data.count, by: config.batchSize) {
            let (x, _) = data.batch(Array(start..<min(data.count, start + config.batchSize)))
            let logits = try GradMode.disabled { try model(x) }
            let (n, k, plane) = (logits.shape[0], logits.shape[1], logits.shape[2] * logits.shape[3])
            let v = logits.data
            for b in 0..<n { for p in 0..<plane {
                var best = 0
                for c in 1..<k where v[(b * k + c) * plane + p] > v[(b * k + best) * plane + p] { best = c }
                out.append(Float(best))
            } }
        }
        return out
    }

    /// Mean over images and foreground classes of the Dice of the argmax (an empty prediction of an empty class is 1).
    public func evaluate(_ data: SegmentationData) throws -> Double {
        let pred = try predict(data)
        let plane = data.height * data.width
        var total = 0.0, n = 0
        for b in 0..<data.count {
            for c in 1..<model.classes {
                var inter = 0, p = 0, t = 0
                for k in 0..<plane {
                    let pp = pred[b * plane + k] == Float(c), tt = data.labels[b * plane + k] == Float(c)
                    if pp { p += 1 }; if tt { t += 1 }; if pp && tt { inter += 1 }
                }
                total += p + t == 0 ? 1 : 2 * Double(inter) / Double(p + t)
                n += 1
            }
        }
        return total / Double(max(1, n))
    }
}
