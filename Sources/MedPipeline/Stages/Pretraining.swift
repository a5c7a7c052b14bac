import Foundation
import MedData
import MedFormats
import MedFoundation
import MedNN
import MedReport
import MedTensor

/// The pretraining stage: a masked autoencoder (XSSR's encoder) or HSSL's U-Net trained without labels on a stack
/// of images, its encoder written after every epoch and at the end, with the loss curve (and, for the MAE, a preview
/// of reconstructions). `medselect pretrain` and an experiment's encoder item both run it; they differ only in what
/// they read, the metadata they record and what they print.
public struct PretrainingStage {
    public enum Method {
        case mae(MaskedAutoencoder, PretrainingConfig)
        case hssl(HSSLModel, HSSLPretrainingConfig, domains: [Int], validationDomains: [Int])
    }
    public var method: Method
    public var train: ImageStack
    public var validation: ImageStack?
    /// Run folder: checkpoint.safetensors and history.csv (exact resume), encoder.safetensors, curve.svg, preview.png.
    public var folder: String
    /// Metadata of encoder.safetensors besides the epoch (preprocessing, data fingerprint, domains).
    public var metadata: [String: String] = [:]
    /// MAE: images to show original | masked | reconstruction in preview.png every `previewEvery` epochs (0: at the
    /// end only) and at the end; nil: no preview.
    public var preview: ImageStack? = nil
    public var previewEvery = 0
    /// One training step done, for progress lines.
    public struct Step {
        /// Epoch (from 0), step within it, steps per epoch.
        public var epoch: Int, step: Int, perEpoch: Int
        public var loss: Float
        /// HSSL's loss terms (global, dense, domain); nil for the MAE.
        public var terms: (global: Float, local: Float, domain: Float)?
    }
    /// After every step, and after every epoch.
    public var stepEnded: ((Step) -> Void)? = nil
    public var epochEnded: ((EpochRecord) -> Void)? = nil
    /// A problem writing the per-epoch files (the run goes on; the final write reports errors).
    public var warn: (String) -> Void = { _ in }

    public init(method: Method, train: ImageStack, validation: ImageStack? = nil, folder: String) {
        self.method = method; self.train = train; self.validation = validation; self.folder = folder
    }

    /// Trains (resuming from the folder's checkpoint), writes the outputs, and returns the epochs' records.
    public func run() throws -> [EpochRecord] {
        let encoderPath = folder + "/encoder.safetensors", curvePath = folder + "/curve.svg"
        let (metadata, preview, previewEvery, folder, warn, stepEnded) = (self.metadata, self.preview, self.previewEvery, self.folder, self.warn, self.stepEnded)
        let history: [EpochRecord]
        switch method {
        case .mae(let model, let config):
            let trainer = MAEPretrainer(model: model, config: config, folder: folder)
            func write(_ records: [EpochRecord], epoch: Int, previewNow: Bool) throws {
                try MAEPretrainer.writeEncoder(model, metadata: metadata.merging(["epoch": String(epoch)]) { $1 }, to: encoderPath)
                try Self.writeCurve(records, title: "Masked-autoencoder pretraining", yLabel: "reconstruction loss (MSE, hidden patches)", to: curvePath)
                if previewNow, let preview { try Self.writePreview(trainer, preview, to: folder + "/preview.png") }
            }
            history = try trainer.fit(train: train, validation: validation, stepEnded: { epoch, step, perEpoch, loss in
                stepEnded?(Step(epoch: epoch, step: step, perEpoch: perEpoch, loss: loss, terms: nil))
            }, epochEnded: { [epochEnded] record in
                epochEnded?(record)
                do { try write(trainer.history, epoch: record.epoch, previewNow: previewEvery > 0 && record.epoch % previewEvery == 0) } catch { warn("\(error)") }
            })
            guard let last = history.last else { throw TrainingError.noEpoch(path: folder) }
            try write(history, epoch: last.epoch, previewNow: true)
        case .hssl(let model, let config, let domains, let validationDomains):
            let trainer = HSSLPretrainer(model: model, config: config, folder: folder)
            func write(_ records: [EpochRecord], epoch: Int) throws {
                try HSSLPretrainer.writeEncoder(model, metadata: metadata.merging(["epoch": String(epoch)]) { $1 }, to: encoderPath)
                try Self.writeCurve(records, title: "HSSL pretraining", yLabel: "weighted loss (global, dense, domain terms)", to: curvePath)
            }
            history = try trainer.fit(train: train, domains: domains, validation: validation, validationDomains: validationDomains, stepEnded: { epoch, step, perEpoch, loss in
                let t = trainer.lastTerms
                stepEnded?(Step(epoch: epoch, step: step, perEpoch: perEpoch, loss: loss, terms: (t.global, t.local, t.domain)))
            }, epochEnded: { [epochEnded] record in
                epochEnded?(record)
                do { try write(trainer.history, epoch: record.epoch) } catch { warn("\(error)") }
            })
            guard let last = history.last else { throw TrainingError.noEpoch(path: folder) }
            try write(history, epoch: last.epoch)
        }
        return history
    }

