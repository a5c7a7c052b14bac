import Foundation
import Testing
import TestSupport
import MedNN
@testable import MedTensor

@Suite("U-Net")
struct UNetTests {
    @Test("a tiny U-Net's parameter gradients equal finite differences of Dice+CE")
    func gradients() throws {
        let model = UNet(inChannels: 1, classes: 2, base: 2, levels: 1, seed: 3)
        var g = SplitMix(state: 9)
        let x = Tensor(shape: [2, 1, 4, 4], data: (0..<32).map { _ in Float.random(in: -1...1, using: &g) })
        let labels = (0..<32).map { _ in Float(Int.random(in: 0...1, using: &g)) }
        let params = model.parameters
        for p in params { p.zeroGrad() }
        let loss = try Loss.diceCE(try model(x), labels)
        loss.backward()
        let h: Float = 1e-2
        // Batch statistics make every parameter matter; check a spread of elements of every tensor.
        for p in params {
            for i in stride(from: 0, to: p.count, by: max(1, p.count / 4)) {
                let original = p.data[i]
                p.data[i] = original + h
                let up = try GradMode.disabled { try Loss.diceCE(try model(x), labels).item }
                p.data[i] = original - h
                let down = try GradMode.disabled { try Loss.diceCE(try model(x), labels).item }
                p.data[i] = original
                let numeric = (up - down) / (2 * h)
                #expect(abs(numeric - p.grad![i]) < 2e-2 * max(1, abs(numeric)), "\(p.shape)[\(i)]: \(p.grad![i]) vs \(numeric)")
            }
        }
    }

    @Test("the benchmark U-Net has PyTorch's parameter count and output shape; training lowers the loss")
    func benchmarkModel() throws {
        let model = UNet()

        // torch_unet_step.py UNet(norm="batch") has 1,942,306 parameters (counted with PyTorch 2.15).
        #expect(model.parameters.map(\.count).reduce(0, +) == 1_942_306)
        let small = UNet(base: 4, levels: 2, seed: 1)
        var g = SplitMix(state: 4)
        let x = Tensor(shape: [2, 1, 16, 16], data: (0..<512).map { _ in Float.random(in: -1...1, using: &g) })
        // Learnable target: foreground where the input is positive.
        let labels = x.data.map { $0 > 0 ? Float(1) : 0 }
        #expect(try small(x).shape == [2, 2, 16, 16])
        var opt = Adam(small.parameters, learningRate: 1e-2)
        var first: Float = 0, last: Float = 0
        for step in 0..<30 {
            opt.zeroGrad()
            let loss = try Loss.diceCE(try small(x), labels)
            loss.backward()
            opt.step()
            if step == 0 { first = loss.item }
            last = loss.item
        }
        #expect(last < 0.5 * first, "loss \(first) -> \(last)")
    }
}

@Suite("U-Net options")
struct UNetOptionTests {
    @Test("instance normalisation: gradients equal finite differences; deep supervision: output resolutions and training")
    func options() throws {
        let model = UNet(inChannels: 1, classes: 2, base: 2, levels: 1, normalization: .instance, seed: 3)
        #expect(model.namedBuffers.isEmpty && model.namedParameters.contains { $0.0 == "down.0.1.weight" })
        var g = SplitMix(state: 9)
        let x = Tensor(shape: [2, 1, 4, 4], data: (0..<32).map { _ in Float.random(in: -1...1, using: &g) })
        let labels = (0..<32).map { _ in Float(Int.random(in: 0...1, using: &g)) }
        for p in model.parameters { p.zeroGrad() }
        try Loss.diceCE(try model(x), labels).backward()
        for p in model.parameters {
            for i in stride(from: 0, to: p.count, by: max(1, p.count / 3)) {
                let o = p.data[i]
                p.data[i] = o + 1e-2
                let up = try GradMode.disabled { try Loss.diceCE(try model(x), labels).item }
                p.data[i] = o - 1e-2
                let down = try GradMode.disabled { try Loss.diceCE(try model(x), labels).item }
                p.data[i] = o
                // 5 %: a whole network has ReLU kinks within the finite-difference step (each op alone passes at 2 %).
                #expect(abs((up - down) / 2e-2 - p.grad![i]) < 5e-2 * max(1, abs((up - down) / 2e-2)))
            }
        }
        // Instance norm behaves the same in evaluation mode (no running statistics).
        model.setTraining(false)
        let a = try GradMode.disabled { try model(x) }
        model.setTraining(true)
        let b = try GradMode.disabled { try model(x) }
        #expect(a.data == b.data)
        let ds = UNet(base: 2, levels: 3, deepSupervision: true, seed: 1)
        let outs = try ds.forwardAll(Tensor(shape: [2, 1, 16, 16], data: [Float](repeating: 0.5, count: 512)))
        #expect(outs.map { $0.shape } == [[2, 2, 16, 16], [2, 2, 8, 8], [2, 2, 4, 4]])
        #expect(try ds(Tensor(shape: [1, 1, 16, 16], data: [Float](repeating: 0.5, count: 256))).shape == [1, 2, 16, 16])
        let scratch = Scratch("ds-train")
        defer { scratch.cleanup() }
        var config = TrainingConfig()
        config.epochs = 25; config.batchSize = 4; config.learningRate = 1e-2; config.disableAugmentation()
        let trainer = Trainer(model: UNet(base: 4, levels: 2, deepSupervision: true, seed: 1), config: config, folder: scratch.path)
        let history = try trainer.fit(train: squares(24, size: 16, seed: 2), validation: squares(8, size: 16, seed: 3))
        #expect(history.last!.validationDice > 0.9, "\(history.map(\.validationDice))")
        let (loaded, _) = try Trainer.loadModel(checkpoint: scratch.file("checkpoint.safetensors"))
        #expect(loaded.deepSupervision && loaded.namedParameters.map(\.0) == trainer.model.namedParameters.map(\.0))
    }
}

