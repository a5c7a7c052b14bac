import Foundation
import MedFoundation
import MedData
import MedSelection

/// An experiment as a JSON file: the data, the source and target sites, the encoder, the selection strategies,
/// budgets and seeds, and how the U-Net is fine-tuned. Parsed strictly: every problem (an unknown key, a missing
/// path, a site not in the data, a budget larger than the pool) is reported on its own line, all at once.
public struct ExperimentConfig: Sendable, Equatable {
    public struct Encoder: Sendable, Equatable {
        /// thumbnail, mae (pretrained on the source sites), hssl (the U-Net's encoder-decoder pretrained on every
        /// case of the data, each site a domain, at `train.size` with `train.base`/`levels`; embeddings are its pooled
        /// bottleneck, and `train.start` "pretrained" fine-tunes from it), or embeddings (ready matrices: `path` to the
        /// target pool .npy with its .ids.csv, and optionally `source_path` for XSSR's novelty term).
        public var method = "thumbnail"
        public var size = 64, patch = 8, width = 96, depth = 4, heads = 3
        public var decoderWidth = 64, decoderDepth = 1, decoderHeads = 2
        public var epochs = 20, batch = 16
        public var learningRate: Float = 1e-3
        public var pool = "cls"
        /// Thumbnail side and principal components.
        public var thumbnailSize = 32, pca = 32
        public var path: String? = nil, sourcePath: String? = nil
    }
    public struct Train: Sendable, Equatable {
        public var size = 64, epochs = 20, batch = 4
        public var learningRate: Float = 1e-3
        public var base = 16, levels = 4
        /// Epochs of the source model (trained once on the source sites).
        public var sourceEpochs = 40
        /// source: fine-tune the source model on each selection; scratch: train a fresh U-Net on it; pretrained:
        /// start from the HSSL encoder-decoder (encoder.method hssl); single-domain: start from a second HSSL
        /// pretraining on the same cases as one domain (its domain term off: the control for HSSL's multi-domain
        /// objective). Several starts (`"start": ["scratch",
        /// "pretrained"]`) train every selection from each; results name the first start's runs by the strategy and
        /// the others' `strategy@start` (e.g. `random@pretrained`), so that the paired comparisons measure the start.
        public var starts = ["source"]
        public var start: String { starts[0] }
        /// Score the held-out target cases after every n-th epoch and the last (each item's curve); not part of the
        /// items' keys, since the trained model and its final scores do not depend on it.
        public var validateEvery = 1
    }

    /// Dataset folder (adapter detected, or `benchmark`), or an index.
    public var data: String? = nil
    public var index: String? = nil
    public var benchmark: String? = nil
    public var sourceSites: [String] = []
    public var targetSites: [String] = []
    public var encoder = Encoder()
    public var strategies: [String] = []
    /// As written: "5%" (share of the target pool) or "22" (a count).
    public var budgets: [String] = []
    public var seeds: [UInt64] = [0]
    public var train = Train()
    /// Held-out share of each target site's labeled cases (never selectable; every run is scored on them), and the
    /// seed of that split (fixed across seeds so that runs compare on the same cases).
    public var validationFraction = 0.2
    public var splitSeed: UInt64 = 0
    /// XSSR's neighbours and terms (ablations).
    public var xssrK = 10
    public var xssrTerms = "density,novelty,diversity"
    /// Also fine-tune on the whole target pool (per seed): the full-data reference, from every start or only from
    /// `fullDataStarts` when that is not empty (`"full_data": ["scratch"]`).
    public var fullData = true
    public var fullDataStarts: [String] = []
    /// Run the site analysis (`medselect sites` on the source and target sites, thumbnail embeddings) as a stage; the
    /// report then plots each target site's Dice against its distance to the source.
    public var siteAnalysis = true
    /// Active-learning rounds after the first selection: each round scores the unlabeled pool with the last round's
    /// model, adds `budget` cases by uncertainty and diversity (acquisition, weight `alpha`), and fine-tunes that model
    /// on everything labeled; with `compareRandom`, the same number of random cases as the reference continuation.
    public struct ActiveLearning: Sendable, Equatable {
        public var rounds = 1
        public var budget = "4"
        public var alpha = 0.5
        public var measure = "entropy"
        /// First-round strategies to continue (empty: all).
        public var after: [String] = []
        public var compareRandom = true
    }
    public var activeLearning = ActiveLearning()