    /// A loss that ends non-finite or far above where it started means the run diverged (too high a learning rate):
    /// the warning to give, nil when the run looks sound.
    public static func divergence(_ history: [EpochRecord]) -> String? {
        guard let first = history.first, let last = history.last else { return nil }
        let trainBad = !last.trainLoss.isFinite || (first.trainLoss.isFinite && last.trainLoss > 10 * max(first.trainLoss, 1e-12))
        let validationBad = first.validation.isFinite && (!last.validation.isFinite || last.validation > 10 * max(first.validation, 1e-12))
        guard trainBad || validationBad else { return nil }
        return String(format: "the pretraining diverged (training loss %.4g -> %.4g, validation loss %.4g -> %.4g): the encoder is not usable; lower --lr and run into a new folder",
                      first.trainLoss, last.trainLoss, first.validation, last.validation)
    }

    /// Resuming a run with another number of epochs stretches or shortens its learning-rate schedule (warm-up and
    /// cosine decay span the whole run) from the resumed epoch on: allowed, and said (the note to give, or nil).
    public static func scheduleChange(folder: String, epochs: Int) -> String? {
        guard FileManager.default.fileExists(atPath: folder + "/checkpoint.safetensors"),
              let meta = try? Safetensors.read(folder + "/checkpoint.safetensors").metadata, let text = meta["config"],
              let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let stored = (object["epochs"] as? NSNumber)?.intValue, stored != epochs else { return nil }
        return "\(folder) holds a run of \(stored) epoch\(stored == 1 ? "" : "s"), resumed as a run of \(epochs): the learning-rate schedule "
            + "(warm-up, then cosine decay over every epoch) now spans \(epochs) epochs from the resumed epoch on, so the result differs from a fresh "
            + "\(epochs)-epoch run"
    }

    /// Up to `count` images spread evenly over the stack (the same ones in every preview).
    public static func previewSet(_ stack: ImageStack, count: Int) -> ImageStack {
        let k = min(count, stack.count), per = stack.channels * stack.size * stack.size
        let picks = (0..<k).map { $0 * stack.count / max(1, k) }
        return ImageStack(values: picks.flatMap { stack.values[($0 * per)..<(($0 + 1) * per)] }, count: k, channels: stack.channels, size: stack.size)
    }

    /// preview.png: a header naming the columns, then one row per image: original | masked | reconstruction, each
    /// enlarged to at least 128 pixels (nearest neighbour) and z-scored values −2.5...2.5 mapped to 0...255.
    static func writePreview(_ trainer: MAEPretrainer, _ images: ImageStack, to path: String) throws {
        let (masked, rebuilt) = try trainer.reconstructions(images)
        let (s, c, gap, font) = (images.size, images.channels, 4, 2)
        let zoom = max(1, (128 + s - 1) / s), t = s * zoom, header = 7 * font + 2 * gap
        let w = 3 * t + 4 * gap, h = header + images.count * (t + gap)
        var pixels = [UInt8](repeating: 255, count: w * h * c)
        for (column, title) in ["original", "masked", "reconstruction"].enumerated() {
            let scale = BitmapFont.width(title, scale: font) <= t ? font : 1
            let x0 = gap + column * (t + gap) + max(0, (t - BitmapFont.width(title, scale: scale)) / 2)
            BitmapFont.draw(title, x: x0, y: gap + (7 * (font - scale)) / 2, scale: scale) { x, y in
                guard x >= 0, x < w, y >= 0, y < h else { return }
                for ch in 0..<c { pixels[(y * w + x) * c + ch] = 0 }
            }
        }
        for (column, source) in [images.values, masked, rebuilt].enumerated() {
            for b in 0..<images.count { for ch in 0..<c { for y in 0..<t { for x in 0..<t {
                let v = source[((b * c + ch) * s + y / zoom) * s + x / zoom]
                let px = gap + column * (t + gap) + x, py = header + b * (t + gap) + y
                pixels[(py * w + px) * c + ch] = UInt8(max(0, min(255, ((v + 2.5) / 5 * 255).rounded())))
            } } } }
        }
        try PNGWriter.write(interleaved: pixels, width: w, height: h, channels: c, bitDepth: 8, spacing: nil, to: path)
    }

    /// curve.svg: training and validation loss per epoch.
    static func writeCurve(_ h: [EpochRecord], title: String, yLabel: String, to path: String) throws {
        var chart = LineChart(title: title, xLabel: "epoch", yLabel: yLabel,
                              series: [.init(name: "training", points: h.map { (Double($0.epoch), $0.trainLoss) }, markers: h.count <= 30)])
        if h.contains(where: { $0.validation.isFinite }) {
            chart.series.append(.init(name: title.hasPrefix("HSSL") ? "validation (fixed views)" : "validation (fixed masks)", points: h.map { (Double($0.epoch), $0.validation) }, markers: h.count <= 30))
        }
        chart.integerX = true
        chart.width = 560; chart.height = 300
        try AtomicFile.write(chart.svg, to: path)
    }
}
