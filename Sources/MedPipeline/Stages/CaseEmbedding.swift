import Foundation
import MedCompute
import Synchronization
import MedData
import MedFormats
import MedImage
import MedNN
import MedSelection
import MedTensor
import MedFoundation

/// The embedding stage: one row per case, from thumbnails (+ PCA) or a pretrained masked autoencoder's encoder, in
/// the order of the cases given; `medselect embed` and the experiment runner both call it.
public struct CaseEmbedder {
    public enum Method {
        /// Resampled to side x side (x 8 slices for volumes), z-scored, flattened.
        case thumbnail(side: Int)
        /// A pretrained encoder: slices as in pretraining, nothing masked, pooled per slice, averaged per case.
        case encoder(MaskedAutoencoder, maxSlices: Int, pool: MaskedAutoencoder.Pooling)
        /// A U-Net's encoder (HSSL-pretrained, or a trained source model: `sites --embeddings model`): slices as in
        /// its training (gray for one channel), the bottleneck's output averaged over positions, then over the case's
        /// slices.
        case unet(UNet, size: Int, maxSlices: Int)
    }
    public var method: Method
    /// Principal components kept (0: none), fitted on every embedded row.
    public var pca: Int
    public var seed: UInt64 = 0
    public var readOptions: ReadOptions = .default

    public init(method: Method, pca: Int) { self.method = method; self.pca = pca }

    /// The embedder for an encoder file from `medselect pretrain` (the file's preprocessing: its image size and
    /// slices per volume).
    /// An HSSL encoder file ("hssl-unet") gives pooled bottleneck features (`pool` does not apply).
    public static func encoder(_ path: String, pool: MaskedAutoencoder.Pooling, pca: Int = 0) throws -> CaseEmbedder {
        let (_, description, meta) = try ModelFile.read(path)
        if description.architecture == "hssl-unet" {
            guard let hssl = description.hssl, let configuration = description.unet else {
                throw TensorError.checkpoint(path: path, reason: "its HSSL description lacks the U-Net's configuration")
            }
            let (tensors, _) = try Safetensors.read(path)
            let unet = UNet(configuration)
            try unet.initialize(from: tensors, part: .encoder, origin: path)
            return CaseEmbedder(method: .unet(unet, size: hssl.imageSize, maxSlices: Int(meta["max_slices"] ?? "") ?? 16), pca: pca)
        }
        let (model, _) = try MAEPretrainer.loadEncoder(path)
        return CaseEmbedder(method: .encoder(model, maxSlices: Int(meta["max_slices"] ?? "") ?? 16, pool: pool), pca: pca)
    }

    /// What the embedding is, in words (for messages and run records).
    public var summary: String {
        switch method {
        case .thumbnail(let side): return "thumbnails \(side) px" + (pca > 0 ? ", PCA \(pca)" : "")
        case .encoder(_, _, let pool): return "MAE encoder, \(pool.rawValue) pooling" + (pca > 0 ? ", PCA \(pca)" : "")
        case .unet: return "HSSL U-Net encoder, pooled bottleneck" + (pca > 0 ? ", PCA \(pca)" : "")
        }
    }

    /// Rows of `samples` (row i is case i) and their width. `progress(done, total, what)` reports reading and encoding.
    public func embed(_ samples: [Sample], origin: String, progress: @escaping @Sendable (Int, Int, String) -> Void = { _, _, _ in })
        throws -> (rows: [Float], dimensions: Int) {
        let r = try embed(samples, origin: origin, skipUnreadable: false, progress: progress)
        return (r.rows, r.dimensions)
    }

