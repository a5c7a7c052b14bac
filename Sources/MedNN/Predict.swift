import Foundation
import MedTensor

/// Whole-image prediction by sliding a patch-sized window (as nnU-Net does): windows overlap by `overlap` of the
/// patch, each window's softmax is weighted by a Gaussian centred on it (sigma = patch / 8, so borders count less),
/// the weighted sums are divided by the summed weights; optional flip test-time augmentation averages the
/// predictions of the image and its horizontal and vertical mirrors.
public enum SlidingWindow {
    /// Gaussian importance map of a patch (peak 1, minimum clamped above 0).
    public static func gaussian(_ ph: Int, _ pw: Int) -> [Float] {
        let sy = Double(ph) / 8, sx = Double(pw) / 8
        var g = [Float](repeating: 0, count: ph * pw)
        for j in 0..<ph { for i in 0..<pw {
            let dy = Double(j) - Double(ph - 1) / 2, dx = Double(i) - Double(pw - 1) / 2
            g[j * pw + i] = Float(max(1e-3, exp(-(dy * dy) / (2 * sy * sy) - (dx * dx) / (2 * sx * sx))))
        } }
        return g
    }

    /// Window starts along one axis of length n for a patch p and overlap fraction (last window flush with the end).
    public static func starts(_ n: Int, patch p: Int, overlap: Double) -> [Int] {
        guard n > p else { return [0] }
        let step = max(1, Int(Double(p) * (1 - overlap)))
        var s = Array(stride(from: 0, through: n - p, by: step))
        if s.last! != n - p { s.append(n - p) }
        return s
    }

    /// Class probabilities [classes, H, W] for an image [C, H, W] (H, W at least the patch; pad smaller images first).
    public static func probabilities(model: UNet, image: [Float], channels: Int, height: Int, width: Int, patch: Int,
                                     overlap: Double = 0.5, flipTTA: Bool = false) throws -> [Float] {
        precondition(height >= patch && width >= patch, "image smaller than the patch")
        let wasTraining = model.isTraining
        model.setTraining(false)
        defer { model.setTraining(wasTraining) }
        let k = model.classes
        var sum = [Float](repeating: 0, count: k * height * width), weight = [Float](repeating: 0, count: height * width)
        let g = gaussian(patch, patch)
        let flips: [(Bool, Bool)] = flipTTA ? [(false, false), (true, false), (false, true)] : [(false, false)]
        for y0 in starts(height, patch: patch, overlap: overlap) {
            for x0 in starts(width, patch: patch, overlap: overlap) {
                for (fx, fy) in flips {
                    var window = [Float](repeating: 0, count: channels * patch * patch)
                    for c in 0..<channels { for j in 0..<patch { for i in 0..<patch {
                        let sj = fy ? patch - 1 - j : j, si = fx ? patch - 1 - i : i
                        window[(c * patch + j) * patch + i] = image[(c * height + y0 + sj) * width + x0 + si]
                    } } }
                    let probs = try GradMode.disabled { try model(Tensor(shape: [1, channels, patch, patch], data: window)).softmax(axis: 1) }.data
                    let w = 1 / Float(flips.count)
                    for c in 0..<k { for j in 0..<patch { for i in 0..<patch {
                        let sj = fy ? patch - 1 - j : j, si = fx ? patch - 1 - i : i
                        sum[(c * height + y0 + sj) * width + x0 + si] += probs[(c * patch + j) * patch + i] * g[j * patch + i] * w
                    } } }
                }
                for j in 0..<patch { for i in 0..<patch { weight[(y0 + j) * width + x0 + i] += g[j * patch + i] } }
            }
        }
        for c in 0..<k { for p in 0..<(height * width) { sum[c * height * width + p] /= weight[p] } }
        return sum
    }

    /// The argmax label map [H, W] of ``probabilities(model:image:channels:height:width:patch:overlap:flipTTA:)``.
    public static func labels(_ probabilities: [Float], classes k: Int, height: Int, width: Int) -> [Float] {
        let plane = height * width
        return (0..<plane).map { p in
            var best = 0
            for c in 1..<k where probabilities[c * plane + p] > probabilities[best * plane + p] { best = c }
            return Float(best)
        }
    }
}

extension Trainer {
    /// A model rebuilt from a checkpoint written by ``Trainer`` (configuration from its metadata, weights, batch-norm
    /// statistics); returns it with the training configuration.
    public static func loadModel(checkpoint path: String) throws -> (UNet, TrainingConfig) {
        let (tensors, description, meta) = try ModelFile.read(path)
        guard description.architecture == "unet", let configuration = description.unet else {
            if description.architecture == "hssl-unet" {
                throw TensorError.checkpoint(path: path, reason: "holds an HSSL-pretrained U-Net without a segmentation head: fine-tune it first (medselect train --init-from \(path))")
            }
            throw TensorError.checkpoint(path: path, reason: "holds a \(description.summary), not a trained U-Net")
        }
        guard let configText = meta["config"], let config = try? JSONDecoder().decode(TrainingConfig.self, from: Data(configText.utf8)) else {
            throw TensorError.checkpoint(path: path, reason: "not a medselect training checkpoint (no training configuration in its metadata)")
        }
        let model = UNet(configuration)
        try model.load(tensors, origin: path)
        return (model, config)
    }
}
