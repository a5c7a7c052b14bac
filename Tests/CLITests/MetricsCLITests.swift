import Foundation
import Testing
import TestSupport
import MedFormats
import MedImage

@Suite("medselect metrics, evaluate, distance-map")
struct MetricsCLITests {
    func writeMask(_ s: Scratch, _ name: String, _ on: Set<Int>, spacing: [Double] = [0.8, 1, 2]) throws -> String {
        var img = MedicalImage(shape: ImageShape(5, 5, 5), affine: .diagonal(spacing: spacing), kind: .labelMap)
        for i in on { img.voxels[i] = 1 }
        let p = s.file(name)
        try ImageIO.write(img, to: p)
        return p
    }

    @Test("metrics --json: the displaced-voxel example")
    func metricsJSON() throws {
        let s = Scratch("m"); defer { s.cleanup() }
        let r = try writeMask(s, "ref.nii.gz", [2 + 5 * (2 + 5 * 2)])
        let p = try writeMask(s, "pred.nii.gz", [3 + 5 * (2 + 5 * 2)])
        let out = try Tool.run(["metrics", p, r, "--json"])
        #expect(out.status == 0)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
        let one = try #require((obj["labels"] as? [String: Any])?["1"] as? [String: Any])
        #expect(one["dice"] as? Double == 0)
        // 0.8 mm passes through a float32 NIfTI header
        for key in ["hausdorff_mm", "hausdorff95_mm", "assd_mm"] { #expect(abs((one[key] as? Double ?? -1) - 0.8) < 1e-6) }
        #expect(one["iou"] as? Double == 0)
    }

    @Test("empty masks give null in JSON (no invalid JSON, no numbers written as strings)")
    func emptyJSON() throws {
        let s = Scratch("m"); defer { s.cleanup() }
        let r = try writeMask(s, "ref.nii.gz", [7])
        let p = try writeMask(s, "pred.nii.gz", [])
        let out = try Tool.run(["metrics", p, r, "--json", "--labels", "1"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
        let one = try #require((obj["labels"] as? [String: Any])?["1"] as? [String: Any])
        #expect(one["hausdorff95_mm"] is NSNull && one["dice"] as? Double == 0 && one["predicted_voxels"] as? Int == 0)
    }

    @Test("evaluate matches case ids across naming styles and writes a CSV")
    func evaluate() throws {
        let s = Scratch("m"); defer { s.cleanup() }
        try FileManager.default.createDirectory(atPath: s.file("pred"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: s.file("ref"), withIntermediateDirectories: true)
        _ = try writeMask(s, "pred/Case00.nii.gz", [10, 11, 12])
        _ = try writeMask(s, "ref/Case00_segmentation.nii.gz", [10, 11, 13])
        _ = try writeMask(s, "pred/Case01.nii.gz", [40])
        _ = try writeMask(s, "ref/Case01.nii.gz", [40])
        _ = try writeMask(s, "ref/Case02.nii.gz", [1])
        let out = try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref", s.file("ref"), "--csv", s.file("m.csv")])
        #expect(out.status == 0)
        #expect(out.stderr.contains("1 reference case(s) have no prediction"))
        let csv = try String(contentsOfFile: s.file("m.csv"), encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 3 && csv[0].hasPrefix("case,label,dice"))
        #expect(csv[1].hasPrefix("Case00,1,0.6667") && csv[2].hasPrefix("Case01,1,1.0000"))
        #expect(out.stdout.contains("summary"))
        _ = s.write(Array("case,site\nCase00,RUNMC\nCase01,BMC\n".utf8), "sites.csv")
        let bySite = try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref", s.file("ref"), "--sites", s.file("sites.csv")])
        #expect(bySite.status == 0 && bySite.stdout.contains("per-site summary"))
        #expect(bySite.stdout.contains("RUNMC\t1\tdice\t0.6667") && bySite.stdout.contains("BMC\t1\tdice\t1.0000"))
        _ = s.write(Array("just-one-column\n".utf8), "bad.csv")
        let bad = try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref", s.file("ref"), "--sites", s.file("bad.csv")])
        #expect(bad.status == 1 && bad.stderr.contains("is not 'case,site'"))
        let none = try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref", s.file("nothing")])
        #expect(none.status == 1 && none.stderr.hasPrefix("error: \(s.file("nothing")): not a folder"))
    }

    @Test("shape mismatch and bad options are clear errors")
    func errors() throws {
        let s = Scratch("m"); defer { s.cleanup() }
        let r = try writeMask(s, "ref.nii.gz", [1])
        try ImageIO.write(MedicalImage(shape: ImageShape(4, 4, 4), kind: .labelMap), to: s.file("small.nii.gz"))
        let out = try Tool.run(["metrics", s.file("small.nii.gz"), r])
        #expect(out.status == 1 && out.stderr.contains("differs from the reference"))
        #expect(try Tool.run(["metrics", r, r, "--labels", "x"]).status != 0)
        #expect(try Tool.run(["metrics", r, r, "--hd95", "mean"]).status != 0)
    }

    @Test("distance-map and convert operations")
    func operations() throws {
        let s = Scratch("m"); defer { s.cleanup() }
        let m = try writeMask(s, "m.nii.gz", Set(0..<125).subtracting([62]), spacing: [0.5, 0.5, 3])
        // Foreground everywhere but voxel (2, 2, 2): each voxel's distance to that one background voxel.
        #expect(try Tool.run(["distance-map", m, s.file("d.nii.gz")]).status == 0)
        let d = try ImageIO.read(s.file("d.nii.gz"))
        #expect(d[2, 2, 2] == 0 && d[3, 2, 2] == 0.5 && d[2, 2, 3] == 3 && abs(d[0, 0, 0] - Float((1 + 1 + 36.0).squareRoot())) < 1e-5)
        // Inside out: the background voxel's distance to the nearest foreground voxel, 0.5 mm along x.
        #expect(try Tool.run(["distance-map", m, s.file("i.nii.gz"), "--inside-out"]).status == 0)
        let i = try ImageIO.read(s.file("i.nii.gz"))
        #expect(i[2, 2, 2] == 0.5 && i.voxels.filter { $0 != 0 }.count == 1)
        let c = try Tool.run(["convert", m, s.file("r.nii.gz"), "--label", "--reorient", "LPS", "--spacing", "1,1,3"])
        #expect(c.status == 0)
        let r = try ImageIO.read(s.file("r.nii.gz"))
        #expect(r.orientationCodes == "LPS" && Set(r.voxels).isSubset(of: [0, 1]) && r.shape == ImageShape(3, 3, 5))
        #expect(try Tool.run(["convert", m, s.file("x.nii.gz"), "--spacing", "1,1"]).status != 0)
        #expect(try Tool.run(["convert", m, s.file("x.nii.gz"), "--reorient", "XYZ"]).status != 0)
    }
}
