import Foundation
import MedFoundation

/// A segmentation's Dice estimated without its label, from the source model's view of the case (``ModelView``:
/// test-time-augmentation agreement, entropy, the predicted structures' sizes, pieces and compactness, and the best
/// Dice against the labeled references' shapes, ``ShapeReferences``). Four candidate methods, compared on phantoms
/// with known Dice (Docs/analysis.md, `Scripts/estimate-validation`):
/// - `agreement`: 1 − the test-time-augmentation disagreement, read as a Dice (no fitting);
/// - `calibrated-agreement`: that agreement mapped to Dice by a line fitted on labeled calibration cases;
/// - `reference`: the best Dice of the prediction's shape against the labeled references (reverse classification
///   accuracy with a moment alignment);
/// - `calibrated-reference`: that best Dice plus its typical shortfall on the calibration cases as they are (a
///   correct prediction is not identical to any other case's shape);
/// - `regression`: a ridge regression of Dice on every view measure, fitted on the calibration cases;
/// - `capped-regression`: the regression, but never above the calibrated reference: a prediction whose shape is
///   unlike every labeled case is not a good one however stable it is under augmentation (a model confidently wrong
///   at a site unlike any calibration change, as on the prostate phantoms' far sites).
/// Calibration cases are the source's labeled cases, each also under synthetic scanner changes of graded severity
/// (what `CaseView.calibration` makes), so that their Dice spans a range the model's view can be fitted to.
public struct DiceEstimator: Sendable {
    public enum Method: String, Sendable, Codable, CaseIterable {
        case agreement, calibratedAgreement = "calibrated-agreement", reference, calibratedReference = "calibrated-reference", regression
        case cappedRegression = "capped-regression"
    }

    /// The method `sites` and `pick` report as `estimated_dice` (chosen by measurement: Docs/analysis.md).
    public static let defaultMethod = Method.cappedRegression

    /// The features of a view, in order: agreement, entropy, reference Dice, mean |ln size ratio| to the source's
    /// median, mean ln pieces, mean compactness relative to the source's median, empty.
    public static let featureNames = ["agreement", "entropy", "reference", "size_change", "log_pieces", "compactness_ratio", "empty"]

    /// Per label: the source's median predicted size and compactness (from the unperturbed calibration views).
    var sourceSize: [Int: Double] = [:], sourceCompactness: [Int: Double] = [:]
    var labels: [Int] = []
    var regression: Ridge?, calibrated: Ridge?
    /// The median of Dice − reference Dice over the calibration cases as they are.
    var referenceOffset = 0.0
    /// Mean absolute error of each fitted method on the calibration cases, 5-fold cross-validated by case.
    public private(set) var calibrationError: [Method: Double] = [:]
    /// Calibration cases (rows, with their synthetic versions) the fit used.
    public private(set) var calibrationRows = 0

    /// One calibration row: the model's view of a (possibly perturbed) labeled case, its true Dice, and the case it came
    /// from (cross-validation keeps a case's versions together); `perturbed` false for the case as it is.
    public struct Calibration: Sendable {
        public var view: [String: Double], dice: Double, group: String, perturbed: Bool
        public init(view: [String: Double], dice: Double, group: String, perturbed: Bool) {
            self.view = view; self.dice = dice; self.group = group; self.perturbed = perturbed
        }
    }

    /// Fits the calibrated methods; at least 10 rows with a finite Dice are needed.
    public init(calibration rows0: [Calibration], seed: UInt64 = 0) throws {
        let rows = rows0.filter { $0.dice.isFinite }
        guard rows.count >= 10 else { throw AnalysisError.invalidInput("\(rows.count) calibration cases with a Dice; the estimate needs at least 10 labeled source cases") }
        calibrationRows = rows.count
        let plain = rows.filter { !$0.perturbed }.map(\.view)
        labels = Array(Set(rows.flatMap { $0.view.keys.compactMap(Self.label(of:)) })).sorted()
        for l in labels {
            sourceSize[l] = Stats.median(plain.compactMap { $0["label\(l)_size_mm"] }.filter(\.isFinite))
            sourceCompactness[l] = Stats.median(plain.compactMap { $0["label\(l)_compactness"] }.filter { $0.isFinite })
        }
        let offsets = rows.filter { !$0.perturbed }.compactMap { r in r.view["reference"].map { r.dice - $0 } }.filter(\.isFinite)
        referenceOffset = offsets.isEmpty ? 0 : Stats.median(offsets)
        let x = rows.map { features($0.view) }, y = rows.map(\.dice)
        regression = Ridge(x: x, y: y)
        calibrated = Ridge(x: x.map { [$0[0]] }, y: y)
        // 5-fold cross-validation by case.
        let groups = Array(Set(rows.map(\.group))).sorted()
        var g = SplitMix64(seed: seed)
        let order = groups.shuffled(using: &g)
        let fold = Dictionary(order.enumerated().map { ($1, $0 % 5) }, uniquingKeysWith: { a, _ in a })
        var errors: [Method: [Double]] = [:]
        for f in 0..<5 {
            let train = rows.indices.filter { fold[rows[$0].group] != f }, test = rows.indices.filter { fold[rows[$0].group] == f }
            guard train.count >= 5, !test.isEmpty else { continue }
            let r = Ridge(x: train.map { x[$0] }, y: train.map { y[$0] }), c = Ridge(x: train.map { [x[$0][0]] }, y: train.map { y[$0] })
            for i in test {
                let reg = Self.clip(r.predict(x[i]))
                errors[.regression, default: []].append(abs(reg - y[i]))
                if let ref = rows[i].view["reference"], ref.isFinite { errors[.cappedRegression, default: []].append(abs(min(reg, Self.clip(ref + referenceOffset)) - y[i])) }
                errors[.calibratedAgreement, default: []].append(abs(Self.clip(c.predict([x[i][0]])) - y[i]))
            }
        }
        for i in rows.indices {
            errors[.agreement, default: []].append(abs(Self.clip(x[i][0]) - y[i]))
            if let ref = rows[i].view["reference"], ref.isFinite {
                errors[.reference, default: []].append(abs(ref - y[i]))
                errors[.calibratedReference, default: []].append(abs(Self.clip(ref + referenceOffset) - y[i]))
            }
        }
        calibrationError = errors.mapValues(Stats.mean)
    }

