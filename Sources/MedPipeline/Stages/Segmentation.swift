import Foundation
import MedData
import MedFormats
import MedImage
import MedMetrics
import MedNN
import MedReport
import MedSelection
import MedTensor
import MedFoundation

/// The segmentation stage's shared contract: how cases become training arrays and how a trained U-Net's output
/// becomes a label map on the case's own grid. Training, prediction and scoring all go through here, so they agree.
public enum Segmentation {
    /// Images resampled to size x size and z-scored, labels nearest; 3-D cases become their axial slices.
    public static func prepare(_ samples: [Sample], size: Int, channels wanted: Int? = nil) throws -> SegmentationData {
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

    /// A 2-D image or a volume (slice by slice) to a label map on its own grid.
    public static func predictImage(_ image: MedicalImage, model: UNet, size: Int, channels: Int, native: Bool, tta: Bool) throws -> MedicalImage {
        var slices: [MedicalImage] = []
        for k in 0..<image.shape.z {
            let slice = image.shape.z > 1 ? try image.slice(axis: 2, index: k) : image
            slices.append(try predictSlice(slice, model: model, size: size, channels: channels, native: native, tta: tta))
        }
        var label = image.shape.z > 1 ? try MedicalImage.stack(slices, axis: 2) : slices[0]
        label.kind = .labelMap
        return label
    }

    /// One 2-D image (or slice) to a label map on its own grid: resampled to the training size (or, `native`, a
    /// sliding window at its own resolution), z-scored, predicted, brought back by nearest neighbour.
    public static func predictSlice(_ slice: MedicalImage, model: UNet, size: Int, channels: Int, native: Bool, tta: Bool) throws -> MedicalImage {
        let work = native ? slice : try slice.resampled(toShape: [size, size, 1])
        let z = try work.zScored()
        var (h, w) = (work.shape.y, work.shape.x)
        var pixels = Array(z.voxels.prefix(channels * h * w))
        // Pad to at least the patch (edge values) for the sliding window.
        if h < size || w < size {
            let (nh, nw) = (max(h, size), max(w, size))
            var padded = [Float](repeating: 0, count: channels * nh * nw)
            for c in 0..<channels { for j in 0..<nh { for i in 0..<nw { padded[(c * nh + j) * nw + i] = pixels[(c * h + min(j, h - 1)) * w + min(i, w - 1)] } } }
            pixels = padded; (h, w) = (nh, nw)
        }
        let p = try SlidingWindow.probabilities(model: model, image: pixels, channels: channels, height: h, width: w, patch: size, flipTTA: tta)
        let labels = SlidingWindow.labels(p, classes: model.classes, height: h, width: w)
        var cropped = [Float](repeating: 0, count: work.shape.x * work.shape.y)
        for j in 0..<work.shape.y { for i in 0..<work.shape.x { cropped[j * work.shape.x + i] = labels[j * w + i] } }
        let small = MedicalImage(shape: ImageShape(work.shape.x, work.shape.y), voxels: cropped, affine: work.affine, kind: .labelMap, info: work.info)
        return native ? small : try small.resampled(onto: slice, interpolation: .nearest)
    }

    /// A trained U-Net's uncertainty about one case: the mean over its axial slices (resampled to `size`, z-scored)
    /// of the mean pixel entropy / log C (`entropy`, 0...1) or of 1 minus the top-two probability margin (`margin`).
    public static func uncertainty(_ sample: Sample, model: UNet, size: Int, measure: String = "entropy", tta: Bool = false,
                                   options: ReadOptions = .default) throws -> Double {
        let image = try sample.loadImage(options: options)
        let channels = image.info.components == .color ? image.shape.t : 1
        guard channels == model.inChannels else {
            throw DataError.badDataset(path: sample.images[0], reason: "\(channels) channels; the model takes \(model.inChannels)")
        }
        var total = 0.0
        for k in 0..<image.shape.z {
            let slice = image.shape.z > 1 ? try image.slice(axis: 2, index: k) : image
            let z = try slice.resampled(toShape: [size, size, 1]).zScored()
            let p = try SlidingWindow.probabilities(model: model, image: Array(z.voxels.prefix(channels * size * size)), channels: channels,
                                                    height: size, width: size, patch: size, flipTTA: tta)
            total += measure == "entropy" ? try Acquisition.entropy(probabilities: p, classes: model.classes)
                : try Acquisition.margin(probabilities: p, classes: model.classes)
        }
        return total / Double(image.shape.z)
    }

    /// One case's score for one foreground label, in mm on the case's own grid.
    public typealias CaseScore = MedPipeline.CaseScore

    /// Every labeled case in `samples` predicted (resampled to `size`) and scored against its reference.
    public static func score(_ samples: [Sample], model: UNet, size: Int) throws -> [CaseScore] {
        var out: [CaseScore] = []
        for s in samples {
            let image = try s.loadImage()
            guard let reference = try s.loadLabel() else { continue }
            let channels = image.info.components == .color ? image.shape.t : 1
            let predicted = try predictImage(image, model: model, size: size, channels: channels, native: false, tta: false)
            for (label, m) in try SegmentationMetrics.compute(prediction: predicted, reference: reference, labels: Array(1..<model.classes))
                .sorted(by: { $0.key < $1.key }) {
                out.append(CaseScore(id: s.id, site: s.site, label: label, dice: m.dice, hausdorff95: m.hausdorff95, assd: m.assd))
            }
        }
        return out
    }

    /// The training curve: training loss (left axis) and validation Dice (right axis, 0-1) per epoch.
    public static func writeCurve(_ h: [EpochRecord], to path: String) throws {
        var chart = LineChart(title: "Training curve", xLabel: "epoch", yLabel: "training loss (Dice + CE)", rightLabel: "validation Dice",
                              series: [.init(name: "training loss", points: h.map { (Double($0.epoch), $0.trainLoss) }, markers: h.count <= 30)])
        if h.contains(where: { $0.validationDice.isFinite }) {
            chart.series.append(.init(name: "validation Dice", points: h.filter { $0.validationDice.isFinite }.map { (Double($0.epoch), $0.validationDice) }, rightAxis: true,
                                      markers: h.count <= 30))
            chart.rightRange = 0...1
        }
        chart.integerX = true
        chart.width = 560; chart.height = 300
        try AtomicFile.write(chart.svg, to: path)
    }
}

/// Training a U-Net on chosen cases (from scratch or from a checkpoint) and scoring its held-out cases: the work of
/// `medselect train`, and of the experiment runner's training items.
public struct SegmentationTraining {
    public var size = 128
    public var epochs = 30
    public var batch = 8
    public var learningRate: Float = 1e-3
    public var base = 16
    public var levels = 4
    public var normalization = UNet.Normalization.batch
    public var deepSupervision = false
    public var seed: UInt64 = 0
    public var augmentation = true
    /// Which tensors `initFrom` provides (a U-Net checkpoint or a pretrained HSSL encoder-decoder).
    public var initPart = InitPart.all
    /// Score the validation cases after every n-th epoch and the last (the curve); the trained model does not depend
    /// on it.
    public var validateEvery = 1
    public init() {}

