import Foundation
import Testing
import TestSupport
import MedNN
@testable import MedTensor
import MedFoundation

/// Squares on noise: the label is the bright square.
func squares(_ n: Int, size: Int, seed: UInt64) -> SegmentationData {
    var g = SplitMix(state: seed)
    var images = [Float](), labels = [Float]()
    for _ in 0..<n {
        let x0 = Int.random(in: 1..<(size / 2), using: &g), y0 = Int.random(in: 1..<(size / 2), using: &g), s = Int.random(in: 3...(size / 2 - 1), using: &g)
        for j in 0..<size { for i in 0..<size {
            let inside = i >= x0 && i < x0 + s && j >= y0 && j < y0 + s
            images.append((inside ? 1 : 0) + Float.random(in: -0.3...0.3, using: &g))
            labels.append(inside ? 1 : 0)
        } }
    }
    return SegmentationData(images: images, labels: labels, count: n, channels: 1, height: size, width: size)
}

@Suite("Training")
struct TrainerTests {
    @Test("an interrupted run resumed from its checkpoint ends with exactly the weights of an uninterrupted run")
    func resume() throws {
        let scratch = Scratch("trainer-resume")
        defer { scratch.cleanup() }
        let data = squares(6, size: 16, seed: 1)
        var config = TrainingConfig()
        config.epochs = 3; config.batchSize = 3; config.learningRate = 1e-2; config.seed = 5
        let straight = Trainer(model: UNet(base: 2, levels: 2, seed: 7), config: config, folder: scratch.file("a"))
        try straight.fit(train: data, validation: data)
        // Interrupted after epoch 1, then a new process (a fresh model with other initial weights) resumes.
        try Trainer(model: UNet(base: 2, levels: 2, seed: 7), config: config, folder: scratch.file("b")).fit(train: data, validation: data, stopAfterEpoch: 1)
        let resumed = Trainer(model: UNet(base: 2, levels: 2, seed: 123), config: config, folder: scratch.file("b"))
        try resumed.fit(train: data, validation: data)
        for ((name, a), (_, b)) in zip(straight.model.stateDict.sorted { $0.key < $1.key }, resumed.model.stateDict.sorted { $0.key < $1.key }) {
            #expect(a.data == b.data, "\(name) differs after resuming")   // parameters and running statistics
        }
        // One optimiser state file, the latest epoch's, beside the checkpoint.
        let files = try FileManager.default.contentsOfDirectory(atPath: scratch.file("b")).filter { $0.hasPrefix("optimizer-") }
        #expect(files == ["optimizer-0003.safetensors"])
        #expect(resumed.history.count == 3 && resumed.history.map(\.trainLoss) == straight.history.map(\.trainLoss))
        let csv = try String(contentsOfFile: scratch.file("b/history.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 4)
    }

    @Test("validating every third epoch trains exactly the same weights as validating every epoch; the skipped epochs record NaN")
    func validateEvery() throws {
        let scratch = Scratch("trainer-validate-every")
        defer { scratch.cleanup() }
        let data = squares(6, size: 16, seed: 2), held = squares(4, size: 16, seed: 3)
        var config = TrainingConfig()
        config.epochs = 5; config.batchSize = 3; config.learningRate = 1e-2; config.seed = 9
        let every = Trainer(model: UNet(base: 2, levels: 2, seed: 4), config: config, folder: scratch.file("a"))
        try every.fit(train: data, validation: held)
        let third = Trainer(model: UNet(base: 2, levels: 2, seed: 4), config: config, folder: scratch.file("b"))
        third.validateEvery = 3
        try third.fit(train: data, validation: held)
        for ((name, a), (_, b)) in zip(every.model.stateDict.sorted { $0.key < $1.key }, third.model.stateDict.sorted { $0.key < $1.key }) {
            #expect(a.data == b.data, "\(name) differs")   // parameters and batch-norm running statistics
        }
        #expect(third.history.map(\.trainLoss) == every.history.map(\.trainLoss))
        // Epochs 3 and 5 (the last) validated, with the values of the every-epoch run; 1, 2 and 4 skipped.
        #expect(third.history.map { $0.validation.isFinite } == [false, false, true, false, true])
        #expect(third.history[2].validation == every.history[2].validation && third.history[4].validation == every.history[4].validation)
        #expect(every.history.allSatisfy { $0.validation.isFinite })
    }

    @Test("training segments squares well (Dice > 0.9 on held-out images)")
    func learns() throws {
        let scratch = Scratch("trainer-learn")
        defer { scratch.cleanup() }
        var config = TrainingConfig()
        // Foreground is learned after about 12 epochs (the loss falls steadily before the argmax flips).
        config.epochs = 25; config.batchSize = 4; config.learningRate = 1e-2; config.disableAugmentation()
        let trainer = Trainer(model: UNet(base: 4, levels: 2, seed: 1), config: config, folder: scratch.path)
        let history = try trainer.fit(train: squares(24, size: 16, seed: 2), validation: squares(8, size: 16, seed: 3))
        #expect(history.last!.validationDice > 0.9, "\(history.map(\.validationDice)) loss \(history.map(\.trainLoss))")
    }
}

@Suite("Prediction")
struct PredictionTests {
    @Test("sliding-window geometry and Gaussian weights; a window equal to the image reproduces the direct prediction; flips are undone")
    func slidingWindow() throws {
        #expect(SlidingWindow.starts(10, patch: 4, overlap: 0.5) == [0, 2, 4, 6])
        #expect(SlidingWindow.starts(11, patch: 4, overlap: 0.5) == [0, 2, 4, 6, 7])
        #expect(SlidingWindow.starts(4, patch: 4, overlap: 0.5) == [0])
        let g = SlidingWindow.gaussian(8, 8)
        #expect(g.max()! <= 1 && g.min()! > 0 && g[3 * 8 + 3] > g[0])
        let model = UNet(base: 2, levels: 2, seed: 4)
        var rng = SplitMix(state: 8)
        let image = (0..<256).map { _ in Float.random(in: -1...1, using: &rng) }
        model.setTraining(false)
        let direct = try GradMode.disabled { try model(Tensor(shape: [1, 1, 16, 16], data: image)).softmax(axis: 1) }
        let p = try SlidingWindow.probabilities(model: model, image: image, channels: 1, height: 16, width: 16, patch: 16)
        #expect(zip(p, direct.data).allSatisfy { abs($0 - $1) < 1e-5 })
        // Larger image: probabilities stay probabilities everywhere (weights normalised), TTA included.
        let big = (0..<(24 * 20)).map { _ in Float.random(in: -1...1, using: &rng) }
        let q = try SlidingWindow.probabilities(model: model, image: big, channels: 1, height: 24, width: 20, patch: 16, flipTTA: true)
        for px in 0..<(24 * 20) { #expect(abs(q[px] + q[24 * 20 + px] - 1) < 1e-4) }
        // A mirror-symmetric image gives a mirror-symmetric TTA prediction only if flips are undone correctly:
        // check against averaging the three flipped predictions by hand.
        let sym: [Float] = (0..<256).map { (i: Int) -> Float in Float(abs((i % 16) - 7)) / 8 }
        let tta = try SlidingWindow.probabilities(model: model, image: sym, channels: 1, height: 16, width: 16, patch: 16, flipTTA: true)
        func run(_ img: [Float]) throws -> [Float] { try GradMode.disabled { try model(Tensor(shape: [1, 1, 16, 16], data: img)).softmax(axis: 1).data } }
        let flipX: [Float] = (0..<256).map { (i: Int) -> Float in sym[(i / 16) * 16 + 15 - i % 16] }
        let flipY: [Float] = (0..<256).map { (i: Int) -> Float in sym[(15 - i / 16) * 16 + i % 16] }
        let a = try run(sym), bx = try run(flipX), by = try run(flipY)
        for c in 0..<2 { for j in 0..<16 { for i in 0..<16 {
            let v1: Float = a[c * 256 + j * 16 + i], v2: Float = bx[c * 256 + j * 16 + 15 - i], v3: Float = by[c * 256 + (15 - j) * 16 + i]
            let expect: Float = (v1 + v2 + v3) / 3
            #expect(abs(tta[c * 256 + j * 16 + i] - expect) < 1e-5)
        } } }
    }
}

@Suite("Augmentation")
struct AugmentationTests {
    @Test("augmentation keeps image and label aligned and is reproducible")
    func aligned() throws {
        let data = squares(8, size: 16, seed: 12)
        var config = TrainingConfig()
        config.spatialProbability = 1; config.flips = true; config.gammaProbability = 0; config.noiseProbability = 0; config.intensityJitter = 0
        config.elasticProbability = 1; config.blurProbability = 0
        let trainer = Trainer(model: UNet(base: 2, levels: 1), config: config, folder: NSTemporaryDirectory())
        let (x0, y0) = data.batch(Array(0..<8))
        var (x1, y1) = (x0, y0), (x2, y2) = (x0, y0)
        var r1 = SplitMix64(seed: 3), r2 = SplitMix64(seed: 3)
        Augmenter(trainer.config).apply(&x1, &y1, rng: &r1)
        Augmenter(trainer.config).apply(&x2, &y2, rng: &r2)
        #expect(x1.data == x2.data && y1 == y2)
        #expect(x1.data != x0.data)
        // The squares are bright (about 1) on noise (about 0): after the same transform the label covers the bright
        // pixels of the image, apart from a border of interpolation.
        var agree = 0, total = 0
        for k in 0..<y1.count where abs(x1.data[k] - 0.5) > 0.35 { total += 1; if (x1.data[k] > 0.5) == (y1[k] > 0) { agree += 1 } }
        #expect(Double(agree) / Double(total) > 0.9, "\(agree) of \(total)")
    }
}