    static func label(of key: String) -> Int? {
        guard key.hasPrefix("label"), key.hasSuffix("_size_mm") else { return nil }
        return Int(key.dropFirst(5).dropLast(8))
    }

    static func clip(_ v: Double) -> Double { v.isFinite ? min(1, max(0, v)) : .nan }

    /// The feature vector of a view (``featureNames``); a missing reference Dice counts as the agreement.
    func features(_ v: [String: Double]) -> [Double] {
        let agreement = 1 - (v["disagreement"] ?? 1)
        var sizeChange = 0.0, pieces = 0.0, compact = 0.0
        for l in labels {
            let size = v["label\(l)_size_mm"] ?? 0, reference = sourceSize[l] ?? .nan
            sizeChange += reference.isFinite && reference > 0 ? min(3, abs(Foundation.log((size + 0.05 * reference) / (1.05 * reference)))) : 0
            pieces += Foundation.log(max(1, v["label\(l)_pieces"] ?? 0))
            let c = v["label\(l)_compactness"] ?? .nan, rc = sourceCompactness[l] ?? .nan
            compact += c.isFinite && rc.isFinite && rc > 0 ? min(2, c / rc) : 0
        }
        let n = Double(max(1, labels.count))
        let reference = v["reference"].flatMap { $0.isFinite ? $0 : nil } ?? agreement
        return [agreement, v["entropy"] ?? 0, reference, sizeChange / n, pieces / n, compact / n, v["empty"] ?? 0]
    }

    /// One case's estimated Dice by `method` (in 0...1; NaN when the view lacks what the method needs).
    public func estimate(_ view: [String: Double], method: Method) -> Double {
        let f = features(view)
        switch method {
        case .agreement: return Self.clip(f[0])
        case .calibratedAgreement: return Self.clip(calibrated?.predict([f[0]]) ?? .nan)
        case .reference: return Self.clip(view["reference"] ?? .nan)
        case .calibratedReference: return Self.clip((view["reference"] ?? .nan) + referenceOffset)
        case .regression: return Self.clip(regression?.predict(f) ?? .nan)
        case .cappedRegression:
            let reg = Self.clip(regression?.predict(f) ?? .nan)
            guard let ref = view["reference"], ref.isFinite else { return reg }
            return min(reg, Self.clip(ref + referenceOffset))
        }
    }

    /// A site's estimate: the mean of its cases' estimates and its percentile bootstrap 95 % interval over the cases
    /// (sampling only: how far the estimator itself is off is what the validation measures).
    public static func siteEstimate(_ cases: [Double], seed: UInt64 = 0) -> (mean: Double, low: Double, high: Double) {
        let v = cases.filter(\.isFinite)
        guard !v.isEmpty else { return (.nan, .nan, .nan) }
        let m = Stats.mean(v)
        guard v.count >= 2 else { return (m, .nan, .nan) }
        let (low, high) = Stats.bootstrapInterval(v, v, seed: seed) { a, _ in Stats.mean(a) }
        return (m, low, high)
    }
}

/// Ridge regression on standardized features (penalty 1 on the standardized coefficients, the intercept free),
/// solved by Gaussian elimination: small fits of a few features on a few hundred rows.
struct Ridge: Sendable {
    var mean: [Double], scale: [Double], coefficients: [Double], intercept: Double

    init(x: [[Double]], y: [Double], penalty: Double = 1) {
        let p = x.first?.count ?? 0, n = Double(x.count)
        let mean = (0..<p).map { j in x.map { $0[j] }.reduce(0, +) / n }
        let scale = (0..<p).map { j in
            let m = x.map { $0[j] }.reduce(0, +) / n
            let s = (x.map { ($0[j] - m) * ($0[j] - m) }.reduce(0, +) / n).squareRoot()
            return s > 1e-12 ? s : 1
        }
        let intercept = y.reduce(0, +) / n
        self.mean = mean; self.scale = scale; self.intercept = intercept
        let z = x.map { row in (0..<p).map { (row[$0] - mean[$0]) / scale[$0] } }
        var a = [[Double]](repeating: [Double](repeating: 0, count: p + 1), count: p)
        for (row, t) in zip(z, y) {
            for i in 0..<p {
                for j in 0..<p { a[i][j] += row[i] * row[j] }
                a[i][p] += row[i] * (t - intercept)
            }
        }
        for i in 0..<p { a[i][i] += penalty }
        // Gaussian elimination with partial pivoting (the matrix is symmetric positive definite).
        for c in 0..<p {
            let pivot = (c..<p).max { abs(a[$0][c]) < abs(a[$1][c]) } ?? c
            a.swapAt(c, pivot)
            for r in 0..<p where r != c && a[c][c] != 0 {
                let f = a[r][c] / a[c][c]
                for k in c...p { a[r][k] -= f * a[c][k] }
            }
        }
        coefficients = (0..<p).map { a[$0][$0] != 0 ? a[$0][p] / a[$0][$0] : 0 }
    }

    func predict(_ x: [Double]) -> Double {
        var v = intercept
        for j in coefficients.indices { v += coefficients[j] * (x[j] - mean[j]) / scale[j] }
        return v
    }
}
