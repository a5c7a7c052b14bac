import Foundation
import MedData
import MedFormats
import MedFoundation
import MedImage
import MedNN
import MedSelection

/// What `medselect pick` computes for a hospital, as items of an ``ItemStore`` under PLAN/items (so that a re-run
/// reuses everything and a changed budget or strategy recomputes only the selection): the source model (unless one
/// is given), the masked autoencoder pretrained on the source and target images together without labels (unless an
/// encoder is given), the embeddings of both, the site analysis on those embeddings, the source model's view of
/// every target case, and the selection. No target label is ever opened: targets are read as images only.
public struct PickPlan {
    public let settings: PickSettings
    /// The hospital's unlabeled cases (their sites renamed where a source site has the same name).
    public let targets: [Sample]
    /// The labeled source cases, and their training and held-out parts (empty with `--model` alone).
    public let source: [Sample], sourceTrain: [Sample], sourceHeld: [Sample]
    /// Target cases labeled in earlier rounds (`--labeled`): never picked again.
    public let labeled: [String]
    public let store: ItemStore
    public private(set) var items: [PlanItem] = []
    public private(set) var sourceItem: ItemID?, encoderItem: ItemID?, embedItem = ItemID(stage: "", key: ""),
                            sitesItem: ItemID?, viewItem: ItemID?, selectItem = ItemID(stage: "", key: "")
    /// The number of cases to pick.
    public let count: Int
    public var log: @Sendable (String) -> Void

    public init(settings: PickSettings, targets: [Sample], source: Dataset?, labeled: [String], folder: String,
                log: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.settings = settings
        self.targets = targets
        self.source = source?.samples ?? []
        self.labeled = labeled
        self.log = log
        self.store = ItemStore(root: folder + "/items")
        (sourceTrain, sourceHeld) = source?.trainValidationSplit(seed: 0, validationFraction: 0.2) ?? ([], [])
        let open = targets.count - Set(labeled).intersection(targets.map(\.id)).count
        count = settings.budget.count(pool: targets.count)
        guard count <= open else {
            throw DataError.badConfiguration(path: settings.targets.joined(separator: ", "),
                                             reason: "a budget of \(settings.budget) is \(count) cases, but only \(open) unlabeled target images were found")
        }
        build()
    }

    /// Where the source model's checkpoint is: the given file, or the source item's.
    public var modelPath: String? { settings.model ?? sourceItem.map { store.folder($0) + "/checkpoint.safetensors" } }
    public var encoderPath: String { settings.encoder ?? store.folder(encoderItem!) + "/encoder.safetensors" }
    public var sourceSites: [String] { Array(Set(source.map(\.site))).sorted() }

    private mutating func add(_ stage: String, _ key: String, _ label: String, after dependencies: [ItemID] = [],
                              _ compute: @escaping (_ folder: String) throws -> Void) -> ItemID {
        let id = ItemID(stage: stage, key: key)
        // Each item records how long it took (plan.json's timings).
        items.append(PlanItem(id: id, label: label, dependencies: dependencies) { folder in
            let start = Date()
            try compute(folder)
            try AtomicFile.write(String(format: "%.1f\n", Date().timeIntervalSince(start)), to: folder + "/seconds.txt")
        })
        return id
    }

    /// ", about 1 min 20 s left" (nothing when done).
    static func left(_ seconds: Double) -> String {
        guard seconds >= 1 else { return "" }
        let s = Int(seconds.rounded())
        return s >= 60 ? ", about \(s / 60) min \(s % 60) s left" : ", about \(s) s left"
    }

    private static func key(_ parts: [String]) -> String { ExperimentPlan.key(parts) }
    private static func ids(_ samples: [Sample]) -> String { ExperimentPlan.ids(samples) }

    private mutating func build() {
        if settings.model == nil && !source.isEmpty { sourceItem = addSourceModel() }
        if settings.encoder == nil { encoderItem = addEncoder() }
        embedItem = addEmbeddings()
        if modelPath != nil { viewItem = addModelView() }
        if !source.isEmpty { sitesItem = addSiteAnalysis() }
        selectItem = addSelection()
    }

