import Foundation
import Testing
import MedFoundation
import MedData
import TestSupport
@testable import MedPipeline

/// The typed records between stages: each file written by one type and read back by the same type, old layouts
/// read, newer ones refused.
@Suite("Records between stages")
struct RecordTests {
    @Test("a run name prints as it parses, for every form results.csv holds, and answers what the report asks")
    func runNames() {
        for text in ["none", "full", "full@pretrained", "random", "xssr", "xssr:novelty/diversity", "xssr@scratch", "coreset+acquisition", "xssr+random"] {
            #expect(RunName(parsing: text).description == text)
        }
        let ablation = RunName(parsing: "xssr:novelty/diversity")
        #expect(ablation.strategy == "xssr:novelty/diversity" && ablation.xssrAblationTerms == "novelty/diversity" && ablation.isFirstSelection)
        let continued = RunName(parsing: "coreset+acquisition")
        #expect(continued.strategy == "coreset" && continued.continuation == "acquisition" && continued.start == nil && !continued.isFirstSelection)
        let fullPretrained = RunName(parsing: "full@pretrained")
        #expect(fullPretrained.isFull && fullPretrained.start == "pretrained" && fullPretrained != RunName.full())
        #expect(RunName.none.isNone && RunName(parsing: "none") == .none)
    }

