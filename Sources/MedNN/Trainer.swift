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

/// Why training cannot go on.
public enum TrainingError: Error, Sendable, CustomStringConvertible {
    /// The run folder holds a checkpoint of a different configuration or model.
    case differentRun(path: String, differences: [String])

    public var description: String {
        switch self {
        case .differentRun(let path, let d):
            return "\(path): holds a run with another configuration (\(d.joined(separator: "; "))): resume it with the same options, "
                + "or use another --out folder (or delete this one)"
        }
    }
}

/// One row of the training history. `validationDice` is NaN when there are no validation cases (stored as null in
/// the checkpoint's JSON, which has no NaN).
public struct EpochRecord: Sendable, Codable, Equatable {
    public var epoch: Int
    public var trainLoss: Double
    public var validationDice: Double
    public var learningRate: Double
    public var seconds: Double

    public init(epoch: Int, trainLoss: Double, validationDice: Double, learningRate: Double, seconds: Double) {
        self.epoch = epoch; self.trainLoss = trainLoss; self.validationDice = validationDice; self.learningRate = learningRate; self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey { case epoch, trainLoss, validationDice, learningRate, seconds }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try c.decode(Int.self, forKey: .epoch)
        trainLoss = try c.decodeIfPresent(Double.self, forKey: .trainLoss) ?? .nan
        validationDice = try c.decodeIfPresent(Double.self, forKey: .validationDice) ?? .nan
        learningRate = try c.decode(Double.self, forKey: .learningRate)
        seconds = try c.decode(Double.self, forKey: .seconds)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(trainLoss.isFinite ? trainLoss : nil, forKey: .trainLoss)
        try c.encode(validationDice.isFinite ? validationDice : nil, forKey: .validationDice)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(seconds, forKey: .seconds)
    }

    public static func == (a: EpochRecord, b: EpochRecord) -> Bool {
        a.epoch == b.epoch && a.learningRate == b.learningRate && a.seconds == b.seconds
            && (a.trainLoss == b.trainLoss || (a.trainLoss.isNaN && b.trainLoss.isNaN))
            && (a.validationDice == b.validationDice || (a.validationDice.isNaN && b.validationDice.isNaN))
    }
}

/// Trains a U-Net with Dice + CE, Adam and a poly learning-rate schedule; validates (mean foreground Dice of the
/// argmax) after every epoch; writes the run's state (``TrainingState``: weights and running statistics under
/// PyTorch's names, Adam's state beside them) and `history.csv` atomically after every epoch and resumes from them. Shuffling and augmentation draw from a
/// generator seeded by (seed, epoch), so a resumed run repeats exactly what the interrupted one would have done.
public final class Trainer {
    public let model: UNet
    public let config: TrainingConfig
    public let folder: String
    public private(set) var history: [EpochRecord] = []
    var optimizer: Adam

    public init(model: UNet, config: TrainingConfig, folder: String) {
        self.model = model
        self.config = config
        self.folder = folder
        optimizer = Adam(model.parameters, learningRate: config.learningRate)
    }

    var checkpointPath: String { TrainingState.checkpointPath(folder) }

