import Foundation
import Testing
import TestSupport
import MedFormats
import MedImage

@Suite("medselect worklist, import-labels")
struct WorklistCLITests {
    @Test("a selection becomes an annotation folder in selection order; finished labels come back into the index, checked against their images, and survive re-indexing")
    func handOff() throws {
        let s = Scratch("cli-worklist")
        defer { s.cleanup() }
        let data = s.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "6", "--size", "32", "--seed", "2", "--out", data, "--quiet"]).status == 0)
        // The hospital's site has no labels yet.
        try FileManager.default.removeItem(atPath: data + "/CHN/mask")
        let db = s.file("i.sqlite")
        #expect(try Tool.run(["index", data, "--db", db, "--quiet"]).status == 0)
        func labeledCHN() throws -> String? {
            let r = try Tool.run(["summary", "--db", db])
            return r.stdout.split(separator: "\n").first { $0.hasPrefix("| CHN |") }?.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }[2]
        }
        #expect(try labeledCHN() == "0")
        #expect(try Tool.run(["embed", "--db", db, "--sites", "CHN", "--out", s.file("pool.npy")]).status == 0)
        #expect(try Tool.run(["select", "--embeddings", s.file("pool.npy"), "--strategy", "coreset", "--budget", "3", "--seed", "1", "--out", s.file("sel.json")]).status == 0)
        let selection = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("sel.json")))) as? [String: Any]
        let picked = selection?["selected"] as? [String] ?? []
        #expect(picked.count == 3)

        let todo = s.file("todo")
        let w = try Tool.run(["worklist", s.file("sel.json"), "--db", db, "--out", todo])
        #expect(w.status == 0, "\(w.stderr)")
        let rows = try String(contentsOfFile: todo + "/worklist.csv", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(rows[0] == "rank,id,site,image,label,strategy,score,why" && rows.count == 4)
        for (i, id) in picked.enumerated() {
            let f = rows[i + 1].split(separator: ",").map(String.init)
            #expect(f[0] == String(i + 1) && f[1] == id && f[2] == "CHN" && f[3] == String(format: "images/%03d_%@_0000.png", i + 1, id) && f[5] == "coreset")
            // The copy is the image itself.
            let original = data + "/CHN/CXR_png/" + id + ".png"
            #expect(FileManager.default.contentsEqual(atPath: todo + "/" + f[3], andPath: original))
        }
        // A non-empty folder, and ids the data does not have, are refused.
        #expect(try Tool.run(["worklist", s.file("sel.json"), "--db", db, "--out", todo]).stderr.contains("not empty"))
        let foreign = s.write(Array(#"{"selected": ["NOPE_1"]}"#.utf8), "foreign.json")
        let f = try Tool.run(["worklist", foreign, "--db", db, "--out", s.file("todo2")])
        #expect(f.status == 1 && f.stderr.contains("not cases of the data"), "\(f.stderr)")

        // Nothing annotated yet: nothing imported, all three waiting.
        let none = try Tool.run(["import-labels", todo, "--db", db])
        #expect(none.status == 0 && none.stdout.contains("imported 0") && none.stdout.contains("3 case(s) not annotated yet"), "\(none.stdout)")
        // The annotator saves a label on the first image's grid (a square of 1s), and one of the wrong size.
        let image = try ImageIO.read(data + "/CHN/CXR_png/" + picked[0] + ".png")
        var label = MedicalImage(shape: ImageShape(image.shape.x, image.shape.y), affine: image.affine, kind: .labelMap)
        for j in 8..<20 { for i in 8..<20 { label.voxels[j * image.shape.x + i] = 1 } }
        try ImageIO.write(label, to: todo + "/labels/" + picked[0] + ".png", options: .init(storedType: .uint8, pngBitDepth: 8))
        let ok = try Tool.run(["import-labels", todo, "--db", db])
        #expect(ok.status == 0 && ok.stdout.contains("imported 1"), "\(ok.stdout)\(ok.stderr)")
        #expect(try labeledCHN() == "1")
        // Re-indexing the folder keeps the imported label.
        #expect(try Tool.run(["index", data, "--db", db, "--quiet"]).status == 0)
        #expect(try labeledCHN() == "1")
        let wrong = MedicalImage(shape: ImageShape(image.shape.x + 3, image.shape.y), kind: .labelMap)
        try ImageIO.write(wrong, to: todo + "/labels/" + picked[1] + ".png", options: .init(storedType: .uint8, pngBitDepth: 8))
        let bad = try Tool.run(["import-labels", todo, "--db", db])
        #expect(bad.status == 1 && bad.stderr.hasPrefix("error: ") && bad.stderr.contains(picked[1]) && bad.stderr.contains("differs from the image's"), "\(bad.stderr)")
        // Values that are no label (300 in a 16-bit PNG) are refused too.
        try FileManager.default.removeItem(atPath: todo + "/labels/" + picked[1] + ".png")
        var high = MedicalImage(shape: ImageShape(image.shape.x, image.shape.y), affine: image.affine, kind: .labelMap)
        high.voxels[0] = 300
        try ImageIO.write(high, to: todo + "/labels/" + picked[2] + ".png", options: .init(storedType: .uint16, pngBitDepth: 16))
        let values = try Tool.run(["import-labels", todo, "--db", db])
        #expect(values.status == 1 && values.stderr.contains(picked[2]) && values.stderr.contains("not a label map"), "\(values.stderr)")
    }
}
