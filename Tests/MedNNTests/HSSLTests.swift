import Foundation
import Testing
import TestSupport
import MedNN
@testable import MedTensor
import MedFoundation

@Suite("HSSL pretraining")
struct HSSLTests {
    /// A tiny network: 16 px, base 4, 2 levels, 3 domains.
    static func tiny(global: Float = 1, local: Float = 1, domain: Float = 1, grid: Int = 2) -> HSSLModel.Configuration {
        var c = HSSLModel.Configuration()
        c.unet = UNet.Configuration(inChannels: 1, classes: 2, base: 4, levels: 2)
        c.imageSize = 16; c.domains = ["a", "b", "c"]; c.grid = grid
        c.projectionHidden = 8; c.projection = 6; c.localProjection = 5
        c.globalWeight = global; c.localWeight = local; c.domainWeight = domain
        return c
    }

    static func images(_ count: Int, size: Int = 16, seed: UInt64 = 3) -> ImageStack {
        var g = SplitMix64(seed: seed)
        return ImageStack(values: (0..<(count * size * size)).map { _ in Float.random(in: -1...1, using: &g) }, count: count, channels: 1, size: size)
    }

    @Test("gatherPixels: hand values, repeated locations add up in the gradient, finite differences")
    func gather() throws {
        // [1, 2, 2, 3]: channel c, row y, column x holds 100c + 10y + x.
        var values: [Float] = []
        for c in 0..<2 { for y in 0..<2 { for x in 0..<3 { values.append(Float(100 * c + 10 * y + x)) } } }
        let x = Tensor(shape: [1, 2, 2, 3], data: values, requiresGrad: true)
        let g = try x.gatherPixels([(0, 1, 2), (0, 0, 0), (0, 1, 2)])
        #expect(g.shape == [3, 2] && g.data == [12, 112, 0, 100, 12, 112])
        g.sum().backward()
        #expect(x.grad! == [1, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 2])
        let y = random([2, 3, 4, 4], seed: 9)
        try gradientCheck([y]) { try $0[0].gatherPixels([(1, 3, 0), (0, 2, 2), (1, 3, 0), (0, 0, 3)]).squared() }
        #expect(throws: TensorError.self) { try y.gatherPixels([(2, 0, 0)]) }
    }

