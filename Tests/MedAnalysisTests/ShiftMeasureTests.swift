import Foundation
import Testing
import MedFoundation
@testable import MedAnalysis

/// n rows of d values from N(mean, sd²) per coordinate.
func gaussianRows(_ n: Int, _ d: Int, mean: Float = 0, sd: Float = 1, seed: UInt64) -> [Float] {
    var g = SplitMix64(seed: seed)
    var out = [Float]()
    out.reserveCapacity(n * d)
    while out.count < n * d {
        let u1 = max(Double.random(in: 0..<1, using: &g), 1e-300), u2 = Double.random(in: 0..<1, using: &g)
        let r = (-2 * log(u1)).squareRoot()
        out.append(mean + sd * Float(r * cos(2 * .pi * u2)))
        if out.count < n * d { out.append(mean + sd * Float(r * sin(2 * .pi * u2))) }
    }
    return out
}

@Suite("Shift measures")
struct ShiftMeasureTests {
    @Test("the MMD estimator equals a direct O(n²) computation; identical samples give 0 (clipped) and Fréchet 0")
    func mmdDirect() throws {
        let d = 3
        let x = gaussianRows(17, d, seed: 1), y = gaussianRows(23, d, mean: 0.5, seed: 2)
        let sigma = 1.3
        func k(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
            exp(-zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / (2 * sigma * sigma))
        }
        func row(_ v: [Float], _ i: Int) -> ArraySlice<Float> { v[(i * d)..<((i + 1) * d)] }
        var sxx = 0.0, syy = 0.0, sxy = 0.0
        for i in 0..<17 { for j in 0..<17 where i != j { sxx += k(row(x, i), row(x, j)) } }
        for i in 0..<23 { for j in 0..<23 where i != j { syy += k(row(y, i), row(y, j)) } }
        for i in 0..<17 { for j in 0..<23 { sxy += k(row(x, i), row(y, j)) } }
        let direct = sxx / (17 * 16) + syy / (23 * 22) - 2 * sxy / (17 * 23)
        #expect(abs(try MMD.unbiased(x, y, dimensions: d, bandwidth: sigma) - direct) < 1e-5)
        // The permutation test's observed statistic is the same estimator (through the kernel matrix).
        let t = try MMD.test(x, y, dimensions: d, permutations: 50, bandwidth: sigma, seed: 3)
        #expect(abs(t.statistic - direct) < 1e-5 && t.method == "exact")
        // Identical samples: the unbiased estimate is at most 0 (it cannot be exactly 0), the reported distance 0.
        let same = try MMD.unbiased(x, x, dimensions: d, bandwidth: sigma)
        #expect(same <= 0 && same > -2.0 / 16)
        #expect(max(0, same) == 0)
        #expect(try Frechet.distance(x, x, dimensions: d).distance < 1e-9)
    }

    @Test("the median heuristic is the median pairwise distance of the pooled rows")
    func bandwidth() {
        // Four points on a line at 0, 1, 3, 6: distances 1, 3, 6, 2, 5, 3; median 3.
        let b = MMD.medianBandwidth([0, 1], [3, 6], dimensions: 1)
        #expect(b == 3)
    }

    @Test("p-values are (b + 1)/(P + 1), never 0; the false-positive rate on random halves of one sample is near 5 %")
    func permutationCalibration() throws {
        let d = 4
        let far = try MMD.test(gaussianRows(30, d, seed: 4), gaussianRows(30, d, mean: 3, seed: 5), dimensions: d, permutations: 99, seed: 6)
        #expect(far.pValue == 0.01)
        // 200 random halves of one Gaussian sample of 80 rows, 99 permutations each.
        let pool = gaussianRows(80, d, seed: 7)
        var g = SplitMix64(seed: 8)
        var rejections = 0
        for r in 0..<200 {
            var order = Array(0..<80)
            order.shuffle(using: &g)
            let a = order.prefix(40).flatMap { pool[($0 * d)..<(($0 + 1) * d)] }, b = order.suffix(40).flatMap { pool[($0 * d)..<(($0 + 1) * d)] }
            let t = try MMD.test(a, b, dimensions: d, permutations: 99, seed: UInt64(100 + r))
            #expect(t.pValue > 0)
            if t.pValue < 0.05 { rejections += 1 }
        }
        #expect((2...20).contains(rejections), "\(rejections) of 200 splits rejected at 5 %")
    }