    /// As ``embed(_:origin:progress:)``; with `skipUnreadable`, a case whose file cannot be decoded (a damaged or
    /// truncated image: a format error) is left out instead of stopping the run. Returns the rows of the cases kept,
    /// their indices in `samples`, and each skipped case's id with the reason.
    public func embed(_ samples: [Sample], origin: String, skipUnreadable: Bool, progress: @escaping @Sendable (Int, Int, String) -> Void = { _, _, _ in })
        throws -> (rows: [Float], dimensions: Int, kept: [Int], skipped: [(id: String, reason: String)]) {
        guard !samples.isEmpty else { throw DataError.badDataset(path: origin, reason: "no cases to embed") }
        let total = samples.count
        let results = Mutex([Int: Result<[Float], Error>]())
        let done = Atomic<Int>(0)
        let options = readOptions
        switch method {
        case .encoder(let model, let maxSlices, let pool):
            // Read slices in parallel, then encode one case at a time on the compute threads.
            let slices = Mutex([Int: Result<ImageSlices, Error>]())
            let side = model.configuration.imageSize
            parallelFor(total) { i in
                let r = Result { try samples[i].slices(size: side, maxSlices: maxSlices, options: options) }
                slices.withLock { $0[i] = r }
                progress(done.add(1, ordering: .relaxed).newValue, total, "cases read")
            }
            let byIndex = slices.withLock { $0 }
            for i in 0..<total {
                let r = Result { () -> [Float] in
                    let s = try byIndex[i]!.get()
                    guard s.channels == model.configuration.channels else {
                        throw DataError.badDataset(path: samples[i].images[0], reason: "\(s.channels) channel(s); the encoder takes \(model.configuration.channels)")
                    }
                    return try Self.encode(s, model: model, pool: pool)
                }
                results.withLock { $0[i] = r }
                progress(i + 1, total, "cases encoded")
            }
        case .unet(let unet, let side, let maxSlices):
            let slices = Mutex([Int: Result<ImageSlices, Error>]())
            parallelFor(total) { i in
                // Gray for a one-channel U-Net (HSSL's); a colour source model sees its channels.
                let r = Result { () -> ImageSlices in
                    let s = try samples[i].slices(size: side, maxSlices: maxSlices, options: options)
                    return unet.inChannels == 1 ? s.grayscale() : s
                }
                slices.withLock { $0[i] = r }
                progress(done.add(1, ordering: .relaxed).newValue, total, "cases read")
            }
            let byIndex = slices.withLock { $0 }
            unet.setTraining(false)
            for i in 0..<total {
                let r = Result { () -> [Float] in
                    let s = try byIndex[i]!.get()
                    guard s.channels == unet.inChannels else {
                        throw DataError.badDataset(path: samples[i].images[0], reason: "\(s.channels) channels; the U-Net takes \(unet.inChannels)")
                    }
                    let x = Tensor(shape: [s.count, s.channels, s.size, s.size], data: s.values)
                    let e = try GradMode.disabled { try unet.encode(x).mean(axes: [2, 3]) }.data
                    let d = e.count / max(1, s.count)
                    return (0..<d).map { j in (0..<s.count).reduce(0) { $0 + e[$1 * d + j] } / Float(s.count) }
                }
                results.withLock { $0[i] = r }
                progress(i + 1, total, "cases encoded")
            }
        case .thumbnail(let side):
            parallelFor(total) { i in
                let r = Result { try Self.thumbnail(of: try samples[i].loadImage(options: options), size: side) }
                results.withLock { $0[i] = r }
                progress(done.add(1, ordering: .relaxed).newValue, total, "cases read")
            }
        }
        var rows: [Float] = [], width = 0
        var kept: [Int] = [], skipped: [(id: String, reason: String)] = []
        let byIndex = results.withLock { $0 }
        for (i, s) in samples.enumerated() {
            let row: [Float]
            do {
                row = try byIndex[i]!.get()
            } catch let error as FormatError where skipUnreadable {
                skipped.append((s.id, error.description))
                continue
            }
            kept.append(i)
            if width == 0 { width = row.count }
            guard row.count == width else {
                throw DataError.badDataset(path: s.images[0], reason: "gives \(row.count) values; earlier cases gave \(width) (mixed 2-D/3-D or channel counts)")
            }
            rows += row
        }
        guard !kept.isEmpty else {
            throw DataError.badDataset(path: origin, reason: "no case could be read (\(skipped.count) unreadable; first: \(skipped.first?.reason ?? ""))")
        }
        let components = min(pca, kept.count - 1, width)
        guard pca > 0 && components >= 1 else { return (rows, width, kept, skipped) }
        let all = try Embeddings(values: rows, count: kept.count, dimensions: width)
        let model = try PCA.fit(all, components: components, seed: seed)
        return (PCA.transform(all, model), components, kept, skipped)
    }

    /// One case's embedding: its slices encoded with nothing masked, pooled per slice, averaged over slices.
    public static func encode(_ slices: ImageSlices, model: MaskedAutoencoder, pool: MaskedAutoencoder.Pooling) throws -> [Float] {
        model.setTraining(false)
        let x = Tensor(shape: [slices.count, slices.channels, slices.size, slices.size], data: slices.values)
        let e = try GradMode.disabled { try model.embed(x, pool: pool) }.data
        let d = e.count / max(1, slices.count)
        return (0..<d).map { j in (0..<slices.count).reduce(0) { $0 + e[$1 * d + j] } / Float(slices.count) }
    }

    /// The thumbnail features of an image: resampled to size x size (x 8 slices for volumes), z-scored, flattened.
    public static func thumbnail(of image: MedicalImage, size: Int) throws -> [Float] {
        let channels = image.info.components == .color ? image.shape.t : 1
        let depth = image.shape.z > 1 ? 8 : 1
        let r = try image.resampled(toShape: [size, size, depth]).zScored()
        return Array(r.voxels.prefix(size * size * depth * channels))
    }

    /// Where the ids of an embedding matrix go: `E.npy` -> `E.ids.csv`.
    public static func idsPath(_ npy: String) -> String { CaseList.path(beside: npy) }

    /// Rows `range` of an N x D matrix to `path` (.npy) and their cases' `id,site` to its ids file.
    public static func write(_ rows: [Float], dimensions: Int, range: Range<Int>, cases: [Sample], to path: String) throws {
        let values = Array(rows[(range.lowerBound * dimensions)..<(range.upperBound * dimensions)])
        try NPYWriter.write(matrix: values, rows: range.count, columns: dimensions, to: path)
        try CaseList.write(cases, to: idsPath(path))
    }
}
