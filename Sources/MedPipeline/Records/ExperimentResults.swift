import Foundation
import MedFoundation

/// An experiment's results.json: the configuration it ran, the size of its pool, per strategy x budget x round the
/// mean and spread over seeds of the per-seed mean target Dice, and the paired comparisons the report states.
/// Written by the runner (``Experiment/writeResults(configPath:version:)``) and read by the benchmark report; the
/// one type for that file.
public struct ExperimentResults: Codable, Sendable {
    public static let currentVersion = 1

    public struct Cell: Codable, Sendable {
        public var strategy: String, budget: String, round: Int, labeled: Int, seeds: Int
        public var diceMean: Double?, diceSD: Double?
        enum CodingKeys: String, CodingKey { case strategy, budget, round, labeled, seeds, diceMean = "dice_mean", diceSD = "dice_sd" }
        /// Every member written, a missing value as null (as the file has always had it).
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(strategy, forKey: .strategy); try c.encode(budget, forKey: .budget); try c.encode(round, forKey: .round)
            try c.encode(labeled, forKey: .labeled); try c.encode(seeds, forKey: .seeds)
            try c.encode(diceMean, forKey: .diceMean); try c.encode(diceSD, forKey: .diceSD)
        }
    }

    public struct Comparison: Codable, Sendable {
        public var a: String, b: String, budget: String, pairs: Int
        public var diff: Double?, ci: [Double?], p: Double?, mdd80: Double?
        public var verdict: String
        enum CodingKeys: String, CodingKey { case a, b, budget, pairs, diff, ci, p, mdd80, verdict }
        /// Every member written, a missing value as null (as the file has always had it).
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(a, forKey: .a); try c.encode(b, forKey: .b); try c.encode(budget, forKey: .budget); try c.encode(pairs, forKey: .pairs)
            try c.encode(diff, forKey: .diff); try c.encode(ci, forKey: .ci); try c.encode(p, forKey: .p); try c.encode(mdd80, forKey: .mdd80)
            try c.encode(verdict, forKey: .verdict)
        }
    }

    public var version: Int? = ExperimentResults.currentVersion
    public var config: JSONValue
    public var configFile: String
    public var medselectVersion: String
    public var poolCases: Int, heldOutCases: Int, items: Int
    public var summary: [Cell]
    public var comparisons: [Comparison]
    /// The plan's items as folders of the run (`items/<stage>/<key>`), for what they cost (their cost.json).
    public var itemFolders: [String]? = nil

    enum CodingKeys: String, CodingKey {
        case version, config, summary, comparisons, items
        case configFile = "config_file", medselectVersion = "medselect_version", poolCases = "pool_cases", heldOutCases = "held_out_cases"
        case itemFolders = "item_folders"
    }

    /// A number, or nil (null in the file) when it is not finite.
    public static func finite(_ v: Double) -> Double? { v.isFinite ? v : nil }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try AtomicFile.write(Array(try encoder.encode(self)) + [10], to: path)
    }
}
