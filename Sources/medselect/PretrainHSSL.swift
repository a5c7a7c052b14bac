import ArgumentParser
import Foundation
import MedData
import MedFormats
import MedNN
import MedPipeline
import MedReport
import MedTensor
import MedFoundation

/// The options of `medselect pretrain --method hssl`.
struct HSSLOptions: ParsableArguments {
    @Option(help: "HSSL domain label of each image: dataset (its benchmark) or site (dataset/site).") var domain = HSSLDomain.dataset
    @Option(help: "HSSL: U-Net base width (as medselect train's --base).") var base = 16
    @Option(help: "HSSL: U-Net levels.") var levels = 4
    @Option(help: "HSSL: normalisation, batch or instance (as medselect train's --norm).") var norm = UNet.Normalization.batch
    @Option(help: "HSSL: NT-Xent temperature of the global term.") var temperature: Float = 0.2
    @Option(help: "HSSL: NT-Xent temperature of the dense term.") var localTemperature: Float = 0.2
    @Option(help: "HSSL: weight of the global contrastive term.") var globalWeight: Float = 1
    @Option(help: "HSSL: weight of the dense (decoder) contrastive term.") var localWeight: Float = 1
    @Option(help: "HSSL: weight of the domain classification term.") var domainWeight: Float = 1
    @Option(help: "HSSL: corresponding locations per image pair, grid x grid.") var grid = 4
    @Option(help: "HSSL: smallest crop, as a fraction of the image area (>= 0.3 so that two crops overlap).") var cropScale: Float = 0.3

    func configuration(size: Int, domains: [String]) -> HSSLModel.Configuration {
        var c = HSSLModel.Configuration()
        c.unet = UNet.Configuration(inChannels: 1, classes: 2, base: base, levels: levels, normalization: norm)
        c.imageSize = size; c.domains = domains; c.grid = grid
        c.temperature = temperature; c.localTemperature = localTemperature
        c.globalWeight = globalWeight; c.localWeight = localWeight; c.domainWeight = domainWeight
        return c
    }

    func validate() throws {
        guard base >= 1, (1...6).contains(levels) else { throw ValidationError("need --base >= 1 and 1 <= --levels <= 6") }
        guard cropScale >= 0.3 && cropScale <= 1 else { throw ValidationError("--crop-scale must be in [0.3, 1] (smaller crops may not overlap)") }
    }
}

extension Pretrain {
    /// HSSL: every case of every dataset given (gray, one size), labelled with its domain; the pretrained U-Net goes to
    /// encoder.safetensors after every epoch.
    func runHSSL() throws {
        let batch = self.batch ?? 16, lr = self.lr ?? 1e-3, weightDecay = self.weightDecay ?? 1e-4
        // Each case with its domain name.
        var cases: [(sample: Sample, domain: String)] = []
        for d in try dataset.load() {
            for s in d.samples { cases.append((s, hssl.domain == .dataset ? d.name : d.name + "/" + s.site)) }
        }
        guard cases.count >= 2 else { throw DataError.badDataset(path: dataset.origin, reason: "\(cases.count) case(s); pretraining needs at least 2 (check --sites)") }
        let domains = Array(Set(cases.map(\.domain))).sorted()
        let (trainCases, valCases) = heldOut(cases)
        func read(_ part: [(sample: Sample, domain: String)], _ what: String) throws -> (ImageStack, [Int]) {
            let progress = ProgressLine("pretrain")
            let (stack, labels) = try PretrainingImages.readDomains(part.map(\.sample), domains: part.map(\.domain), names: domains, size: size, maxSlices: maxSlices,
                                                                    options: limits.readOptions) { done, total in
                progress.update(done, of: total, unit: "\(what) cases read")
            }
            progress.finish("\(counted(part.count, "\(what) case")) read")
            return (stack, labels)
        }
        let (train, trainDomains) = try read(trainCases, "training")
        let (validation, valDomains) = valCases.isEmpty ? (nil, []) : try read(valCases, "validation")
        guard train.count >= 2 else { throw DataError.badDataset(path: dataset.origin, reason: "\(train.count) training image(s); contrastive pretraining needs at least 2") }
        var counts: [String: Int] = [:]
        for d in trainDomains { counts[domains[d], default: 0] += 1 }
        FileHandle.standardError.write(Data(("[pretrain] HSSL on \(counted(trainCases.count, "training case")) (\(counted(train.count, "image"))), \(valCases.count) held out"
            + " (\(counted(validation?.count ?? 0, "image"))), \(size) x \(size) gray; \(domains.count) domain\(domains.count == 1 ? "" : "s") by \(hssl.domain.rawValue): "
            + domains.map { "\($0) \(counts[$0] ?? 0)" }.joined(separator: ", ")
            + (domains.count == 1 ? " (one domain: the classification term is off)" : "") + "\n").utf8))

        let modelConfiguration = hssl.configuration(size: size, domains: domains)
        if let problem = modelConfiguration.problem { throw ValidationError(problem) }
        var config = HSSLPretrainingConfig()
        config.epochs = epochs; config.batchSize = min(batch, train.count); config.learningRate = lr; config.weightDecay = weightDecay
        config.seed = seed
        config.augmentation.cropScale = hssl.cropScale
        if noAugmentation { config.augmentation = ContrastiveAugmentation.none }
        var fingerprint = FNV1a()
        for c in trainCases { fingerprint.add("t:" + c.sample.id + "@" + c.domain) }
        for c in valCases { fingerprint.add("v:" + c.sample.id + "@" + c.domain) }
        fingerprint.add("slices:\(maxSlices)")
        config.dataFingerprint = "\(train.count) training, \(validation?.count ?? 0) validation images, ids \(fingerprint.hex)"
        let model = HSSLModel(modelConfiguration, seed: seed)
        var stage = PretrainingStage(method: .hssl(model, config, domains: trainDomains, validationDomains: valDomains), train: train, validation: validation, folder: out)
        stage.metadata = ["preprocessing": "2-D images, or up to \(maxSlices) evenly spaced axial slices per volume; resampled to \(size) x \(size), z-scored per slice; colour converted to gray (BT.601 luminance) and z-scored again",
                          "max_slices": String(maxSlices), "data": config.dataFingerprint ?? "", "domains": domains.joined(separator: ","),
                          "domain_by": hssl.domain.rawValue, "datasets": dataset.origin]
        let history = try Self.run(stage, epochs: epochs, batch: config.batchSize)
        let (first, last) = (history.first!, history.last!)
        print(String(format: "pretrained %d epoch%@ (HSSL, %d domain%@): training loss %.4f -> %.4f, validation loss %@; wrote %@/encoder.safetensors (for medselect train --init-from and embed --encoder), checkpoint.safetensors, history.csv, curve.svg",
                     history.count, history.count == 1 ? "" : "s", domains.count, domains.count == 1 ? "" : "s", first.trainLoss, last.trainLoss,
                     last.validation.isFinite ? String(format: "%.4f -> %.4f", first.validation, last.validation) : "n/a (no held-out cases)", out))
    }
}
