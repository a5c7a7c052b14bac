import Foundation
import MedAnalysis
import MedData
import MedImage
import MedNN

extension CaseView {
    /// The source model's view of every case of `samples` (no label read): each image (every axial slice of a
    /// volume) resampled to the model's `size` and z-scored as in training, predicted, and described by
    /// ``ModelView``: per foreground label the structure's size on the case's own physical extent, its pieces and
    /// compactness, and the mean predictive entropy. `progress(done, total)` after each case.
    public static func compute(_ samples: [Sample], model: UNet, size: Int, progress: (Int, Int) -> Void = { _, _ in }) throws -> [CaseView] {
        var rows: [CaseView] = []
        for (n, s) in samples.enumerated() {
            let image = try s.loadImage()
            let channels = image.info.components == .color ? image.shape.t : 1
            guard channels == model.inChannels else {
                throw DataError.badDataset(path: s.images[0], reason: "\(channels) channel\(channels == 1 ? "" : "s"); the source model takes \(model.inChannels)")
            }
            var slices: [MedicalImage] = [], entropy = 0.0
            for k in 0..<image.shape.z {
                let slice = image.shape.z > 1 ? try image.slice(axis: 2, index: k) : image
                let small = try slice.resampled(toShape: [size, size, 1])
                let z = try small.zScored()
                let p = try SlidingWindow.probabilities(model: model, image: Array(z.voxels.prefix(channels * size * size)), channels: channels,
                                                        height: size, width: size, patch: size)
                entropy += ModelView.meanEntropy(p, classes: model.classes)
                let labels = SlidingWindow.labels(p, classes: model.classes, height: size, width: size)
                slices.append(MedicalImage(shape: ImageShape(size, size), voxels: labels, affine: small.affine, kind: .labelMap))
            }
            let prediction = slices.count > 1 ? try MedicalImage.stack(slices, axis: 2) : slices[0]
            let found = Dictionary(ModelView.structures(prediction).map { ($0.label, $0) }, uniquingKeysWith: { a, _ in a })
            for label in 1..<model.classes {
                let st = found[label]
                rows.append(CaseView(id: s.id, site: s.site, entropy: entropy / Double(image.shape.z), label: label, size: st?.size ?? 0,
                                     components: st?.components ?? 0, compactness: st?.compactness ?? .nan))
            }
            progress(n + 1, samples.count)
        }
        return rows
    }
}
