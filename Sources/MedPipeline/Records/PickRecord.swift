import Foundation
import MedAnalysis
import MedData
import MedFoundation

/// What `medselect pick` was asked to do: the target folders, the source (a labeled dataset, or a ready model and
/// encoder), the strategy and budget, and the model sizes set by the time target (Docs/performance.md).
public struct PickSettings: Codable, Sendable {
    public var targets: [String]
    public var sourceData: String?
    public var sourceSites: [String]
    public var model: String?
    public var encoder: String?
    public var strategy: Strategy
    public var budget: Budget
    public var seed: UInt64 = 0
    /// A selection.json or CSV of target ids labeled in earlier rounds.
    public var labeled: String?
    /// The source U-Net: image side, epochs (nil: from ``sourcePasses``), base channels.
    public var size = 96, sourceEpochs: Int? = nil, base = 16
    /// The masked autoencoder: image side, patch, width, depth, epochs (nil: from ``encoderPasses``).
    public var encoderSize = 64, encoderPatch = 8, encoderWidth = 128, encoderDepth = 4, encoderEpochs: Int? = nil

    /// Default training lengths, set by the time target (1,000 target images and 250 source cases in under five
    /// minutes on two cores, Docs/performance.md) rather than by the research presets: about 2,400 training images
    /// seen by the source U-Net (12 epochs of 200 cases; at most 60 epochs for small sources, at least 8) and 20,000
    /// by the masked autoencoder (16 epochs of 1,250 images; between 10 and 100 epochs).
    public static let sourcePasses = 2400, encoderPasses = 20000

    public func sourceEpochs(trainCases: Int) -> Int {
        sourceEpochs ?? min(60, max(8, Int((Double(Self.sourcePasses) / Double(max(1, trainCases))).rounded(.up))))
    }
    public func encoderEpochs(images: Int) -> Int {
        encoderEpochs ?? min(100, max(10, Int((Double(Self.encoderPasses) / Double(max(1, images))).rounded(.up))))
    }

    public init(targets: [String], strategy: Strategy, budget: Budget) {
        self.targets = targets; self.sourceSites = []; self.strategy = strategy; self.budget = budget
    }

    enum CodingKeys: String, CodingKey {
        case targets, sourceData = "source_data", sourceSites = "source_sites", model, encoder, strategy, budget, seed, labeled, size
        case sourceEpochs = "source_epochs", base, encoderSize = "encoder_size", encoderPatch = "encoder_patch", encoderWidth = "encoder_width"
        case encoderDepth = "encoder_depth", encoderEpochs = "encoder_epochs"
    }
}

extension Budget: Codable {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let b = Budget(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a budget: \(text)"))
        }
        self = b
    }
    public func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(description) }
}

/// `medselect pick`'s plan.json: the picks with their terms and reasons, every site with its shift measures and the
/// source model's view, the settings, version and timings; the report's facts for programs. Written only by the
/// pick stage; the one type for that file.
public struct PickRecord: Codable, Sendable {
    public static let currentVersion = 1

    public struct Pick: Codable, Sendable {
        public var rank: Int, id: String, site: String, image: String
        public var terms: [String: JSONValue]
        public var reason: String
    }

    public struct SiteEntry: Codable, Sendable {
        public var name: String
        public var role: String
        public var cases: Int
        public var picked: Int
        /// The site analysis's measures against the source (distance, MMD p after Holm, quality flags), and its finding.
        public var shift: [String: JSONValue]
        public var finding: String
        /// The source model's view: mean entropy, empty predictions' share, per-label median size and pieces.
        public var modelView: [String: JSONValue]
        /// The source model's Dice at the site estimated without labels (the site analysis's `estimated_dice`: mean,
        /// bootstrap interval, method); nil without a source model or labeled held-out source cases.
        public var estimatedDice: SiteReport.EstimatedDice?
        enum CodingKeys: String, CodingKey { case name, role, cases, picked, shift, finding, modelView = "model_view", estimatedDice = "estimated_dice" }
    }

    public var version = PickRecord.currentVersion
    public var medselectVersion: String
    public var settings: PickSettings
    public var strategy: String
    public var budget: Int
    public var poolCases: Int
    public var picks: [Pick]
    public var sites: [SiteEntry]
    /// What the strategy found (XSSR's alpha and coverage, cold start's k, ...).
    public var selectionResults: [String: JSONValue]
    public var budgetAdvice: String
    public var notes: [String]
    /// Seconds per stage (as the stage's item took when it was computed).
    public var timingsSeconds: [String: Double]

    enum CodingKeys: String, CodingKey {
        case version, medselectVersion = "medselect_version", settings, strategy, budget, poolCases = "pool_cases", picks, sites
        case selectionResults = "selection_results", budgetAdvice = "budget_advice", notes, timingsSeconds = "timings_seconds"
    }

    public func write(to path: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(String(decoding: try e.encode(self), as: UTF8.self) + "\n", to: path)
    }

    public static func read(_ path: String) throws -> PickRecord {
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError.badConfiguration(path: path, reason: "cannot be read") }
        do { return try JSONDecoder().decode(PickRecord.self, from: data) } catch {
            throw DataError.badConfiguration(path: path, reason: "not a medselect pick plan.json")
        }
    }
}

