import Foundation
import MedTensor
import MedFoundation

/// One row of a training history. `validation` is the epoch's validation score (Dice for segmentation,
/// reconstruction loss for a masked autoencoder); NaN when there is no validation data (null in JSON).
public struct EpochRecord: Sendable, Codable, Equatable {
    public var epoch: Int
    public var trainLoss: Double
    public var validation: Double
    public var learningRate: Double
    public var seconds: Double

    /// The validation score of a segmentation run (mean foreground Dice).
    public var validationDice: Double { validation }

    public init(epoch: Int, trainLoss: Double, validation: Double, learningRate: Double, seconds: Double) {
        self.epoch = epoch; self.trainLoss = trainLoss; self.validation = validation; self.learningRate = learningRate; self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey { case epoch, trainLoss = "train_loss", validation, learningRate = "learning_rate", seconds }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try c.decode(Int.self, forKey: .epoch)
        trainLoss = try c.decodeIfPresent(Double.self, forKey: .trainLoss) ?? .nan
        validation = try c.decodeIfPresent(Double.self, forKey: .validation) ?? .nan
        learningRate = try c.decode(Double.self, forKey: .learningRate)
        seconds = try c.decode(Double.self, forKey: .seconds)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(trainLoss.isFinite ? trainLoss : nil, forKey: .trainLoss)
        try c.encode(validation.isFinite ? validation : nil, forKey: .validation)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(seconds, forKey: .seconds)
    }

    public static func == (a: EpochRecord, b: EpochRecord) -> Bool {
        a.epoch == b.epoch && a.learningRate == b.learningRate && a.seconds == b.seconds
            && (a.trainLoss == b.trainLoss || (a.trainLoss.isNaN && b.trainLoss.isNaN))
            && (a.validation == b.validation || (a.validation.isNaN && b.validation.isNaN))
    }
}

/// Why training cannot go on.
public enum TrainingError: MedError, Sendable {
    /// The run folder holds a checkpoint of a different configuration or model.
    case differentRun(path: String, differences: [String])
    /// A run asked to train for no epoch at all.
    case noEpoch(path: String)

    public var path: String { switch self { case .differentRun(let path, _), .noEpoch(let path): return path } }
    public var reason: String {
        switch self {
        case .noEpoch:
            return "no epoch was run"
        case .differentRun(_, let d):
            return "holds a run with another configuration (\(d.joined(separator: "; "))): resume it with the same options, "
                + "or use another --out folder (or delete this one)"
        }
    }
}

/// The loop every model trains with, whatever its data and loss: epochs of steps, each step's random draws from a
/// generator seeded by (seed, epoch) so that a resumed run repeats exactly what the interrupted one would have done;
/// the learning rate from a schedule over all steps; Adam or AdamW; validation after each epoch; early stopping; the
/// run's state (``TrainingState``) and `history.csv` written atomically after every epoch, and resumed from.
///
/// What is specific to a model comes in as closures: ``Task/beginEpoch`` (e.g. shuffle), ``Task/step`` (a batch's
/// loss, or nil to skip the slot) and ``Task/validate``.
public final class TrainingLoop<Model: Layer> {
    /// What a run does in each epoch.
    public struct Task {
        public var stepsPerEpoch: Int
        /// Called at the start of each epoch with that epoch's generator (before any step draws from it).
        public var beginEpoch: (_ epoch: Int, _ rng: inout SplitMix64) throws -> Void = { _, _ in }
        /// The loss of one step (the loop zeroes gradients, back-propagates and updates), or nil to skip it.
        public var step: (_ epoch: Int, _ step: Int, _ rng: inout SplitMix64) throws -> Tensor?
        /// The validation score after an epoch (nil: no validation).
        public var validate: (() throws -> Double)? = nil
        /// Whether a higher validation score is better (Dice) or a lower one (a loss); for early stopping.
        public var higherIsBetter = true
        /// Called after every optimiser step with (epoch, step, loss): progress within long epochs.
        public var stepEnded: ((_ epoch: Int, _ step: Int, _ loss: Float) -> Void)? = nil
        public init(stepsPerEpoch: Int, step: @escaping (_ epoch: Int, _ step: Int, _ rng: inout SplitMix64) throws -> Tensor?) {
            self.stepsPerEpoch = stepsPerEpoch; self.step = step
        }
    }

    public let model: Model
    public let description: ModelDescription
    public let folder: String
    public var optimizer: Adam
    public let seed: UInt64
    /// The run's configuration as JSON (stored in the checkpoint, compared on resume) and how two differ.
    let configuration: String
    let differences: (String) -> [String]
    /// Header of the validation column in history.csv ("validation_dice", "validation_loss").
    public var validationColumn = "validation"
    /// Validate after every n-th epoch and after the last (1: every epoch); the epochs between record NaN. Validation
    /// never changes the weights (evaluation mode, its own random numbers untouched), so the trained model is the same
    /// for every n (tested): a larger n only makes the curve coarser and training cheaper when the validation set is
    /// large against the training set.
    public var validateEvery = 1
    public private(set) var history: [EpochRecord] = []

