import Foundation
import Testing
import TestSupport
@testable import MedAnalysis

@Suite("The Dice estimate without labels: reference shapes, mean Dice, the fitted estimator, site intervals")
struct DiceEstimateTests {
    /// A 2-D label map of `w` x `h` with the rectangle [x0, x1) x [y0, y1) set to `value`.
    func rect(_ w: Int, _ h: Int, _ x0: Int, _ x1: Int, _ y0: Int, _ y1: Int, value: Float = 1) -> [Float] {
        var m = [Float](repeating: 0, count: w * h)
        for j in y0..<y1 { for i in x0..<x1 { m[j * w + i] = value } }
        return m
    }

    @Test("mean Dice over labels, hand-computed: label 1 overlaps 2 of 3 + 3 pixels (Dice 2/3), label 2 absent from both (1): mean 5/6")
    func meanDice() {
        let a: [Float] = [1, 1, 1, 0, 0, 0], b: [Float] = [0, 1, 1, 1, 0, 0]
        #expect(abs(ModelView.meanDice(a, b, labels: 2) - (2.0 / 3 + 1) / 2) < 1e-12)
        #expect(ModelView.meanDice([0, 0], [0, 0], labels: 1) == 1)
        #expect(ModelView.meanDice([1, 0], [0, 1], labels: 1) == 0)
    }

    @Test("the canonical frame removes translation and scale: a square moved and enlarged matches the reference with Dice 1; a case is not its own reference")
    func canonicalFrame() {
        var refs = ShapeReferences(side: 24, labels: 1)
        refs.add(id: "a", map: rect(40, 40, 5, 15, 5, 15), x: 40, y: 40, z: 1)
        // The same square elsewhere, twice the size: the same canonical map.
        let moved = refs.canonical(rect(40, 40, 12, 32, 8, 28), x: 40, y: 40, z: 1)
        #expect(moved == refs.canonical(rect(40, 40, 5, 15, 5, 15), x: 40, y: 40, z: 1))
        #expect(refs.bestDice(moved) == 1)
        #expect(refs.bestDice(moved, excluding: "a").isNaN)
        // An empty prediction has Dice 0 against a non-empty reference; an L shape less than 1.
        #expect(refs.bestDice(refs.canonical([Float](repeating: 0, count: 1600), x: 40, y: 40, z: 1)) == 0)
        var l = rect(40, 40, 5, 25, 5, 10)
        for j in 10..<25 { for i in 5..<10 { l[j * 40 + i] = 1 } }
        let d = refs.bestDice(refs.canonical(l, x: 40, y: 40, z: 1))
        #expect(d > 0.2 && d < 0.9, "\(d)")
        // The best of several references is taken.
        refs.add(id: "b", map: l, x: 40, y: 40, z: 1)
        #expect(refs.bestDice(refs.canonical(l, x: 40, y: 40, z: 1)) == 1)
        #expect(refs.count == 2)
    }

    @Test("canonical frames of volumes: a box moved along z matches exactly, stretched threefold up to the sampling of its few slices; 2-D and 3-D maps are never compared")
    func volumes() {
        func box(_ nz: Int, _ z0: Int, _ z1: Int) -> [Float] {
            var m = [Float](repeating: 0, count: 20 * 20 * nz)
            for k in z0..<z1 { for j in 4..<12 { for i in 6..<14 { m[(k * 20 + j) * 20 + i] = 1 } } }
            return m
        }
        var refs = ShapeReferences(side: 16, depth: 8, labels: 1)
        refs.add(id: "v", map: box(10, 2, 6), x: 20, y: 20, z: 10)
        #expect(refs.bestDice(refs.canonical(box(10, 5, 9), x: 20, y: 20, z: 10)) == 1)
        let stretched = refs.bestDice(refs.canonical(box(30, 6, 18), x: 20, y: 20, z: 30))
        #expect(stretched >= 0.75 && stretched < 1, "\(stretched)")
        #expect(refs.bestDice(refs.canonical(rect(20, 20, 6, 14, 4, 12), x: 20, y: 20, z: 1)).isNaN)
    }

    /// Calibration rows where Dice = 0.2 + 0.7 · agreement exactly, agreement spread over [0.5, 1].
    func linearRows(_ n: Int) -> [DiceEstimator.Calibration] {
        (0..<n).map { i in
            let agreement = 0.5 + 0.5 * Double(i) / Double(n - 1)
            return DiceEstimator.Calibration(view: ["disagreement": 1 - agreement, "entropy": 0.3, "label1_size_mm": 100, "label1_pieces": 1, "empty": 0],
                                             dice: 0.2 + 0.7 * agreement, group: "c\(i / 4)", perturbed: i % 4 != 0)
        }
    }

    @Test("a Dice that is a line in the agreement is recovered: calibrated agreement and regression estimate it (ridge shrinkage aside); raw agreement is off by 0.2 - 0.3 a")
    func fittedEstimator() throws {
        let e = try DiceEstimator(calibration: linearRows(80))
        let view = ["disagreement": 0.2, "entropy": 0.3, "label1_size_mm": 100.0, "label1_pieces": 1, "empty": 0]
        // Truth at agreement 0.8: 0.2 + 0.56 = 0.76.
        #expect(abs(e.estimate(view, method: .calibratedAgreement) - 0.76) < 0.01)
        #expect(abs(e.estimate(view, method: .regression) - 0.76) < 0.01)
        #expect(abs(e.estimate(view, method: .agreement) - 0.8) < 1e-12)
        // No reference Dice in the view: that method has nothing to say.
        #expect(e.estimate(view, method: .reference).isNaN)
        #expect(e.estimate(view.merging(["reference": 0.9]) { $1 }, method: .reference) == 0.9)
        // Estimates stay in [0, 1].
        #expect(e.estimate(["disagreement": 1.5, "entropy": 0.3], method: .calibratedAgreement) == 0)
        // Cross-validated calibration error: small for the fitted methods; the raw agreement's is the mean of |0.2 - 0.3 a|.
        #expect(e.calibrationError[.calibratedAgreement]! < 0.01 && e.calibrationError[.regression]! < 0.01)
        let raw = linearRows(80).map { r in abs((1 - r.view["disagreement"]!) - r.dice) }.reduce(0, +) / 80
        #expect(abs(e.calibrationError[.agreement]! - raw) < 1e-12)
        #expect(e.calibrationRows == 80)
    }