    private mutating func addSourceModel() -> ItemID {
        let (s, log, train, held) = (settings, log, sourceTrain, sourceHeld)
        let epochs = s.sourceEpochs(trainCases: train.count)
        let key = Self.key(["pick-source", Self.ids(train), Self.ids(held), "size \(s.size) epochs \(epochs) base \(s.base)"])
        return add("source", key, "source model (\(train.count) labeled cases, \(epochs) epochs at \(s.size) px)") { folder in
            var t = SegmentationTraining()
            t.size = s.size; t.epochs = epochs; t.base = s.base; t.seed = 0
            let outcome = try t.run(train: train, validation: held, initFrom: nil, folder: folder, epochEnded: { r in
                log(String(format: "source model: epoch %d/%d, loss %.4f, held-out Dice %.4f", r.epoch, epochs, r.trainLoss, r.validationDice)
                    + Self.left(r.seconds * Double(epochs - r.epoch)))
            })
            log(String(format: "source model: held-out source Dice %.4f", outcome.meanDice))
        }
    }

    /// The MAE on every source and target image, without labels.
    private mutating func addEncoder() -> ItemID {
        let (s, log) = (settings, log)
        let all = source + targets
        let epochs = s.encoderEpochs(images: all.count)
        let key = Self.key(["pick-encoder", Self.ids(all), "size \(s.encoderSize) patch \(s.encoderPatch) width \(s.encoderWidth) depth \(s.encoderDepth) epochs \(epochs)"])
        return add("encoder", key, "masked autoencoder on \(all.count) source and target images (\(epochs) epochs at \(s.encoderSize) px)") { folder in
            let stack = try PretrainingImages.read(all, size: s.encoderSize, maxSlices: 16, options: .default)
            var mc = MaskedAutoencoder.Configuration()
            mc.imageSize = s.encoderSize; mc.patch = s.encoderPatch; mc.width = s.encoderWidth; mc.depth = s.encoderDepth; mc.heads = 4
            mc.decoderWidth = 128; mc.decoderDepth = 2; mc.decoderHeads = 4
            mc.channels = stack.channels
            var pc = PretrainingConfig()
            pc.epochs = epochs; pc.batchSize = min(32, stack.count); pc.learningRate = 5e-4; pc.seed = 0
            pc.dataFingerprint = key
            var stage = PretrainingStage(method: .mae(MaskedAutoencoder(mc, seed: 0), pc), train: stack, folder: folder)
            stage.metadata = ["max_slices": "16"]
            stage.epochEnded = { r in log(String(format: "encoder: epoch %d/%d, loss %.4f", r.epoch, epochs, r.trainLoss) + Self.left(r.seconds * Double(epochs - r.epoch))) }
            _ = try stage.run()
        }
    }

    private mutating func addEmbeddings() -> ItemID {
        let (source, targets, log) = (source, targets, log)
        let encoder = encoderPath
        let key = Self.key(["pick-embed", Self.ids(source), Self.ids(targets), encoderItem?.key ?? "file " + FNV1a.file(encoder)])
        return add("embed", key, "embeddings of \(source.count + targets.count) images", after: encoderItem.map { [$0] } ?? []) { folder in
            let embedder = try CaseEmbedder.encoder(encoder, pool: .mean)
            let all = source + targets
            let (rows, d) = try embedder.embed(all, origin: "")
            if !source.isEmpty { try CaseEmbedder.write(rows, dimensions: d, range: 0..<source.count, cases: source, to: folder + "/source.npy") }
            try CaseEmbedder.write(rows, dimensions: d, range: source.count..<all.count, cases: targets, to: folder + "/pool.npy")
            log("embeddings: \(targets.count) target and \(source.count) source images, \(d) dimensions")
        }
    }