    @Test("random Fourier features approximate the exact MMD² and rank shifts alike")
    func randomFeatures() throws {
        let d = 5
        let x = gaussianRows(300, d, seed: 9)
        var previous = -1.0
        for shift in [0.0, 0.5, 1.0] as [Float] {
            let y = gaussianRows(300, d, mean: shift, seed: 10)
            let sigma = MMD.medianBandwidth(x, y, dimensions: d)
            let exact = try MMD.unbiased(x, y, dimensions: d, bandwidth: sigma)
            let phi = MMD.randomFeatures(x + y, d: d, sigma: sigma, features: 2048, seed: 11)
            let rff = MMD.featureStatistics(phi, n: 300, m: 300, labels: [(0..<600).map { $0 < 300 ? 1 : 0 }], features: 2048)[0]
            #expect(abs(rff - exact) < 0.02 + 0.2 * abs(exact), "shift \(shift): features \(rff) vs exact \(exact)")
            #expect(rff > previous)
            previous = rff
        }
    }

    @Test("MMD on large samples: random features, permutations in chunks give the same test as all at once")
    func chunkedPermutations() throws {
        let d = 3
        let x = gaussianRows(3100, d, seed: 21), y = gaussianRows(3000, d, mean: 0.08, seed: 22)
        let whole = try MMD.test(x, y, dimensions: d, permutations: 99, seed: 5)
        let chunked = try MMD.test(x, y, dimensions: d, permutations: 99, seed: 5, relabellingBudget: 20 * 6100)
        #expect(whole.method.hasPrefix("random features"))
        #expect(whole.statistic == chunked.statistic)
        #expect(whole.pValue == chunked.pValue)
        #expect(whole.pValue >= 0.01)   // never 0: (b + 1)/(n + 1)
    }

    @Test("Fréchet distance: the closed form for Gaussians with known means and covariances, and from samples")
    func frechetClosedForm() throws {
        // Covariances sharing eigenvectors R (a rotation): distance = ‖μ₁ − μ₂‖² + Σ (√a − √b)².
        let d = 3
        let angle = 0.7, (c, s) = (cos(angle), sin(angle))
        let r: [Double] = [c, -s, 0, s, c, 0, 0, 0, 1]
        func cov(_ e: [Double]) -> [Double] {
            var m = [Double](repeating: 0, count: 9)
            for i in 0..<3 { for j in 0..<3 { for k in 0..<3 { m[i * 3 + j] += r[i * 3 + k] * e[k] * r[j * 3 + k] } } }
            return m
        }
        let a = [4.0, 1.0, 0.25], b = [1.0, 9.0, 0.25]
        let mu1 = [1.0, 2.0, 3.0], mu2 = [1.5, 2.0, 1.0]
        let expected = 0.25 + 4 + zip(a, b).reduce(0.0) { $0 + ($1.0.squareRoot() - $1.1.squareRoot()) * ($1.0.squareRoot() - $1.1.squareRoot()) }
        let got = Frechet.distance(mean1: mu1, covariance1: cov(a), mean2: mu2, covariance2: cov(b), dimensions: d)
        #expect(abs(got - expected) < 1e-9, "\(got) vs \(expected)")
        // Samples of N(0, I) and N(1, 4I) in 2-D: 2·1² + 2·(1 − 2)² = 4.
        let x = gaussianRows(20000, 2, seed: 12), y = gaussianRows(20000, 2, mean: 1, sd: 2, seed: 13)
        let f = try Frechet.distance(x, y, dimensions: 2)
        #expect(abs(f.distance - 4) < 0.15 && !f.shrunk)
        // Fewer rows than dimensions: shrunk, still finite and ordered.
        let small = try Frechet.distance(gaussianRows(8, 20, seed: 14), gaussianRows(8, 20, mean: 2, seed: 15), dimensions: 20)
        #expect(small.shrunk && small.distance.isFinite && small.distance > 40)
    }