    /// Where fine-tuning can start (`train.start`).
    public static let startNames = ["source", "scratch", "pretrained", "single-domain"]

    /// The strategies a configuration names (acquisition only continues a selection, in active-learning rounds).
    public static let strategyNames = Strategy.allCases.filter { $0 != .acquisition }.map(\.rawValue)

    /// The problems of a config file, one per line, or the config.
    public enum Problem: MedError {
        case invalid(path: String, problems: [String])
        public var path: String { switch self { case .invalid(let path, _): return path } }
        /// The problems, one per line, each after the first prefixed by the path again (one `error:` line each).
        public var reason: String { switch self { case .invalid(let path, let problems): return problems.joined(separator: "\n\(path): ") } }
        public var description: String {
            switch self {
            case .invalid(let path, let problems): return problems.map { "\(path): \($0)" }.joined(separator: "\n")
            }
        }
    }

    /// Reads and checks `path`; relative paths inside are taken from the file's folder.
    public static func load(_ path: String) throws -> ExperimentConfig {
        guard let bytes = FileManager.default.contents(atPath: path) else { throw Problem.invalid(path: path, problems: ["cannot be read"]) }
        return try load(bytes, path: path)
    }

    /// Checks a configuration's bytes as if they were the file `path` (which need not exist yet: a preset is checked
    /// before it is written).
    public static func load(_ bytes: Data, path: String) throws -> ExperimentConfig {
        guard let json = try? JSONSerialization.jsonObject(with: bytes), let object = json as? [String: Any] else {
            throw Problem.invalid(path: path, problems: ["not a JSON object"])
        }
        let folder = (path as NSString).deletingLastPathComponent
        var problems: [String] = []
        let config = parse(object, folder: folder.isEmpty ? "." : folder, problems: &problems)
        guard problems.isEmpty else { throw Problem.invalid(path: path, problems: problems) }
        return config
    }

    /// JSON true/false (Foundation gives them as NSNumber, which also casts to Bool when it is 0 or 1).
    static func isBool(_ v: Any) -> Bool { (v as? NSNumber).map { String(cString: $0.objCType) == "c" } ?? false }

    static func parse(_ o: [String: Any], folder: String, problems: inout [String]) -> ExperimentConfig {
        var c = ExperimentConfig()
        let known: Set<String> = ["data", "index", "benchmark", "source_sites", "target_sites", "encoder", "strategies", "budgets", "seeds",
                                  "train", "validation_fraction", "split_seed", "xssr", "full_data", "active_learning", "site_analysis"]
        for key in o.keys.sorted() where !known.contains(key) { problems.append("unknown key '\(key)' (known: \(known.sorted().joined(separator: ", ")))") }
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : (folder as NSString).appendingPathComponent(p) }
        func string(_ v: Any?, _ name: String) -> String? {
            guard let v else { return nil }
            guard let s = v as? String else { problems.append("'\(name)' must be a string"); return nil }
            return s
        }
        func strings(_ v: Any?, _ name: String) -> [String] {
            guard let v else { return [] }
            guard let a = v as? [Any], a.allSatisfy({ $0 is String }) else { problems.append("'\(name)' must be a list of strings"); return [] }
            return a as! [String]
        }
        func int(_ v: Any?, _ name: String, _ range: ClosedRange<Int>) -> Int? {
            guard let v else { return nil }
            guard let n = v as? NSNumber, !isBool(v), Double(n.intValue) == n.doubleValue, range.contains(n.intValue) else {
                problems.append("'\(name)' must be an integer in \(range.lowerBound)...\(range.upperBound)"); return nil
            }
            return n.intValue
        }
        func number(_ v: Any?, _ name: String, _ range: ClosedRange<Double>) -> Double? {
            guard let v else { return nil }
            guard let n = v as? NSNumber, !isBool(v), range.contains(n.doubleValue) else {
                problems.append("'\(name)' must be a number in \(range.lowerBound)...\(range.upperBound)"); return nil
            }
            return n.doubleValue
        }
        func object(_ v: Any?, _ name: String, keys: Set<String>) -> [String: Any] {
            guard let v else { return [:] }
            guard let d = v as? [String: Any] else { problems.append("'\(name)' must be an object"); return [:] }
            for key in d.keys.sorted() where !keys.contains(key) {
                problems.append("unknown key '\(name).\(key)' (known: \(keys.sorted().joined(separator: ", ")))")
            }
            return d
        }

