import ArgumentParser
import Foundation
import Synchronization
import MedData
import MedFormats
import MedImage
import MedNN
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
        let learned = try encoder.map { path -> (MaskedAutoencoder, Int) in
            let (model, meta) = try MAEPretrainer.loadEncoder(path)
            return (model, Int(meta["max_slices"] ?? "") ?? 16)
        }
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
        // Cases are read and reduced in parallel (reading dominates); each row lands at its case's index.
        let results = Mutex([Int: Result<[Float], Error>]())
        let done = Atomic<Int>(0)
        let size = self.size, total = samples.count
        let progress = ProgressLine("embed")
        if let (model, maxSlices) = learned {
            // Learned: read slices in parallel, then encode in batches on the compute threads.
            let slices = Mutex([Int: Result<ImageSlices, Error>]())
            let options = limits.readOptions, side = model.configuration.imageSize
            DispatchQueue.concurrentPerform(iterations: total) { i in
                let r = Result { try samples[i].slices(size: side, maxSlices: maxSlices, options: options) }
                slices.withLock { $0[i] = r }
                progress.update(done.add(1, ordering: .relaxed).newValue, of: total, unit: "cases read")
            }
            progress.finish("\(total) cases read")
            let byIndex = slices.withLock { $0 }
            let encoded = ProgressLine("embed")
            for i in 0..<total {
                let r = Result { () -> [Float] in
                    let s = try byIndex[i]!.get()
                    guard s.channels == model.configuration.channels else {
                        throw DataError.badDataset(path: samples[i].images[0], reason: "\(s.channels) channel(s); the encoder \(encoder!) takes \(model.configuration.channels)")
                    }
                    return try Self.encode(s, model: model, pool: pooling)
                }
                results.withLock { $0[i] = r }
                encoded.update(i + 1, of: total, unit: "cases encoded")
            }
            encoded.finish("\(total) cases encoded")
        } else {
            DispatchQueue.concurrentPerform(iterations: total) { i in
                let r = Result { try Self.thumbnail(samples[i], size: size) }
                results.withLock { $0[i] = r }
                let d = done.add(1, ordering: .relaxed).newValue
                progress.update(d, of: total, unit: "cases read")
            }
        }
        var rows: [Float] = [], width = 0
        let byIndex = results.withLock { $0 }
        for (i, s) in samples.enumerated() {
            let row = try byIndex[i]!.get()
            if width == 0 { width = row.count }
            guard row.count == width else {
                throw DataError.badDataset(path: s.images[0], reason: "gives \(row.count) values; earlier cases gave \(width) (mixed 2-D/3-D or channel counts)")
            }
            rows += row
        }
        if learned == nil { progress.finish("\(total) cases read") }
        var dims = width
        let components = min(pca, samples.count - 1, width)
        if pca > 0 && components >= 1 {
            let all = try Embeddings(values: rows, count: samples.count, dimensions: width)
            let model = try PCA.fit(all, components: components, seed: part.seed)
            rows = PCA.transform(all, model)
            dims = components
        }
        func write(_ part: Range<Int>, _ list: [Sample], to path: String) throws {
            let values = Array(rows[(part.lowerBound * dims)..<(part.upperBound * dims)])
            try NPYWriter.write(matrix: values, rows: part.count, columns: dims, to: path)
            let ids = "id,site\n" + list.map { "\($0.id),\($0.site)\n" }.joined()
            try AtomicFile.write(ids, to: Self.idsPath(path))
        }
        if let sourceOut { try write(0..<sourceSamples.count, sourceSamples, to: sourceOut) }
        guard !targetSamples.isEmpty else { throw DataError.badDataset(path: dataset.origin, reason: "no target cases left after the source sites") }
        try write(sourceSamples.count..<samples.count, targetSamples, to: out)
        print("embedded \(targetSamples.count) cases to \(out) (\(method == "mae" ? "encoder \(encoder!), \(pool) pooling, " : "")\(dims) dimensions, ids in \(Self.idsPath(out)))"
              + (sourceOut.map { "; \(sourceSamples.count) source cases to \($0)" } ?? ""))
    }

    /// One case's embedding: its slices encoded with nothing masked, pooled per slice, averaged over slices.
    static func encode(_ slices: ImageSlices, model: MaskedAutoencoder, pool: MaskedAutoencoder.Pooling) throws -> [Float] {
        model.setTraining(false)
        let x = Tensor(shape: [slices.count, slices.channels, slices.size, slices.size], data: slices.values)
        let e = try GradMode.disabled { try model.embed(x, pool: pool) }.data
        let d = e.count / max(1, slices.count)
        return (0..<d).map { j in (0..<slices.count).reduce(0) { $0 + e[$1 * d + j] } / Float(slices.count) }
    }

    static func idsPath(_ npy: String) -> String { (npy.hasSuffix(".npy") ? String(npy.dropLast(4)) : npy) + ".ids.csv" }

    /// The case's image resampled to size x size (x 8 for volumes), z-scored, flattened.
    static func thumbnail(_ s: Sample, size: Int) throws -> [Float] { try thumbnail(of: try s.loadImage(), size: size) }

    /// The thumbnail features of an image: resampled to size x size (x 8 slices for volumes), z-scored, flattened.
    static func thumbnail(of image: MedicalImage, size: Int) throws -> [Float] {
        let channels = image.info.components == .color ? image.shape.t : 1
        let depth = image.shape.z > 1 ? 8 : 1
        let r = try image.resampled(toShape: [size, size, depth]).zScored()
        return Array(r.voxels.prefix(size * size * depth * channels))
    }
}
