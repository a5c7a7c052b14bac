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
        if let note = PretrainingStage.scheduleChange(folder: out, epochs: epochs) { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
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
        var stage = PretrainingStage(method: .mae(model, config), train: train, validation: validation, folder: out)
        stage.metadata = ["preprocessing": "2-D images, or up to \(maxSlices) evenly spaced axial slices per volume; resampled to \(size) x \(size), z-scored per slice and channel",
                          "max_slices": String(maxSlices), "data": config.dataFingerprint ?? ""]
        stage.preview = PretrainingStage.previewSet(validation ?? train, count: 6)
        stage.previewEvery = previewEvery
        let history = try Self.run(stage, epochs: epochs, batch: config.batchSize)
        let (first, last) = (history.first!, history.last!)
        print(String(format: "pretrained %d epoch%@: training loss %.4f -> %.4f, validation loss %@; wrote %@/encoder.safetensors, checkpoint.safetensors, history.csv, curve.svg, preview.png",
                     history.count, history.count == 1 ? "" : "s", first.trainLoss, last.trainLoss,
                     last.validation.isFinite ? String(format: "%.4f -> %.4f", first.validation, last.validation) : "n/a (no held-out cases)", out))
    }

    /// Runs the pretraining stage with a progress line (steps, images per second, time left) and a line per epoch;
    /// warns when the run diverged.
    static func run(_ stage: PretrainingStage, epochs: Int, batch: Int) throws -> [EpochRecord] {
        var stage = stage
        let progress = ProgressLine("pretrain")
        let started = Date()
        var stepsDone = 0
        stage.stepEnded = { s in
            stepsDone += 1
            let elapsed = Date().timeIntervalSince(started)
            let remaining = Double((epochs - s.epoch) * s.perEpoch - s.step - 1) * elapsed / Double(stepsDone)
            let terms = s.terms.map { String(format: " (global %.3f, dense %.3f, domain %.3f)", $0.global, $0.local, $0.domain) } ?? ""
            progress(String(format: "epoch %d/%d, step %d/%d, loss %.4f%@, %.1f images/s, %@ left", s.epoch + 1, epochs, s.step + 1, s.perEpoch, s.loss, terms,
                            Double(stepsDone * batch) / max(elapsed, 1e-9), ProgressLine.duration(remaining)))
        }
        stage.epochEnded = { record in
            progress.finish(String(format: "epoch %d/%d: training loss %.4f, validation loss %@, lr %.2e, %.1f s", record.epoch, epochs, record.trainLoss,
                                   record.validation.isFinite ? String(format: "%.4f", record.validation) : "n/a", record.learningRate, record.seconds))
        }
        stage.warn = { FileHandle.standardError.write(Data("warning: \($0)\n".utf8)) }
        let history = try stage.run()
        if let warning = PretrainingStage.divergence(history) { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        return history
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
}
