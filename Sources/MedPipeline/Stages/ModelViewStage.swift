import Foundation
import MedAnalysis
import MedData
import MedImage
import MedNN
import MedFoundation

extension CaseView {
    /// The source model's view of every case of `samples`: each image (every axial slice of a volume) resampled to the
    /// model's `size` and z-scored as in training, predicted, and described by ``ModelView``: per foreground label the
    /// structure's size on the case's own physical extent, its pieces and compactness, the mean predictive entropy, the
    /// disagreement of two test-time augmentations (mirrored, and with noise) with the plain prediction, and with
    /// `references` the best Dice of the prediction's shape against theirs (the case itself left out). The cases whose
    /// ids are in `calibrate` must be labeled: they also get their true Dice, and `versions` synthetic versions each
    /// (``Stress``, severities spread over (0, 1]) with their own rows; no other label is read. `progress(done, total)`
    /// after each case.
    public static func compute(_ samples: [Sample], model: UNet, size: Int, references: ShapeReferences? = nil, calibrate: Set<String> = [],
                               versions: Int = 3, progress: (Int, Int) -> Void = { _, _ in }) throws -> [CaseView] {
        var rows: [CaseView] = []
        for (n, s) in samples.enumerated() {
            let image = try s.loadImage()
            let channels = image.info.components == .color ? image.shape.t : 1
            guard channels == model.inChannels else {
                throw DataError.badDataset(path: s.images[0], reason: "\(channels) channel\(channels == 1 ? "" : "s"); the source model takes \(model.inChannels)")
            }
            var truth: [Float]? = nil
            if calibrate.contains(s.id) {
                guard let label = try s.loadLabel() else { throw DataError.badDataset(path: s.images[0], reason: "a calibration case needs a label") }
                truth = try gridLabels(label, size: size)
            }
            let stresses = [nil] + (truth == nil ? [] : (0..<versions).map { Stress(id: s.id, version: $0, of: versions) })
            for stress in stresses {
                rows += try view(image, sample: s, channels: channels, model: model, size: size, stress: stress, truth: truth, references: references)
            }
            progress(n + 1, samples.count)
        }
        return rows
    }

    /// The labeled references' shapes at the model's grid: every labeled case of `samples`, its label resampled to
    /// `size` x `size` per slice (nearest), in ``ShapeReferences``' canonical frame.
    public static func references(_ samples: [Sample], labels: Int, size: Int) throws -> ShapeReferences {
        var refs = ShapeReferences(labels: labels)
        for s in samples {
            guard let label = try s.loadLabel() else { continue }
            refs.add(id: s.id, map: try gridLabels(label, size: size), x: size, y: size, z: label.shape.z)
        }
        return refs
    }

    /// A label map resampled to size x size per axial slice (nearest), slices stacked.
    static func gridLabels(_ label: MedicalImage, size: Int) throws -> [Float] {
        var out: [Float] = []
        for k in 0..<label.shape.z {
            var l = label.shape.z > 1 ? try label.slice(axis: 2, index: k) : label
            l.kind = .labelMap
            out += try l.resampled(toShape: [size, size, 1]).voxels.prefix(size * size)
        }
        return out
    }

