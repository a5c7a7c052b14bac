import ArgumentParser
import Foundation
import Synchronization
import MedData
import MedFormats
import MedImage
import MedNN
import MedPipeline
import MedSelection
import MedTensor

/// `medselect embed`: one row per case for `medselect select`, from a dataset folder or index.
struct Embed: ParsableCommand, ReadsImages {
    static let configuration = CommandConfiguration(
        abstract: "Embed cases as an N x D matrix (.npy) with their ids, for medselect select.",
        discussion: """
        Method `thumbnail`: each image is resampled to --size x --size (3-D volumes to --size x --size x 8), \
        z-scored, flattened (colour channels side by side), and all rows are projected on their first --pca principal \
        components (default 32; fitted on every embedded row, so source and target share one space; 0 keeps the \
        pixels). With --encoder (a masked autoencoder's encoder.safetensors from medselect pretrain): each case's \
        slices are prepared as for pretraining (2-D image, or evenly spaced axial slices of a volume; resampled, \
        z-scored), encoded with nothing masked, pooled per slice (--pool cls: the class token; mean: the patch tokens) \
        and averaged over the case's slices; no PCA unless --pca is given.
        --split train|validation keeps the labeled cases of that part of the split `medselect train` makes with the same
        --seed and --validation-fraction (so a selection drawn from the training split never touches validation).
        --source-sites writes those sites' rows (all their cases) to --source-out for XSSR's novelty term, and the \
        others to --out.
        Example: medselect embed --data Samples/cxr --source-sites MCU --source-out source.npy --split train --out target.npy
        """
    )
    @OptionGroup var limits: ReadLimitOptions
    @OptionGroup var dataset: DatasetOptions
    @OptionGroup var part: PartOptions
    @Option(help: "Embedding method: thumbnail, or mae (implied by --encoder).") var method: String?
    @Option(help: "Thumbnail side.") var size = 32
    @Option(help: "Principal components kept (0: none; default 32 for thumbnails, none for an encoder).") var pca: Int?
    @Option(help: "A masked autoencoder's encoder.safetensors (medselect pretrain).") var encoder: String?
    @Option(help: "Encoder pooling per slice: cls or mean.") var pool = "cls"
    @Option(help: "Sites whose rows go to --source-out (comma-separated).") var sourceSites: String?
    @Option(help: "Output .npy for the source sites' rows.") var sourceOut: String?
    @Option(help: "Output .npy (N x D float32); ids go to the same name with .ids.csv (id,site).") var out: String

    func run() throws {
        let method = self.method ?? (encoder == nil ? "thumbnail" : "mae")
        guard ["thumbnail", "mae"].contains(method) else { throw ValidationError("--method must be thumbnail or mae") }
        guard (method == "mae") == (encoder != nil) else { throw ValidationError("--method mae needs --encoder (and --encoder implies it)") }
        guard let pooling = MaskedAutoencoder.Pooling(rawValue: pool) else { throw ValidationError("--pool must be cls or mean") }
        guard (4...512).contains(size) else { throw ValidationError("--size must be between 4 and 512") }
        let pca = self.pca ?? (encoder == nil ? 32 : 0)
        guard pca >= 0 else { throw ValidationError("--pca must be >= 0") }
        var embedder = try encoder.map { try CaseEmbedder.encoder($0, pool: pooling, pca: pca) } ?? CaseEmbedder(method: .thumbnail(side: size), pca: pca)
        embedder.seed = part.seed
        embedder.readOptions = limits.readOptions
        let source = Set((sourceSites ?? "").split(separator: ",").map(String.init))
        guard source.isEmpty == (sourceOut == nil) else { throw ValidationError("--source-sites and --source-out go together") }
        let datasets = try dataset.load()
        var sourceSamples: [Sample] = [], targetSamples: [Sample] = []
        for d in datasets {
            sourceSamples += d.samples.filter { source.contains($0.site) }
            let target = d.filtered(sites: Set(d.sites.map(\.name)).subtracting(source))
            targetSamples += part.cases(of: target)
        }
        let samples = sourceSamples + targetSamples
        guard !samples.isEmpty else { throw DataError.badDataset(path: dataset.origin, reason: "no cases to embed (check --sites and --split)") }
        guard source.isEmpty || !sourceSamples.isEmpty else {
            throw DataError.badDataset(path: dataset.origin, reason: "no cases of the source sites \(source.sorted().joined(separator: ","))")
        }
        let progress = ProgressLine("embed")
        let (rows, dims) = try embedder.embed(samples, origin: dataset.origin) { done, total, what in progress.update(done, of: total, unit: what) }
        progress.finish("\(samples.count) cases embedded")
        func write(_ part: Range<Int>, _ list: [Sample], to path: String) throws {
            try CaseEmbedder.write(rows, dimensions: dims, range: part, cases: list, to: path)
        }
        if let sourceOut { try write(0..<sourceSamples.count, sourceSamples, to: sourceOut) }
        guard !targetSamples.isEmpty else { throw DataError.badDataset(path: dataset.origin, reason: "no target cases left after the source sites") }
        try write(sourceSamples.count..<samples.count, targetSamples, to: out)
        print("embedded \(targetSamples.count) cases to \(out) (\(method == "mae" ? "encoder \(encoder!), \(pool) pooling, " : "")\(dims) dimensions, ids in \(CaseEmbedder.idsPath(out)))"
              + (sourceOut.map { "; \(sourceSamples.count) source cases to \($0)" } ?? ""))
    }
}
