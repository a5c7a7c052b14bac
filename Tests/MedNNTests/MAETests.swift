import Foundation
import Testing
import TestSupport
import MedNN
@testable import MedTensor
import MedFoundation

func fixture(_ name: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
    try Safetensors.read(URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/" + name).path)
}

/// The configuration of Scripts/make-mae-fixture.py.
func fixtureConfiguration() -> MaskedAutoencoder.Configuration {
    var c = MaskedAutoencoder.Configuration()
    c.imageSize = 32; c.channels = 1; c.patch = 8
    c.width = 32; c.depth = 2; c.heads = 2
    c.decoderWidth = 16; c.decoderDepth = 1; c.decoderHeads = 2
    c.maskRatio = 0.75
    return c
}

@Suite("Masked autoencoder")
struct MAETests {
    @Test("same weights, input and noise as PyTorch: state-dict names, loss and every parameter gradient agree (fixture from Scripts/make-mae-fixture.py)")
    func matchesPyTorch() throws {
        let (t, meta) = try fixture("mae_reference.safetensors")
        let model = MaskedAutoencoder(fixtureConfiguration(), seed: 5)
        var weights: [String: Tensor] = [:]
        for (k, v) in t where k.hasPrefix("weight/") { weights[String(k.dropFirst(7))] = v }
        #expect(Set(model.stateDict.keys) == Set(weights.keys))
        try model.load(weights)
        let noiseT = t["noise"]!
        let noise = (0..<noiseT.shape[0]).map { Array(noiseT.data[($0 * noiseT.shape[1])..<(($0 + 1) * noiseT.shape[1])]) }
        let (loss, prediction, mask) = try model.forward(t["input"]!, noise: noise)
        let reference = Float(meta["loss"]!)!
        #expect(abs(loss.item - reference) < 1e-5 * max(1, reference), "loss \(loss.item) vs PyTorch \(reference)")
        #expect(prediction.shape == [3, 17, 64] && mask.allSatisfy { $0.reduce(0, +) == 12 })
        loss.backward()
        for (name, p) in model.namedParameters {
            let g = try #require(t["grad/" + name], "\(name)")
            let scale = max(1e-4, g.data.map { abs($0) }.max()!)
            let diff = zip(p.grad ?? [], g.data).map { abs($0 - $1) }.max() ?? .infinity
            #expect(diff / scale < 1e-3, "\(name): gradient differs by \(diff) (scale \(scale))")
        }
    }

    @Test("2-D sine-cosine positions equal an independent NumPy computation")
    func positions() throws {
        let (t, _) = try fixture("mae_reference.safetensors")
        for width in [32, 16] {
            let ours = MaskedAutoencoder.sinCosPositions(4, width: width, count: 16)
            let theirs = t["sincos/\(width)"]!
            #expect(ours.count == theirs.count && zip(ours.data, theirs.data).allSatisfy { abs($0 - $1) < 1e-6 }, "width \(width)")
        }
    }

    @Test("masking: exactly the configured number of patches hidden per sample, different per sample and per seed; loss falls when training")
    func masking() throws {
        var c = fixtureConfiguration()
        c.maskRatio = 0.6    // 16 patches: keep 6, hide 10
        let model = MaskedAutoencoder(c, seed: 1)
        var g = SplitMix(state: 3)
        let images = Tensor(shape: [4, 1, 32, 32], data: (0..<4096).map { _ in Float.random(in: 0...1, using: &g) })
        var r1 = SplitMix64(seed: 1), r2 = SplitMix64(seed: 2)
        let (_, _, m1) = try model.forward(images, noise: model.noise(batch: 4, rng: &r1))
        let (_, _, m2) = try model.forward(images, noise: model.noise(batch: 4, rng: &r2))
        #expect(m1.allSatisfy { $0.reduce(0, +) == 10 } && m2.allSatisfy { $0.reduce(0, +) == 10 })
        #expect(Set(m1.map { $0.description }).count == 4)     // every sample its own mask
        #expect(m1 != m2)
        // A few AdamW steps on a fixed batch: the reconstruction loss falls.
        var optimizer = Adam.adamW(model.parameters, learningRate: 1e-3, weightDecay: 0.05)
        optimizer.decays = model.decayMask
        #expect(optimizer.decays.filter { !$0 }.count == model.namedParameters.filter { $0.1.rank <= 1 }.count + 2)
        var rng = SplitMix64(seed: 4)
        let fixedNoise = model.noise(batch: 4, rng: &rng)
        let first = try model.forward(images, noise: fixedNoise).loss.item
        for _ in 0..<30 {
            let (loss, _, _) = try model.forward(images, noise: fixedNoise)
            optimizer.zeroGrad(); loss.backward(); optimizer.step()
        }
        let last = try model.forward(images, noise: fixedNoise).loss.item
        #expect(last < 0.5 * first, "loss \(first) -> \(last)")
        // Embeddings: nothing masked, one row per image, pooled either way.
        #expect(try model.embed(images, pool: .cls).shape == [4, 32])
        #expect(try model.embed(images, pool: .mean).shape == [4, 32])
        #expect(throws: TensorError.self) { try model.embed(Tensor(zeros: [1, 1, 16, 16])) }
    }
}
