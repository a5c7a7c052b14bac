/// What a row of an experiment's results stands for, as results.csv and cases.csv name it in their `strategy`
/// column: the source model without target labels (`none`), the full-data reference (`full`), or a selection
/// strategy (`random`, `xssr`, an XSSR ablation `xssr:novelty/diversity`, ...); fine-tuned from a start other than
/// the experiment's first (`@pretrained`, `@scratch`); continued by active-learning rounds (`+acquisition`,
/// `+random`). Parsed once here; everything else asks its questions of the parsed value.
public struct RunName: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    public enum Method: Hashable, Sendable {
        /// The source model scored on the target without any target label.
        case none
        /// Fine-tuned on the whole target pool.
        case full
        /// Fine-tuned on a strategy's picks (the strategy's name as the config lists it).
        case strategy(String)
    }
    public var method: Method
    /// The start of fine-tuning when it is not the experiment's first (`train.start`), else nil.
    public var start: String?
    /// The active-learning continuation of the first selection ("acquisition", "random"), else nil.
    public var continuation: String?

    public static let none = RunName(method: .none)
    public static func full(start: String? = nil) -> RunName { RunName(method: .full, start: start) }

    public init(method: Method, start: String? = nil, continuation: String? = nil) {
        self.method = method; self.start = start; self.continuation = continuation
    }

    /// Parses a name as written by ``description``.
    public init(parsing text: String) {
        var rest = Substring(text)
        var start: String? = nil, continuation: String? = nil
        if let at = rest.lastIndex(of: "@") { start = String(rest[rest.index(after: at)...]); rest = rest[..<at] }
        if let plus = rest.lastIndex(of: "+") { continuation = String(rest[rest.index(after: plus)...]); rest = rest[..<plus] }
        switch rest {
        case "none": self.init(method: .none, start: start, continuation: continuation)
        case "full": self.init(method: .full, start: start, continuation: continuation)
        default: self.init(method: .strategy(String(rest)), start: start, continuation: continuation)
        }
    }
    public init(stringLiteral value: String) { self.init(parsing: value) }

    public var description: String {
        let base: String
        switch method {
        case .none: base = "none"
        case .full: base = "full"
        case .strategy(let s): base = s
        }
        return base + (continuation.map { "+" + $0 } ?? "") + (start.map { "@" + $0 } ?? "")
    }

    public var isNone: Bool { method == .none }
    public var isFull: Bool { method == .full }
    /// A strategy's picks, first round, from the experiment's first start: the rows strategies are compared on.
    public var isFirstSelection: Bool { if case .strategy = method { return start == nil && continuation == nil }; return false }
    /// The strategy's name (nil for none and full).
    public var strategy: String? { if case .strategy(let s) = method { return s }; return nil }
    /// An XSSR ablation ("xssr:novelty/diversity"): its terms; nil otherwise.
    public var xssrAblationTerms: String? {
        guard let s = strategy, s.hasPrefix("xssr:") else { return nil }
        return String(s.dropFirst(5))
    }

    public static func < (a: RunName, b: RunName) -> Bool { a.description < b.description }
}
