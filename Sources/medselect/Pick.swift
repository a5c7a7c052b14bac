import ArgumentParser
import Foundation
import MedCompute
import MedData
import MedPACS
import MedPipeline

/// `medselect pick`: a hospital's unlabeled image folders to an annotation worklist, a report of why, and what to
/// expect: the product's main job in one command.
struct Pick: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pick the images of your own folders worth annotating first: a worklist, a report and plan.json.",
        discussion: """
        Reads the target folders as plain image trees (PNG, NIfTI, MetaImage, NRRD; one sub-folder per scanner or site, \
        or none; a DICOM tree gives a case per series and its scanners as sites; a DICOMweb URL is searched with --query \
        and its series retrieved into --cache first) and never reads a target label: files that look like masks are skipped unread. From a labeled source \
        dataset it trains the source model and pretrains a masked autoencoder on the source and target images together \
        (unlabeled); or it takes a ready --model and --encoder. Then it embeds every image, compares each site with the \
        source, runs the source model on every target image, and picks the budget's images with the strategy. \
        Everything is cached under OUT/items: a re-run after an interruption resumes, and a changed --budget or \
        --strategy recomputes only the selection and the report.
        Outputs: OUT/worklist/ (the images for the annotators, labels/ for their masks), OUT/worklist.csv (rank, case, \
        site, the selection's terms, a reason), OUT/report.html, OUT/plan.json, OUT/selection.json.
        Example: medselect pick --target hospital/ --source-data Samples/cxr --source-sites MCU --budget 5% --out plan/
        """
    )
    @Option(help: "A folder of the hospital's unlabeled images (sub-folders are sites; DICOM: scanners are sites), or a DICOMweb URL; repeat for several.") var target: [String] = []
    @OptionGroup var pacs: DICOMwebOptions
    @Option(help: "The labeled source dataset (any layout medselect reads) the model comes from.") var sourceData: String?
    @Option(help: "Benchmark adapter of --source-data (default: detected).") var sourceBenchmark: String?
    @Option(help: "Only these sites of --source-data (comma-separated).") var sourceSites: String?
    @Option(help: "A ready U-Net checkpoint (medselect train) instead of training one on --source-data.") var model: String?
    @Option(help: "A ready encoder (medselect pretrain) instead of pretraining one.") var encoder: String?
    @Option(help: "Selection strategy.") var strategy = Strategy.xssr
    @Option(parsing: .unconditional, help: "How many images to pick: a count (22) or a share of the target (5%).") var budget = Budget.share(5)
    @Option(help: "Target ids labeled in earlier rounds (a selection.json, e.g. OUT/selection.json, or a list of ids): never picked again.") var labeled: String?
    @Option(help: "Image side of the source U-Net (multiple of 16).") var size = 96
    @Option(help: "Epochs of the source U-Net (default: about 2,400 images seen, 8 to 60 epochs).") var sourceEpochs: Int?
    @Option(help: "Epochs of the masked autoencoder (default: about 20,000 images seen, 10 to 100 epochs).") var encoderEpochs: Int?
    @Option(help: "Image side of the masked autoencoder (multiple of 8).") var encoderSize = 64
    @Option(help: "Worklist layout: files (the images as they are) or slicer (NRRD + empty .seg.nrrd).") var worklistFormat = Worklist.Format.files
    @Option(help: "Seed of every random choice.") var seed: UInt64 = 0
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Only the final lines, no progress.") var quiet = false
    @Option(help: "Output folder (the plan).") var out: String

    func validate() throws {
        if target.isEmpty { throw ValidationError("give at least one --target DIR (the hospital's images)") }
        if sourceData == nil && model == nil { throw ValidationError("give --source-data DIR (a labeled source dataset) or --model CKPT (a ready U-Net)") }
        if sourceData == nil && model != nil && encoder == nil && sourceSites != nil { throw ValidationError("--source-sites needs --source-data") }
        guard size >= 32 && size % 16 == 0 else { throw ValidationError("--size must be a multiple of 16, at least 32") }
        guard encoderSize >= 16 && encoderSize % 8 == 0 else { throw ValidationError("--encoder-size must be a multiple of 8, at least 16") }
        guard (sourceEpochs ?? 1) >= 1 && (encoderEpochs ?? 1) >= 1 else { throw ValidationError("epochs must be at least 1") }
        if strategy == .acquisition { throw ValidationError("acquisition needs a model's uncertainty per image; pick uses xssr, coldstart, coreset, typiclust, probcover or random") }
        if budget.isWholePool { throw ValidationError("--budget 100% would pick every image; give a count or a share below 100%") }
    }

    func run() throws {
        if let threads { Compute.threads = max(1, threads) }
        let started = Date()
        let quiet = self.quiet
        let log: @Sendable (String) -> Void = { line in
            if !quiet { FileHandle.standardError.write(Data("[pick \(Self.clock(Date().timeIntervalSince(started)))] \(line)\n".utf8)) }
        }
        // Inputs first: nothing is written until they are all good.
        let sourceSiteList = sourceSites.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
        let source = try sourceData.map { try PickInputs.source($0, benchmark: sourceBenchmark, sites: sourceSiteList) } 
        // DICOMweb targets are retrieved into the cache (--cache, default ./dicomweb-cache) and read from there.
        let folders = try target.map { t in DICOMwebClient.isURL(t) ? try pacs.retrieve(t, quiet: quiet) : t }
        let targets = try PickInputs.targets(folders, sourceSites: Set(source?.samples.map(\.site) ?? []))
        let labeledIDs = try labeled.map { try PickInputs.labeled($0, targets: targets.samples) } ?? []
        for path in [model, encoder].compactMap({ $0 }) { try PickInputs.checkChannels(path, of: targets.samples) }
        var settings = PickSettings(targets: target, strategy: strategy, budget: budget)
        settings.sourceData = sourceData; settings.sourceSites = Array(Set(source?.samples.map(\.site) ?? [])).sorted(); settings.model = model
        settings.encoder = encoder; settings.seed = seed; settings.labeled = labeled; settings.size = size
        settings.sourceEpochs = sourceEpochs; settings.encoderEpochs = encoderEpochs; settings.encoderSize = encoderSize
        let plan = try PickPlan(settings: settings, targets: targets.samples, source: source, labeled: labeledIDs, folder: out, log: log)
        for note in targets.notes { log("note: " + note) }
        log("\(targets.samples.count) target images from \(Set(targets.samples.map(\.site)).count) site(s), \(source?.samples.count ?? 0) labeled source images; picking \(plan.count) with \(strategy.rawValue)")

        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let tally = try PlanRunner.work(plan.items, store: plan.store, log: log)
        var options = PickReport.Options()
        options.version = MedSelect.configuration.version
        options.worklistFormat = worklistFormat
        options.notes = targets.notes + (labeledIDs.isEmpty ? [] : ["\(labeledIDs.count) target images labeled earlier (\(labeled!)) are not picked again."])
        let record = try PickReport.write(plan, to: out, options: options)
        let computed = tally.computed == 0 ? "nothing to compute (every stage reused)" : "\(tally.computed) stage(s) computed, \(tally.reused) reused"
        print("picked \(record.picks.count) of \(plan.targets.count) images (\(strategy.rawValue)); \(computed); \(Self.clock(Date().timeIntervalSince(started))) in all")
        print("  worklist: \(out)/worklist/ (\(out)/worklist.csv)")
        print("  report:   \(out)/report.html")
        print("  plan:     \(out)/plan.json")
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return String(format: "%d:%02d", s / 60, s % 60)
    }
}
