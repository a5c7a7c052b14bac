import ArgumentParser
import Foundation
import MedData
import MedFormats
import MedImage
import MedMetrics
import MedNN
import MedReport
import MedTensor

/// `medselect train`: a U-Net on a dataset (or the samples of a selection), with validation, checkpoints and resume.
/// 64-bit FNV-1a of strings (a short fingerprint, not a security hash).
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ text: String) {
        for b in text.utf8 { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        value = (value ^ 0xff) &* 0x0000_0100_0000_01b3
    }
    var hex: String { String(value, radix: 16) }
}

struct Train: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Train a 2-D U-Net (Dice + CE, Adam) on a dataset folder or index; resumes from the output folder's checkpoint.",
        discussion: """
        Images are resampled to --size x --size (labels nearest) and z-scored; 3-D volumes contribute their axial slices. \
        Validation: --validation-fraction of the labeled cases (seeded, per site), or the given sites. The output \
        folder receives checkpoint.safetensors, history.csv, curve.svg and summary.json; running the same command \
        again after an interruption continues where it stopped and ends with the same weights. \
        Selection workflow: train a source model, `medselect embed --split train` the target sites, `medselect select`, \
        then --init-from the source checkpoint with --selection (only selected training cases are used; validation stays \
        the split of --split-seed, so runs with other seeds are scored on the same cases). --epochs 0 with --init-from \
        scores the given model without training.
        Example: medselect train --data phantoms/cxr --sites MCU --size 128 --epochs 30 --out runs/mcu
        """
    )
    @OptionGroup var limits: ReadLimitOptions
    @OptionGroup var dataset: DatasetOptions
    @Option(help: "Train only on the ids of this selection JSON (members 'labeled' and 'selected'), which must be training cases (embed --split train); validation stays as split.") var selection: String?
    @Option(help: "Start from the weights of this checkpoint (fine-tuning, e.g. a source-site model); same architecture.") var initFrom: String?
    @Option(help: "Image side after resampling (multiple of 16).") var size = 128
    @Option(help: "Held-out fraction of the labeled cases.") var validationFraction = 0.2
    @Option(help: "Sites used only for validation (comma-separated).") var validationSites: String?
    @Option(help: "Epochs.") var epochs = 30
    @Option(help: "Batch size.") var batch = 8
    @Option(help: "Learning rate.") var lr: Float = 1e-3
    @Option(help: "U-Net base width.") var base = 16
    @Option(help: "U-Net levels.") var levels = 4
    @Option(help: "Normalisation: batch or instance.") var norm = "batch"
    @Flag(help: "Deep supervision (auxiliary heads on the decoder's lower resolutions).") var deepSupervision = false
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Seed of the train/validation split (default: --seed); fix it to compare runs on the same held-out cases.") var splitSeed: UInt64?
    @Flag(help: "No augmentation (flips, intensity, spatial, gamma, noise, blur, elastic) and no foreground oversampling.") var noAugmentation = false
    @Option(help: "Output folder.") var out: String

    func run() throws {
        guard size >= 16, size % (1 << levels) == 0 else { throw ValidationError("--size must be a multiple of \(1 << levels)") }
        guard (0..<1).contains(validationFraction), epochs >= (initFrom == nil ? 1 : 0), batch >= 2 else {
            throw ValidationError("need 0 <= --validation-fraction < 1, --epochs >= 1 (0 allowed with --init-from: evaluate only), --batch >= 2")
        }
        let datasets = try dataset.load().map { $0.filtered(labeled: true) }
        let valSites = Set((validationSites ?? "").split(separator: ",").map(String.init))
        var trainSamples: [Sample] = [], valSamples: [Sample] = []
        for d in datasets {
            if !valSites.isEmpty {
                trainSamples += d.samples.filter { !valSites.contains($0.site) }
                valSamples += d.samples.filter { valSites.contains($0.site) }
            } else {
                let parts = DatasetOptions.split(d, seed: splitSeed ?? seed, validationFraction: validationFraction)
                trainSamples += parts.train; valSamples += parts.validation
            }
        }
        if let selection {
            guard let json = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: selection))) as? [String: Any],
                  let picked = json["selected"] as? [String] else {
                throw DataError.badConfiguration(path: selection, reason: "not a selection JSON with a 'selected' list of ids")
            }
            // Later active-learning rounds record what was labeled before: train on all of it.
            let ids = (json["labeled"] as? [String] ?? []) + picked
            let chosen = Set(ids)
            // Selected validation cases would leak the evaluation into training; unknown ids are a wrong file or split.
            let leaked = valSamples.filter { chosen.contains($0.id) }.map(\.id)
            guard leaked.isEmpty else {
                throw DataError.badConfiguration(path: selection, reason: "\(leaked.count) selected ids are validation cases (first: \(leaked[0])); select from the training split (medselect embed --split train with --seed equal to this run's split seed and the same --validation-fraction)")
            }
            let known = Set(trainSamples.map(\.id))
            let unknown = ids.filter { !known.contains($0) }
            guard unknown.isEmpty else {
                throw DataError.badConfiguration(path: selection, reason: "\(unknown.count) selected ids are not training cases of the chosen sites (first: \(unknown[0]))")
            }
            trainSamples = trainSamples.filter { chosen.contains($0.id) }
        }
        guard trainSamples.count >= 2 else { throw DataError.badDataset(path: dataset.origin, reason: "fewer than two labeled training cases") }
        FileHandle.standardError.write(Data("[train] \(trainSamples.count) training and \(valSamples.count) validation cases, \(size)x\(size)\n".utf8))
        let trainData = try Self.prepare(trainSamples, size: size)
        let valData = valSamples.isEmpty ? nil : try Self.prepare(valSamples, size: size, channels: trainData.channels)
        let classes = Int((trainData.labels.max() ?? 1)) + 1
        var config = TrainingConfig()
        config.epochs = epochs; config.batchSize = batch; config.learningRate = lr; config.seed = seed; config.imageSize = size
        if noAugmentation { config.disableAugmentation() }
        // The cases (and where the weights started), so that an existing run folder is resumed only by the same run.
        var fingerprint = FNV1a()
        for s in trainSamples { fingerprint.add("t:" + s.id) }
        for s in valSamples { fingerprint.add("v:" + s.id) }
        fingerprint.add("init:" + (initFrom ?? ""))
        config.dataFingerprint = "\(trainSamples.count) training, \(valSamples.count) validation cases, ids \(fingerprint.hex)"
        guard let normalization = UNet.Normalization(rawValue: norm) else { throw ValidationError("--norm must be batch or instance") }
        var model = UNet(inChannels: trainData.channels, classes: max(2, classes), base: base, levels: levels, normalization: normalization,
                         deepSupervision: deepSupervision, seed: seed)
        if let initFrom {
            let (initial, _) = try Trainer.loadModel(checkpoint: initFrom)
            guard initial.inChannels == model.inChannels, initial.classes == model.classes, initial.base == model.base,
                  initial.levels == model.levels, initial.normalization == model.normalization, initial.deepSupervision == model.deepSupervision else {
                throw DataError.badConfiguration(path: initFrom, reason: "its U-Net (\(initial.inChannels) in, \(initial.classes) classes, base \(initial.base), \(initial.levels) levels, \(initial.normalization.rawValue) norm) does not match this run's (\(model.inChannels) in, \(model.classes) classes, base \(model.base), \(model.levels) levels, \(model.normalization.rawValue) norm)")
            }
            model = initial
        }
        let trainer = Trainer(model: model, config: config, folder: out)
        let start = Date()
        let history = try trainer.fit(train: trainData, validation: valData) { r in
            FileHandle.standardError.write(Data(String(format: "[train] epoch %d/%d  loss %.4f  validation Dice %.4f  lr %.2e  %.1f s\n",
                                                      r.epoch, epochs, r.trainLoss, r.validationDice, r.learningRate, r.seconds).utf8))
        }
        if !history.isEmpty { try Self.writeCurve(history, to: out + "/curve.svg") }
        // Held-out cases scored with the project's metrics, at their own resolution and spacing (mm).
        var csv = "case,site,label,dice,hausdorff95_mm,assd_mm\n"
        var dices: [Double] = [], hd95s: [Double] = []
        for s in valSamples {
            let image = try s.loadImage()
            guard let reference = try s.loadLabel() else { continue }
            let channels = image.info.components == .color ? image.shape.t : 1
            let predicted = try Predict.predictImage(image, model: model, size: size, channels: channels, native: false, tta: false)
            let labels = Array(1..<model.classes)
            for (label, m) in try SegmentationMetrics.compute(prediction: predicted, reference: reference, labels: labels).sorted(by: { $0.key < $1.key }) {
                csv += "\(s.id),\(s.site),\(label),\(m.dice),\(m.hausdorff95),\(m.assd)\n"
                dices.append(m.dice)
                if m.hausdorff95.isFinite { hd95s.append(m.hausdorff95) }
            }
        }
        if !valSamples.isEmpty { try AtomicFile.write(csv, to: out + "/validation_metrics.csv") }
        let meanDice = dices.isEmpty ? Double.nan : dices.reduce(0, +) / Double(dices.count)
        let meanHD95 = hd95s.isEmpty ? Double.nan : hd95s.reduce(0, +) / Double(hd95s.count)
        let summary: [String: Any] = ["training_cases": trainSamples.count, "validation_cases": valSamples.count, "size": size,
                                      "epochs": history.count, "final_validation_dice": history.last?.validationDice ?? .nan,
                                      "best_validation_dice": history.map(\.validationDice).max() ?? .nan,
                                      "validation_dice_native": meanDice, "validation_hausdorff95_mm_native": meanHD95,
                                      "seconds_this_run": Date().timeIntervalSince(start), "seed": seed,
                                      "initialized_from": initFrom ?? NSNull(), "selection": selection ?? NSNull()]
        // JSON has no NaN: undefined figures (no validation cases, empty masks) are written as null.
        let clean = summary.mapValues { v -> Any in (v as? Double).map { $0.isFinite ? $0 : NSNull() as Any } ?? v }
        try AtomicFile.write(Array(try JSONSerialization.data(withJSONObject: clean, options: [.prettyPrinted, .sortedKeys])), to: out + "/summary.json")
        let hd95Text = meanHD95.isFinite ? String(format: "HD95 %.2f mm", meanHD95) : "HD95 n/a (no case with both masks non-empty)"
        let native = valSamples.isEmpty ? "no validation cases"
            : String(format: "at native resolution Dice %.4f, %@ (%d validation cases)", meanDice, hd95Text, valSamples.count)
        if history.isEmpty {
            print("scored \(initFrom ?? "the model") without training: \(native); wrote \(out)/validation_metrics.csv, summary.json")
        } else if valSamples.isEmpty {
            print(String(format: "trained %d epoch%@: final training loss %.4f (no validation cases); wrote %@/checkpoint.safetensors, history.csv, curve.svg, summary.json",
                         history.count, history.count == 1 ? "" : "s", history.last?.trainLoss ?? .nan, out))
        } else {
            print(String(format: "trained %d epoch%@: validation Dice %.4f (best %.4f); %@; wrote %@/checkpoint.safetensors, history.csv, curve.svg, validation_metrics.csv, summary.json",
                         history.count, history.count == 1 ? "" : "s", history.last?.validationDice ?? .nan, history.map(\.validationDice).max() ?? .nan,
                         native, out))
        }
    }

    /// Images resampled to size x size and z-scored, labels nearest; 3-D cases become their axial slices.
    static func prepare(_ samples: [Sample], size: Int, channels wanted: Int? = nil) throws -> SegmentationData {
        var images: [Float] = [], labels: [Float] = [], count = 0, channels = wanted ?? 0
        for s in samples {
            let image = try s.loadImage()
            guard let label = try s.loadLabel() else { continue }
            let c = image.info.components == .color ? image.shape.t : 1
            if channels == 0 { channels = c }
            guard c == channels else { throw DataError.badDataset(path: s.images[0], reason: "\(c) channels; the others have \(channels)") }
            for k in 0..<image.shape.z {
                let img2 = image.shape.z > 1 ? try image.slice(axis: 2, index: k) : image
                let lab2 = label.shape.z > 1 ? try label.slice(axis: 2, index: k) : label
                let r = try img2.resampled(toShape: [size, size, 1])
                var l = lab2
                l.kind = .labelMap
                let rl = try l.resampled(toShape: [size, size, 1])
                let z = try r.zScored()
                images += z.voxels.prefix(size * size * channels)
                labels += rl.voxels.prefix(size * size)
                count += 1
            }
        }
        return SegmentationData(images: images, labels: labels, count: count, channels: channels, height: size, width: size)
    }

    /// The training curve as a small SVG: training loss and validation Dice per epoch.
    /// The training curve: training loss (left axis) and validation Dice (right axis, 0-1) per epoch.
    static func writeCurve(_ h: [EpochRecord], to path: String) throws {
        var chart = LineChart(title: "Training curve", xLabel: "epoch", yLabel: "training loss (Dice + CE)", rightLabel: "validation Dice",
                              series: [.init(name: "training loss", points: h.map { (Double($0.epoch), $0.trainLoss) }, markers: h.count <= 30)])
        if h.contains(where: { $0.validationDice.isFinite }) {
            chart.series.append(.init(name: "validation Dice", points: h.map { (Double($0.epoch), $0.validationDice) }, rightAxis: true,
                                      markers: h.count <= 30))
            chart.rightRange = 0...1
        }
        chart.integerX = true
        chart.width = 560; chart.height = 300
        let svg = chart.svg
        try AtomicFile.write(svg, to: path)
    }
}