    /// The rows of one case, as it is (`stress` nil) or under a synthetic scanner change.
    static func view(_ image: MedicalImage, sample s: Sample, channels: Int, model: UNet, size: Int, stress: Stress?, truth: [Float]?,
                     references: ShapeReferences?) throws -> [CaseView] {
        var slices: [MedicalImage] = [], entropy = 0.0
        var plain: [Float] = [], augmented: [[Float]] = [[], []]
        var noise = SplitMix64(seed: FNV1a.hash(s.id) &+ UInt64(stress?.version ?? 0) &* 0x9E37_79B9)
        for k in 0..<image.shape.z {
            let slice = image.shape.z > 1 ? try image.slice(axis: 2, index: k) : image
            var small = try slice.resampled(toShape: [size, size, 1])
            if let stress { stress.apply(&small.voxels, channels: channels, size: size) }
            let z = try small.zScored()
            let pixels = Array(z.voxels.prefix(channels * size * size))
            func predict(_ x: [Float]) throws -> [Float] {
                try SlidingWindow.probabilities(model: model, image: x, channels: channels, height: size, width: size, patch: size)
            }
            let p = try predict(pixels)
            entropy += ModelView.meanEntropy(p, classes: model.classes)
            let labels = SlidingWindow.labels(p, classes: model.classes, height: size, width: size)
            slices.append(MedicalImage(shape: ImageShape(size, size), voxels: labels, affine: small.affine, kind: .labelMap))
            // Test-time augmentation: the image mirrored left-right (the prediction mirrored back), and with Gaussian
            // noise of 0.1 standard deviations (seeded by the case id); how much they disagree with the plain one.
            let mirrored = Self.mirrored(pixels, channels: channels, size: size)
            augmented[0] += Self.mirrored(SlidingWindow.labels(try predict(mirrored), classes: model.classes, height: size, width: size), channels: 1, size: size)
            let noisy = pixels.map { $0 + 0.1 * Self.gaussian(&noise) }
            augmented[1] += SlidingWindow.labels(try predict(noisy), classes: model.classes, height: size, width: size)
            plain += labels
        }
        let disagreement = ModelView.disagreement(plain, augmented)
        let reference = references.map { $0.bestDice($0.canonical(plain, x: size, y: size, z: image.shape.z), excluding: s.id) } ?? .nan
        // The label moves with the image under the stress's geometric part.
        let label = truth.map { t in stress?.warpLabels(t, size: size) ?? t }
        let dice = label.map { ModelView.meanDice(plain, $0, labels: model.classes - 1) } ?? .nan
        let prediction = slices.count > 1 ? try MedicalImage.stack(slices, axis: 2) : slices[0]
        let found = Dictionary(ModelView.structures(prediction).map { ($0.label, $0) }, uniquingKeysWith: { a, _ in a })
        return (1..<model.classes).map { label in
            let st = found[label]
            return CaseView(id: s.id, site: s.site, severity: stress?.severity ?? 0, entropy: entropy / Double(image.shape.z), disagreement: disagreement,
                            reference: reference, label: label, size: st?.size ?? 0, components: st?.components ?? 0, largestShare: st?.largestShare ?? .nan,
                            boundary: st?.boundary ?? 0, compactness: st?.compactness ?? .nan,
                            dice: dice)
        }
    }

    /// Channel planes of size x size mirrored left-right.
    static func mirrored(_ x: [Float], channels: Int, size: Int) -> [Float] {
        var out = x
        for c in 0..<channels { for j in 0..<size { for i in 0..<size { out[(c * size + j) * size + i] = x[(c * size + j) * size + size - 1 - i] } } }
        return out
    }

    /// A standard normal draw (Box-Muller).
    static func gaussian(_ g: inout SplitMix64) -> Float {
        let u1 = max(Double(g.next() >> 11) / Double(1 << 53), 1e-300), u2 = Double(g.next() >> 11) / Double(1 << 53)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }

    /// A synthetic scanner change of a calibration case, of severity s in (0, 1]: a rotation of up to ±20 s degrees,
    /// a scaling by up to exp(±0.25 s) (field of view and resolution) and a shift of up to ±0.1 s of the image about
    /// its centre, applied to the image (bilinear, the plane's minimum outside) and to the label (nearest); then on each
    /// channel plane scaled to [0, 1] a colour gain of exp(N(0, 0.25 s)) per channel (images with several channels),
    /// a gamma of exp(±0.8 s), a multiplicative linear bias field of up to ±0.8 s across the image in a random
    /// direction, a Gaussian blur of up to 2 s pixels and Gaussian noise of up to 0.15 s. Drawn from the case id and
    /// version, so a calibration is reproducible. (It resembles the phantoms' scanner model; Docs/analysis.md says what
    /// that means for the validation.)
    struct Stress {
        var version: Int, severity: Double
        var gamma: Float, bias: Float, direction: Float, blur: Float, noise: Float
        var rotation: Float, scale: Float, shift: (Float, Float), gains: [Float]
        var seed: UInt64