    /// Runs (or resumes) training; `progress` receives one line per epoch.
    @discardableResult
    public func fit(train: SegmentationData, validation: SegmentationData?, stopAfterEpoch: Int? = nil,
                    progress: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var start = 0
        if FileManager.default.fileExists(atPath: checkpointPath) {
            try checkSameRun()
            start = try restore()
        }
        let steps = max(1, (train.count + config.batchSize - 1) / config.batchSize)
        let schedule = LearningRateSchedule.poly(initial: config.learningRate, totalSteps: config.epochs * steps)
        var best = history.map(\.validationDice).max() ?? -1, sinceBest = 0
        for epoch in start..<config.epochs {
            let t0 = Date()
            var rng = InitRandom(seed: config.seed &* 0x9E37_79B9 &+ UInt64(epoch) &+ 1)
            var order = Array(0..<train.count)
            order.shuffle(using: &rng)
            model.setTraining(true)
            var lossSum = 0.0
            let plane = train.height * train.width
            let withForeground = (0..<train.count).filter { i in train.labels[(i * plane)..<((i + 1) * plane)].contains { $0 > 0 } }
            for s in 0..<steps {
                var idx = Array(order[(s * config.batchSize)..<min(train.count, (s + 1) * config.batchSize)])
                if config.foregroundOversampling > 0 && !withForeground.isEmpty {
                    for k in idx.indices where Float.random(in: 0..<1, using: &rng) < config.foregroundOversampling {
                        idx[k] = withForeground[Int.random(in: 0..<withForeground.count, using: &rng)]
                    }
                }
                guard idx.count > 1 else { continue }     // batch norm needs two images
                var (x, y) = train.batch(idx)
                augment(&x, &y, rng: &rng)
                optimizer.learningRate = schedule.rate(at: epoch * steps + s)
                optimizer.zeroGrad()
                let loss = try supervisedLoss(x, y)
                loss.backward()
                optimizer.step()
                lossSum += Double(loss.item)
            }
            let dice = try validation.map { try evaluate($0) } ?? .nan
            let record = EpochRecord(epoch: epoch + 1, trainLoss: lossSum / Double(steps), validationDice: dice,
                                     learningRate: Double(optimizer.learningRate), seconds: Date().timeIntervalSince(t0))
            history.append(record)
            try save(epoch: epoch + 1)
            progress?(record)
            if dice > best + 1e-4 { best = dice; sinceBest = 0 } else { sinceBest += 1 }
            if config.patience > 0 && sinceBest >= config.patience { break }
            if let stop = stopAfterEpoch, epoch + 1 >= stop { break }     // a simulated interruption (tests)
        }
        return history
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

    /// Per image, each with its probability: rotation and scaling, flips (W and H), gamma, intensity jitter, noise.
    /// Every draw comes from `rng`, so the augmentation is reproducible.
    public func augment(_ x: inout Tensor, _ y: inout [Float], rng: inout InitRandom) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var data = x.data
        let plane = h * w
        for b in 0..<n {
            // Spatial: inverse-map every output pixel through the rotation and scale about the centre.
            if config.spatialProbability > 0 && Float.random(in: 0..<1, using: &rng) < config.spatialProbability {
                let angle = Double.random(in: -15...15, using: &rng) * .pi / 180, scale = Double.random(in: 0.85...1.15, using: &rng)
                let (ca, sa) = (cos(angle) / scale, sin(angle) / scale)
                let (cx, cy) = (Double(w - 1) / 2, Double(h - 1) / 2)
                let labels = Array(y[(b * plane)..<((b + 1) * plane)])
                for ch in 0..<c {
                    let base = (b * c + ch) * plane
                    let src = Array(data[base..<(base + plane)])
                    for j in 0..<h { for i in 0..<w {
                        let dx = Double(i) - cx, dy = Double(j) - cy
                        let sx = ca * dx + sa * dy + cx, sy = -sa * dx + ca * dy + cy
                        let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                        let fx = Float(sx - Double(x0)), fy = Float(sy - Double(y0))
                        func at(_ yy: Int, _ xx: Int) -> Float { src[min(max(yy, 0), h - 1) * w + min(max(xx, 0), w - 1)] }
                        data[base + j * w + i] = (at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx) * (1 - fy) + (at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx) * fy
                        if ch == 0 {
                            let nx = Int(sx.rounded()), ny = Int(sy.rounded())
                            y[b * plane + j * w + i] = nx >= 0 && nx < w && ny >= 0 && ny < h ? labels[ny * w + nx] : 0
                        }
                    } }
                }
            }
            if config.elasticProbability > 0 && Float.random(in: 0..<1, using: &rng) < config.elasticProbability {
                elastic(&data, &y, b, c: c, h: h, w: w, rng: &rng)
            }
            if config.blurProbability > 0 && Float.random(in: 0..<1, using: &rng) < config.blurProbability {
                let sigma = Float.random(in: 0.5...1.5, using: &rng)
                for ch in 0..<c { Trainer.blur(&data, base: (b * c + ch) * plane, h: h, w: w, sigma: sigma) }
            }
            let flipX = config.flips && Bool.random(using: &rng), flipY = config.flips && Bool.random(using: &rng)
            let jitter = config.intensityJitter > 0 && Bool.random(using: &rng)
            let scale = jitter ? Float.random(in: (1 - config.intensityJitter)...(1 + config.intensityJitter), using: &rng) : 1
            let shift = jitter ? Float.random(in: -config.intensityJitter...config.intensityJitter, using: &rng) : 0
            let gamma: Float? = config.gammaProbability > 0 && Float.random(in: 0..<1, using: &rng) < config.gammaProbability
                ? Float.random(in: 0.7...1.5, using: &rng) : nil
            let noise: Float? = config.noiseProbability > 0 && Float.random(in: 0..<1, using: &rng) < config.noiseProbability
                ? Float.random(in: 0...0.1, using: &rng) : nil
            if flipX || flipY || jitter {
                for ch in 0..<c {
                    let base = (b * c + ch) * plane
                    let src = Array(data[base..<(base + plane)])
                    for j in 0..<h { for i in 0..<w {
                        let sj = flipY ? h - 1 - j : j, si = flipX ? w - 1 - i : i
                        data[base + j * w + i] = src[sj * w + si] * scale + shift
                    } }
                }
                if flipX || flipY {
                    let base = b * plane
                    let src = Array(y[base..<(base + plane)])
                    for j in 0..<h { for i in 0..<w { y[base + j * w + i] = src[(flipY ? h - 1 - j : j) * w + (flipX ? w - 1 - i : i)] } }
                }
            }
            if let gamma {
                // nnU-Net's gamma: rescale to [0, 1], apply, scale back.
                for ch in 0..<c {
                    let base = (b * c + ch) * plane
                    let lo = data[base..<(base + plane)].min()!, hi = data[base..<(base + plane)].max()!
                    guard hi > lo else { continue }
                    for k in base..<(base + plane) { data[k] = lo + (hi - lo) * Foundation.pow((data[k] - lo) / (hi - lo), gamma) }
                }
            }
            if let noise {
                for k in (b * c * plane)..<((b + 1) * c * plane) {
                    let u1 = max(Float.random(in: 0..<1, using: &rng), 1e-7), u2 = Float.random(in: 0..<1, using: &rng)
                    data[k] += noise * (-2 * Foundation.log(u1)).squareRoot() * cos(2 * .pi * u2)
                }
            }
        }
        x = Tensor(shape: x.shape, data: data)
    }

