import ArgumentParser
import Foundation
import MedData
import MedFormats
import MedImage
import MedMetrics
import MedNN
import MedPipeline
import MedReport
import MedTensor
import MedFoundation

/// `medselect train`: a U-Net on a dataset (or the samples of a selection), with validation, checkpoints and resume.
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
        scores the given model without training. \
        Pretrained start: --init-from RUN/encoder.safetensors of `medselect pretrain --method hssl` loads the pretrained \
        encoder-decoder (--init-part all) or only its encoder (--init-part encoder); the 1x1 segmentation head (and \
        the rest, with encoder) starts from this run's seeded initialisation. Base width, levels, normalisation and \
        input channels must match the file's (both are named when they do not).
        Example: medselect train --data phantoms/cxr --sites MCU --size 128 --epochs 30 --out runs/mcu
        """
    )
    @OptionGroup var limits: ReadLimitOptions
    @OptionGroup var dataset: DatasetOptions
    @Option(help: "Train only on the ids of this selection JSON (members 'labeled' and 'selected'), which must be training cases (embed --split train); validation stays as split.") var selection: String?
    @Option(help: "Start from the weights of this checkpoint (fine-tuning, e.g. a source-site model; same architecture) or of a pretrained encoder (medselect pretrain --method hssl).") var initFrom: String?
    @Option(help: "With --init-from: encoder (contracting path and bottleneck) or all (everything the file holds; the segmentation head starts fresh when the file has none).") var initPart = InitPart.all
    @Option(help: "Image side after resampling (multiple of 16).") var size = 128
    @Option(help: "Held-out fraction of the labeled cases.") var validationFraction = 0.2
    @Option(help: "Sites used only for validation (comma-separated).") var validationSites: String?
    @Option(help: "Epochs.") var epochs = 30
    @Option(help: "Batch size.") var batch = 8
    @Option(help: "Learning rate.") var lr: Float = 1e-3
    @Option(help: "U-Net base width.") var base = 16
    @Option(help: "U-Net levels.") var levels = 4
    @Option(help: "Normalisation.") var norm = UNet.Normalization.batch
    @Flag(help: "Deep supervision (auxiliary heads on the decoder's lower resolutions).") var deepSupervision = false
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Seed of the train/validation split (default: --seed); fix it to compare runs on the same held-out cases.") var splitSeed: UInt64?
    @Flag(help: "No augmentation (flips, intensity, spatial, gamma, noise, blur, elastic) and no foreground oversampling.") var noAugmentation = false
    @Option(help: "Output folder.") var out: String

    func validate() throws {
        guard size >= 16, size % (1 << levels) == 0 else { throw ValidationError("--size must be a multiple of \(1 << levels)") }
        guard (0..<1).contains(validationFraction), epochs >= (initFrom == nil ? 1 : 0), batch >= 2 else {
            throw ValidationError("need 0 <= --validation-fraction < 1, --epochs >= 1 (0 allowed with --init-from: evaluate only), --batch >= 2")
        }
        guard initFrom != nil || initPart == .all else { throw ValidationError("--init-part goes with --init-from") }
    }

    func run() throws {
        // One writer per output folder: a second train into the same --out is refused while this one runs.
        let lock = try FolderLock(folder: out, command: "medselect train")
        defer { withExtendedLifetime(lock) {} }
        let all = try dataset.load()
        let datasets = all.map { $0.filtered(labeled: true) }
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
            // Later active-learning rounds record what was labeled before: train on all of it.
            let ids = try Selection.read(selection).labeledAndSelected
            let chosen = Set(ids)
            // Selected validation cases would leak the evaluation into training; unknown ids are a wrong file or split.
            // Except for a pool that was unlabeled when it was selected (embed --split all, worklist, import-labels):
            // there the selected cases are the only labeled cases of their sites, so they all train and none of them
            // is held out (another site can score the model with --validation-sites).
            let leaked = valSamples.filter { chosen.contains($0.id) }
            if !leaked.isEmpty {
                let leakedSites = Set(leaked.map(\.site))
                let labeledThere = (trainSamples + valSamples).filter { leakedSites.contains($0.site) }
                if validationSites == nil, labeledThere.allSatisfy({ chosen.contains($0.id) }) {
                    trainSamples += leaked
                    valSamples.removeAll { chosen.contains($0.id) }
                    FileHandle.standardError.write(Data(("[train] note: the selection's cases are the only labeled cases of \(leakedSites.sorted().joined(separator: ", ")) "
                        + "(an unlabeled pool annotated from a worklist): all of them train and none is held out for validation; "
                        + "--validation-sites SITE scores the model on another site\n").utf8))
                } else {
                    throw DataError.badConfiguration(path: selection, reason: "\(leaked.count) selected ids are validation cases (first: \(leaked[0].id)); select from the training split (medselect embed --split train with --seed equal to this run's split seed and the same --validation-fraction), or train without a validation split taken from these sites (--validation-fraction 0, or --validation-sites SITE)")
                }
            }
            let known = Set(trainSamples.map(\.id))
            let unknown = ids.filter { !known.contains($0) }
            let unlabeled = Set(all.flatMap(\.samples).filter { !$0.isLabeled }.map(\.id))
            if let waiting = unknown.first(where: unlabeled.contains) {
                let count = unknown.filter(unlabeled.contains).count
                throw DataError.badConfiguration(path: selection, reason: "\(count) selected case\(count == 1 ? " has" : "s have") no label yet (first: \(waiting)): annotate \(count == 1 ? "it" : "them") and medselect import-labels, or train on the labeled ones with a selection that lists only those")
            }
            guard unknown.isEmpty else {
                throw DataError.badConfiguration(path: selection, reason: "\(unknown.count) selected ids are not training cases of the chosen sites (first: \(unknown[0]))")
            }
            trainSamples = trainSamples.filter { chosen.contains($0.id) }
        }
        guard trainSamples.count >= 2 else { throw DataError.badDataset(path: dataset.origin, reason: "fewer than two labeled training cases") }
        FileHandle.standardError.write(Data("[train] \(trainSamples.count) training and \(counted(valSamples.count, "validation case")), \(size)x\(size)\n".utf8))
        let normalization = norm
        var training = SegmentationTraining()
        training.size = size; training.epochs = epochs; training.batch = batch; training.learningRate = lr; training.base = base
        training.levels = levels; training.normalization = normalization; training.deepSupervision = deepSupervision; training.seed = seed
        training.augmentation = !noAugmentation
        let part = initPart
        training.initPart = part
        let start = Date()
        let epochs = self.epochs
        let outcome = try training.run(train: trainSamples, validation: valSamples, initFrom: initFrom, folder: out, initialized: { names in
            FileHandle.standardError.write(Data("[train] starting from \(names.count) tensors of \(initFrom ?? "") (--init-part \(part.rawValue))\n".utf8))
        }, epochEnded: { r in
            FileHandle.standardError.write(Data(String(format: "[train] epoch %d/%d  loss %.4f  validation Dice %.4f  lr %.2e  %.1f s\n",
                                                      r.epoch, epochs, r.trainLoss, r.validationDice, r.learningRate, r.seconds).utf8))
        })
        let history = outcome.history
        let (meanDice, meanHD95) = (outcome.meanDice, outcome.meanHausdorff95)
        let summary: [String: Any] = ["training_cases": trainSamples.count, "validation_cases": valSamples.count, "size": size,
                                      "epochs": history.count, "final_validation_dice": history.last?.validationDice ?? .nan,
                                      "best_validation_dice": history.map(\.validationDice).max() ?? .nan,
                                      "validation_dice_native": meanDice, "validation_hausdorff95_mm_native": meanHD95,
                                      "seconds_this_run": Date().timeIntervalSince(start), "seed": seed,
                                      "initialized_from": initFrom ?? NSNull(), "init_part": initFrom == nil ? NSNull() : part.rawValue, "initialized_tensors": outcome.initialized.count, "selection": selection ?? NSNull()]
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
}