    @Test("view geometry by hand: a pixel's source point and back, under a crop and a flip")
    func geometry() {
        let g = ViewGeometry(x0: 2, y0: 0, side: 4, flip: true, size: 8)      // a 4-pixel crop shown at 8 px, mirrored
        let p = g.sourcePoint(i: 0, j: 0)                                        // leftmost view column = rightmost crop column
        #expect(p.x == 5.75 && p.y == 0.25)
        #expect(g.viewPixel(x: 5.75, y: 0.25) == (0, 0))
        #expect(g.viewPixel(x: 2.1, y: 3.9) == (7, 7))
        for i in 0..<8 { for j in 0..<8 { let q = g.sourcePoint(i: i, j: j); #expect(g.viewPixel(x: q.x, y: q.y) == (i, j)) } }
    }

    @Test("dense correspondences by hand: crop x flipped crop; a flip alone mirrors columns")
    func correspondences() {
        // a: the 6-pixel crop at (1, 1) shown at 6 px; b: the 3-pixel crop at (2, 2) shown at 6 px, mirrored. Their
        // overlap is [2, 5]²; a 2 x 2 grid has centres 2.75 and 4.25 on each axis: in a columns/rows 1 and 3, in b
        // rows 1 and 4 and (mirrored) columns 4 and 1.
        let a = ViewGeometry(x0: 1, y0: 1, side: 6, flip: false, size: 6), b = ViewGeometry(x0: 2, y0: 2, side: 3, flip: true, size: 6)
        let pairs = ViewGeometry.correspondences(a, b, grid: 2).map { [$0.a.i, $0.a.j, $0.b.i, $0.b.j] }
        #expect(pairs == [[1, 1, 4, 1], [3, 1, 1, 1], [1, 3, 4, 4], [3, 3, 1, 4]])
        // The same source content: a ramp rendered through both views agrees at corresponding pixels to within the
        // pixels' spread (half a step of each view).
        let s = 6
        let ramp = (0..<(s * s)).map { k in Float(k % s) + 0.5 + 10 * (Float(k / s) + 0.5) }
        let (ra, rb) = (a.render(ramp, channels: 1), b.render(ramp, channels: 1))
        for p in pairs { #expect(abs(ra[p[1] * s + p[0]] - rb[p[3] * s + p[2]]) <= 11 * 0.75 + 1e-4) }
        // Whole image vs its mirror: pixel (i, j) <-> (7 - i, j).
        let whole = ViewGeometry.identity(size: 8)
        var mirrored = whole
        mirrored.flip = true
        let flipped = ViewGeometry.correspondences(whole, mirrored, grid: 8)
        #expect(flipped.count == 64 && flipped.allSatisfy { $0.b.i == 7 - $0.a.i && $0.b.j == $0.a.j })
        // Crops that do not overlap have no correspondences.
        #expect(ViewGeometry.correspondences(ViewGeometry(x0: 0, y0: 0, side: 2, flip: false, size: 8), ViewGeometry(x0: 4, y0: 4, side: 2, flip: false, size: 8), grid: 2).isEmpty)
    }

    @Test("NT-Xent and cross-entropy against hand values")
    func handValues() throws {
        // Rows 0/2 and 1/3 are positives; each row's positive has cosine 1, its two negatives 0 (τ = 1):
        // loss = −log(e / (e + 2)).
        let z = Tensor(shape: [4, 2], data: [1, 0, 0, 1, 2, 0, 0, 3])
        #expect(abs(Double(try Loss.ntXent(z, temperature: 1).item) - log((M_E + 2) / M_E)) < 1e-5)
        // At τ = 0.5 the similarities double: −log(e² / (e² + 2)).
        #expect(abs(Double(try Loss.ntXent(z, temperature: 0.5).item) - log((M_E * M_E + 2) / (M_E * M_E))) < 1e-5)
        // Domain term: logits (0, ln 3) for label 1 -> −log(3/4); label 0 -> −log(1/4); mean of both.
        let logits = Tensor(shape: [2, 2], data: [0, Float(log(3.0)), 0, Float(log(3.0))])
        #expect(abs(Double(try Loss.crossEntropy(logits, [1, 0]).item) - (log(4.0 / 3) + log(4.0)) / 2) < 1e-5)
    }

    @Test("the dense term contrasts decoder features at the corresponding pixels (recomputed by hand); the total is the weighted sum")
    func denseTerm() throws {
        let model = HSSLModel(Self.tiny(global: 0, local: 1, domain: 0, grid: 2), seed: 4)
        let x = Self.images(2)
        let a = ViewGeometry(x0: 1, y0: 1, side: 12, flip: false, size: 16), b = ViewGeometry(x0: 3, y0: 2, side: 10, flip: true, size: 16)
        let g2 = ViewGeometry(x0: 0, y0: 4, side: 12, flip: true, size: 16), h2 = ViewGeometry.identity(size: 16)
        let v1 = Tensor(shape: [2, 1, 16, 16], data: zip([a, g2], [0, 1]).flatMap { g, k in g.render(Array(x.values[(k * 256)..<((k + 1) * 256)]), channels: 1) })
        let v2 = Tensor(shape: [2, 1, 16, 16], data: zip([b, h2], [0, 1]).flatMap { g, k in g.render(Array(x.values[(k * 256)..<((k + 1) * 256)]), channels: 1) })
        let losses = try model.losses(v1, v2, geometries: [(a, b), (g2, h2)], domains: [0, 2])
        // By hand: the same forward pass, features gathered at the correspondences, projected, NT-Xent.
        let (_, decoder) = try model.unet.features(try Tensor.concat([v1, v2], axis: 0))
        var first: [(image: Int, y: Int, x: Int)] = [], second: [(image: Int, y: Int, x: Int)] = []
        for (k, (p, q)) in [(a, b), (g2, h2)].enumerated() {
            for c in ViewGeometry.correspondences(p, q, grid: 2) { first.append((k, c.a.j, c.a.i)); second.append((2 + k, c.b.j, c.b.i)) }
        }
        #expect(first.count == 8)
        let head = model.children.first { $0.0 == "local_head" }!.1 as! ProjectionHead
        let expected = try Loss.ntXent(try head(try decoder.gatherPixels(first + second)), temperature: model.configuration.localTemperature)
        #expect(abs(losses.local - expected.item) < 1e-5 && losses.global == 0 && losses.domain == 0)
        #expect(abs(losses.total.item - expected.item) < 1e-5)
        // Weighted sum of the three terms.
        let weighted = HSSLModel(Self.tiny(global: 0.5, local: 2, domain: 3), seed: 4)
        let l = try weighted.losses(v1, v2, geometries: [(a, b), (g2, h2)], domains: [0, 2])
        #expect(l.global > 0 && l.local > 0 && l.domain > 0)
        #expect(abs(l.total.item - (0.5 * l.global + 2 * l.local + 3 * l.domain)) < 1e-4)
        // With one domain the classification term is off.
        var one = Self.tiny(); one.domains = ["only"]
        #expect(try HSSLModel(one, seed: 4).losses(v1, v2, geometries: [(a, b), (g2, h2)], domains: [0, 0]).domain == 0)
    }

    @Test("gradients of every head and of the U-Net reach the loss; a few steps lower it")
    func learns() throws {
        let model = HSSLModel(Self.tiny(), seed: 1)
        let trainer = HSSLPretrainer(model: model, config: HSSLPretrainingConfig(), folder: NSTemporaryDirectory() + "hssl-learns-\(getpid())")
        let stack = Self.images(6)
        var rng = SplitMix64(seed: 2)
        let (x1, x2, g, d) = trainer.views(stack, [0, 1, 2, 0, 1, 2], Array(0..<6), rng: &rng)
        var opt = Adam(model.parameters, learningRate: 3e-3)
        let before = try model.losses(x1, x2, geometries: g, domains: d).total
        opt.zeroGrad(); before.backward()
        let untouched = model.namedParameters.filter { $0.1.grad == nil || $0.1.grad!.allSatisfy { $0 == 0 } }.map(\.0)
        #expect(untouched.allSatisfy { $0.hasPrefix("unet.head.") }, "no gradient: \(untouched)")
        opt.step()
        for _ in 0..<15 { opt.zeroGrad(); try model.losses(x1, x2, geometries: g, domains: d).total.backward(); opt.step() }
        #expect(try model.losses(x1, x2, geometries: g, domains: d).total.item < before.item)
    }

    @Test("pretraining stopped after an epoch and resumed ends with the same weights as an uninterrupted run; another seed is refused")
    func resume() throws {
        let base = NSTemporaryDirectory() + "hssl-resume-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: base) }
        var config = HSSLPretrainingConfig()
        config.epochs = 3; config.batchSize = 3; config.seed = 8
        let stack = Self.images(7), domains = [0, 1, 2, 0, 1, 2, 0]
        let validation = Self.images(3, seed: 11)
        let a = HSSLModel(Self.tiny(), seed: 8)
        let ha = try HSSLPretrainer(model: a, config: config, folder: base + "/a").fit(train: stack, domains: domains, validation: validation, validationDomains: [0, 1, 2])
        let b1 = HSSLModel(Self.tiny(), seed: 8)
        try HSSLPretrainer(model: b1, config: config, folder: base + "/b").fit(train: stack, domains: domains, validation: validation, validationDomains: [0, 1, 2], stopAfterEpoch: 1)
        let b = HSSLModel(Self.tiny(), seed: 8)
        let hb = try HSSLPretrainer(model: b, config: config, folder: base + "/b").fit(train: stack, domains: domains, validation: validation, validationDomains: [0, 1, 2])
        #expect(ha.count == 3 && hb.count == 3 && ha.map(\.trainLoss) == hb.map(\.trainLoss) && ha.map(\.validation) == hb.map(\.validation))
        for (name, t) in a.stateDict { #expect(t.data == b.stateDict[name]!.data, "\(name) differs after resuming") }
        var other = config
        other.seed = 9
        #expect(throws: TrainingError.self) {
            try HSSLPretrainer(model: HSSLModel(Self.tiny(), seed: 9), config: other, folder: base + "/b").fit(train: stack, domains: domains, validation: nil)
        }
    }

    @Test("init from an HSSL encoder file: the part's tensors by value, the rest fresh; mismatches refused")
    func initFrom() throws {
        let path = NSTemporaryDirectory() + "hssl-encoder-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pretrained = HSSLModel(Self.tiny(), seed: 21)
        try HSSLPretrainer.writeEncoder(pretrained, metadata: [:], to: path)
        let (tensors, description, _) = try ModelFile.read(path)
        #expect(description.architecture == "hssl-unet" && !tensors.keys.contains { $0.hasPrefix("head.") || $0.hasPrefix("global_head") })
        for part in InitPart.allCases {
            let fresh = UNet(UNet.Configuration(inChannels: 1, classes: 3, base: 4, levels: 2), seed: 5)
            let untouched = UNet(UNet.Configuration(inChannels: 1, classes: 3, base: 4, levels: 2), seed: 5)
            let loaded = try fresh.initialize(from: tensors, part: part, origin: path)
            let source = pretrained.unet.stateDict, reference = untouched.stateDict
            for (name, t) in fresh.stateDict {
                let fromFile = name.hasPrefix("down.") || name.hasPrefix("bottleneck.") || (part == .all && (name.hasPrefix("up.") || name.hasPrefix("upconv.")))
                #expect(loaded.contains(name) == fromFile, "\(part): \(name)")
                #expect(t.data == (fromFile ? source[name]! : reference[name]!).data, "\(part): \(name) has the wrong values")
            }
        }
        // A colour U-Net from the gray encoder: the first kernels spread over R, G, B by BT.601 weights, so an image
        // whose three channels are equal gives the gray network's first activations.
        let colour = UNet(UNet.Configuration(inChannels: 3, classes: 2, base: 4, levels: 2), seed: 5)
        try colour.initialize(from: tensors, part: .encoder, origin: path)
        let gray = tensors["down.0.0.weight"]!.data, rgb = colour.stateDict["down.0.0.weight"]!.data
        for o in 0..<4 { for k in 0..<9 {
            for (c, w) in [Float(0.299), 0.587, 0.114].enumerated() { #expect(abs(rgb[(o * 3 + c) * 9 + k] - gray[o * 9 + k] * w) < 1e-7) }
        } }
        let image = Self.images(1)
        let y1 = try Tensor(shape: [1, 1, 16, 16], data: image.values).conv2d(tensors["down.0.0.weight"]!, geometry: Conv2DGeometry(stride: 1, padding: 1))
        let y3 = try Tensor(shape: [1, 3, 16, 16], data: image.values + image.values + image.values).conv2d(colour.stateDict["down.0.0.weight"]!, geometry: Conv2DGeometry(stride: 1, padding: 1))
        #expect(zip(y1.data, y3.data).allSatisfy { abs($0 - $1) < 1e-4 })
        // Another width: refused with the tensor's name and both shapes.
        let wide = UNet(UNet.Configuration(inChannels: 1, classes: 2, base: 8, levels: 2), seed: 5)
        #expect { try wide.initialize(from: tensors, part: .encoder, origin: path) } throws: { "\($0)".contains(path) && "\($0)".contains("down.0.0.weight") }
    }
}
