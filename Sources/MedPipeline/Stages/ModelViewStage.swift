import Foundation
import MedAnalysis
import MedData
import MedImage
import MedNN
import MedFoundation

extension CaseView {
    /// The source model's view of every case of `samples` (no label read): each image (every axial slice of a
    /// volume) resampled to the model's `size` and z-scored as in training, predicted, and described by
    /// ``ModelView``: per foreground label the structure's size on the case's own physical extent, its pieces and
    /// compactness, the mean predictive entropy, and the disagreement of two test-time augmentations (mirrored, and
    /// with noise) with the plain prediction. `progress(done, total)` after each case.
    public static func compute(_ samples: [Sample], model: UNet, size: Int, progress: (Int, Int) -> Void = { _, _ in }) throws -> [CaseView] {
        var rows: [CaseView] = []
        for (n, s) in samples.enumerated() {
            let image = try s.loadImage()
            let channels = image.info.components == .color ? image.shape.t : 1
            guard channels == model.inChannels else {
                throw DataError.badDataset(path: s.images[0], reason: "\(channels) channel\(channels == 1 ? "" : "s"); the source model takes \(model.inChannels)")
            }
            var slices: [MedicalImage] = [], entropy = 0.0
            var plain: [Float] = [], augmented: [[Float]] = [[], []]
            var noise = SplitMix64(seed: FNV1a.hash(s.id))
            for k in 0..<image.shape.z {
                let slice = image.shape.z > 1 ? try image.slice(axis: 2, index: k) : image
                let small = try slice.resampled(toShape: [size, size, 1])
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
            let prediction = slices.count > 1 ? try MedicalImage.stack(slices, axis: 2) : slices[0]
            let found = Dictionary(ModelView.structures(prediction).map { ($0.label, $0) }, uniquingKeysWith: { a, _ in a })
            for label in 1..<model.classes {
                let st = found[label]
                rows.append(CaseView(id: s.id, site: s.site, entropy: entropy / Double(image.shape.z), disagreement: disagreement, label: label,
                                     size: st?.size ?? 0, components: st?.components ?? 0, compactness: st?.compactness ?? .nan))
            }
            progress(n + 1, samples.count)
        }
        return rows
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
}
