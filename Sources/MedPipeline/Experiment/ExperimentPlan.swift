import Foundation
import MedData
import MedFormats
import MedNN
import MedSelection
import MedFoundation

/// An experiment's items, derived from its configuration and data: the source model, the encoder (MAE), the
/// embeddings of the source cases and the target pool, one selection per strategy x budget x seed, one fine-tuning
/// per selection, the source model scored without target labels, and the full-data reference. Keys hash each item's
/// inputs (case ids, upstream keys, its settings), so adding a strategy or a seed adds items and reuses the rest.
public struct ExperimentPlan {
    public let config: ExperimentConfig
    public let dataset: Dataset
    public let store: ItemStore
    public private(set) var items: [PlanItem] = []
    /// Target cases: the pool (selectable training split) and the held-out cases every run is scored on.
    public let pool: [Sample], held: [Sample]
    public let sourceTrain: [Sample], sourceHeld: [Sample]
    /// Keys of the shared items.
    public private(set) var sourceKey = "", embedKey = ""
    /// The site analysis item's key (nil when the config turns it off).
    public private(set) var sitesKey: String? = nil
    /// One entry per fine-tuning item: what it stands for in results.csv.
    public struct Run: Sendable {
        public var strategy: RunName, budget: String, seed: UInt64, labeled: Int
        public var trainKey: String, selectKey: String?
        /// 0: no target labels; 1: the first selection; 2...: active-learning rounds.
        public var round = 1
    }
    public private(set) var runs: [Run] = []
    public var log: @Sendable (String) -> Void

    /// The target sites' labeled cases split into pool and held-out parts (the split seed and fraction of the config).
    static func targetSplit(_ dataset: Dataset, config: ExperimentConfig) -> (train: [Sample], held: [Sample]) {
        split(dataset, sites: config.targetSites, config: config)
    }

    static func split(_ dataset: Dataset, sites: [String], config: ExperimentConfig) -> (train: [Sample], held: [Sample]) {
        let d = dataset.filtered(sites: Set(sites), labeled: true)
        let parts = d.split(seed: config.splitSeed, fractions: [("train", 1 - config.validationFraction), ("validation", config.validationFraction)])
        return (parts["train"] ?? [], parts["validation"] ?? [])
    }

    public init(config: ExperimentConfig, dataset: Dataset, run: String, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.config = config
        self.dataset = dataset
        self.store = ItemStore(root: run + "/items")
        self.log = log
        (pool, held) = Self.targetSplit(dataset, config: config)
        (sourceTrain, sourceHeld) = Self.split(dataset, sites: config.sourceSites, config: config)
        build()
    }

