import Foundation
import MedData
import MedFormats
import MedNN
import MedSelection
import MedFoundation

/// An item of a plan: its stage and the key that hashes its inputs; it lives in RUN/items/<stage>/<key>.
public struct ItemID: Hashable, Sendable, CustomStringConvertible {
    public var stage: String
    public var key: String
    public var description: String { stage + "/" + key }
}

/// One unit of an experiment: a stage's work on given inputs, stored under a key derived from those inputs and its
/// configuration, after the items it depends on.
public struct PlanItem: @unchecked Sendable {
    public var id: ItemID
    public var label: String
    public var dependencies: [ItemID]
    public var compute: (_ folder: String) throws -> Void
    public var stage: String { id.stage }
    public var key: String { id.key }
}

extension ItemStore {
    public func folder(_ id: ItemID) -> String { folder(id.stage, id.key) }
    public func isDone(_ id: ItemID) -> Bool { isDone(id.stage, id.key) }
}

/// An experiment's items, derived from its configuration and data: the source model, the encoder (MAE or HSSL),
/// the embeddings of the source cases and the target pool, one selection per strategy x budget x seed, one
/// fine-tuning per selection and start, active-learning rounds, the source model scored without target labels, and
/// the full-data reference. Keys hash each item's inputs (case ids, upstream keys, its settings), so adding a
/// strategy or a seed adds items and reuses the rest. One function per stage below adds that stage's items.
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
        let (train, held) = dataset.filtered(sites: Set(sites)).trainValidationSplit(seed: config.splitSeed, validationFraction: config.validationFraction)
        return (train, held)
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

    /// Where fine-tuning starts: the weights it loads (nil: from scratch), the item that makes them, the part of the
    /// key that names them, and the start's name in the results (nil for the experiment's first start).
    struct Start {
        /// As `train.start` names it.
        var name: String
        var initFrom: String?
        var dependencies: [ItemID]
        var keyPart: String
        var suffix: String?
    }

    /// The U-Net training settings every fine-tuning shares, and their text in item keys.
    var training: SegmentationTraining {
        var t = SegmentationTraining()
        t.size = config.train.size; t.batch = config.train.batch; t.learningRate = config.train.learningRate
        t.base = config.train.base; t.levels = config.train.levels
        t.validateEvery = config.train.validateEvery
        return t
    }
    var trainSettings: String {
        let t = config.train
        return "size \(t.size) batch \(t.batch) lr \(t.learningRate) base \(t.base) levels \(t.levels)"
    }
    var sourceAll: [Sample] { dataset.samples.filter { config.sourceSites.contains($0.site) } }

    private mutating func add(_ stage: String, _ key: String, _ label: String, after dependencies: [ItemID] = [],
                              _ compute: @escaping (_ folder: String) throws -> Void) -> ItemID {
        let id = ItemID(stage: stage, key: key)
        items.append(PlanItem(id: id, label: label, dependencies: dependencies, compute: compute))
        return id
    }

    private mutating func build() {
        let source = addSourceModel()
        let encoder = config.encoder.method == "mae" ? addMAE() : config.encoder.method == "hssl" ? addHSSL() : nil
        let oneDomain = config.train.starts.contains("single-domain") ? addHSSL(oneDomain: true) : nil
        let embed = addEmbeddings(encoder: encoder)
        if config.siteAnalysis { addSiteAnalysis(source: source) }
        addBaseline(source: source)
        let starts = config.train.starts.enumerated().map { i, name in
            start(name, first: i == 0, source: source, encoder: name == "single-domain" ? oneDomain : encoder)
        }
        let fullStarts = config.fullDataStarts.isEmpty ? starts : starts.filter { config.fullDataStarts.contains($0.name) }
        for seed in config.seeds {
            for budget in config.budgets { addSelections(seed: seed, budget: budget, embed: embed, starts: starts) }
            if config.fullData { addFullData(seed: seed, starts: fullStarts) }
        }
        // The same item can arise twice (e.g. one budget written as "4" and "10%"): keep the first.
        var seen = Set<ItemID>()
        items = items.filter { seen.insert($0.id).inserted }
    }

    /// The source model, trained on the source sites' training split.
    private mutating func addSourceModel() -> ItemID {
        let (c, log, training) = (config, log, training)
        let (sourceTrain, sourceHeld) = (self.sourceTrain, self.sourceHeld)
        sourceKey = Self.key(["source", Self.ids(sourceTrain), Self.ids(sourceHeld), trainSettings, "epochs \(c.train.sourceEpochs)"])
        return add("source", sourceKey, "source model (\(c.sourceSites.joined(separator: ",")))") { folder in
            var t = training
            t.epochs = c.train.sourceEpochs; t.seed = 0
            let outcome = try t.run(train: sourceTrain, validation: sourceHeld, initFrom: nil, folder: folder, epochEnded: { r in
                log(String(format: "source model: epoch %d/%d, loss %.4f, validation Dice %.4f", r.epoch, c.train.sourceEpochs, r.trainLoss, r.validationDice))
            })
            log(String(format: "source model: held-out source Dice %.4f", outcome.meanDice))
        }
    }

    /// The encoder (MAE), pretrained on the source sites' cases without labels.
    private mutating func addMAE() -> ItemID {
        let (e, log, sourceAll) = (config.encoder, log, self.sourceAll)
        let key = Self.key(["encoder", Self.ids(sourceAll), "\(e.size) \(e.patch) \(e.width) \(e.depth) \(e.heads) \(e.decoderWidth) \(e.decoderDepth) \(e.decoderHeads) \(e.epochs) \(e.batch) \(e.learningRate)"])
        return add("encoder", key, "masked autoencoder on the source sites") { folder in
            var mc = MaskedAutoencoder.Configuration()
            mc.imageSize = e.size; mc.patch = e.patch; mc.width = e.width; mc.depth = e.depth; mc.heads = e.heads
            mc.decoderWidth = e.decoderWidth; mc.decoderDepth = e.decoderDepth; mc.decoderHeads = e.decoderHeads
            let stack = try PretrainingImages.read(sourceAll, size: e.size, maxSlices: 16, options: .default)
            mc.channels = stack.channels
            var pc = PretrainingConfig()
            pc.epochs = e.epochs; pc.batchSize = min(e.batch, stack.count); pc.learningRate = e.learningRate; pc.seed = 0
            pc.dataFingerprint = key
            var stage = PretrainingStage(method: .mae(MaskedAutoencoder(mc, seed: 0), pc), train: stack, folder: folder)
            stage.metadata = ["max_slices": "16"]
            stage.epochEnded = { r in log(String(format: "encoder: epoch %d/%d, loss %.4f", r.epoch, e.epochs, r.trainLoss)) }
            _ = try stage.run()
        }
    }

    /// HSSL: the U-Net's encoder-decoder pretrained on every case of the data without labels, each site a domain, or
    /// with `oneDomain` every case in one domain (the domain term off: the single-domain control, same images).
    private mutating func addHSSL(oneDomain: Bool = false) -> ItemID {
        let (c, log, all) = (config, log, dataset.samples)
        let e = c.encoder
        let key = Self.key(["hssl", Self.ids(all), "\(c.train.size) \(c.train.base) \(c.train.levels) \(e.epochs) \(e.batch) \(e.learningRate)"]
                           + (oneDomain ? ["one domain"] : []))
        return add("encoder", key, oneDomain ? "HSSL pretraining on every site as one domain" : "HSSL pretraining on every site") { folder in
            let caseDomains = oneDomain ? all.map { _ in "all" } : all.map(\.site)
            let domains = Array(Set(caseDomains)).sorted()
            let (stack, domainOf) = try PretrainingImages.readDomains(all, domains: caseDomains, names: domains, size: c.train.size, maxSlices: 16, options: .default)
            var mc = HSSLModel.Configuration()
            mc.unet = UNet.Configuration(inChannels: 1, classes: 2, base: c.train.base, levels: c.train.levels)
            mc.imageSize = c.train.size; mc.domains = domains
            var pc = HSSLPretrainingConfig()
            pc.epochs = e.epochs; pc.batchSize = min(e.batch, stack.count); pc.learningRate = e.learningRate; pc.seed = 0
            pc.dataFingerprint = key
            var stage = PretrainingStage(method: .hssl(HSSLModel(mc, seed: 0), pc, domains: domainOf, validationDomains: []), train: stack, folder: folder)
            stage.metadata = ["max_slices": "16", "domains": domains.joined(separator: ",")]
            let name = oneDomain ? "HSSL (one domain)" : "HSSL"
            stage.epochEnded = { r in log(String(format: "%@: epoch %d/%d, loss %.4f", name, r.epoch, e.epochs, r.trainLoss)) }
            _ = try stage.run()
        }
    }

    /// Embeddings of the source cases and the target pool.
    private mutating func addEmbeddings(encoder: ItemID?) -> ItemID {
        let (c, log, pool, sourceAll) = (config, log, self.pool, self.sourceAll)
        let settings: String
        switch c.encoder.method {
        case "mae", "hssl": settings = "\(c.encoder.method) \(encoder!.key) \(c.encoder.pool)"
        case "embeddings": settings = "file \(FNV1a.file(c.encoder.path!)) \(c.encoder.sourcePath.map(FNV1a.file) ?? "-")"
        default: settings = "thumbnail \(c.encoder.thumbnailSize) pca \(c.encoder.pca)"
        }
        embedKey = Self.key(["embed", Self.ids(sourceAll), Self.ids(pool), settings])
        let encoderFolder = encoder.map { store.folder($0) }
        return add("embed", embedKey, "embeddings (\(c.encoder.method))", after: encoder.map { [$0] } ?? []) { folder in
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
        }
    }

    /// The site analysis of the source and target sites (thumbnail embeddings, as `medselect sites` by default).
    private mutating func addSiteAnalysis(source: ItemID) {
        let (c, log, held) = (config, log, sourceHeld)
        let members = dataset.samples.filter { c.sourceSites.contains($0.site) || c.targetSites.contains($0.site) }
        let key = Self.key(["sites", Self.ids(members), c.sourceSites.joined(separator: ","), "thumbnail 32 permutations 1000 seed 0",
                            "model view of \(source.key), calibrated on \(Self.ids(held))"])
        sitesKey = key
        let origin = c.data ?? c.index ?? ""
        let checkpoint = store.folder(source) + "/checkpoint.safetensors"
        _ = add("sites", key, "site analysis (\(members.count) cases) with the source model's view", after: [source]) { folder in
            var stage = SiteAnalysisStage(samples: members, source: c.sourceSites)
            stage.origin = origin
            // The source model's view; its Dice estimate is calibrated on the source cases it was not trained on.
            let (unet, configuration) = try Trainer.loadModel(checkpoint: checkpoint)
            stage.model = (unet, configuration.imageSize ?? c.train.size)
            stage.calibration = Set(held.map(\.id))
            let report = try stage.run(out: folder)
            log("site analysis: \(report.sites.count) sites compared")
        }
    }

    /// The source model on the held-out target cases, without target labels.
    private mutating func addBaseline(source: ItemID) {
        let (held, size) = (self.held, config.train.size)
        let sourceFolder = store.folder(source)
        let key = Self.key(["baseline", source.key, Self.ids(held)])
        _ = add("score", key, "source model without target labels", after: [source]) { folder in
            let (model, _) = try Trainer.loadModel(checkpoint: sourceFolder + "/checkpoint.safetensors")
            try CaseScore.write(try Segmentation.score(held, model: model, size: size), to: folder + "/validation_metrics.csv")
        }
        runs.append(Run(strategy: .none, budget: "0", seed: 0, labeled: 0, trainKey: key, selectKey: nil, round: 0))
    }

    /// A start of fine-tuning (`train.start`): from the source model, an HSSL-pretrained U-Net (`encoder`: the
    /// multi-domain one, or the one-domain control for single-domain), or scratch.
    private func start(_ name: String, first: Bool, source: ItemID, encoder: ItemID?) -> Start {
        let suffix = first ? nil : name
        switch name {
        case "source":
            return Start(name: name, initFrom: store.folder(source) + "/checkpoint.safetensors", dependencies: [source], keyPart: source.key, suffix: suffix)
        case "pretrained", "single-domain":
            return Start(name: name, initFrom: encoder.map { store.folder($0) + "/encoder.safetensors" }, dependencies: [ItemID(stage: "encoder", key: encoder?.key ?? "")],
                         keyPart: "pretrained " + (encoder?.key ?? ""), suffix: suffix)
        default: return Start(name: name, initFrom: nil, dependencies: [], keyPart: "scratch", suffix: suffix)
        }
    }

    /// One fine-tuning item: `training` on the pool cases `chosen` returns, from `start`'s weights.
    private mutating func addFineTuning(key: String, label: String, seed: UInt64, initFrom: String?, after dependencies: [ItemID],
                                        chosen: @escaping () throws -> Set<String>) -> ItemID {
        let (training, epochs, pool, held) = (training, config.train.epochs, self.pool, self.held)
        return add("train", key, label, after: dependencies) { folder in
            let chosen = try chosen()
            var t = training
            t.epochs = epochs; t.seed = seed
            _ = try t.run(train: pool.filter { chosen.contains($0.id) }, validation: held, initFrom: initFrom, folder: folder)
        }
    }

    /// Every strategy's selection at `budget` for `seed`, each fine-tuned from every start, and its active-learning
    /// rounds.
    private mutating func addSelections(seed: UInt64, budget: String, embed: ItemID, starts: [Start]) {
        let c = config, store = self.store
        let count = ExperimentConfig.count(budget, pool: pool.count)
        let embedFolder = store.folder(embed)
        // An XSSR ablation runs at the alpha the full XSSR chose for the same budget and seed (when the full method is
        // in the experiment), so that dropping its term is the only difference.
        func xssrKey(_ strategy: String) -> String {
            Self.key(["select", embed.key, strategy, "\(count)", "\(seed)", strategy.hasPrefix("xssr") ? "k \(c.xssrK) \(c.xssrTerms)" : ""])
        }
        let fullXSSR = c.strategies.contains("xssr") ? xssrKey("xssr") : nil
        for strategy in c.strategies {
            let name = RunName(method: .strategy(strategy))
            let atFullAlpha = name.xssrAblationTerms != nil ? fullXSSR : nil
            let selectKey = atFullAlpha.map { Self.key([xssrKey(strategy), "at the alpha of", $0]) } ?? xssrKey(strategy)
            let alphaFrom = atFullAlpha.map { store.folder("select", $0) + "/selection.json" }
            let select = add("select", selectKey, "\(strategy), budget \(budget), seed \(seed)",
                             after: [embed] + (atFullAlpha.map { [ItemID(stage: "select", key: $0)] } ?? [])) { folder in
                try Self.select(strategy: strategy, count: count, seed: seed, config: c, embeddings: embedFolder, alphaFrom: alphaFrom, to: folder + "/selection.json")
            }
            let selection = store.folder(select) + "/selection.json"
            var firstTrain: ItemID? = nil
            for start in starts {
                let key = Self.key(["train", selectKey, start.keyPart, trainSettings, "epochs \(c.train.epochs)", "\(seed)", Self.ids(held)])
                let train = addFineTuning(key: key, label: "fine-tune on \(strategy)\(start.suffix.map { "@" + $0 } ?? ""), budget \(budget), seed \(seed)",
                                          seed: seed, initFrom: start.initFrom, after: [select] + start.dependencies) { Set(try Selection.read(selection).selected) }
                firstTrain = firstTrain ?? train
                runs.append(Run(strategy: RunName(method: .strategy(strategy), start: start.suffix), budget: budget, seed: seed, labeled: count,
                                trainKey: key, selectKey: selectKey))
            }
            let al = c.activeLearning
            guard let firstTrain, al.rounds > 1, al.after.isEmpty || al.after.contains(strategy) else { continue }
            for continuation in al.compareRandom ? ["acquisition", "random"] : ["acquisition"] {
                addRounds(strategy: strategy, continuation: continuation, budget: budget, seed: seed, first: (firstTrain, select, count), embed: embed)
            }
        }
    }

    /// Active-learning rounds 2...rounds continuing a first selection: each scores the pool with the last round's
    /// model and adds cases by acquisition (uncertainty + diversity) or at random, then fine-tunes on all labeled.
    private mutating func addRounds(strategy: String, continuation: String, budget: String, seed: UInt64,
                                    first: (train: ItemID, select: ItemID, labeled: Int), embed: ItemID) {
        let (c, pool, store) = (config, self.pool, self.store)
        let al = c.activeLearning
        let step = ExperimentConfig.count(al.budget, pool: pool.count)
        let embedFolder = store.folder(embed)
        var (previousTrain, previousSelect, labeled) = first
        for round in 2...al.rounds {
            let key = Self.key(["al-select", previousTrain.key, previousSelect.key, continuation, "\(round)", "\(step)", "\(al.alpha)", al.measure, "\(seed)"])
            let (trainFolder, selectFolder) = (store.folder(previousTrain), store.folder(previousSelect))
            let select = add("select", key, "\(strategy) + \(continuation), round \(round), budget \(budget), seed \(seed)",
                             after: [previousTrain, previousSelect]) { folder in
                try Self.continueSelection(continuation, step: step, seed: seed, round: round, config: c, pool: pool,
                                           previousSelection: selectFolder + "/selection.json", model: trainFolder + "/checkpoint.safetensors",
                                           embeddings: embedFolder, to: folder + "/selection.json")
            }
            let roundTrain = Self.key(["al-train", key, previousTrain.key, trainSettings, "epochs \(c.train.epochs)", "\(seed)", Self.ids(held)])
            let selection = store.folder(select) + "/selection.json"
            let train = addFineTuning(key: roundTrain, label: "fine-tune, \(strategy) + \(continuation) round \(round), seed \(seed)", seed: seed,
                                      initFrom: trainFolder + "/checkpoint.safetensors", after: [select, previousTrain]) {
                Set(try Selection.read(selection).labeledAndSelected)
            }
            labeled += step
            runs.append(Run(strategy: RunName(method: .strategy(strategy), continuation: continuation), budget: budget, seed: seed, labeled: labeled,
                            trainKey: roundTrain, selectKey: key, round: round))
            (previousTrain, previousSelect) = (train, select)
        }
    }

    /// The full-data reference of every start: fine-tuned on the whole target pool.
    private mutating func addFullData(seed: UInt64, starts: [Start]) {
        let (c, pool) = (config, self.pool)
        for start in starts {
            let key = Self.key(["full", start.keyPart, trainSettings, "epochs \(c.train.epochs)", "\(seed)", Self.ids(pool), Self.ids(held)])
            _ = addFineTuning(key: key, label: "full-data reference\(start.suffix.map { "@" + $0 } ?? ""), seed \(seed)", seed: seed,
                              initFrom: start.initFrom, after: start.dependencies) { Set(pool.map(\.id)) }
            runs.append(Run(strategy: .full(start: start.suffix), budget: "100%", seed: seed, labeled: pool.count, trainKey: key, selectKey: nil))
        }
    }

    /// Runs one selection on the stored embeddings and writes the selection JSON (the `medselect select` layout).
    static func select(strategy: String, count: Int, seed: UInt64, config c: ExperimentConfig, embeddings folder: String, alphaFrom: String? = nil,
                       to path: String) throws {
        let m = try NPYReader.readMatrix(folder + "/pool.npy")
        let ids = try CaseList.read(folder + "/pool.ids.csv")
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
        let fileIDs = try CaseList.read(CaseEmbedder.idsPath(path))
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
