import Foundation
import MedData

/// The seed papers' protocols as ready configurations (`medselect run --preset`), scaled to a CPU: what a preset
/// leaves open (data, sites, image size, epochs, seeds) comes from the command line, and the full configuration is
/// written to the run folder so the run can be repeated or edited.
public enum ExperimentPresets {
    public static let names = ["xssr", "coldstart-al", "hssl"]

    public struct Options: Sendable {
        public var data: String
        public var benchmark: String? = nil
        public var sourceSites: [String]
        /// Empty: every other site of the data.
        public var targetSites: [String] = []
        public var size = 128
        public var epochs = 30
        public var seeds: [Int] = [0, 1, 2]
        /// The budget (and the budget per active-learning round): a share such as "5%" or a count.
        public var budget = "5%"
        /// Strategies added to the preset's (e.g. typiclust, probcover).
        public var extraStrategies: [String] = []
        /// Epochs of the encoder's pretraining (default: the MAE's 100; HSSL twice the fine-tuning epochs). A volume
        /// gives up to 16 slices, so a 3D benchmark may want fewer epochs for the same number of steps.
        public var pretrainEpochs: Int? = nil
        /// Train the preset's full-data reference (the whole target pool, per seed). Off when another protocol on the
        /// same data already gives the reference that results are a share of (Scripts/benchmark's HSSL runs).
        public var fullData = true
        public init(data: String, sourceSites: [String]) { self.data = data; self.sourceSites = sourceSites }
    }

    /// The configuration of preset `name` as JSON.
    public static func configuration(_ name: String, _ o: Options) throws -> [String: Any] {
        var targets = o.targetSites
        if targets.isEmpty {
            let dataset = try DatasetAdapters.load(o.data, benchmark: o.benchmark)
            targets = dataset.sites.map(\.name).filter { !o.sourceSites.contains($0) }
        }
        // Fine-tuning scores the held-out target cases (its curve) every 5th epoch and after the last: they outnumber a
        // 5 % selection, so scoring them every epoch was most of a fine-tuning's time; the trained model is the same.
        // The MAE at the benchmark configuration's width, at the training size (patch 16 from 128 px, else 8).
        let encoder: [String: Any] = ["method": "mae", "size": o.size, "patch": o.size >= 128 ? 16 : 8, "width": 192, "depth": 6, "heads": 3,
                                      "decoder_width": 128, "decoder_depth": 2, "decoder_heads": 4, "epochs": o.pretrainEpochs ?? 100, "batch": 32, "lr": 5e-4]
        var config: [String: Any] = ["data": (o.data as NSString).standardizingPath.hasPrefix("/") ? o.data : FileManager.default.currentDirectoryPath + "/" + o.data,
                                     "source_sites": o.sourceSites, "target_sites": targets, "seeds": o.seeds,
                                     "train": ["size": o.size, "epochs": o.epochs, "source_epochs": 2 * o.epochs, "batch": 8, "validate_every": 5]]
        if let b = o.benchmark { config["benchmark"] = b }
        switch name {
        case "xssr":
            // XSSR (MAE on the source; random, CoreSet, XSSR and its ablations at 5 %; percentage of full-data Dice).
            config["encoder"] = encoder
            config["strategies"] = ["random", "coreset", "xssr", "xssr:novelty/diversity", "xssr:density/diversity", "xssr:density/novelty"] + o.extraStrategies
            config["budgets"] = [o.budget]
            config["full_data"] = true
        case "coldstart-al":
            // Cold start, then rounds of entropy + diversity against random (Dice and HD95 per round).
            config["encoder"] = encoder
            config["strategies"] = ["random", "coldstart"] + o.extraStrategies
            config["budgets"] = [o.budget]
            config["active_learning"] = ["rounds": 4, "budget": o.budget, "alpha": 0.5, "measure": "entropy", "after": ["random", "coldstart"], "compare_random": true]
            config["full_data"] = true
        case "hssl":
            // HSSL: the U-Net pretrained on every site's images (each site a domain, multi-domain) and on the same
            // images as one domain (single-domain), then random selections at the budget, each trained from scratch
            // and from both pretrainings (random@pretrained, random@single-domain); the whole pool from scratch.
            config["encoder"] = ["method": "hssl", "epochs": o.pretrainEpochs ?? 2 * o.epochs, "batch": 16, "lr": 1e-3]
            config["strategies"] = ["random"] + o.extraStrategies
            config["budgets"] = [o.budget]
            config["train"] = ["size": o.size, "epochs": o.epochs, "source_epochs": 2 * o.epochs, "batch": 8, "validate_every": 5, "start": ["scratch", "pretrained", "single-domain"]]
            config["full_data"] = ["scratch"]
        default:
            throw DataError.badConfiguration(path: "--preset \(name)", reason: "unknown preset (\(names.joined(separator: ", ")))")
        }
        if !o.fullData { config["full_data"] = false }
        return config
    }
}