        c.data = string(o["data"], "data").map(resolve)
        c.index = string(o["index"], "index").map(resolve)
        c.benchmark = string(o["benchmark"], "benchmark")
        switch (c.data, c.index) {
        case (nil, nil): problems.append("give 'data' (a dataset folder) or 'index' (an index.sqlite)")
        case (.some, .some): problems.append("give 'data' or 'index', not both")
        default: break
        }
        if let d = c.data, !FileManager.default.fileExists(atPath: d) { problems.append("'data': no such folder \(d)") }
        if let i = c.index, !FileManager.default.fileExists(atPath: i) { problems.append("'index': no such file \(i)") }
        c.sourceSites = strings(o["source_sites"], "source_sites")
        c.targetSites = strings(o["target_sites"], "target_sites")
        if c.sourceSites.isEmpty { problems.append("'source_sites' must name at least one site") }
        if c.targetSites.isEmpty { problems.append("'target_sites' must name at least one site") }
        let overlap = Set(c.sourceSites).intersection(c.targetSites)
        if !overlap.isEmpty { problems.append("sites both source and target: \(overlap.sorted().joined(separator: ", "))") }

        let e = object(o["encoder"], "encoder", keys: ["method", "size", "patch", "width", "depth", "heads", "decoder_width", "decoder_depth",
                                                       "decoder_heads", "epochs", "batch", "lr", "pool", "thumbnail_size", "pca", "path", "source_path"])
        if let m = string(e["method"], "encoder.method") {
            if ["thumbnail", "mae", "hssl", "embeddings"].contains(m) { c.encoder.method = m }
            else { problems.append("'encoder.method' must be thumbnail, mae, hssl or embeddings, not '\(m)'") }
        }
        c.encoder.size = int(e["size"], "encoder.size", 16...512) ?? c.encoder.size
        c.encoder.patch = int(e["patch"], "encoder.patch", 2...64) ?? c.encoder.patch
        c.encoder.width = int(e["width"], "encoder.width", 8...1024) ?? c.encoder.width
        c.encoder.depth = int(e["depth"], "encoder.depth", 1...24) ?? c.encoder.depth
        c.encoder.heads = int(e["heads"], "encoder.heads", 1...32) ?? c.encoder.heads
        c.encoder.decoderWidth = int(e["decoder_width"], "encoder.decoder_width", 8...1024) ?? c.encoder.decoderWidth
        c.encoder.decoderDepth = int(e["decoder_depth"], "encoder.decoder_depth", 1...24) ?? c.encoder.decoderDepth
        c.encoder.decoderHeads = int(e["decoder_heads"], "encoder.decoder_heads", 1...32) ?? c.encoder.decoderHeads
        c.encoder.epochs = int(e["epochs"], "encoder.epochs", 1...100_000) ?? c.encoder.epochs
        c.encoder.batch = int(e["batch"], "encoder.batch", 1...4096) ?? c.encoder.batch
        c.encoder.learningRate = number(e["lr"], "encoder.lr", 1e-8...1).map(Float.init) ?? c.encoder.learningRate
        c.encoder.thumbnailSize = int(e["thumbnail_size"], "encoder.thumbnail_size", 4...512) ?? c.encoder.thumbnailSize
        c.encoder.pca = int(e["pca"], "encoder.pca", 0...4096) ?? c.encoder.pca
        if let p = string(e["pool"], "encoder.pool") {
            if ["cls", "mean"].contains(p) { c.encoder.pool = p } else { problems.append("'encoder.pool' must be cls or mean") }
        }
        c.encoder.path = string(e["path"], "encoder.path").map(resolve)
        c.encoder.sourcePath = string(e["source_path"], "encoder.source_path").map(resolve)
        if c.encoder.method == "mae", c.encoder.size % c.encoder.patch != 0 {
            problems.append("'encoder.size' \(c.encoder.size) is not a multiple of 'encoder.patch' \(c.encoder.patch)")
        }
        if c.encoder.method == "embeddings" {
            if let p = c.encoder.path {
                if !FileManager.default.fileExists(atPath: p) { problems.append("'encoder.path': no such file \(p)") }
                else if !FileManager.default.fileExists(atPath: CaseEmbedder.idsPath(p)) { problems.append("'encoder.path': no ids file \(CaseEmbedder.idsPath(p)) beside it") }
            } else { problems.append("'encoder.method' embeddings needs 'encoder.path' (the target pool's .npy)") }
            if let p = c.encoder.sourcePath, !FileManager.default.fileExists(atPath: p) { problems.append("'encoder.source_path': no such file \(p)") }
        }

