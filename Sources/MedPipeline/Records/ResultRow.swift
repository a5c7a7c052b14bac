import Foundation
import MedData
import MedFoundation

/// One row of an experiment's results.csv: a fine-tuned (or unadapted) model's mean scores on one target site's
/// held-out cases. Written by the runner and read back by `advise`, the report and the benchmark scripts; the
/// table's layout is written and read only here.
public struct ResultRow: Sendable, Equatable {
    public var strategy: RunName, budget: String, seed: UInt64, round: Int, site: String, labeled: Int
    public var cases: Int, dice: Double, hausdorff95: Double, assd: Double
    /// The selection file behind the row, relative to the run folder ("" for none and full).
    public var selection: String

    public init(strategy: RunName, budget: String, seed: UInt64, round: Int, site: String, labeled: Int, cases: Int,
                dice: Double, hausdorff95: Double, assd: Double, selection: String) {
        self.strategy = strategy; self.budget = budget; self.seed = seed; self.round = round; self.site = site; self.labeled = labeled
        self.cases = cases; self.dice = dice; self.hausdorff95 = hausdorff95; self.assd = assd; self.selection = selection
    }

    public static let header = "strategy,budget,seed,round,site,labeled,cases,dice,hd95,assd,selection"

    public static func csv(_ rows: [ResultRow]) -> String {
        func fmt(_ v: Double) -> String { v.isNaN ? "nan" : String(format: "%.6f", v) }
        return header + "\n" + rows.map { r in
            "\(r.strategy),\(r.budget),\(r.seed),\(r.round),\(r.site),\(r.labeled),\(r.cases),\(fmt(r.dice)),\(fmt(r.hausdorff95)),\(fmt(r.assd)),\(r.selection)\n"
        }.joined()
    }

    public static func write(_ rows: [ResultRow], to path: String) throws { try AtomicFile.write(csv(rows), to: path) }

    /// results.csv back into rows (columns found by name, so that a table with extra columns still reads).
    public static func read(_ path: String) throws -> [ResultRow] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw DataError.badConfiguration(path: path, reason: "cannot be read") }
        let lines = text.split(separator: "\n").map(String.init)
        guard let header = lines.first?.split(separator: ",").map(String.init),
              let idx = Optional(Dictionary(header.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })),
              ["strategy", "budget", "seed", "round", "site", "labeled", "dice"].allSatisfy({ idx[$0] != nil }) else {
            throw DataError.badConfiguration(path: path, reason: "not a medselect run results.csv (columns strategy, budget, seed, round, site, labeled, dice)")
        }
        return try lines.dropFirst().enumerated().map { i, line in
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count == header.count, let seed = UInt64(f[idx["seed"]!]), let round = Int(f[idx["round"]!]), let labeled = Int(f[idx["labeled"]!]) else {
                throw DataError.badConfiguration(path: path, reason: "line \(i + 2) is malformed: \(line)")
            }
            return ResultRow(strategy: RunName(parsing: f[idx["strategy"]!]), budget: f[idx["budget"]!], seed: seed, round: round, site: f[idx["site"]!],
                             labeled: labeled, cases: idx["cases"].flatMap { Int(f[$0]) } ?? 0, dice: Double(f[idx["dice"]!]) ?? .nan,
                             hausdorff95: idx["hd95"].flatMap { Double(f[$0]) } ?? .nan, assd: idx["assd"].flatMap { Double(f[$0]) } ?? .nan,
                             selection: idx["selection"].map { f[$0] } ?? "")
        }
    }
}