        init(id: String, version: Int, of versions: Int) {
            var g = SplitMix64(seed: FNV1a.hash(id) ^ (0x5354_5245_5353 &+ UInt64(version)))
            func u() -> Double { Double(g.next() >> 11) / Double(1 << 53) }
            self.version = version + 1
            severity = (Double(version) + 0.25 + 0.75 * u()) / Double(versions)
            let s = Float(severity)
            gamma = Float(exp((u() < 0.5 ? -1 : 1) * 0.8 * severity))
            bias = 0.8 * s * Float(u()); direction = Float(2 * .pi * u())
            blur = 2 * s * Float(u()); noise = 0.15 * s * Float(0.5 + 0.5 * u())
            rotation = Float((2 * u() - 1) * 20 * severity * .pi / 180)
            scale = Float(exp((2 * u() - 1) * 0.25 * severity))
            shift = (Float((2 * u() - 1) * 0.1 * severity), Float((2 * u() - 1) * 0.1 * severity))
            var channelGains: [Float] = []
            for _ in 0..<4 { channelGains.append(Float(exp(0.25 * Double(s) * Double(CaseView.gaussian(&g))))) }
            gains = channelGains
            seed = g.next()
        }

        /// Where output pixel (i, j) of a size x size plane samples its source (inverse of rotation, scale and shift).
        func source(_ i: Int, _ j: Int, size: Int) -> (Float, Float) {
            let c = Float(size - 1) / 2
            let x = Float(i) - c - shift.0 * Float(size), y = Float(j) - c - shift.1 * Float(size)
            let (cr, sr) = (cos(rotation), sin(rotation))
            return ((cr * x + sr * y) / scale + c, (-sr * x + cr * y) / scale + c)
        }

        /// The geometric part on a label map of size x size planes (nearest; outside: background).
        func warpLabels(_ v: [Float], size: Int) -> [Float] {
            let plane = size * size
            var out = [Float](repeating: 0, count: v.count)
            for base in stride(from: 0, to: v.count, by: plane) {
                for j in 0..<size { for i in 0..<size {
                    let (x, y) = source(i, j, size: size)
                    let (xi, yi) = (Int(x.rounded()), Int(y.rounded()))
                    if xi >= 0 && yi >= 0 && xi < size && yi < size { out[base + j * size + i] = v[base + yi * size + xi] }
                } }
            }
            return out
        }

        func apply(_ v: inout [Float], channels: Int, size: Int) {
            var g = SplitMix64(seed: seed)
            let plane = size * size
            let (dx, dy) = (cos(direction), sin(direction))
            for c in 0..<channels {
                let base = c * plane
                let original = Array(v[base..<(base + plane)])
                let lo = original.min() ?? 0, hi = original.max() ?? 1
                let range = hi > lo ? hi - lo : 1
                let gain = channels > 1 ? gains[c % gains.count] : 1
                for j in 0..<size { for i in 0..<size {
                    let (sx, sy) = source(i, j, size: size)
                    let value = sx >= 0 && sy >= 0 && sx <= Float(size - 1) && sy <= Float(size - 1) ? Self.bilinear(original, size, sx, sy) : lo
                    let x = 2 * Float(i) / Float(size - 1) - 1, y = 2 * Float(j) / Float(size - 1) - 1
                    let t = min(1, max(0, (value - lo) / range) * gain)
                    v[base + j * size + i] = pow(t, gamma) * (1 + bias * (dx * x + dy * y))
                } }
                if blur >= 0.3 { Augmenter.blur(&v, base: base, h: size, w: size, sigma: blur) }
                for p in base..<(base + plane) { v[p] += noise * CaseView.gaussian(&g) }
            }
        }

        static func bilinear(_ p: [Float], _ size: Int, _ x: Float, _ y: Float) -> Float {
            let (x0, y0) = (min(Int(x), size - 2), min(Int(y), size - 2))
            let (fx, fy) = (x - Float(x0), y - Float(y0))
            let a = p[y0 * size + x0], b = p[y0 * size + x0 + 1], c = p[(y0 + 1) * size + x0], d = p[(y0 + 1) * size + x0 + 1]
            return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
        }
    }
}