    public struct Outcome {
        public var model: UNet
        public var history: [EpochRecord]
        public var scores: [Segmentation.CaseScore]
        /// The tensors loaded from `initFrom` (empty without it).
        public var initialized: [String] = []
        public var meanDice: Double { Self.mean(scores.map(\.dice)) }
        public var meanHausdorff95: Double { Self.mean(scores.map(\.hausdorff95).filter(\.isFinite)) }
        static func mean(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count) }
    }

    /// Trains into `folder` (resuming what a run of the same configuration left there), then scores `validation` at
    /// native resolution and writes validation_metrics.csv and curve.svg beside the checkpoint.
    /// `initialized` hears which tensors `initFrom` supplied, before the first epoch.
    public func run(train: [Sample], validation: [Sample], initFrom: String?, folder: String,
                    initialized heard: ([String]) -> Void = { _ in },
                    epochEnded: @escaping (EpochRecord) -> Void = { _ in }) throws -> Outcome {
        guard train.count >= 2 else { throw DataError.badDataset(path: folder, reason: "fewer than two labeled training cases") }
        let trainData = try Segmentation.prepare(train, size: size)
        let valData = validation.isEmpty ? nil : try Segmentation.prepare(validation, size: size, channels: trainData.channels)
        let classes = Int(trainData.labels.max() ?? 1) + 1
        var config = TrainingConfig()
        config.epochs = epochs; config.batchSize = batch; config.learningRate = learningRate; config.seed = seed; config.imageSize = size
        if !augmentation { config.disableAugmentation() }
        // The cases (and where the weights started), so that an existing run folder is resumed only by the same run.
        var fingerprint = FNV1a()
        for s in train { fingerprint.add("t:" + s.id) }
        for s in validation { fingerprint.add("v:" + s.id) }
        fingerprint.add("init:" + (initFrom ?? "") + (initFrom != nil && initPart != .all ? ":" + initPart.rawValue : ""))
        config.dataFingerprint = "\(train.count) training, \(validation.count) validation cases, ids \(fingerprint.hex)"
        let model = UNet(inChannels: trainData.channels, classes: max(2, classes), base: base, levels: levels, normalization: normalization,
                         deepSupervision: deepSupervision, seed: seed)
        var initialized: [String] = []
        if let initFrom {
            let (tensors, description, _) = try ModelFile.read(initFrom)
            guard ["unet", "hssl-unet"].contains(description.architecture), let theirs = description.unet else {
                throw DataError.badConfiguration(path: initFrom, reason: "holds a \(description.summary); --init-from takes a U-Net checkpoint (medselect train) or a pretrained encoder (medselect pretrain --method hssl)")
            }
            let ours = model.configuration
            // Heads are loaded only from a U-Net checkpoint with --init-part all: then they must match too.
            let headsLoaded = description.architecture == "unet" && initPart == .all
            // A gray-pretrained HSSL encoder starts colour U-Nets too (its first kernels spread over the channels).
            let channelsFit = theirs.inChannels == ours.inChannels || (description.architecture == "hssl-unet" && theirs.inChannels == 1)
            guard channelsFit, theirs.base == ours.base, theirs.levels == ours.levels, theirs.normalization == ours.normalization,
                  !headsLoaded || (theirs.classes == ours.classes && theirs.deepSupervision == ours.deepSupervision) else {
                throw DataError.badConfiguration(path: initFrom, reason: "its \(description.summary) does not match this run's U-Net (\(ours.summary))")
            }
            initialized = try model.initialize(from: tensors, part: initPart, origin: initFrom)
            heard(initialized)
        }
        let trainer = Trainer(model: model, config: config, folder: folder)
        trainer.validateEvery = validateEvery
        let history = try trainer.fit(train: trainData, validation: valData, progress: epochEnded)
        if !history.isEmpty { try Segmentation.writeCurve(history, to: folder + "/curve.svg") }
        let scores = try Segmentation.score(validation, model: model, size: size)
        if !validation.isEmpty { try CaseScore.write(scores, to: folder + "/validation_metrics.csv") }
        return Outcome(model: model, history: history, scores: scores, initialized: initialized)
    }
}
