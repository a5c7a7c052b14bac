import ArgumentParser
import Foundation
import MedPipeline
import MedData
import MedFormats
import MedImage
import MedNN
import MedSelection
import MedFoundation

/// `medselect uncertainty`: how unsure a trained U-Net is on each case, for active-learning acquisition.
struct Uncertainty: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Score a trained U-Net's uncertainty on each case (CSV id,site,uncertainty) for select --strategy acquisition.",
        discussion: """
        Each image (each axial slice of a volume) is resampled to the checkpoint's training size and z-scored as in \
        training; the softmax probabilities give `entropy` (mean pixel entropy / log C, 0...1) or `margin` (mean of \
        1 - (p_first - p_second)); volumes average their slices. --tta averages the probabilities of the image and its \
        flips first. --split picks the same cases as medselect train / embed (same --seed and --validation-fraction).
        Example: medselect uncertainty --checkpoint runs/round1/checkpoint.safetensors --data Samples/cxr --sites CHN --split train --out u.csv
        """
    )
    @OptionGroup var limits: ReadLimitOptions
    @Option(help: "Checkpoint written by medselect train.") var checkpoint: String
    @OptionGroup var dataset: DatasetOptions
    @OptionGroup var part: PartOptions
    @Option(help: "The per-case score of the softmax.") var measure = UncertaintyMeasure.entropy
    @Flag(help: "Average the probabilities over flips first.") var tta = false
    @Option(help: "Output CSV (id,site,uncertainty).") var out: String

    func run() throws {
        let (model, config) = try Trainer.loadModel(checkpoint: checkpoint)
        guard let size = config.imageSize else {
            throw DataError.badConfiguration(path: checkpoint, reason: "the checkpoint does not record its training image size")
        }
        let samples = try dataset.load().flatMap { part.cases(of: $0) }
        guard !samples.isEmpty else { throw DataError.badDataset(path: dataset.origin, reason: "no cases to score (check --sites and --split)") }
        var csv = "id,site,uncertainty\n"
        let progress = ProgressLine("uncertainty")
        for (n, s) in samples.enumerated() {
            progress.update(n, of: samples.count, unit: "cases", item: s.id)
            let u = try Segmentation.uncertainty(s, model: model, size: size, measure: measure.rawValue, tta: tta)
            csv += "\(s.id),\(s.site),\(u)\n"
        }
        progress.finish(counted(samples.count, "case"))
        try AtomicFile.write(csv, to: out)
        print("scored \(counted(samples.count, "case")) (\(measure)\(tta ? ", flip TTA" : "")) -> \(out)")
    }
}