    /// `configuration` is the run's settings as JSON; `differences` lists how a stored run's settings (JSON) differ
    /// from this one's, as "name: ours vs theirs" (empty when the run may be resumed).
    public init(model: Model, description: ModelDescription, optimizer: Adam, folder: String, seed: UInt64,
                configuration: String, differences: @escaping (String) -> [String]) {
        self.model = model; self.description = description; self.optimizer = optimizer; self.folder = folder; self.seed = seed
        self.configuration = configuration; self.differences = differences
    }

    public var checkpointPath: String { TrainingState.checkpointPath(folder) }

    /// The generator of an epoch's random draws.
    public func generator(epoch: Int) -> SplitMix64 { SplitMix64(seed: seed &* 0x9E37_79B9 &+ UInt64(epoch) &+ 1) }

    /// Runs (or resumes) `epochs` epochs of `task`; `progress` receives each epoch's record. `stopAfterEpoch`
    /// simulates an interruption (tests).
    @discardableResult
    public func fit(_ task: Task, epochs: Int, schedule: LearningRateSchedule, patience: Int = 0, stopAfterEpoch: Int? = nil,
                    progress: ((EpochRecord) -> Void)? = nil) throws -> [EpochRecord] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var start = 0
        if FileManager.default.fileExists(atPath: checkpointPath) {
            try checkSameRun()
            start = try restore()
        }
        let steps = max(1, task.stepsPerEpoch)
        func better(_ a: Double, than b: Double) -> Bool { task.higherIsBetter ? a > b + 1e-4 : a < b - 1e-4 }
        var best = history.map(\.validation).filter(\.isFinite).reduce(nil as Double?) { b, v in b.map { better(v, than: $0) ? v : $0 } ?? v }
        var sinceBest = 0
        for epoch in start..<epochs {
            let t0 = Date()
            var rng = generator(epoch: epoch)
            model.setTraining(true)
            try task.beginEpoch(epoch, &rng)
            var lossSum = 0.0, counted = 0
            for s in 0..<steps {
                optimizer.learningRate = schedule.rate(at: epoch * steps + s)
                guard let loss = try task.step(epoch, s, &rng) else { continue }
                optimizer.zeroGrad()
                loss.backward()
                optimizer.step()
                lossSum += Double(loss.item); counted += 1
                task.stepEnded?(epoch, s, loss.item)
            }
            let validating = (epoch + 1) % max(1, validateEvery) == 0 || epoch + 1 == epochs
            var score = Double.nan
            if validating {
                model.setTraining(false)
                score = try task.validate?() ?? .nan
                model.setTraining(true)
            }
            let record = EpochRecord(epoch: epoch + 1, trainLoss: counted > 0 ? lossSum / Double(counted) : .nan, validation: score,
                                     learningRate: Double(optimizer.learningRate), seconds: Date().timeIntervalSince(t0))
            history.append(record)
            try save(epoch: epoch + 1)
            progress?(record)
            if score.isFinite, best.map({ better(score, than: $0) }) ?? true { best = score; sinceBest = 0 } else if validating { sinceBest += 1 }
            if patience > 0 && sinceBest >= patience { break }
            if let stop = stopAfterEpoch, epoch + 1 >= stop { break }
        }
        return history
    }

    func save(epoch: Int) throws {
        let meta = ["config": configuration, "history": String(decoding: try JSONEncoder().encode(history), as: UTF8.self)]
        try TrainingState.save(folder: folder, model: model, description: description, optimizer: optimizer, epoch: epoch, metadata: meta)
        var csv = "epoch,train_loss,\(validationColumn),learning_rate,seconds\n"
        for r in history { csv += "\(r.epoch),\(r.trainLoss),\(r.validation),\(r.learningRate),\(r.seconds)\n" }
        try AtomicFile.write(csv, to: folder + "/history.csv")
    }

    /// Refuses to resume from a checkpoint of another configuration or model (a new run into an old folder).
    func checkSameRun() throws {
        let meta = try Safetensors.read(checkpointPath).metadata
        let theirs = try ModelDescription.from(meta, path: checkpointPath)
        var found: [String] = []
        if theirs != description { found.append("model \(description.summary) (this run) vs \(theirs.summary) (the folder's run)") }
        if let c = meta["config"] { found += differences(c) }
        if !found.isEmpty { throw TrainingError.differentRun(path: folder, differences: found) }
    }

    /// Loads the run's state; returns the number of completed epochs.
    func restore() throws -> Int {
        let (epoch, meta) = try TrainingState.restore(folder: folder, model: model, optimizer: &optimizer)
        if let h = meta["history"], let records = try? JSONDecoder().decode([EpochRecord].self, from: Data(h.utf8)) { history = records }
        return epoch
    }
}