@Suite("Safetensors")
struct SafetensorsTests {
    @Test("round trip of named tensors and metadata; bad files are refused with the reason")
    func roundTrip() throws {
        let scratch = Scratch("safetensors")
        defer { scratch.cleanup() }
        let model = UNet(base: 2, levels: 1, seed: 5)
        var named: [String: Tensor] = [:]
        for (i, p) in model.parameters.enumerated() { named["p\(i)"] = p }
        let path = scratch.file("w.safetensors")
        try Safetensors.write(named, metadata: ["config": "{\"base\": 2}"], to: path)
        let (back, meta) = try Safetensors.read(path)
        #expect(meta["config"] == "{\"base\": 2}")
        #expect(back.count == named.count)
        for (k, t) in named { #expect(back[k]!.shape == t.shape && back[k]!.data == t.data) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        for (bad, reason) in [(bytes.prefix(5), "shorter"), (bytes.prefix(bytes.count - 3), "offsets"),
                              (Data([255, 255, 255, 255, 0, 0, 0, 0]) + bytes.dropFirst(8), "header length")] {
            let p = scratch.write(Array(bad), "bad.safetensors")
            #expect(throws: Safetensors.Error.self) { try Safetensors.read(p) }
            do { _ = try Safetensors.read(p) } catch { #expect("\(error)".contains(reason), "\(error)") }
        }
    }
}

@Suite("U-Net against PyTorch")
struct UNetReferenceTests {
    @Test("same weights and input as PyTorch: logits, Dice+CE loss and every parameter gradient agree (fixture from Scripts/make-unet-fixture.py)")
    func matchesPyTorch() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/unet_reference.safetensors").path
        let (t, meta) = try Safetensors.read(path)
        let model = UNet(inChannels: 1, classes: 2, base: 4, levels: 2, seed: 99)
        var weights: [String: Tensor] = [:]
        for (k, v) in t where k.hasPrefix("weight/") { weights[String(k.dropFirst(7))] = v }
        // The state dictionary's names are PyTorch's, running statistics included (its int64 num_batches_tracked
        // counters apart, which PyTorch fills in when they are missing).
        let torchKeys = Set(meta["state_dict_keys"]!.split(separator: ",").map(String.init).filter { !$0.hasSuffix(".num_batches_tracked") })
        #expect(Set(model.stateDict.keys) == torchKeys)
        try model.load(weights)   // strict: every name both ways
        // PyTorch's running statistics are after one training-mode forward pass from 0 and 1: start ours there too.
        let after = model.namedBuffers.map { ($0.0, $0.1.data) }
        for (name, b) in model.namedBuffers { b.data = [Float](repeating: name.hasSuffix("running_mean") ? 0 : 1, count: b.count) }
        let x = t["input"]!, labels = t["labels"]!.data
        let logits = try model(x)
        for (name, expected) in after {
            let ours = model.namedBuffers.first { $0.0 == name }!.1.data
            #expect(zip(ours, expected).allSatisfy { abs($0 - $1) < 1e-4 * max(1, abs($1)) }, "\(name): \(ours.prefix(3)) vs \(expected.prefix(3))")
        }
        let expected = t["logits"]!
        #expect(logits.shape == expected.shape)
        let maxDiff = zip(logits.data, expected.data).map { abs($0 - $1) }.max()!
        #expect(maxDiff < 1e-4, "logits differ by \(maxDiff)")
        let loss = try Loss.diceCE(logits, labels)
        let refLoss = Float(meta["loss"]!)!
        #expect(abs(loss.item - refLoss) < 1e-5, "loss \(loss.item) vs PyTorch \(refLoss)")
        loss.backward()
        for (name, p) in model.namedParameters {
            let g = t["grad/" + name]!
            let scale = max(1e-3, g.data.map { abs($0) }.max()!)
            let diff = zip(p.grad!, g.data).map { abs($0 - $1) }.max()!
            #expect(diff / scale < 1e-3, "\(name): gradient differs by \(diff) (scale \(scale))")
        }
    }
}
