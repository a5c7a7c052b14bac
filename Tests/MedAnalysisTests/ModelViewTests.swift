import Foundation
import Testing
import TestSupport
import MedImage
@testable import MedAnalysis

@Suite("The model's view: predicted structures, entropy, augmentation disagreement (hand-computed)")
struct ModelViewTests {
    func image(_ x: Int, _ y: Int, _ z: Int, spacing: [Double], _ set: [(Int, Int, Int, Float)]) -> MedicalImage {
        var v = [Float](repeating: 0, count: x * y * z)
        for (i, j, k, value) in set { v[(k * y + j) * x + i] = value }
        return MedicalImage(shape: ImageShape(x, y, z, 1), voxels: v, affine: Affine.diagonal(spacing: spacing), kind: .labelMap)
    }

    @Test("a 3 x 4 rectangle at 0.5 x 2 mm: area 12 mm², perimeter 2·1.5 + 2·8 = 19 mm, one piece; a second label of two separate pixels: two pieces, half each")
    func rectangle2D() {
        var set: [(Int, Int, Int, Float)] = []
        for i in 1...3 { for j in 1...4 { set.append((i, j, 0, 1)) } }
        set += [(7, 0, 0, 2), (7, 5, 0, 2)]
        let s = ModelView.structures(image(9, 6, 1, spacing: [0.5, 2, 1], set))
        #expect(s.count == 2)
        #expect(s[0].label == 1 && s[0].voxels == 12 && abs(s[0].size - 12) < 1e-12 && abs(s[0].boundary - 19) < 1e-12 && s[0].components == 1)
        #expect(abs(s[0].compactness - 4 * Double.pi * 12 / (19 * 19)) < 1e-12)
        // Each pixel of label 2 is 0.5 x 2 mm: perimeter 2·0.5 + 2·2 = 5 mm each.
        #expect(s[1].components == 2 && s[1].largestShare == 0.5 && abs(s[1].size - 2) < 1e-12 && abs(s[1].boundary - 10) < 1e-12)
    }

    @Test("a 2 x 2 x 3 box at 1 x 1 x 2.5 mm touching the image border: volume 30 mm³, surface 2·(2·2) + 2·(2·7.5) + 2·(2·7.5) = 68 mm²")
    func box3D() {
        var set: [(Int, Int, Int, Float)] = []
        for i in 0..<2 { for j in 0..<2 { for k in 0..<3 { set.append((i, j, k, 1)) } } }
        let s = ModelView.structures(image(4, 4, 3, spacing: [1, 1, 2.5], set))
        #expect(s.count == 1 && s[0].voxels == 12 && abs(s[0].size - 30) < 1e-12)
        // Faces normal to z: 2 x 2 voxels x (1·1) mm² x 2 sides = 8; normal to x: 2 (y) x 3 (z) x (1·2.5) x 2 = 30; y alike = 30.
        #expect(abs(s[0].boundary - 68) < 1e-12)
        #expect(abs(s[0].compactness - 36 * Double.pi * 900 / (68 * 68 * 68)) < 1e-12)
        #expect(ModelView.structures(image(3, 3, 2, spacing: [1, 1, 1], [])).isEmpty)
    }

    @Test("entropy of known probabilities: (½, ½) is ln 2, (1, 0) is 0; their mean over two voxels is ln 2 / 2")
    func entropy() {
        // Two classes, two voxels, class by class: p(class 0) = [0.5, 1], p(class 1) = [0.5, 0].
        #expect(abs(ModelView.meanEntropy([0.5, 1, 0.5, 0], classes: 2) - log(2) / 2) < 1e-12)
        #expect(abs(ModelView.meanEntropy([0.25, 0.25, 0.25, 0.25], classes: 4) - log(4)) < 1e-12)
        #expect(ModelView.meanEntropy([0.5, 0.5, 0.5], classes: 2).isNaN)
    }

