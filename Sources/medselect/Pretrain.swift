import ArgumentParser
import Foundation
import Synchronization
import MedData
import MedFormats
import MedImage
import MedNN
import MedPipeline
import MedReport
import MedTensor
import MedFoundation

/// `medselect pretrain`: self-supervised pretraining of an encoder on unlabeled images (the masked autoencoder of
/// XSSR's first stage), resumable, with the encoder file `medselect embed --encoder` reads.
struct Pretrain: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain an encoder without labels: a masked autoencoder (ViT, XSSR) or the U-Net with HSSL; writes encoder.safetensors.",
        discussion: """
        Every case of the chosen sites is used, labeled or not: 2-D images as they are, volumes as up to --max-slices \
        evenly spaced axial slices; each slice resampled to --size x --size and z-scored. A seeded --validation-fraction \
        of the cases is held out to score the reconstruction loss (fixed masks) after every epoch. Training: random \
        resized crops and flips, per-image random masking (--mask-ratio), AdamW (weight decay off for biases, norms \
        and tokens), linear warm-up then cosine decay. After every epoch the folder receives checkpoint.safetensors \
        (the whole model, loadable into Scripts/reference/torch_mae_step.py's TinyMAE with PyTorch's load_state_dict), \
        optimizer-<epoch>.safetensors, encoder.safetensors (the encoder alone, for medselect embed --encoder), \
        history.csv and curve.svg; preview.png (original | masked | reconstruction per row) every --preview-every \
        epochs and at the end. Running the same command again resumes exactly; a different configuration is refused. \
        The defaults are the benchmark configuration of Scripts/reference/torch_mae_step.py (about 4 batches of 32 per \
        second on 2 cores at 128 px: 1,000 images take some 8 s per epoch).
        HSSL (--method hssl): the U-Net of medselect train pretrained on every case of every --data folder (repeat it) \
        or index, in one gray channel (colour converted to luminance), each image labelled with its domain (--domain \
        dataset or site): two augmented views per image (crop, flip, intensity, blur, noise), a global NT-Xent term on \
        the pooled bottleneck, a dense NT-Xent term on decoder features at corresponding locations of the two views, \
        and a domain classification term (weights --global-weight, --local-weight, --domain-weight). The folder gets \
        encoder.safetensors (the U-Net without its head: medselect train --init-from, medselect embed --encoder), \
        checkpoint.safetensors, history.csv and curve.svg; an image costs about two U-Net training images. \
        Docs/learning.md describes both methods and what they were measured to do.
        Example: medselect pretrain --data Samples/cxr --sites MCU --size 64 --patch 8 --epochs 30 --out runs/mae
        Example: medselect pretrain --method hssl --data phantoms/cxr --data phantoms/fundus --size 64 --epochs 40 --out runs/hssl
        """
    )
    @OptionGroup var limits: ReadLimitOptions
    @OptionGroup var dataset: DatasetOptions
    @Option(help: "Method: mae (masked autoencoder, XSSR) or hssl (multi-domain contrastive U-Net pretraining).") var method = PretrainMethod.mae
    @OptionGroup(title: "HSSL") var hssl: HSSLOptions
    @Option(help: "Image side after resampling (a multiple of --patch).") var size = 128
    @Option(help: "Patch side in pixels.") var patch = 16
    @Option(help: "Share of each image's patches hidden from the encoder.") var maskRatio = 0.75
    @Option(help: "Encoder width.") var width = 192
    @Option(help: "Encoder blocks.") var depth = 6
    @Option(help: "Encoder attention heads.") var heads = 3
    @Option(help: "Decoder width.") var decoderWidth = 128
    @Option(help: "Decoder blocks.") var decoderDepth = 2
    @Option(help: "Decoder attention heads.") var decoderHeads = 4
    @Flag(help: "Reconstruct per-patch normalised pixels (the MAE paper's norm_pix_loss).") var normalizedTargets = false
    @Option(help: "Epochs.") var epochs = 50
    @Option(help: "Batch size (default 32 for mae, 16 image pairs for hssl).") var batch: Int?
    @Option(help: "Peak learning rate, AdamW (default 5e-4 for mae, 1e-3 for hssl).") var lr: Float?
    @Option(help: "AdamW weight decay (default 0.05 for mae, 1e-4 for hssl).") var weightDecay: Float?
    @Option(help: "Held-out fraction of the cases (reconstruction loss after each epoch).") var validationFraction = 0.1
    @Option(help: "At most this many axial slices per volume.") var maxSlices = 16
    @Option(help: "Write preview.png every this many epochs (0: only at the end).") var previewEvery = 5
    @Flag(help: "No random crops or flips.") var noAugmentation = false
    @Option(help: "Seed (weights, split, batches, masks).") var seed: UInt64 = 0
    @Option(help: "Output folder.") var out: String

    func validate() throws {
        guard epochs >= 1, (batch ?? 2) >= (method == .hssl ? 2 : 1), (lr ?? 1) > 0, (weightDecay ?? 0) >= 0, maxSlices >= 1, previewEvery >= 0 else {
            throw ValidationError("need --epochs >= 1, --batch >= 1 (2 for hssl), --lr > 0, --weight-decay >= 0, --max-slices >= 1, --preview-every >= 0")
        }
        guard (0..<1).contains(validationFraction) else { throw ValidationError("need 0 <= --validation-fraction < 1") }
        if method == .mae, let problem = modelConfiguration(channels: 1).problem { throw ValidationError(problem) }
        if method == .hssl, let problem = hssl.configuration(size: size, domains: []).problem { throw ValidationError(problem) }
    }

    func modelConfiguration(channels: Int) -> MaskedAutoencoder.Configuration {
        var c = MaskedAutoencoder.Configuration()
        c.imageSize = size; c.channels = channels; c.patch = patch; c.maskRatio = maskRatio
        c.width = width; c.depth = depth; c.heads = heads
        c.decoderWidth = decoderWidth; c.decoderDepth = decoderDepth; c.decoderHeads = decoderHeads
        c.normalizedTargets = normalizedTargets
        return c
    }

    func run() throws {
        let batch = self.batch ?? (method == .hssl ? 16 : 32)
        if method == .mae { try checkTrainingMemory(batch: batch) }
        // One writer per output folder: a second pretrain into the same --out is refused while this one runs.
        let lock = try FolderLock(folder: out, command: "medselect pretrain")
        defer { withExtendedLifetime(lock) {} }
        Self.noteScheduleChange(folder: out, epochs: epochs)
        if method == .hssl { return try runHSSL() }
        let lr = self.lr ?? 5e-4, weightDecay = self.weightDecay ?? 0.05
        let samples = try dataset.load().flatMap(\.samples)
        guard samples.count >= 2 else { throw DataError.badDataset(path: dataset.origin, reason: "\(samples.count) case(s); pretraining needs at least 2 (check --sites)") }
        let (trainSamples, valSamples) = heldOut(samples)
        let train = try Self.read(trainSamples, size: size, maxSlices: maxSlices, options: limits.readOptions, label: "training")
        let validation = valSamples.isEmpty ? nil : try Self.read(valSamples, size: size, maxSlices: maxSlices, options: limits.readOptions, label: "validation")
        if let validation, validation.channels != train.channels {
            throw DataError.badDataset(path: dataset.origin, reason: "validation images have \(validation.channels) channel(s), training images \(train.channels)")
        }
        guard train.count >= 1 else { throw DataError.badDataset(path: dataset.origin, reason: "no training images") }
        FileHandle.standardError.write(Data(("[pretrain] \(counted(trainSamples.count, "training case")) (\(counted(train.count, "image"))), \(valSamples.count) held out"
            + " (\(counted(validation?.count ?? 0, "image"))), \(size) x \(size), \(train.channels) channel(s)\n").utf8))

        var config = PretrainingConfig()
        config.epochs = epochs; config.batchSize = min(batch, train.count); config.learningRate = lr; config.weightDecay = weightDecay
        config.seed = seed
        if noAugmentation { config.flips = false; config.cropScale = 1 }
        var fingerprint = FNV1a()
        for s in trainSamples { fingerprint.add("t:" + s.id) }
        for s in valSamples { fingerprint.add("v:" + s.id) }
        fingerprint.add("slices:\(maxSlices)")
        config.dataFingerprint = "\(train.count) training, \(validation?.count ?? 0) validation images, ids \(fingerprint.hex)"
        let model = MaskedAutoencoder(modelConfiguration(channels: train.channels), seed: seed)
        let trainer = MAEPretrainer(model: model, config: config, folder: out)
        let previewImages = Self.previewSet(validation ?? train, count: 6)
        let encoderMeta = ["preprocessing": "2-D images, or up to \(maxSlices) evenly spaced axial slices per volume; resampled to \(size) x \(size), z-scored per slice and channel",
                           "max_slices": String(maxSlices), "data": config.dataFingerprint ?? ""]
        let progress = ProgressLine("pretrain")
        let started = Date()
        var stepsDone = 0
        let history = try trainer.fit(train: train, validation: validation, stepEnded: { epoch, step, perEpoch, loss in
            stepsDone += 1
            let elapsed = Date().timeIntervalSince(started)
            let remaining = Double((epochs - epoch) * perEpoch - step - 1) * elapsed / Double(stepsDone)
            progress(String(format: "epoch %d/%d, step %d/%d, loss %.4f, %.0f images/s, %@ left", epoch + 1, epochs, step + 1, perEpoch, loss,
                            Double(stepsDone * config.batchSize) / max(elapsed, 1e-9), ProgressLine.duration(remaining)))
        }, epochEnded: { record in
            progress.finish(String(format: "epoch %d/%d: training loss %.4f, validation loss %@, lr %.2e, %.1f s", record.epoch, epochs, record.trainLoss,
                                   record.validation.isFinite ? String(format: "%.4f", record.validation) : "n/a", record.learningRate, record.seconds))
            do {
                try MAEPretrainer.writeEncoder(model, metadata: encoderMeta.merging(["epoch": String(record.epoch)]) { $1 }, to: out + "/encoder.safetensors")
                try Self.writeCurve(trainer.history, to: out + "/curve.svg")
                if previewEvery > 0 && record.epoch % previewEvery == 0 { try Self.writePreview(trainer, previewImages, to: out + "/preview.png") }
            } catch {
                FileHandle.standardError.write(Data("warning: \(error)\n".utf8))
            }
        })
        guard let last = history.last else { throw CommandError(subject: out, reason: "no epoch was run") }
        Self.warnIfDiverged(history)
        try MAEPretrainer.writeEncoder(model, metadata: encoderMeta.merging(["epoch": String(last.epoch)]) { $1 }, to: out + "/encoder.safetensors")
        try Self.writeCurve(history, to: out + "/curve.svg")
        try Self.writePreview(trainer, previewImages, to: out + "/preview.png")
        let first = history.first!
        print(String(format: "pretrained %d epoch%@: training loss %.4f -> %.4f, validation loss %@; wrote %@/encoder.safetensors, checkpoint.safetensors, history.csv, curve.svg, preview.png",
                     history.count, history.count == 1 ? "" : "s", first.trainLoss, last.trainLoss,
                     last.validation.isFinite ? String(format: "%.4f -> %.4f", first.validation, last.validation) : "n/a (no held-out cases)", out))
    }

    /// Refuses, before any image is read, a masked autoencoder whose training step cannot fit in the memory limit
    /// (--max-memory): its attention grows with the fourth power of --size / --patch (1024 px in patches of 8 asked
    /// for 34 GB in one allocation and aborted). The message names the size, the patch and what fits.
    func checkTrainingMemory(batch: Int) throws {
        let limit = Double(MemoryLimit.maxBytes)
        var c = modelConfiguration(channels: 1)
        let needed = c.trainingBytes(batch: batch)
        guard needed > limit else { return }
        let tokens = c.patchesPerImage
        // The largest size at this patch, and the smallest patch at this size, that fit with this batch.
        var fitSize = 0
        for s in stride(from: size - patch, through: patch, by: -patch) {
            c.imageSize = s
            if c.problem == nil && c.trainingBytes(batch: batch) <= limit { fitSize = s; break }
        }
        c.imageSize = size
        var fitPatch = 0
        for p in (patch + 1)...max(patch + 1, size) where size % p == 0 {
            c.patch = p
            if c.problem == nil && c.trainingBytes(batch: batch) <= limit { fitPatch = p; break }
        }
        var advice: [String] = []
        if fitSize > 0 { advice.append("--size \(fitSize) or less at --patch \(patch)") }
        if fitPatch > 0 { advice.append("--patch \(fitPatch) at --size \(size)") }
        throw CommandError(subject: out, reason: "a masked autoencoder at --size \(size) with --patch \(patch) has \(tokens) patches per image; a training "
            + "step on a batch of \(batch) needs about \(MemoryLimit.describe(Int64(min(needed, 9e18)))) (attention over every patch), above the memory "
            + "limit of \(MemoryLimit.describe(MemoryLimit.maxBytes)) (--max-memory)"
            + (advice.isEmpty ? "" : "; fits: " + advice.joined(separator: ", or ")))
    }

    /// Resuming a run with another --epochs stretches or shortens its learning-rate schedule (warm-up and cosine decay
    /// span the whole run) from the resumed epoch on: allowed, and said, since the result then differs from a fresh
    /// run of the new length.
    static func noteScheduleChange(folder: String, epochs: Int) {
        guard FileManager.default.fileExists(atPath: folder + "/checkpoint.safetensors"),
              let meta = try? Safetensors.read(folder + "/checkpoint.safetensors").metadata, let text = meta["config"],
              let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let stored = (object["epochs"] as? NSNumber)?.intValue, stored != epochs else { return }
        FileHandle.standardError.write(Data(("note: \(folder) holds a run of \(counted(stored, "epoch")), resumed as a run of \(epochs): the learning-rate schedule "
            + "(warm-up, then cosine decay over every epoch) now spans \(epochs) epochs from the resumed epoch on, so the result differs from a fresh "
            + "\(epochs)-epoch run\n").utf8))
    }

    /// A loss that ends non-finite or far above where it started means the run diverged (too high a learning rate):
    /// the files are written, with a warning, rather than passed off as a pretrained encoder.
    static func warnIfDiverged(_ history: [EpochRecord]) {
        guard let first = history.first, let last = history.last else { return }
        let trainBad = !last.trainLoss.isFinite || (first.trainLoss.isFinite && last.trainLoss > 10 * max(first.trainLoss, 1e-12))
        let validationBad = first.validation.isFinite && (!last.validation.isFinite || last.validation > 10 * max(first.validation, 1e-12))
        guard trainBad || validationBad else { return }
        FileHandle.standardError.write(Data(String(format: "warning: the pretraining diverged (training loss %.4g -> %.4g, validation loss %.4g -> %.4g): the encoder is not usable; lower --lr and run into a new folder\n",
                                                   first.trainLoss, last.trainLoss, first.validation, last.validation).utf8))
    }

    /// `items` split into training and held-out parts: a seeded share (--validation-fraction, at least one item when
    /// it is above 0, never all), in the original order within each part.
    func heldOut<T>(_ items: [T]) -> (train: [T], validation: [T]) {
        var g = SplitMix64(seed: seed ^ 0x7072_6574)
        let order = Array(items.indices).shuffled(using: &g)
        let held = validationFraction > 0 ? max(1, Int((Double(items.count) * validationFraction).rounded())) : 0
        let valIndices = Set(order.prefix(min(held, items.count - 1)))
        return (items.indices.filter { !valIndices.contains($0) }.map { items[$0] }, items.indices.filter { valIndices.contains($0) }.map { items[$0] })
    }

    /// The slices of `samples` as one stack, read in parallel, with progress.
    static func read(_ samples: [Sample], size: Int, maxSlices: Int, options: ReadOptions, label: String) throws -> ImageStack {
        let progress = ProgressLine("pretrain")
        let stack = try PretrainingImages.read(samples, size: size, maxSlices: maxSlices, options: options) { done, total in
            progress.update(done, of: total, unit: "\(label) cases read")
        }
        progress.finish("\(counted(samples.count, "\(label) case")) read")
        return stack
    }

    /// Up to `count` images spread evenly over the stack (the same ones in every preview).
    static func previewSet(_ stack: ImageStack, count: Int) -> ImageStack {
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

    /// curve.svg: training and validation reconstruction loss per epoch.
    static func writeCurve(_ h: [EpochRecord], title: String = "Masked-autoencoder pretraining",
                           yLabel: String = "reconstruction loss (MSE, hidden patches)", to path: String) throws {
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