        c.strategies = strings(o["strategies"], "strategies")
        if c.strategies.isEmpty { problems.append("'strategies' must name at least one of \(strategyNames.joined(separator: ", "))") }
        for s in c.strategies where !strategyNames.contains(s) {
            // XSSR ablations: "xssr:density/diversity" keeps only the named terms (no commas: names go into CSV files).
            if s.hasPrefix("xssr:") {
                if s.contains(",") || (try? XSSR.Terms(parsing: s.dropFirst(5).replacingOccurrences(of: "/", with: ","))) == nil {
                    problems.append("strategy '\(s)': after 'xssr:' name some of density, novelty, diversity separated by '/'")
                }
                continue
            }
            problems.append("unknown strategy '\(s)' (\(strategyNames.joined(separator: ", ")), or xssr:<term>/<term> for an ablation)")
        }
        if Set(c.strategies).count != c.strategies.count { problems.append("'strategies' lists a strategy twice") }
        if let b = o["budgets"] {
            if let list = b as? [Any], !list.isEmpty {
                for item in list {
                    if let s = item as? String, s.hasSuffix("%"), Budget(parsing: s) != nil { c.budgets.append(s) }
                    else if let n = item as? NSNumber, !isBool(item), Double(n.intValue) == n.doubleValue, n.intValue >= 1 { c.budgets.append(String(n.intValue)) }
                    else if let s = item as? String, let n = Int(s), n >= 1 { c.budgets.append(String(n)) }
                    else { problems.append("budget \(item) must be a share such as \"5%\" or a positive count such as 22") }
                }
            } else { problems.append("'budgets' must be a non-empty list such as [\"5%\"] or [22]") }
        } else { problems.append("'budgets' is missing (for example [\"5%\"])") }
        if let s = o["seeds"] {
            if let list = s as? [Any], !list.isEmpty, list.allSatisfy({ ($0 as? NSNumber).map { !isBool($0) && $0.doubleValue >= 0 && Double($0.intValue) == $0.doubleValue } ?? false }) {
                c.seeds = list.map { UInt64(($0 as! NSNumber).intValue) }
                if Set(c.seeds).count != c.seeds.count { problems.append("'seeds' lists a seed twice") }
            } else { problems.append("'seeds' must be a non-empty list of non-negative integers") }
        }
        let t = object(o["train"], "train", keys: ["size", "epochs", "batch", "lr", "base", "levels", "source_epochs", "start", "validate_every"])
        c.train.size = int(t["size"], "train.size", 16...1024) ?? c.train.size
        c.train.epochs = int(t["epochs"], "train.epochs", 1...100_000) ?? c.train.epochs
        c.train.batch = int(t["batch"], "train.batch", 2...1024) ?? c.train.batch
        c.train.learningRate = number(t["lr"], "train.lr", 1e-8...1).map(Float.init) ?? c.train.learningRate
        c.train.base = int(t["base"], "train.base", 2...256) ?? c.train.base
        c.train.levels = int(t["levels"], "train.levels", 1...6) ?? c.train.levels
        c.train.sourceEpochs = int(t["source_epochs"], "train.source_epochs", 1...100_000) ?? c.train.sourceEpochs
        c.train.validateEvery = int(t["validate_every"], "train.validate_every", 1...100_000) ?? c.train.validateEvery
        if let v = t["start"] {
            let list = (v as? String).map { [$0] } ?? (v as? [Any])?.compactMap { $0 as? String } ?? []
            if list.isEmpty || (v as? [Any]).map({ $0.count != list.count }) == true {
                problems.append("'train.start' must be source, scratch, pretrained or single-domain, or a list of them")
            } else {
                for s in list where !Self.startNames.contains(s) { problems.append("'train.start' \(s) must be source, scratch, pretrained or single-domain") }
                if Set(list).count != list.count { problems.append("'train.start' lists a start twice") }
                c.train.starts = list
            }
        }
        for s in ["pretrained", "single-domain"] where c.train.starts.contains(s) && c.encoder.method != "hssl" {
            problems.append("'train.start' \(s) needs 'encoder.method' hssl (the pretrained encoder-decoder it starts from)")
        }
        if c.train.size % (1 << c.train.levels) != 0 { problems.append("'train.size' \(c.train.size) is not a multiple of 2^levels = \(1 << c.train.levels)") }
        c.validationFraction = number(o["validation_fraction"], "validation_fraction", 0.01...0.9) ?? c.validationFraction
        c.splitSeed = int(o["split_seed"], "split_seed", 0...Int.max).map(UInt64.init) ?? c.splitSeed
        let x = object(o["xssr"], "xssr", keys: ["k", "terms"])
        c.xssrK = int(x["k"], "xssr.k", 1...1000) ?? c.xssrK
        if let terms = string(x["terms"], "xssr.terms") { c.xssrTerms = terms }
        let al = object(o["active_learning"], "active_learning", keys: ["rounds", "budget", "alpha", "measure", "after", "compare_random"])
        c.activeLearning.rounds = int(al["rounds"], "active_learning.rounds", 1...50) ?? c.activeLearning.rounds
        if let b = al["budget"] {
            if let t = b as? String, t.hasSuffix("%") || Int(t) != nil { c.activeLearning.budget = t }
            else if let n = b as? NSNumber, !isBool(b), n.intValue >= 1 { c.activeLearning.budget = String(n.intValue) }
            else { problems.append("'active_learning.budget' must be a share such as \"5%\" or a positive count") }
        }
        c.activeLearning.alpha = number(al["alpha"], "active_learning.alpha", 0...1) ?? c.activeLearning.alpha
        if let m = string(al["measure"], "active_learning.measure") {
            if ["entropy", "margin"].contains(m) { c.activeLearning.measure = m } else { problems.append("'active_learning.measure' must be entropy or margin") }
        }
        c.activeLearning.after = strings(al["after"], "active_learning.after")
        for a in c.activeLearning.after where !c.strategies.contains(a) { problems.append("'active_learning.after' names '\(a)', which is not in 'strategies'") }
        if let r = al["compare_random"] { if isBool(r), let b = r as? Bool { c.activeLearning.compareRandom = b } else { problems.append("'active_learning.compare_random' must be true or false") } }
        if let f = o["full_data"] {
            if isBool(f), let b = f as? Bool { c.fullData = b }
            else if let list = f as? [Any], !list.isEmpty, list.allSatisfy({ $0 is String }) {
                c.fullDataStarts = list.map { $0 as! String }
                for s in c.fullDataStarts where !c.train.starts.contains(s) { problems.append("'full_data' names the start '\(s)', which is not in 'train.start'") }
            } else { problems.append("'full_data' must be true, false or a list of starts (such as [\"scratch\"])") }
        }
        if let f = o["site_analysis"] { if isBool(f), let b = f as? Bool { c.siteAnalysis = b } else { problems.append("'site_analysis' must be true or false") } }
        return c
    }

    /// Budget `text` as a count for a pool of `pool` cases.
    public static func count(_ text: String, pool: Int) -> Int { Budget(parsing: text)!.count(pool: pool) }

    /// The configuration as canonical JSON (sorted keys), with paths as given after resolution: what results.json
    /// records and what keys items.
    public var json: [String: Any] {
        var o: [String: Any] = ["source_sites": sourceSites, "target_sites": targetSites, "strategies": strategies, "budgets": budgets,
                                "seeds": seeds.map { Int($0) }, "validation_fraction": validationFraction, "split_seed": Int(splitSeed),
                                "xssr": ["k": xssrK, "terms": xssrTerms],
                                "full_data": fullData && !fullDataStarts.isEmpty ? fullDataStarts as Any : fullData as Any, "site_analysis": siteAnalysis,
                                "active_learning": ["rounds": activeLearning.rounds, "budget": activeLearning.budget, "alpha": activeLearning.alpha,
                                                    "measure": activeLearning.measure, "after": activeLearning.after, "compare_random": activeLearning.compareRandom],
                                "train": ["size": train.size, "epochs": train.epochs, "batch": train.batch, "lr": Double(train.learningRate),
                                          "base": train.base, "levels": train.levels, "source_epochs": train.sourceEpochs,
                                          "start": train.starts.count == 1 ? train.start as Any : train.starts as Any, "validate_every": train.validateEvery],
                                "encoder": encoderJSON]
        if let data { o["data"] = data }
        if let index { o["index"] = index }
        if let benchmark { o["benchmark"] = benchmark }
        return o
    }

    var encoderJSON: [String: Any] {
        switch encoder.method {
        case "mae":
            return ["method": "mae", "size": encoder.size, "patch": encoder.patch, "width": encoder.width, "depth": encoder.depth,
                    "heads": encoder.heads, "decoder_width": encoder.decoderWidth, "decoder_depth": encoder.decoderDepth,
                    "decoder_heads": encoder.decoderHeads, "epochs": encoder.epochs, "batch": encoder.batch, "lr": Double(encoder.learningRate),
                    "pool": encoder.pool]
        case "hssl":
            return ["method": "hssl", "epochs": encoder.epochs, "batch": encoder.batch, "lr": Double(encoder.learningRate)]
        case "embeddings":
            var o: [String: Any] = ["method": "embeddings", "path": encoder.path ?? ""]
            if let s = encoder.sourcePath { o["source_path"] = s }
            return o
        default:
            return ["method": "thumbnail", "thumbnail_size": encoder.thumbnailSize, "pca": encoder.pca]
        }
    }

    /// Loads the data and checks the sites exist and each budget fits every target pool; one line per problem.
    public func loadData(configPath: String) throws -> Dataset {
        var dataset: Dataset
        if let index { dataset = try merge(try DatasetIndex(path: index).datasets(), origin: index) }
        else { dataset = try DatasetAdapters.load(data!, benchmark: benchmark) }
        let names = Set(dataset.sites.map(\.name))
        var problems: [String] = []
        for s in sourceSites + targetSites where !names.contains(s) {
            problems.append("site '\(s)' is not in \(data ?? index!) (sites: \(names.sorted().joined(separator: ", ")))")
        }
        if problems.isEmpty {
            let pool = ExperimentPlan.targetSplit(dataset, config: self).train.count
            for b in budgets where Self.count(b, pool: pool) > pool {
                problems.append("budget \(b) (\(Self.count(b, pool: pool)) cases) is larger than the target pool of \(pool) training cases")
            }
            // Two budgets of one count would be the same runs twice: duplicated rows, and every pair counted twice by
            // the paired statistics.
            var budgetOf: [Int: String] = [:]
            for b in budgets {
                let n = Self.count(b, pool: pool)
                if let earlier = budgetOf[n] {
                    problems.append("budgets \(earlier) and \(b) are both \(n) case\(n == 1 ? "" : "s") of the target pool of \(pool): list each budget once")
                } else { budgetOf[n] = b }
            }
            for b in budgets where Self.count(b, pool: pool) < 2 {
                problems.append("budget \(b) is \(Self.count(b, pool: pool)) case of the target pool of \(pool); fine-tuning needs at least 2 (give a count, e.g. 2)")
            }
            if activeLearning.rounds > 1, let largest = budgets.map({ Self.count($0, pool: pool) }).max() {
                let total = largest + (activeLearning.rounds - 1) * Self.count(activeLearning.budget, pool: pool)
                if total > pool {
                    problems.append("\(activeLearning.rounds) rounds (\(largest) + \(activeLearning.rounds - 1) x \(Self.count(activeLearning.budget, pool: pool)) = \(total) cases) need more than the target pool of \(pool) training cases")
                }
            }
            if pool < 2 { problems.append("the target sites have \(pool) labeled training case(s); at least 2 are needed") }
        }
        guard problems.isEmpty else { throw Problem.invalid(path: configPath, problems: problems) }
        dataset.samples = dataset.samples.filter { Set(sourceSites + targetSites).contains($0.site) }
        return dataset
    }

    private func merge(_ datasets: [Dataset], origin: String) throws -> Dataset {
        guard var first = datasets.first else { throw DataError.badDataset(path: origin, reason: "the index holds no dataset") }
        for d in datasets.dropFirst() { first.samples += d.samples; first.sites += d.sites }
        return first
    }
}