    @Test("disagreement: identical predictions 0; a flip that keeps 2 of 4 foreground pixels is 1 − Dice(4, 4, overlap 2) = 0.5; both empty 0")
    func disagreement() {
        let plain: [Float] = [1, 1, 1, 1, 0, 0, 0, 0]
        #expect(ModelView.disagreement(plain, [plain]) == 0)
        #expect(abs(ModelView.disagreement(plain, [[0, 0, 1, 1, 1, 1, 0, 0]]) - 0.5) < 1e-12)
        #expect(abs(ModelView.disagreement(plain, [plain, [0, 0, 1, 1, 1, 1, 0, 0]]) - 0.25) < 1e-12)
        #expect(ModelView.disagreement([0, 0], [[0, 0]]) == 0)
    }
}

@Suite("The model's view in the site analysis")
struct ModelViewSiteTests {
    @Test("a site whose predictions are smaller and in more pieces differs significantly in those measures only; the finding says so in words")
    func siteComparison() throws {
        // Three sites of 30 cases: the source, a site the model sees alike, and one with label 1 predicted 20 % smaller
        // in three times the pieces. Entropy is the same everywhere (noise only).
        var g = SplitMix(state: 7)
        let per = 30, names = ["SRC", "SAME", "SHIFT"]
        var ids: [String] = [], sites: [String] = [], views: [[String: Double]?] = []
        for (k, name) in names.enumerated() {
            for c in 0..<per {
                ids.append("\(name)\(c)"); sites.append(name)
                let size = (k == 2 ? 800.0 : 1000.0) + Double.random(in: -30...30, using: &g)
                let pieces = k == 2 ? Double(5 + c % 3) : Double(2 + c % 2)
                views.append(["entropy": 0.3 + Double.random(in: -0.05...0.05, using: &g), "label1_size_mm": size, "label1_pieces": pieces, "empty": 0])
            }
        }
        let n = ids.count
        var embeddings: [Float] = []
        for i in 0..<n { embeddings += (0..<4).map { Float(i % 7) * 0.01 + Float($0) } }
        var analysis = SiteAnalysis(ids: ids, sites: sites, embeddings: embeddings, dimensions: 4, quality: [[String: Double]?](repeating: nil, count: n),
                                    histograms: [Histogram?](repeating: nil, count: n), geometry: [SiteAnalysis.Geometry?](repeating: nil, count: n),
                                    source: ["SRC"])
        analysis.permutations = 99
        analysis.modelView = views
        let report = try analysis.run()
        let shift = report.sites.first { $0.name == "SHIFT" }!, same = report.sites.first { $0.name == "SAME" }!
        #expect(shift.modelViewPValueHolm!["label1_size_mm"]! < 0.001 && shift.modelViewPValueHolm!["label1_pieces"]! < 0.001)
        #expect(shift.modelViewPValueHolm!["entropy"]! > 0.05)
        #expect(same.modelViewPValueHolm!.values.allSatisfy { $0 > 0.05 })
        #expect(abs(shift.modelView!["label1_size_mm"]! - 800) < 30 && shift.modelView!["label1_pieces"] == 6)
        #expect(report.sites.first { $0.name == "SRC" }!.modelViewPValueHolm == nil)
        // Fragmented: more pieces than the source's median (2.5): half the source's cases (3 pieces), every SHIFT case.
        #expect(report.sites.first { $0.name == "SRC" }!.modelView!["fragmented"] == 0.5 && shift.modelView!["fragmented"] == 1)
        #expect(shift.modelViewPValueHolm!["fragmented"]! < 0.05)
        let finding = report.findings.first { $0.hasPrefix("SHIFT:") } ?? ""
        // Medians: pieces 6 against 2.5 (2.4x); size about 800 against 1000 (the uniform noise moves it by a percent or two).
        #expect(finding.contains("the source model's predictions: ") && finding.contains("label 1 in 2.4x the source's pieces"), "\(finding)")
        #expect(["19", "20", "21"].contains { finding.contains("label 1 \($0) % smaller") }, "\(finding)")
        #expect(!(report.findings.first { $0.hasPrefix("SAME:") } ?? "").contains("source model's predictions"))
        // Without a model's view, nothing of it appears.
        analysis.modelView = []
        #expect(try analysis.run().sites.allSatisfy { $0.modelView == nil })
    }
}