    @Test("statistics: Spearman, Pearson, Holm and AUC against values computed by hand; histogram distances")
    func statistics() {
        #expect(abs(Stats.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) - 0.8207826816681233) < 1e-12)
        #expect(abs(Stats.pearson([1, 2, 3], [2, 4, 7]) - 0.9933992677987828) < 1e-12)
        // Permutation p of Spearman: a perfect ranking of 4 sites is 2 orderings of 24; the 5 points above: 16 of the
        // 120 orderings of y reach |ρ| = 0.82 (itertools.permutations with scipy.stats.spearmanr).
        #expect(abs(Stats.spearmanPermutationP([1, 2, 3, 4], [0.9, 0.8, 0.7, 0.1]) - 2.0 / 24) < 1e-12)
        #expect(abs(Stats.spearmanPermutationP([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) - 16.0 / 120) < 1e-12)
        // 12 points, Monte Carlo: scipy.stats.permutation_test (pairings, 200,000 resamples) gives 0.162 for ρ = 0.434.
        let x12 = [0.1257, -0.1321, 0.6404, 0.1049, -0.5357, 0.3616, 1.304, 0.9471, -0.7037, -1.2654, -0.6233, 0.0413]
        let y12 = [-2.1993, -0.3509, -0.6055, -0.6274, -1.0799, 0.0453, 1.7156, 1.9896, -0.8323, 0.101, -1.2885, 0.3928]
        #expect(abs(Stats.spearman(x12, y12) - 0.43356643356643365) < 1e-12)
        #expect(abs(Stats.spearmanPermutationP(x12, y12, resamples: 20_000) - 0.162) < 0.015)
        #expect(Stats.ranks([10, 20, 20, 5]) == [2, 3.5, 3.5, 1])
        // Holm: sorted p 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04.
        #expect(Stats.holm([0.04, 0.01, 0.02]).map { ($0 * 1e9).rounded() / 1e9 } == [0.04, 0.03, 0.04])
        #expect(Stats.auc(positive: [0.9, 0.8], negative: [0.1, 0.85]) == 0.75)
        #expect(Stats.auc(positive: [0.5], negative: [0.5]) == 0.5)
        let h1 = Histogram([0, 0, 1, 1], lower: 0, upper: 4, bins: 4), h2 = Histogram([2, 2, 3, 3], lower: 0, upper: 4, bins: 4)
        #expect(abs(h1.wasserstein1(h2) - 2) < 1e-12 && h1.wasserstein1(h1) == 0)
        #expect(abs(h1.jensenShannon(h2) - 1) < 1e-12 && h1.jensenShannon(h1) == 0)
        // Mann-Whitney: scipy.stats.mannwhitneyu([1,2,3,4,5],[6,7,8,9,10], method="asymptotic") gives p = 0.0121858 (U = 0).
        #expect(abs(Stats.mannWhitneyP([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) - 0.0121858) < 1e-6)
        #expect(Stats.mannWhitneyP([1, 2, 3], [1, 2, 3]) == 1)
        // Wilcoxon signed-rank, exact: all five differences positive -> W+ = 15, P(W+ >= 15) = 1/32, two-sided 2/32.
        #expect(Stats.wilcoxonSignedRankP([1, 2, 3, 4, 5]) == (0.0625, 5))
        // W+ = 2 + 3 + 5 + 6 = 16 of 21: P(W+ >= 16) = P(W- <= 5) = 10 subsets of {1..6} / 64, two-sided 20/64
        // (scipy.stats.wilcoxon([-1, 2, 3, -4, 5, 6]).pvalue = 0.3125); zeros are dropped.
        #expect(Stats.wilcoxonSignedRankP([-1, 2, 0, 3, -4, 5, 6]) == (0.3125, 6))
        // Symmetric differences: p = 1. Ties go to the normal approximation: |d| = 1,1,2,2,3,3 all positive,
        // W+ = 21, mean 10.5, variance 91/4 - 3·6/48 = 22.375, z = 2.2198, p = 0.02643.
        #expect(Stats.wilcoxonSignedRankP([-1, 1, -2, 2]).p == 1)
        #expect(abs(Stats.wilcoxonSignedRankP([1, 1, 2, 2, 3, 3]).p - 0.026433) < 1e-5)
        // Student's t against SciPy: t.cdf(1.5, 3) = 0.884708067, t.ppf(0.975, 5) = 2.570581836, t.ppf(0.8, 5) =
        // 0.919543780, t.ppf(0.95, 2) = 2.919985580, t.ppf(0.025, 7) = -2.364624252, t.ppf(0.975, 100) = 1.983971519.
        #expect(abs(Stats.studentTCDF(1.5, df: 3) - 0.884708067) < 1e-8)
        for (p, df, q) in [(0.975, 5.0, 2.570581836), (0.8, 5, 0.919543780), (0.95, 2, 2.919985580), (0.025, 7, -2.364624252), (0.975, 100, 1.983971519)] {
            #expect(abs(Stats.studentTQuantile(p, df: df) - q) < 1e-8, "t.ppf(\(p), \(df))")
        }
        // Minimum detectable difference at 80 % power: (t.ppf(0.975, 5) + t.ppf(0.8, 5)) · sd / √6 for these six
        // differences = 0.018394577 (NumPy/SciPy); nan below 3 pairs.
        #expect(abs(Stats.minimumDetectableDifference([0.01, 0.02, -0.005, 0.015, 0, 0.03]) - 0.018394577) < 1e-8)
        #expect(Stats.minimumDetectableDifference([0.01, 0.02]).isNaN && Stats.minimumDetectableDifference([0, 0, 0, 0]).isNaN)
        let ci = Stats.bootstrapInterval([1, 2, 3, 4, 5, 6, 7, 8], [2, 1, 4, 3, 6, 5, 8, 7], seed: 1, Stats.pearson)
        #expect(ci.low < 0.952 && ci.high > 0.952 && ci.low > 0.5)
    }

