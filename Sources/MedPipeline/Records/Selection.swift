import Foundation
import MedData
import MedFoundation

/// A selection as `medselect select` and the experiment runner write it (selection.json) and `train`, `worklist`,
/// the runner's later rounds and its report read it: the picked ids in order, each pick's score and terms, the
/// cases labeled before it, and how it was made. The one type for that file: written and read only here.
///
/// Strategy-specific results (XSSR's alpha and coverage curve, cold start's k and silhouettes, ProbCover's delta)
/// sit at the top level of the file beside the fixed members, as files written before `version` existed have them;
/// ``results`` holds them. Files without a `version` are version 1's layout and read as such; a newer version is
/// refused with a message.
public struct Selection: Codable, Sendable, Equatable {
    /// The layout this code writes and reads.
    public static let currentVersion = 1

    /// One picked case: its row in the pool, its id, its score (nil when the strategy has none or it is not finite)
    /// and the terms behind the score.
    public struct Pick: Codable, Sendable, Equatable {
        public var index: Int
        public var id: String
        public var score: Double?
        public var terms: [String: JSONValue]?
        public init(index: Int, id: String, score: Double? = nil, terms: [String: JSONValue]? = nil) {
            self.index = index; self.id = id; self.score = score.flatMap { $0.isFinite ? $0 : nil }; self.terms = terms
        }
        enum CodingKeys: String, CodingKey { case index, id, score, terms }
        /// A pick with terms has a score member (null when there is none); random's picks have neither.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index); try c.encode(id, forKey: .id)
            if let terms { try c.encode(score, forKey: .score); try c.encode(terms, forKey: .terms) }
        }
    }

    public var version = Selection.currentVersion
    public var strategy: String
    /// Cases picked by this selection (not counting those labeled before it).
    public var budget: Int
    public var seed: UInt64
    /// Active-learning round (2, 3, ...), nil for a first selection.
    public var round: Int?
    /// The picked ids in pick order.
    public var selected: [String]
    /// Ids labeled before this selection (later rounds, or `select --labeled`).
    public var labeled: [String]
    public var picks: [Pick]
    /// How the strategy ran (its settings).
    public var parameters: [String: JSONValue]
    /// What the strategy found besides the picks (alpha, k, coverage, ...), at the file's top level.
    public var results: [String: JSONValue] = [:]
    /// `medselect select`: the input files with their hashes, timings, version and notes.
    public var inputs: [String: JSONValue]? = nil
    public var timingsSeconds: [String: Double]? = nil
    public var medselectVersion: String? = nil
    public var notes: [String]? = nil

    public init(strategy: String, budget: Int, seed: UInt64, round: Int? = nil, picks: [Pick], labeled: [String],
                parameters: [String: JSONValue], results: [String: JSONValue] = [:]) {
        self.strategy = strategy; self.budget = budget; self.seed = seed; self.round = round
        self.selected = picks.map(\.id); self.picks = picks; self.labeled = labeled
        self.parameters = parameters; self.results = results
    }

    /// Every case this selection makes labeled: those labeled before it, then those it picks.
    public var labeledAndSelected: [String] { labeled + selected }

    /// XSSR's chosen (or fixed) alpha.
    public var alpha: Double? { results["alpha"]?.double }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    private static let fixed: Set<String> = ["version", "strategy", "budget", "seed", "round", "selected", "labeled", "picks", "parameters",
                                             "inputs", "timings_seconds", "medselect_version", "notes"]

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        version = try c.decodeIfPresent(Int.self, forKey: Key("version")) ?? 1
        guard version <= Selection.currentVersion else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription:
                "selection layout version \(version), newer than this medselect reads (\(Selection.currentVersion)): use a newer medselect"))
        }
        // Only `selected` is required: a hand-made list of ids ({"selected": [...]}) is a selection too.
        selected = try c.decode([String].self, forKey: Key("selected"))
        strategy = try c.decodeIfPresent(String.self, forKey: Key("strategy")) ?? ""
        budget = try c.decodeIfPresent(Int.self, forKey: Key("budget")) ?? selected.count
        seed = try c.decodeIfPresent(UInt64.self, forKey: Key("seed")) ?? 0
        round = try c.decodeIfPresent(Int.self, forKey: Key("round"))
        labeled = try c.decodeIfPresent([String].self, forKey: Key("labeled")) ?? []
        picks = try c.decodeIfPresent([Pick].self, forKey: Key("picks")) ?? selected.enumerated().map { Pick(index: -1, id: $1) }
        parameters = try c.decodeIfPresent([String: JSONValue].self, forKey: Key("parameters")) ?? [:]
        inputs = try c.decodeIfPresent([String: JSONValue].self, forKey: Key("inputs"))
        timingsSeconds = try c.decodeIfPresent([String: Double].self, forKey: Key("timings_seconds"))
        medselectVersion = try c.decodeIfPresent(String.self, forKey: Key("medselect_version"))
        notes = try c.decodeIfPresent([String].self, forKey: Key("notes"))
        for key in c.allKeys where !Self.fixed.contains(key.stringValue) {
            results[key.stringValue] = try c.decode(JSONValue.self, forKey: key)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        for (k, v) in results where !Self.fixed.contains(k) { try c.encode(v, forKey: Key(k)) }
        try c.encode(version, forKey: Key("version"))
        try c.encode(strategy, forKey: Key("strategy"))
        try c.encode(budget, forKey: Key("budget"))
        try c.encode(seed, forKey: Key("seed"))
        try c.encodeIfPresent(round, forKey: Key("round"))
        try c.encode(selected, forKey: Key("selected"))
        try c.encode(labeled, forKey: Key("labeled"))
        try c.encode(picks, forKey: Key("picks"))
        try c.encode(parameters, forKey: Key("parameters"))
        try c.encodeIfPresent(inputs, forKey: Key("inputs"))
        try c.encodeIfPresent(timingsSeconds, forKey: Key("timings_seconds"))
        try c.encodeIfPresent(medselectVersion, forKey: Key("medselect_version"))
        try c.encodeIfPresent(notes, forKey: Key("notes"))
    }

    /// Reads a selection file; anything else is refused with the path and what is wrong.
    public static func read(_ path: String) throws -> Selection {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError.badConfiguration(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        do {
            return try JSONDecoder().decode(Selection.self, from: data)
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty && context.debugDescription.hasPrefix("selection layout") {
            throw DataError.badConfiguration(path: path, reason: context.debugDescription)
        } catch {
            throw DataError.badConfiguration(path: path, reason: "not a selection JSON with a 'selected' list of ids (medselect select writes one)")
        }
    }

    /// Writes the file atomically (sorted keys, pretty-printed, one trailing newline).
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try AtomicFile.write(Array(try encoder.encode(self)) + [10], to: path)
    }
}