    /// Every target site against the source sites, on the embeddings above.
    private mutating func addSiteAnalysis() -> ItemID {
        let (source, targets, sites, log, seed, modelPath) = (source, targets, sourceSites, log, settings.seed, modelPath)
        let embed = store.folder(embedItem), view = viewItem.map { store.folder($0) + "/view.csv" }
        let key = Self.key(["pick-sites", embedItem.key, "permutations 1000 seed \(seed)", viewItem.map { "view " + $0.key } ?? "no view"])
        return add("sites", key, "site analysis (\(Set(targets.map(\.site)).count) target sites against \(sites.joined(separator: ", ")))",
                   after: [embedItem] + (viewItem.map { [$0] } ?? [])) { folder in
            let s = try NPYReader.readMatrix(embed + "/source.npy"), t = try NPYReader.readMatrix(embed + "/pool.npy")
            var stage = SiteAnalysisStage(samples: source + targets, source: sites)
            // The model's view joins the comparison (the source's side: its held-out cases, which it was not trained on).
            if let view, let modelPath {
                stage.views = try CaseView.read(view)
                let (unet, configuration) = try Trainer.loadModel(checkpoint: modelPath)   // for the predicted contours of the worst estimates
                stage.model = (unet, configuration.imageSize ?? 128)
            }
            stage.embeddings = (s.values + t.values, s.columns, "the masked autoencoder pretrained on the source and target images together")
            stage.seed = seed
            let report = try stage.run(out: folder)
            log("site analysis: \(report.sites.count) sites compared")
        }
    }

    /// The source model's predictions on every target case (and the source's held-out cases, for comparison).
    private mutating func addModelView() -> ItemID {
        let (targets, held, log) = (targets, sourceHeld, log)
        let model = modelPath!
        let key = Self.key(["pick-view v4 (entropy, disagreement, reference shapes, calibration, boundary, largest piece)", sourceItem?.key ?? "file " + FNV1a.file(model), Self.ids(held), Self.ids(targets)])
        return add("view", key, "the source model's view of \(targets.count) target images", after: sourceItem.map { [$0] } ?? []) { folder in
            let (unet, configuration) = try Trainer.loadModel(checkpoint: model)
            let size = configuration.imageSize ?? 128
            let start = Date()
            // The held-out source cases (labeled, not trained on) are the references' shapes and calibrate the Dice estimate.
            let references = try CaseView.references(held, labels: unet.classes - 1, size: size)
            let rows = try CaseView.compute(held + targets, model: unet, size: size, references: references.count > 0 ? references : nil,
                                            calibrate: Set(held.map(\.id))) { done, total in
                if done % 200 == 0 || done == total {
                    log("model view: \(done)/\(total) images" + Self.left(Date().timeIntervalSince(start) / Double(done) * Double(total - done)))
                }
            }
            try CaseView.write(rows, to: folder + "/view.csv")
        }
    }

    private mutating func addSelection() -> ItemID {
        let (s, count, targets, labeled) = (settings, count, targets, labeled)
        let embed = store.folder(embedItem)
        let key = Self.key(["pick-select", embedItem.key, s.strategy.rawValue, "\(count)", "\(s.seed)", "labeled " + labeled.joined(separator: ",")])
        return add("select", key, "\(s.strategy.rawValue) picks \(count) of \(targets.count)", after: [embedItem]) { folder in
            let m = try NPYReader.readMatrix(embed + "/pool.npy")
            let pool = try Embeddings(values: m.values, count: m.rows, dimensions: m.columns, ids: targets.map(\.id))
            var stage = SelectionStage(strategy: s.strategy, budget: count)
            stage.seed = s.seed
            let row = Dictionary(targets.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
            stage.labeled = labeled.compactMap { row[$0] }
            if s.strategy == .random { stage.groups = targets.map(\.site); stage.groupsSource = "site" }
            if FileManager.default.fileExists(atPath: embed + "/source.npy") {
                let src = try NPYReader.readMatrix(embed + "/source.npy")
                stage.source = try Embeddings(values: src.values, count: src.rows, dimensions: src.columns)
            }
            try stage.run(pool: pool).selection(strategy: s.strategy.rawValue, budget: count, seed: s.seed, labeled: labeled)
                .write(to: folder + "/selection.json")
        }
    }
}