    @Test("the calibrated reference adds the median shortfall of the reference Dice on the unperturbed cases (0.05 here); the capped regression never exceeds it")
    func referenceCap() throws {
        // Dice = 0.2 + 0.7 a; the unperturbed rows' reference Dice is 0.05 below their Dice, the perturbed rows' 0.3 below.
        let rows = linearRows(80).map { r -> DiceEstimator.Calibration in
            var r = r
            r.view["reference"] = r.dice - (r.perturbed ? 0.3 : 0.05)
            return r
        }
        let e = try DiceEstimator(calibration: rows)
        var view = ["disagreement": 0.1, "entropy": 0.3, "label1_size_mm": 100.0, "label1_pieces": 1, "empty": 0, "reference": 0.5]
        #expect(abs(e.estimate(view, method: .calibratedReference) - 0.55) < 1e-12)
        // A stable prediction (agreement 0.9) of an implausible shape: the regression alone says more than the cap allows.
        #expect(e.estimate(view, method: .cappedRegression) == min(e.estimate(view, method: .regression), 0.55))
        #expect(e.estimate(view, method: .cappedRegression) <= 0.55)
        // A plausible shape: the cap does not bind.
        view["reference"] = 0.99
        #expect(e.estimate(view, method: .cappedRegression) == e.estimate(view, method: .regression))
        #expect(e.calibrationError[.calibratedReference] != nil && e.calibrationError[.cappedRegression] != nil)
    }

    @Test("too few calibration cases are refused with the reason")
    func tooFew() {
        #expect(throws: AnalysisError.self) { try DiceEstimator(calibration: Array(linearRows(40).prefix(9))) }
    }

    @Test("a site's estimate: the mean of its cases, a bootstrap interval around it; a single case has no interval")
    func siteEstimate() {
        let e = DiceEstimator.siteEstimate([0.7, 0.8, 0.9, 0.8, 0.75, 0.85], seed: 3)
        #expect(abs(e.mean - 0.8) < 1e-12 && e.low < 0.8 && e.high > 0.8 && e.low >= 0.7 && e.high <= 0.9)
        let one = DiceEstimator.siteEstimate([0.6, .nan])
        #expect(one.mean == 0.6 && one.low.isNaN)
    }

    @Test("the site analysis reports every method's site estimate, the default as estimated_dice, and with known Dice each method's check")
    func siteAnalysis() throws {
        // Two sites of 20 cases; the estimate per case is given, the true Dice is the estimate minus 0.05 at SRC and
        // exactly the estimate at FAR.
        var ids: [String] = [], sites: [String] = [], values: [Double] = [], outcomes: [String: SiteAnalysis.Outcome] = [:]
        for (k, name) in ["SRC", "FAR"].enumerated() {
            for c in 0..<20 {
                let id = "\(name)\(c)", v = (k == 0 ? 0.9 : 0.6) + 0.005 * Double(c)
                ids.append(id); sites.append(name); values.append(v)
                outcomes[id] = .init(dice: k == 0 ? v - 0.05 : v, hausdorff95: 1)
            }
        }
        let n = ids.count
        var analysis = SiteAnalysis(ids: ids, sites: sites, embeddings: (0..<(n * 2)).map { Float($0 % 5) }, dimensions: 2,
                                    quality: [[String: Double]?](repeating: nil, count: n), histograms: [Histogram?](repeating: nil, count: n),
                                    geometry: [SiteAnalysis.Geometry?](repeating: nil, count: n), outcomes: outcomes, source: ["SRC"])
        analysis.permutations = 99
        analysis.estimator = try DiceEstimator(calibration: linearRows(40))
        analysis.estimates = [DiceEstimator.defaultMethod: values, .agreement: values.map { $0 + 0.1 }]
        let report = try analysis.run()
        let far = report.sites.first { $0.name == "FAR" }!
        #expect(abs(far.estimatedDice!.mean - (0.6 + 0.005 * 9.5)) < 1e-9 && far.estimatedDice!.method == DiceEstimator.defaultMethod.rawValue)
        #expect(abs(far.estimatedDiceCandidates!["agreement"]!.mean - far.estimatedDice!.mean - 0.1) < 1e-9)
        let check = report.estimator!.check![DiceEstimator.defaultMethod.rawValue]!
        // Site MAE: (0.05 + 0) / 2; the cases rank the same either way.
        #expect(abs(check.siteMAE - 0.025) < 1e-9 && check.sites == 2 && check.cases == 40)
        #expect(abs(check.caseMAE - 0.025) < 1e-9 && check.caseSpearman > 0.9)
        #expect(check.intervalsHolding == 1)
        #expect(report.findings.contains { $0.hasPrefix("FAR:") && $0.contains("estimated Dice 0.648") })
    }
}