    @Test("a selection file of the layout before `version` (written by JSONSerialization, results at the top level) reads, and writes back with the same members")
    func selectionOldLayout() throws {
        let s = Scratch("records"); defer { s.cleanup() }
        let old = """
        {"alpha": 0.3, "budget": 2, "coverage_curve": [{"alpha": 0, "max_radius": 2.5, "mean_radius": 1.25}], "labeled": [],
         "parameters": {"k": 10, "terms": "density,novelty,diversity"},
         "picks": [{"id": "a", "index": 4, "score": 0.9, "terms": {"density": 0.5, "diversity": null, "novelty": 1}},
                   {"id": "b", "index": 1, "score": null, "terms": {"cluster": 3}}],
         "seed": 7, "selected": ["a", "b"], "strategy": "xssr"}
        """
        let path = s.write(Array(old.utf8), "old.json")
        let r = try Selection.read(path)
        #expect(r.version == 1 && r.strategy == "xssr" && r.budget == 2 && r.seed == 7 && r.round == nil)
        #expect(r.selected == ["a", "b"] && r.labeledAndSelected == ["a", "b"])
        #expect(r.alpha == 0.3)
        #expect(r.picks[0].terms?["diversity"] == .null && r.picks[0].terms?["novelty"] == .int(1) && r.picks[1].score == nil)
        #expect(r.parameters["k"] == .int(10))
        try r.write(to: s.file("new.json"))
        let back = try Selection.read(s.file("new.json"))
        #expect(back == r)
        // The members a reader of the old layout looks for are where they were.
        let o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("new.json")))) as! [String: Any]
        #expect((o["alpha"] as? Double) == 0.3 && (o["selected"] as? [String]) == ["a", "b"] && (o["coverage_curve"] as? [Any])?.count == 1)
        #expect((o["version"] as? Int) == Selection.currentVersion)
    }

    @Test("a selection of a newer layout, or a file that is not a selection, is refused with its path and why")
    func selectionRefused() {
        let s = Scratch("records"); defer { s.cleanup() }
        let newer = s.write(Array(#"{"version": 99, "strategy": "random", "budget": 1, "selected": ["a"]}"#.utf8), "newer.json")
        #expect { try Selection.read(newer) } throws: { e in
            (e as? DataError)?.description.contains("version 99, newer than this medselect reads") == true && (e as? DataError)?.path == newer
        }
        let other = s.write(Array(#"{"cases": ["a"]}"#.utf8), "other.json")
        #expect { try Selection.read(other) } throws: { e in (e as? DataError)?.description.contains("not a selection JSON") == true }
        #expect { try Selection.read(s.file("missing.json")) } throws: { e in (e as? DataError)?.description.contains("no such file") == true }
    }

    @Test("validation_metrics.csv and results.csv round-trip, NaN included; another table is refused")
    func tables() throws {
        let s = Scratch("records"); defer { s.cleanup() }
        let scores = [CaseScore(id: "c1", site: "A", label: 1, dice: 0.8125, hausdorff95: 3.5, assd: 0.25),
                      CaseScore(id: "c2", site: "B", label: 2, dice: 0, hausdorff95: .nan, assd: .infinity)]
        try CaseScore.write(scores, to: s.file("validation_metrics.csv"))
        let back = try CaseScore.read(s.file("validation_metrics.csv"))
        #expect(back.count == 2 && back[0] == scores[0] && back[1].id == "c2" && back[1].hausdorff95.isNaN && back[1].assd == .infinity)
        let wrong = s.write(Array("id,dice\nc1,0.5\n".utf8), "other.csv")
        #expect(throws: DataError.self) { try CaseScore.read(wrong) }

        let rows = [ResultRow(strategy: "xssr@pretrained", budget: "5%", seed: 3, round: 1, site: "A", labeled: 4, cases: 2, dice: 0.75,
                              hausdorff95: .nan, assd: 1.5, selection: "items/select/k/selection.json"),
                    ResultRow(strategy: "coreset+acquisition", budget: "4", seed: 0, round: 2, site: "B", labeled: 8, cases: 1, dice: 0.5,
                              hausdorff95: 2, assd: 0.125, selection: "")]
        try ResultRow.write(rows, to: s.file("results.csv"))
        let r = try ResultRow.read(s.file("results.csv"))
        #expect(r.count == 2 && r[1] == rows[1] && r[0].strategy == rows[0].strategy && r[0].hausdorff95.isNaN && r[0].dice == 0.75)
    }

    @Test("view.csv round-trips every column, NaN included, and groups a case's label rows into its measures by severity; an old header is refused")
    func caseViews() throws {
        let s = Scratch("views"); defer { s.cleanup() }
        let rows = [
            CaseView(id: "a", site: "S", entropy: 0.25, disagreement: 0.01, reference: 0.9, label: 1, size: 120.5, components: 1, largestShare: 1, boundary: 42.5,
                     compactness: 0.8, dice: 0.95),
            CaseView(id: "a", site: "S", entropy: 0.25, disagreement: 0.01, reference: 0.9, label: 2, size: 0, components: 0, compactness: .nan, dice: 0.95),
            CaseView(id: "a", site: "S", severity: 0.5, entropy: 0.4, disagreement: 0.2, label: 1, size: 80, components: 3, compactness: 0.4, dice: 0.6),
            CaseView(id: "b", site: "T", entropy: 0.3, disagreement: 0.05, label: 1, size: 0, components: 0, compactness: .nan),
        ]
        try CaseView.write(rows, to: s.file("view.csv"))
        let back = try CaseView.read(s.file("view.csv"))
        #expect(back.count == 4 && back[0] == rows[0] && back[2].severity == 0.5 && back[2].components == 3 && back[2].dice == 0.6 && back[1].compactness.isNaN && back[3].dice.isNaN && back[3].reference.isNaN)
        let m = CaseView.measures(back)
        #expect(m.count == 3 && m[0].id == "a" && m[0].severity == 0 && m[1].severity == 0.5 && m[2].id == "b")
        #expect(m[0].measures["label1_size_mm"] == 120.5 && m[0].measures["label2_pieces"] == 0 && m[0].measures["reference"] == 0.9 && m[0].measures["empty"] == 0)
        #expect(m[0].measures["label2_compactness"] == nil && m[0].dice == 0.95 && m[0].measures["label1_boundary_mm"] == 42.5)
        #expect(m[2].measures["empty"] == 1 && m[2].measures["reference"] == nil)
        try "case,site,entropy,disagreement,label,size_mm,components,compactness\na,S,0.2,0.1,1,5,1,0.5\n".write(toFile: s.file("old.csv"), atomically: true, encoding: .utf8)
        #expect(throws: DataError.self) { try CaseView.read(s.file("old.csv")) }
    }

    @Test("a calibration case's synthetic scanner change is the same for the same case and version, differs between versions, and keeps the pixel count")
    func stress() {
        let a = CaseView.Stress(id: "case7", version: 0, of: 3), b = CaseView.Stress(id: "case7", version: 0, of: 3), c = CaseView.Stress(id: "case7", version: 2, of: 3)
        var x = (0..<256).map { Float($0 % 16) }, y = x, z = x
        a.apply(&x, channels: 1, size: 16); b.apply(&y, channels: 1, size: 16); c.apply(&z, channels: 1, size: 16)
        #expect(x == y && x != z && x.count == 256 && x.allSatisfy(\.isFinite))
        // The geometric part moves the label with the image: a shift of a quarter of an 8-pixel plane moves a pixel by 2;
        // a half turn about the centre (3.5, 3.5) takes (1, 2) to (6, 5).
        var geometric = a
        geometric.rotation = 0; geometric.scale = 1; geometric.shift = (0.25, 0)
        var label = [Float](repeating: 0, count: 64)
        label[1 * 8 + 1] = 1
        #expect(geometric.warpLabels(label, size: 8).enumerated().filter { $0.element == 1 }.map(\.offset) == [1 * 8 + 3])
        geometric.shift = (0, 0); geometric.rotation = .pi
        label = [Float](repeating: 0, count: 64); label[2 * 8 + 1] = 2
        #expect(geometric.warpLabels(label, size: 8).enumerated().filter { $0.element == 2 }.map(\.offset) == [5 * 8 + 6])
        // Severities spread over (0, 1]: version k of 3 lies in ((k + 0.25) / 3, (k + 1) / 3].
        #expect(a.severity > 0.25 / 3 && a.severity <= 1.0 / 3 && c.severity > 2.25 / 3 && c.severity <= 1)
    }
}
