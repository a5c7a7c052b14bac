import Foundation
import Testing
import TestSupport
import MedFormats

/// Issue 13's reproductions: each failed (crash or silent wrong result) before its fix.
@Suite("Findings: crashes and silent wrong results")
struct FindingsCLITests {
    /// A 16 x 12 x 5 int16 volume (spacing 1 x 1 x 3 mm), and its PNG slice.
    func volume(_ s: Scratch) -> String {
        var b = NIfTI1Builder()
        b.sformCode = 1
        b.srow = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 3, 0]]
        b.dims = [3, 16, 12, 5, 1, 1, 1, 1]
        b.pixdim = [1, 1, 1, 3, 1, 1, 1, 1]
        return s.write(b.file(data: b.int16Bytes((0..<(16 * 12 * 5)).map { Int16($0 % 300) })), "v.nii")
    }

    func oneLineError(_ r: (status: Int32, stdout: String, stderr: String), _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 1, "status \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("error: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(fragment), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test("resampling beyond the memory limit is refused before allocating (it aborted with SIGABRT)")
    func resampleLimit() throws {
        let s = Scratch("find"); defer { s.cleanup() }
        let v = volume(s)
        oneLineError(try Tool.run(["convert", v, s.file("a.nii.gz"), "--max-memory", "10", "--spacing", "0.01,0.01,0.01"]), "above the memory limit of 10.0 MiB")
        oneLineError(try Tool.run(["convert", v, s.file("a.nii.gz"), "--shape", "20000,20000,50"]), "resampling to 20000 x 20000 x 50 needs 74.5 GiB")
        #expect(try Tool.run(["convert", v, s.file("s.png"), "--shape", "16,12,1", "--type", "uint16"]).status == 0)
        oneLineError(try Tool.run(["convert", s.file("s.png"), s.file("b.png"), "--shape", "100000,100000,1"]), "s.png: resampling to 100000 x 100000 x 1")
        oneLineError(try Tool.run(["convert", v, s.file("c.nii.gz"), "--shape", "64,64,64"], environment: ["MEDSELECT_MAX_BYTES": "20000"]), "above the memory limit of 19.5 KiB")
        #expect(!FileManager.default.fileExists(atPath: s.file("a.nii.gz")))
        // A limit that is not a number is an error, not ignored.
        oneLineError(try Tool.run(["inspect", v], environment: ["MEDSELECT_MAX_BYTES": "abc"]), "MEDSELECT_MAX_BYTES: 'abc' is not a positive number of bytes")
        // Within the limit it works.
        #expect(try Tool.run(["convert", v, s.file("d.nii.gz"), "--spacing", "0.5,0.5,1"]).status == 0)
    }

    @Test("NaN, infinite, fractional and huge values in a label map are refused by metrics and evaluate (NaN crashed with SIGILL; 0.5 and 1e12 became labels 0 and 999999)",
          arguments: ["nan", "inf", "half", "huge"])
    func nonLabelPredictions(kind: String) throws {
        let s = Scratch("find"); defer { s.cleanup() }
        var ref = [Float](repeating: 0, count: 8 * 8 * 2)
        for i in 20..<40 { ref[i] = 1 }
        try NPYWriter.write(NDArray(float32: ref, shape: [8, 8, 2], fortranOrder: false), to: s.file("ref.npy"))
        var pred = ref
        switch kind {
        case "nan": pred = pred.map { _ in .nan }
        case "inf": pred[5] = .infinity
        case "half": pred[5] = 0.5
        default: pred[5] = 1e12
        }
        try FileManager.default.createDirectory(atPath: s.file("pred"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: s.file("refs"), withIntermediateDirectories: true)
        try NPYWriter.write(NDArray(float32: pred, shape: [8, 8, 2], fortranOrder: false), to: s.file("pred/case.npy"))
        try FileManager.default.copyItem(atPath: s.file("ref.npy"), toPath: s.file("refs/case.npy"))
        oneLineError(try Tool.run(["metrics", s.file("pred/case.npy"), s.file("ref.npy")]), "pred/case.npy: not a label map: ")
        oneLineError(try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref", s.file("refs")]), "not a label map")
        // The reference is checked the same way.
        oneLineError(try Tool.run(["metrics", s.file("ref.npy"), s.file("pred/case.npy")]), "pred/case.npy: not a label map: ")
    }

    @Test("inspect reports the finite range and counts NaN and infinite values (it showed min 0, max 0)")
    func inspectNonFinite() throws {
        let s = Scratch("find"); defer { s.cleanup() }
        var v = [Float](repeating: 2, count: 20)
        v[0] = .nan; v[1] = .nan; v[2] = -.infinity; v[3] = -1
        try NPYWriter.write(NDArray(float32: v, shape: [4, 5], fortranOrder: false), to: s.file("m.npy"))
        let r = try Tool.run(["inspect", s.file("m.npy")])
        #expect(r.stdout.contains("values:       min -1, max 2") && r.stdout.contains("also 2 NaN, 1 -inf"), "\(r.stdout)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(try Tool.run(["inspect", s.file("m.npy"), "--json"]).stdout.utf8)) as? [String: Any])
        #expect(j["nan_count"] as? Int == 2 && j["inf_count"] as? Int == 1 && j["min"] as? Double == -1)
        try NPYWriter.write(NDArray(float32: [Float](repeating: .nan, count: 6), shape: [2, 3], fortranOrder: false), to: s.file("n.npy"))
        #expect(try Tool.run(["inspect", s.file("n.npy")]).stdout.contains("values:       no finite value (6 NaN)"))
    }
}