    static func key(_ parts: [String]) -> String {
        var h = FNV1a()
        for p in parts { h.add(p) }
        let s = String(h.value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    static func ids(_ samples: [Sample]) -> String { samples.map(\.id).joined(separator: ",") }

    private mutating func build() {
        let c = config, store = self.store, log = self.log
        let (pool, held, sourceTrain, sourceHeld) = (self.pool, self.held, self.sourceTrain, self.sourceHeld)
        let sourceAll = dataset.samples.filter { c.sourceSites.contains($0.site) }
        var training = SegmentationTraining()
        training.size = c.train.size; training.batch = c.train.batch; training.learningRate = c.train.learningRate
        training.base = c.train.base; training.levels = c.train.levels
        let trainSettings = "size \(c.train.size) batch \(c.train.batch) lr \(c.train.learningRate) base \(c.train.base) levels \(c.train.levels)"

        // The source model.
        sourceKey = Self.key(["source", Self.ids(sourceTrain), Self.ids(sourceHeld), trainSettings, "epochs \(c.train.sourceEpochs)"])
        let sourceFolder = store.folder("source", sourceKey)
        items.append(PlanItem(stage: "source", key: sourceKey, label: "source model (\(c.sourceSites.joined(separator: ",")))", dependencies: []) { folder in
            var t = training
            t.epochs = c.train.sourceEpochs; t.seed = 0
            let outcome = try t.run(train: sourceTrain, validation: sourceHeld, initFrom: nil, folder: folder, epochEnded: { r in
                log(String(format: "source model: epoch %d/%d, loss %.4f, validation Dice %.4f", r.epoch, c.train.sourceEpochs, r.trainLoss, r.validationDice))
            })
            log(String(format: "source model: held-out source Dice %.4f", outcome.meanDice))
        })

        // The encoder (MAE), pretrained on the source sites' cases without labels.
        var encoderKey: String? = nil
        if c.encoder.method == "mae" {
            let e = c.encoder
            let key = Self.key(["encoder", Self.ids(sourceAll), "\(e.size) \(e.patch) \(e.width) \(e.depth) \(e.heads) \(e.decoderWidth) \(e.decoderDepth) \(e.decoderHeads) \(e.epochs) \(e.batch) \(e.learningRate)"])
            encoderKey = key
            items.append(PlanItem(stage: "encoder", key: key, label: "masked autoencoder on the source sites", dependencies: []) { folder in
                var mc = MaskedAutoencoder.Configuration()
                mc.imageSize = e.size; mc.patch = e.patch; mc.width = e.width; mc.depth = e.depth; mc.heads = e.heads
                mc.decoderWidth = e.decoderWidth; mc.decoderDepth = e.decoderDepth; mc.decoderHeads = e.decoderHeads
                let stack = try PretrainingImages.read(sourceAll, size: e.size, maxSlices: 16, options: .default)
                mc.channels = stack.channels
                var pc = PretrainingConfig()
                pc.epochs = e.epochs; pc.batchSize = min(e.batch, stack.count); pc.learningRate = e.learningRate; pc.seed = 0
                pc.dataFingerprint = key
                let model = MaskedAutoencoder(mc, seed: 0)
                let trainer = MAEPretrainer(model: model, config: pc, folder: folder)
                let history = try trainer.fit(train: stack, validation: nil, stepEnded: { _, _, _, _ in }, epochEnded: { r in
                    log(String(format: "encoder: epoch %d/%d, loss %.4f", r.epoch, e.epochs, r.trainLoss))
                })
                try MAEPretrainer.writeEncoder(model, metadata: ["max_slices": "16", "epoch": String(history.last?.epoch ?? 0)], to: folder + "/encoder.safetensors")
            })
        }

        // HSSL: the U-Net's encoder-decoder pretrained on every case of the data without labels, each site a domain.
        if c.encoder.method == "hssl" {
            let e = c.encoder
            let all = dataset.samples
            let key = Self.key(["hssl", Self.ids(all), "\(c.train.size) \(c.train.base) \(c.train.levels) \(e.epochs) \(e.batch) \(e.learningRate)"])
            encoderKey = key
            items.append(PlanItem(stage: "encoder", key: key, label: "HSSL pretraining on every site", dependencies: []) { folder in
                let domains = Array(Set(all.map(\.site))).sorted()
                let (stack, domainOf) = try PretrainingImages.readDomains(all, domains: all.map(\.site), names: domains, size: c.train.size, maxSlices: 16, options: .default)
                var mc = HSSLModel.Configuration()
                mc.unet = UNet.Configuration(inChannels: 1, classes: 2, base: c.train.base, levels: c.train.levels)
                mc.imageSize = c.train.size; mc.domains = domains
                var pc = HSSLPretrainingConfig()
                pc.epochs = e.epochs; pc.batchSize = min(e.batch, stack.count); pc.learningRate = e.learningRate; pc.seed = 0
                pc.dataFingerprint = key
                let model = HSSLModel(mc, seed: 0)
                let history = try HSSLPretrainer(model: model, config: pc, folder: folder).fit(train: stack, domains: domainOf, validation: nil, epochEnded: { r in
                    log(String(format: "HSSL: epoch %d/%d, loss %.4f", r.epoch, e.epochs, r.trainLoss))
                })
                try HSSLPretrainer.writeEncoder(model, metadata: ["max_slices": "16", "epoch": String(history.last?.epoch ?? 0), "domains": domains.joined(separator: ",")],
                                                to: folder + "/encoder.safetensors")
            })
        }

        // Embeddings of the source cases and the target pool.
        let embedSettings: String
        switch c.encoder.method {
        case "mae", "hssl": embedSettings = "\(c.encoder.method) \(encoderKey!) \(c.encoder.pool)"
        case "embeddings": embedSettings = "file \(FNV1a.file(c.encoder.path!)) \(c.encoder.sourcePath.map(FNV1a.file) ?? "-")"
        default: embedSettings = "thumbnail \(c.encoder.thumbnailSize) pca \(c.encoder.pca)"
        }
        embedKey = Self.key(["embed", Self.ids(sourceAll), Self.ids(pool), embedSettings])
        let embedFolder = store.folder("embed", embedKey)
        let encoderFolder = encoderKey.map { store.folder("encoder", $0) }
        items.append(PlanItem(stage: "embed", key: embedKey, label: "embeddings (\(c.encoder.method))", dependencies: encoderKey.map { ["encoder/" + $0] } ?? []) { folder in
            switch c.encoder.method {
            case "embeddings":
                try Self.copyRows(from: c.encoder.path!, ids: pool.map(\.id), to: folder + "/pool.npy", cases: pool)
                if let s = c.encoder.sourcePath { try FileManager.default.copyItem(atPath: s, toPath: folder + "/source.npy") }
            default:
                let embedder: CaseEmbedder
                if let encoderFolder {
                    embedder = try CaseEmbedder.encoder(encoderFolder + "/encoder.safetensors", pool: MaskedAutoencoder.Pooling(rawValue: c.encoder.pool)!)
                } else {
                    embedder = CaseEmbedder(method: .thumbnail(side: c.encoder.thumbnailSize), pca: c.encoder.pca)
                }
                let all = sourceAll + pool
                let (rows, d) = try embedder.embed(all, origin: c.data ?? c.index ?? "")
                try CaseEmbedder.write(rows, dimensions: d, range: 0..<sourceAll.count, cases: sourceAll, to: folder + "/source.npy")
                try CaseEmbedder.write(rows, dimensions: d, range: sourceAll.count..<all.count, cases: pool, to: folder + "/pool.npy")
            }
            log("embeddings: \(pool.count) pool cases")
        })

        // The site analysis of the source and target sites (thumbnail embeddings, as `medselect sites` by default).
        if c.siteAnalysis {
            let members = dataset.samples.filter { c.sourceSites.contains($0.site) || c.targetSites.contains($0.site) }
            let key = Self.key(["sites", Self.ids(members), c.sourceSites.joined(separator: ","), "thumbnail 32 permutations 1000 seed 0"])
            sitesKey = key
            let origin = c.data ?? c.index ?? ""
            items.append(PlanItem(stage: "sites", key: key, label: "site analysis (\(members.count) cases)", dependencies: []) { folder in
                var stage = SiteAnalysisStage(samples: members, source: c.sourceSites)
                stage.origin = origin
                let report = try stage.run(out: folder)
                log("site analysis: \(report.sites.count) sites compared")
            })
        }

        // The source model on the held-out target cases, without target labels.
        let baselineKey = Self.key(["baseline", sourceKey, Self.ids(held)])
        items.append(PlanItem(stage: "score", key: baselineKey, label: "source model without target labels", dependencies: ["source/" + sourceKey]) { folder in
            let (model, _) = try Trainer.loadModel(checkpoint: sourceFolder + "/checkpoint.safetensors")
            try CaseScore.write(try Segmentation.score(held, model: model, size: c.train.size), to: folder + "/validation_metrics.csv")
        })
        runs.append(Run(strategy: .none, budget: "0", seed: 0, labeled: 0, trainKey: baselineKey, selectKey: nil, round: 0))

        // Selections and fine-tuning, from each start: where a run's weights start, what it depends on, its key part,
        // and the suffix of its strategy name in the results.
        let starts: [(name: String, initFrom: String?, deps: [String], keyPart: String, suffix: String?)] = c.train.starts.enumerated().map { i, start in
            let suffix: String? = i == 0 ? nil : start
            switch start {
            case "source": return (start, sourceFolder + "/checkpoint.safetensors", ["source/" + sourceKey], sourceKey, suffix)
            case "pretrained": return (start, encoderFolder.map { $0 + "/encoder.safetensors" }, ["encoder/" + (encoderKey ?? "")], "pretrained " + (encoderKey ?? ""), suffix)
            default: return (start, nil, [], "scratch", suffix)
            }
        }
        for seed in c.seeds {
            for budget in c.budgets {
                let count = ExperimentConfig.count(budget, pool: pool.count)
                // An XSSR ablation runs at the alpha the full XSSR chose for the same budget and seed (when the full
                // method is in the experiment), so that dropping its term is the only difference.
                func xssrKey(_ strategy: String) -> String {
                    Self.key(["select", embedKey, strategy, "\(count)", "\(seed)", strategy.hasPrefix("xssr") ? "k \(c.xssrK) \(c.xssrTerms)" : ""])
                }
                let fullXSSR = c.strategies.contains("xssr") ? xssrKey("xssr") : nil
                for strategy in c.strategies {
                    let atFullAlpha = strategy.hasPrefix("xssr:") ? fullXSSR : nil
                    let selectKey = atFullAlpha.map { Self.key([xssrKey(strategy), "at the alpha of", $0]) } ?? xssrKey(strategy)
                    let alphaFrom = atFullAlpha.map { store.folder("select", $0) + "/selection.json" }
                    items.append(PlanItem(stage: "select", key: selectKey, label: "\(strategy), budget \(budget), seed \(seed)",
                                          dependencies: ["embed/" + embedKey] + (atFullAlpha.map { ["select/" + $0] } ?? [])) { folder in
                        try Self.select(strategy: strategy, count: count, seed: seed, config: c, embeddings: embedFolder, alphaFrom: alphaFrom,
                                        to: folder + "/selection.json")
                    })
                    let selectFolder = store.folder("select", selectKey)
                    var trainKey = ""
                    for start in starts {
                        let key = Self.key(["train", selectKey, start.keyPart, trainSettings, "epochs \(c.train.epochs)", "\(seed)", Self.ids(held)])
                        if trainKey.isEmpty { trainKey = key }
                        items.append(PlanItem(stage: "train", key: key, label: "fine-tune on \(strategy)\(start.suffix.map { "@" + $0 } ?? ""), budget \(budget), seed \(seed)",
                                              dependencies: ["select/" + selectKey] + start.deps) { folder in
                            let chosen = Set(try Selection.read(selectFolder + "/selection.json").selected)
                            var t = training
                            t.epochs = c.train.epochs; t.seed = seed
                            _ = try t.run(train: pool.filter { chosen.contains($0.id) }, validation: held, initFrom: start.initFrom, folder: folder)
                        })
                        runs.append(Run(strategy: RunName(method: .strategy(strategy), start: start.suffix), budget: budget, seed: seed, labeled: count, trainKey: key, selectKey: selectKey))
                    }
                    // Active-learning rounds continuing this selection: acquisition (uncertainty + diversity), and random.
                    let al = c.activeLearning
                    guard al.rounds > 1, al.after.isEmpty || al.after.contains(strategy) else { continue }
                    let step = ExperimentConfig.count(al.budget, pool: pool.count)
                    for continuation in al.compareRandom ? ["acquisition", "random"] : ["acquisition"] {
                        var (previousTrain, previousSelect, labeled) = (trainKey, selectKey, count)
                        for round in 2...al.rounds {
                            let key = Self.key(["al-select", previousTrain, previousSelect, continuation, "\(round)", "\(step)", "\(al.alpha)", al.measure, "\(seed)"])
                            let (trainFolder, selectFolder) = (store.folder("train", previousTrain), store.folder("select", previousSelect))
                            items.append(PlanItem(stage: "select", key: key, label: "\(strategy) + \(continuation), round \(round), budget \(budget), seed \(seed)",
                                                  dependencies: ["train/" + previousTrain, "select/" + previousSelect]) { folder in
                                try Self.continueSelection(continuation, step: step, seed: seed, round: round, config: c, pool: pool,
                                                           previousSelection: selectFolder + "/selection.json", model: trainFolder + "/checkpoint.safetensors",
                                                           embeddings: embedFolder, to: folder + "/selection.json")
                            })
                            let roundTrain = Self.key(["al-train", key, previousTrain, trainSettings, "epochs \(c.train.epochs)", "\(seed)", Self.ids(held)])
                            let (roundSelect, roundInit) = (store.folder("select", key), trainFolder + "/checkpoint.safetensors")
                            items.append(PlanItem(stage: "train", key: roundTrain, label: "fine-tune, \(strategy) + \(continuation) round \(round), seed \(seed)",
                                                  dependencies: ["select/" + key, "train/" + previousTrain]) { folder in
                                let chosen = Set(try Selection.read(roundSelect + "/selection.json").labeledAndSelected)
                                var t = training
                                t.epochs = c.train.epochs; t.seed = seed
                                _ = try t.run(train: pool.filter { chosen.contains($0.id) }, validation: held, initFrom: roundInit, folder: folder)
                            })
                            labeled += step
                            runs.append(Run(strategy: RunName(method: .strategy(strategy), continuation: continuation), budget: budget, seed: seed, labeled: labeled, trainKey: roundTrain,
                                            selectKey: key, round: round))
                            (previousTrain, previousSelect) = (roundTrain, key)
                        }
                    }
                }
            }
            if c.fullData {
                for start in starts {
                    let fullKey = Self.key(["full", start.keyPart, trainSettings, "epochs \(c.train.epochs)", "\(seed)", Self.ids(pool), Self.ids(held)])
                    items.append(PlanItem(stage: "train", key: fullKey, label: "full-data reference\(start.suffix.map { "@" + $0 } ?? ""), seed \(seed)", dependencies: start.deps) { folder in
                        var t = training
                        t.epochs = c.train.epochs; t.seed = seed
                        _ = try t.run(train: pool, validation: held, initFrom: start.initFrom, folder: folder)
                    })
                    runs.append(Run(strategy: .full(start: start.suffix), budget: "100%", seed: seed, labeled: pool.count, trainKey: fullKey, selectKey: nil))
                }
            }
        }
        // The same item can arise twice (e.g. one budget written as "4" and "10%"): keep the first.
        var seen = Set<String>()
        items = items.filter { seen.insert($0.id).inserted }
    }

    /// Runs one selection on the stored embeddings and writes the selection JSON (the `medselect select` layout).
    static func select(strategy: String, count: Int, seed: UInt64, config c: ExperimentConfig, embeddings folder: String, alphaFrom: String? = nil,
                       to path: String) throws {
        let m = try NPYReader.readMatrix(folder + "/pool.npy")
        let ids = try readIDs(folder + "/pool.ids.csv")
        let pool = try Embeddings(values: m.values, count: m.rows, dimensions: m.columns, ids: ids)
        let ablation = strategy.hasPrefix("xssr:") ? strategy.dropFirst(5).replacingOccurrences(of: "/", with: ",") : nil
        var stage = SelectionStage(strategy: ablation == nil ? Strategy(rawValue: strategy)! : .xssr, budget: count)
        stage.seed = seed; stage.k = c.xssrK; stage.terms = ablation ?? c.xssrTerms
        if let alphaFrom {
            guard let alpha = try Selection.read(alphaFrom).alpha else {
                throw DataError.badConfiguration(path: alphaFrom, reason: "the full XSSR's selection records no alpha")
            }
            stage.xssrAlpha = alpha
        }
        if FileManager.default.fileExists(atPath: folder + "/source.npy") {
            let s = try NPYReader.readMatrix(folder + "/source.npy")
            stage.source = try Embeddings(values: s.values, count: s.rows, dimensions: s.columns)
        }
        try stage.run(pool: pool).selection(strategy: strategy, budget: count, seed: seed, labeled: []).write(to: path)
    }

    /// The ids (first column) of an `.ids.csv` that `embed` writes beside a matrix.
    static func readIDs(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst().map { String($0.split(separator: ",")[0]) }
    }

    /// The next round's selection: the pool's uncertainty under the last round's model, then `step` more cases by
    /// acquisition (or at random), written with the cases labeled so far.
    static func continueSelection(_ continuation: String, step: Int, seed: UInt64, round: Int, config c: ExperimentConfig, pool: [Sample],
                                  previousSelection: String, model modelPath: String, embeddings folder: String, to path: String) throws {
        let labeledIDs = try Selection.read(previousSelection).labeledAndSelected
        let m = try NPYReader.readMatrix(folder + "/pool.npy")
        let embeddings = try Embeddings(values: m.values, count: m.rows, dimensions: m.columns, ids: pool.map(\.id))
        let index = Dictionary(pool.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        var stage = SelectionStage(strategy: Strategy(rawValue: continuation)!, budget: step)
        stage.seed = seed &+ UInt64(round) &* 1_000_003
        stage.labeled = labeledIDs.compactMap { index[$0] }
        if continuation == "acquisition" {
            let (model, config) = try Trainer.loadModel(checkpoint: modelPath)
            let size = config.imageSize ?? c.train.size
            let labeledSet = Set(labeledIDs)
            // Labeled cases are never picked again; they need no score.
            stage.uncertainty = try pool.map { labeledSet.contains($0.id) ? 0 : try Segmentation.uncertainty($0, model: model, size: size, measure: c.activeLearning.measure) }
            stage.uncertaintySource = "\(c.activeLearning.measure) of the round \(round - 1) model"
            stage.alpha = c.activeLearning.alpha
        }
        try stage.run(pool: embeddings).selection(strategy: continuation, budget: step, seed: stage.seed, round: round, labeled: labeledIDs).write(to: path)
    }

    /// The rows of a ready embedding matrix that belong to `ids`, in that order (every id must be there).
    static func copyRows(from path: String, ids: [String], to out: String, cases: [Sample]) throws {
        let m = try NPYReader.readMatrix(path)
        let d = m.columns
        let values = m.values
        let fileIDs = try readIDs(CaseEmbedder.idsPath(path))
        guard fileIDs.count == m.rows else { throw DataError.badConfiguration(path: path, reason: "\(fileIDs.count) ids for \(m.rows) rows") }
        let index = Dictionary(fileIDs.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var rows: [Float] = []
        for id in ids {
            guard let i = index[id] else { throw DataError.badConfiguration(path: path, reason: "no row for the pool case '\(id)'") }
            rows += values[(i * d)..<((i + 1) * d)]
        }
        try CaseEmbedder.write(rows, dimensions: d, range: 0..<ids.count, cases: cases, to: out)
    }
}