    @Test("the domain classifier gives AUC near 1 for separated samples and near 0.5 for one distribution; the confusion matrix finds three clusters")
    func classifier() throws {
        let d = 6
        let a = gaussianRows(60, d, seed: 16), b = gaussianRows(60, d, mean: 2, seed: 17), c = gaussianRows(60, d, seed: 18)
        #expect(try DomainClassifier.auc(source: a, site: b, dimensions: d) > 0.97)
        let same = try DomainClassifier.auc(source: a, site: c, dimensions: d)
        #expect(abs(same - 0.5) < 0.15, "\(same)")
        let three = a + b + gaussianRows(60, d, mean: -2, seed: 19)
        let labels = (0..<180).map { $0 / 60 }
        let m = try DomainClassifier.confusion(three, labels: labels, classes: 3, dimensions: d)
        #expect(m.map { $0.reduce(0, +) } == [60, 60, 60] && (0..<3).allSatisfy { m[$0][$0] >= 55 })
    }

    @Test("quality measures: Otsu separates a bright disc from the background; more background noise lowers the SNR")
    func quality() throws {
        var g = SplitMix64(seed: 20)
        func image(noise: Float) -> [Float] {
            (0..<(64 * 64)).map { i in
                let (x, y) = (Float(i % 64) - 32, Float(i / 64) - 32)
                return (x * x + y * y < 400 ? 100 : 10) + noise * Float.random(in: -1...1, using: &g)
            }
        }
        let clean = image(noise: 1), noisy = image(noise: 6)
        let t = ImageQuality.otsu(clean, lo: clean.min()!, hi: clean.max()!)
        #expect(t > 15 && t < 95)
        let q1 = try #require(ImageQuality.measureSlice(clean, width: 64, height: 64)), q2 = try #require(ImageQuality.measureSlice(noisy, width: 64, height: 64))
        #expect(q1["snr"]! > q2["snr"]! && q1["cjv"]! < q2["cjv"]!)
        #expect(abs(q1["mean"]! - 100) < 1 && q1["fber"]! > 50)
        for m in ImageQuality.measures { #expect(q1[m]?.isFinite == true, "\(m)") }
    }

    @Test("quality measures by hand: k foreground pixels of one value on a zero background")
    func qualityByHand() throws {
        // 8 x 8, a 4 x 4 block of value 50 (k = 16) on 0. F/B = 1/√k on the block, so Σ (F/B) ln(F/B) = √k ln(1/√k);
        // EFC = √k ln(1/√k) / (√N ln(1/√N)), N = 64: 4 ln(1/4) / (8 ln(1/8)) = 1/3.
        let v: [Float] = (0..<64).map { i in (2..<6).contains(i % 8) && (2..<6).contains(i / 8) ? 50 : 0 }
        let q = try #require(ImageQuality.measureSlice(v, width: 8, height: 8))
        #expect(abs(q["efc"]! - 1.0 / 3.0) < 1e-9)
        #expect(q["mean"] == 50 && q["range"] == 0 && q["cv"] == 0)
        #expect(q["fber"] == 0)                        // no background energy: 0, as MRQy
        #expect(abs(q["cjv"]! - 0) < 1e-12)            // (0 + 0) / 50
        // CPP: the block's border pixels lose their outside neighbours' −1/8; Σ over the image of (centre − mean of 8)
        // = Σ_p F(p) (1 − n(p)/8) with n(p) the in-image neighbours: every block pixel is interior to the image, so 0.
        #expect(abs(q["cpp"]!) < 1e-12)
    }
}