    /// Elastic deformation of image b: displacements drawn per pixel, smoothed (sigma = side / 16), scaled to at
    /// most about side / 16 pixels; image bilinear, labels nearest.
    func elastic(_ data: inout [Float], _ y: inout [Float], _ b: Int, c: Int, h: Int, w: Int, rng: inout InitRandom) {
        let plane = h * w
        var dx = (0..<plane).map { _ in Float.random(in: -1...1, using: &rng) }, dy = (0..<plane).map { _ in Float.random(in: -1...1, using: &rng) }
        let sigma = Float(max(h, w)) / 16
        Trainer.blur(&dx, base: 0, h: h, w: w, sigma: sigma)
        Trainer.blur(&dy, base: 0, h: h, w: w, sigma: sigma)
        let peak = max(1e-6, max(dx.map(abs).max()!, dy.map(abs).max()!))
        let amplitude = Float(max(h, w)) / 16 / peak
        let labels = Array(y[(b * plane)..<((b + 1) * plane)])
        for ch in 0..<c {
            let base = (b * c + ch) * plane
            let src = Array(data[base..<(base + plane)])
            for j in 0..<h { for i in 0..<w {
                let sx = Float(i) + dx[j * w + i] * amplitude, sy = Float(j) + dy[j * w + i] * amplitude
                let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down)), fx = sx - Float(x0), fy = sy - Float(y0)
                func at(_ yy: Int, _ xx: Int) -> Float { src[min(max(yy, 0), h - 1) * w + min(max(xx, 0), w - 1)] }
                data[base + j * w + i] = (at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx) * (1 - fy) + (at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx) * fy
                if ch == 0 {
                    let nx = min(max(Int(sx.rounded()), 0), w - 1), ny = min(max(Int(sy.rounded()), 0), h - 1)
                    y[b * plane + j * w + i] = labels[ny * w + nx]
                }
            } }
        }
    }

    /// Approximate Gaussian blur of one plane in place (three box passes per axis, edges clamped).
    static func blur(_ data: inout [Float], base: Int, h: Int, w: Int, sigma: Float) {
        let r = max(1, Int(((4 * sigma * sigma + 1).squareRoot() - 1) / 2 + 0.5))
        let inv = 1 / Float(2 * r + 1)
        func pass(_ line: inout [Float]) {
            let n = line.count
            var out = line
            var acc: Float = 0
            for k in -r...r { acc += line[min(max(k, 0), n - 1)] }
            for i in 0..<n { out[i] = acc * inv; acc += line[min(i + r + 1, n - 1)] - line[max(i - r, 0)] }
            line = out
        }
        for j in 0..<h {
            var line = Array(data[(base + j * w)..<(base + (j + 1) * w)])
            for _ in 0..<3 { pass(&line) }
            for i in 0..<w { data[base + j * w + i] = line[i] }
        }
        for i in 0..<w {
            var line = (0..<h).map { data[base + $0 * w + i] }
            for _ in 0..<3 { pass(&line) }
            for j in 0..<h { data[base + j * w + i] = line[j] }
        }
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

    // MARK: checkpoints

    func save(epoch: Int) throws {
        let enc = JSONEncoder()
        let meta = ["config": String(decoding: try enc.encode(config), as: UTF8.self),
                    "history": String(decoding: try enc.encode(history), as: UTF8.self)]
        try TrainingState.save(folder: folder, model: model, description: modelDescription, optimizer: optimizer, epoch: epoch, metadata: meta)
        var csv = "epoch,train_loss,validation_dice,learning_rate,seconds\n"
        for r in history { csv += "\(r.epoch),\(r.trainLoss),\(r.validationDice),\(r.learningRate),\(r.seconds)\n" }
        let tmp = folder + "/history.csv.tmp"
        try csv.write(toFile: tmp, atomically: false, encoding: .utf8)
        _ = rename(tmp, folder + "/history.csv")
    }

    /// The model description written into checkpoints.
    var modelDescription: ModelDescription { ModelDescription(unet: model.configuration) }

    /// Refuses to resume from a checkpoint of another configuration or model (a new run into an old folder).
    func checkSameRun() throws {
        let meta = try Safetensors.read(checkpointPath).metadata
        let theirs = try ModelDescription.from(meta, path: checkpointPath)
        var differences: [String] = []
        if theirs != modelDescription {
            differences.append("model \(model.configuration.summary) (this run) vs \(theirs.unet?.summary ?? theirs.architecture) (the folder's run)")
        }
        if let c = meta["config"], let theirs = try? JSONDecoder().decode(TrainingConfig.self, from: Data(c.utf8)) {
            differences += config.differences(from: theirs)
        }
        if !differences.isEmpty { throw TrainingError.differentRun(path: folder, differences: differences) }
    }

    /// Loads the checkpoint; returns the number of completed epochs.
    func restore() throws -> Int {
        let (epoch, meta) = try TrainingState.restore(folder: folder, model: model, optimizer: &optimizer)
        if let h = meta["history"], let records = try? JSONDecoder().decode([EpochRecord].self, from: Data(h.utf8)) { history = records }
        return epoch
    }
}
