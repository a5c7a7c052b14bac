/// The selection strategies (Docs/selection.md), as `select --strategy`, the experiment's `strategies` and the
/// active-learning continuations name them.
public enum Strategy: String, CaseIterable, Sendable, Codable {
    case random, coreset, xssr, coldstart, typiclust, probcover, acquisition
}

/// How many cases to pick: a count, or a share of the pool, as a user writes it ("22", "5%"). Parsed once here;
/// ``description`` gives back the text results tables key on.
public enum Budget: Hashable, Sendable, CustomStringConvertible {
    case count(Int)
    /// A percentage in (0, 100].
    case share(Double)

    /// "22" or "5%" (also "2.5%"); nil for anything else, a count below 1 or a share outside (0, 100].
    public init?(parsing text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("%") {
            guard let p = Double(t.dropLast()), p > 0, p <= 100 else { return nil }
            self = .share(p)
        } else {
            guard let n = Int(t), n >= 1 else { return nil }
            self = .count(n)
        }
    }

    public var description: String {
        switch self {
        case .count(let n): return String(n)
        case .share(let p): return (p == p.rounded() ? String(Int(p)) : String(p)) + "%"
        }
    }

    /// The whole pool ("100%").
    public var isWholePool: Bool { if case .share(let p) = self { return p == 100 }; return false }

    /// Cases for a pool of `pool`: a share rounds to the nearest case, at least 1.
    public func count(pool: Int) -> Int {
        switch self {
        case .count(let n): return n
        case .share(let p): return max(1, Int((p / 100 * Double(pool)).rounded()))
        }
    }
}

import Foundation
