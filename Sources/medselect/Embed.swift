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
import MedFoundation

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
        and averaged over the case's slices; no PCA unless --pca is given. With an HSSL encoder (medselect pretrain \
        --method hssl) each slice is converted to gray as in its pretraining and the bottleneck's output is averaged \
        over positions (--pool does not apply).
        --split train|validation keeps the labeled cases of that part of the split `medselect train` makes with the same
        --seed and --validation-fraction (so a selection drawn from the training split never touches validation).
        --source-sites writes those sites' rows (all their cases) to --source-out for XSSR's novelty term, and the \
        others to --out.
        --shard I/N embeds only shard I (0-based) of N of the ordered cases (contiguous rows; a Slurm array task or a \
        Kubernetes Indexed Job pod each take one, see Scripts/cluster/) and writes OUT with its ids and OUT.shard.json; \
        `medselect embed-merge` joins the parts into exactly the matrix an unsharded run writes. Sharding needs --pca 0 \
        (PCA is fitted on all rows) and no --source-sites.
        Example: medselect embed --data Samples/cxr --source-sites MCU --source-out source.npy --split train --out target.npy
        """
    )
    @OptionGroup var limits: ReadLimitOptions
    @OptionGroup var dataset: DatasetOptions
    @OptionGroup var part: PartOptions
    @Option(help: "Embedding method: thumbnail, or encoder (implied by --encoder; mae and hssl mean encoder).") var method: EmbedMethod?
    @Option(help: "Thumbnail side.") var size = 32
    @Option(help: "Principal components kept (0: none; default 32 for thumbnails, none for an encoder).") var pca: Int?
    @Option(help: "An encoder.safetensors from medselect pretrain (--method mae or hssl).") var encoder: String?
    @Option(help: "MAE encoder pooling per slice.") var pool = MaskedAutoencoder.Pooling.cls
    @Option(help: "Embed only shard I of N of the ordered cases (I/N, 0-based), for medselect embed-merge.") var shard: String?
    @Option(help: "Sites whose rows go to --source-out (comma-separated).") var sourceSites: String?
    @Option(help: "Output .npy for the source sites' rows.") var sourceOut: String?
    @Option(help: "Output .npy (N x D float32); ids go to the same name with .ids.csv (id,site).") var out: String
    @Flag(help: "Leave out cases whose image cannot be decoded (damaged or truncated files), counting and naming them, instead of stopping.") var skipUnreadable = false

    func validate() throws {
        let usesEncoder = method?.usesEncoder ?? (encoder != nil)
        guard usesEncoder == (encoder != nil) else { throw ValidationError("--method encoder needs --encoder (and --encoder implies it)") }
        guard (4...512).contains(size) else { throw ValidationError("--size must be between 4 and 512") }
        guard (self.pca ?? 0) >= 0 else { throw ValidationError("--pca must be >= 0") }
        if let text = shard {
            guard EmbeddingShards.Shard(text) != nil else { throw ValidationError("--shard must be I/N with 0 <= I < N, e.g. 0/4; got '\(text)'") }
            guard (self.pca ?? 0) == 0 else { throw ValidationError("--shard needs --pca 0: PCA is fitted on all rows at once (project the merged matrix instead)") }
            guard sourceSites == nil else { throw ValidationError("--shard and --source-sites do not go together: embed the source sites in their own (sharded) run with --sites") }
        }
        guard (sourceSites == nil) == (sourceOut == nil) else { throw ValidationError("--source-sites and --source-out go together") }
        if skipUnreadable && shard != nil { throw ValidationError("--skip-unreadable does not go with --shard (every shard must hold its rows); repair or remove the files") }
    }

    func run() throws {
        let pooling = pool
        let pca = self.pca ?? (encoder == nil && shard == nil ? 32 : 0)
        let shard = self.shard.flatMap(EmbeddingShards.Shard.init)
        // Output folders are checked before anything is embedded.
        try checkOutputFolder(out)
        if let sourceOut { try checkOutputFolder(sourceOut) }
        if shard != nil && encoder == nil && pca == 0 {
            FileHandle.standardError.write(Data("note: sharded thumbnails are not projected (PCA is fitted on all rows at once): each row holds the \(size) x \(size) thumbnail's raw pixels; project the merged matrix, or use an --encoder\n".utf8))
        }
        var embedder = try encoder.map { try CaseEmbedder.encoder($0, pool: pooling, pca: pca) } ?? CaseEmbedder(method: .thumbnail(side: size), pca: pca)
        embedder.seed = part.seed
        embedder.readOptions = limits.readOptions
        let source = Set((sourceSites ?? "").split(separator: ",").map(String.init))
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
        if let shard {
            let range = shard.rows(of: samples.count)
            let mine = Array(samples[range])
            var rows: [Float] = [], dims = 0
            if !mine.isEmpty {
                (rows, dims) = try embedder.embed(mine, origin: dataset.origin) { done, total, what in progress.update(done, of: total, unit: what) }
            }
            progress.finish("\(counted(mine.count, "case")) embedded (shard \(shard.index) of \(shard.count))")
            let identity = embedder.summary + (encoder.map { ", encoder " + FNV1a.file($0) } ?? "") + (encoder == nil ? ", size \(size)" : "")
            if mine.isEmpty { dims = 0 }
            try EmbeddingShards.writePart(rows: rows, columns: dims, shard: shard, cases: samples, embedding: identity, to: out)
            print("embedded rows \(range.lowerBound)..<\(range.upperBound) of \(samples.count) (shard \(shard.index)/\(shard.count)) to \(out) with \(CaseEmbedder.idsPath(out)) and \(EmbeddingShards.manifestPath(out)); join the parts with medselect embed-merge")
            return
        }
        let embedded = try embedder.embed(samples, origin: dataset.origin, skipUnreadable: skipUnreadable) { done, total, what in progress.update(done, of: total, unit: what) }
        let (rows, dims) = (embedded.rows, embedded.dimensions)
        progress.finish("\(counted(embedded.kept.count, "case")) embedded")
        if !embedded.skipped.isEmpty {
            FileHandle.standardError.write(Data("note: skipped \(counted(embedded.skipped.count, "unreadable case")) (--skip-unreadable): \(embedded.skipped.prefix(3).map { "\($0.id) (\($0.reason))" }.joined(separator: "; "))\(embedded.skipped.count > 3 ? "; ..." : "")\n".utf8))
        }
        // Rows are the kept cases in order: the source sites' first, then the targets'.
        let keptSource = embedded.kept.filter { $0 < sourceSamples.count }.map { samples[$0] }
        let keptTarget = embedded.kept.filter { $0 >= sourceSamples.count }.map { samples[$0] }
        func write(_ part: Range<Int>, _ list: [Sample], to path: String) throws {
            try CaseEmbedder.write(rows, dimensions: dims, range: part, cases: list, to: path)
        }
        if let sourceOut { try write(0..<keptSource.count, keptSource, to: sourceOut) }
        guard !keptTarget.isEmpty else { throw DataError.badDataset(path: dataset.origin, reason: "no target cases left after the source sites") }
        try write(keptSource.count..<embedded.kept.count, keptTarget, to: out)
        print("embedded \(counted(keptTarget.count, "case")) to \(out) (\(embedder.summary)\(encoder.map { " from \($0)" } ?? ""), \(dims) dimensions, ids in \(CaseEmbedder.idsPath(out)))"
              + (sourceOut.map { "; \(counted(keptSource.count, "source case")) to \($0)" } ?? ""))
    }
}

/// `medselect embed-merge`: the parts of a sharded `medselect embed` joined into one matrix.
struct EmbedMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed-merge",
        abstract: "Join the parts of medselect embed --shard into one .npy with its ids (global row order).",
        discussion: """
        Each part needs the .ids.csv and .shard.json that embed --shard wrote beside it. Parts may be given in any order \
        (a shell glob is fine); parts of other data or another encoder, a shard given twice and missing shards are \
        refused, naming the files. The result is byte for byte what an unsharded medselect embed (with --pca 0) writes.
        Example: medselect embed-merge parts/part-*.npy --out target.npy
        """
    )
    @Argument(help: "The parts (.npy files written by medselect embed --shard).") var parts: [String]
    @Option(help: "Output .npy (ids go to the same name with .ids.csv).") var out: String

    func run() throws {
        let (rows, columns) = try EmbeddingShards.merge(parts, to: out)
        print("merged \(parts.count) parts: \(rows) x \(columns) to \(out) (ids in \(CaseEmbedder.idsPath(out)))")
    }
}
