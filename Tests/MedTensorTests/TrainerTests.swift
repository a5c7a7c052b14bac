import Foundation
import Testing
import TestSupport
import MedNN
@testable import MedTensor

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
        for ((name, a), (_, b)) in zip(straight.model.namedParameters, resumed.model.namedParameters) {
            #expect(a.data == b.data, "\(name) differs after resuming")
        }
        #expect(resumed.history.count == 3 && resumed.history.map(\.trainLoss) == straight.history.map(\.trainLoss))
        let csv = try String(contentsOfFile: scratch.file("b/history.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 4)
    }

    @Test("training segments squares well (Dice > 0.9 on held-out images)")
    func learns() throws {
        let scratch = Scratch("trainer-learn")
        defer { scratch.cleanup() }
        var config = TrainingConfig()
        // Foreground is learned after about 12 epochs (the loss falls steadily before the argmax flips).
        config.epochs = 25; config.batchSize = 4; config.learningRate = 1e-2; config.flips = false; config.intensityJitter = 0
        let trainer = Trainer(model: UNet(base: 4, levels: 2, seed: 1), config: config, folder: scratch.path)
        let history = try trainer.fit(train: squares(24, size: 16, seed: 2), validation: squares(8, size: 16, seed: 3))
        #expect(history.last!.validationDice > 0.9, "\(history.map(\.validationDice)) loss \(history.map(\.trainLoss))")
    }
}
