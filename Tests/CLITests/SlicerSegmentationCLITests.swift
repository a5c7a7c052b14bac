import Foundation
import Testing
import TestSupport
import MedFormats
import MedImage
import MedFoundation

@Suite("3D Slicer segmentations through the worklist")
struct SlicerSegmentationCLITests {
    @Test("a segmentation saved in 3D Slicer (cropped to its segments, two layers) imports onto its image's grid with one label per segment; overlapping layers are refused with the segments' names")
    func importSegmentation() throws {
        let s = Scratch("cli-slicer")
        defer { s.cleanup() }
        let data = s.file("pro")
        #expect(try Tool.run(["phantom", "--benchmark", "prostate", "--count", "2", "--size", "24", "--seed", "3", "--out", data, "--quiet"]).status == 0)
        try FileManager.default.removeItem(atPath: data + "/HK")   // keep the test small: one target site
        for site in ["BIDMC", "I2CVB", "UCL", "BMC"] { try? FileManager.default.removeItem(atPath: data + "/" + site) }
        let db = s.file("i.sqlite")
        #expect(try Tool.run(["index", data, "--db", db, "--quiet"]).status == 0)
        let ids = try String(contentsOfFile: data + "/phantom_cases.csv", encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",").map(String.init) }.filter { $0[1] == "RUNMC" }.map { "RUNMC_" + $0[3] }
        let id = try #require(ids.first)
        try AtomicFile.write(#"{"selected": ["\#(id)"]}"#, to: s.file("sel.json"))
        let todo = s.file("todo")
        let w = try Tool.run(["worklist", s.file("sel.json"), "--db", db, "--out", todo])
        #expect(w.status == 0, "\(w.stderr)")
        let row = try String(contentsOfFile: todo + "/worklist.csv", encoding: .utf8).split(separator: "\n")[1].split(separator: ",").map(String.init)
        let image = try ImageIO.read(todo + "/" + row[3])

        // Two segments in two layers, cropped to a box at voxel offset (3, 4, 2) of the image.
        let (cx, cy, cz) = (5, 4, 3), offset = (3, 4, 2)
        var layers = [Float](repeating: 0, count: 2 * cx * cy * cz)
        layers[(1 * cy + 1) * cx + 1] = 1                              // gland: layer 0, voxel (1, 1, 1) of the crop
        layers[cx * cy * cz + ((2 * cy + 3) * cx + 4)] = 1             // lesion: layer 1, voxel (4, 3, 2)
        var a = image.affine
        let origin = a.apply((Double(offset.0), Double(offset.1), Double(offset.2)))
        (a[0, 3], a[1, 3], a[2, 3]) = (origin.0, origin.1, origin.2)
        let stack = MedicalImage(shape: ImageShape(cx, cy, cz, 2), voxels: layers, affine: a, kind: .labelMap)
        func segments(_ second: String) -> [(String, String)] {
            [("Segment0_ID", "Segment_1"), ("Segment0_Name", "gland"), ("Segment0_LabelValue", "1"), ("Segment0_Layer", "0"),
             ("Segment1_ID", "Segment_2"), ("Segment1_Name", second), ("Segment1_LabelValue", "1"), ("Segment1_Layer", "1"),
             ("Segmentation_MasterRepresentation", "Binary labelmap")]
        }
        var options = NRRDWriter.Options()
        options.storedType = .uint8
        options.keyValues = segments("lesion")
        try FileManager.default.createDirectory(atPath: todo + "/labels", withIntermediateDirectories: true)
        try NRRDWriter.write(stack, to: todo + "/labels/\(id).seg.nrrd", options: options)
        let r = try Tool.run(["import-labels", todo, "--db", db])
        #expect(r.status == 0 && r.stdout.contains("imported 1"), "\(r.stdout) \(r.stderr)")
        // The index keeps the label on the image's grid: gland 1 and lesion 2 (their values collide, so numbered in
        // file order) at the crop's voxels moved by the offset, background elsewhere.
        let kept = try #require(FileManager.default.contentsOfDirectory(atPath: s.file("i.labels")).first { $0.hasSuffix(".nrrd") })
        let label = try ImageIO.read(s.file("i.labels/" + kept))
        #expect(label.shape == ImageShape(image.shape.x, image.shape.y, image.shape.z, 1))
        let nx = image.shape.x, ny = image.shape.y
        func at(_ x: Int, _ y: Int, _ z: Int) -> Float { label.voxels[(z * ny + y) * nx + x] }
        #expect(at(1 + 3, 1 + 4, 1 + 2) == 1 && at(4 + 3, 3 + 4, 2 + 2) == 2)
        #expect(label.voxels.filter { $0 != 0 }.count == 2)

        // The same two layers overlapping: refused, naming both segments.
        layers[cx * cy * cz + (1 * cy + 1) * cx + 1] = 1
        options.keyValues = segments("capsule")
        try NRRDWriter.write(MedicalImage(shape: stack.shape, voxels: layers, affine: a, kind: .labelMap), to: todo + "/labels/\(id).seg.nrrd", options: options)
        let bad = try Tool.run(["import-labels", todo, "--db", db])
        #expect(bad.status == 1 && bad.stderr.contains("'gland' and 'capsule' overlap"), "\(bad.stderr)")
    }

    @Test("worklist --format slicer writes NRRD images with empty segmentations on their grids and SLICER.md; a drawn and saved segmentation imports unchanged")
    func slicerWorklist() throws {
        let s = Scratch("cli-slicer-worklist")
        defer { s.cleanup() }
        let data = s.file("pro")
        #expect(try Tool.run(["phantom", "--benchmark", "prostate", "--count", "2", "--size", "24", "--seed", "4", "--out", data, "--quiet"]).status == 0)
        let db = s.file("i.sqlite")
        #expect(try Tool.run(["index", data, "--db", db, "--quiet"]).status == 0)
        let cases = try String(contentsOfFile: data + "/phantom_cases.csv", encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",").map(String.init) }.filter { $0[1] == "HK" }
        let ids = cases.map { "HK_" + $0[3] }
        try AtomicFile.write(#"{"selected": ["\#(ids[1])", "\#(ids[0])"]}"#, to: s.file("sel.json"))
        let todo = s.file("todo")
        #expect(try Tool.run(["worklist", s.file("sel.json"), "--db", db, "--format", "slicer", "--link", "--out", todo]).status == 64)
        let w = try Tool.run(["worklist", s.file("sel.json"), "--db", db, "--format", "slicer", "--out", todo])
        #expect(w.status == 0 && w.stdout.contains("SLICER.md"), "\(w.stderr)")
        let rows = try String(contentsOfFile: todo + "/worklist.csv", encoding: .utf8).split(separator: "\n").dropFirst().map { $0.split(separator: ",").map(String.init) }
        #expect(rows.map { $0[1] } == [ids[1], ids[0]] && rows[0][3].hasSuffix(".nrrd") && rows[0][4] == "labels/\(ids[1]).seg.nrrd")
        let instructions = try String(contentsOfFile: todo + "/SLICER.md", encoding: .utf8)
        #expect(instructions.contains("1. \(ids[1])") && instructions.contains("Segment Editor"))
        // The NRRD copy holds the case's image exactly (values and geometry); the segmentation is empty on its grid.
        let original = try ImageIO.read(data + "/HK/" + cases[1][3] + ".nii.gz")
        let copy = try ImageIO.read(todo + "/" + rows[0][3])
        #expect(copy.voxels == original.voxels && copy.shape == original.shape)
        #expect((0..<12).allSatisfy { abs(copy.affine.m[$0] - original.affine.m[$0]) < 1e-6 })
        let header = try NRRDReader.readHeader(todo + "/" + rows[0][4])
        #expect(SlicerSegmentation.isSegmentation(header) && header.sizes == [original.shape.x, original.shape.y, original.shape.z])
        #expect(try ImageIO.read(todo + "/" + rows[0][4]).voxels.allSatisfy { $0 == 0 })
        // The annotator draws two voxels into "label 1" and saves: the import keeps them where they were drawn.
        var drawn = try ImageIO.read(todo + "/" + rows[0][4])
        drawn.voxels[5] = 1; drawn.voxels[drawn.voxels.count - 3] = 1
        var options = NRRDWriter.Options()
        options.storedType = .uint8
        options.keyValues = header.keyValues.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        try NRRDWriter.write(drawn, to: todo + "/" + rows[0][4], options: options)
        let r = try Tool.run(["import-labels", todo, "--db", db])
        // The other case's segmentation is still the empty one the worklist wrote: not annotated yet.
        #expect(r.status == 0 && r.stdout.contains("imported 1") && r.stdout.contains("1 case(s) not annotated yet"), "\(r.stdout) \(r.stderr)")
        let kept = try ImageIO.read(s.file("i.labels/\(ids[1]).nrrd"))
        #expect(kept.voxels == drawn.voxels)
    }
}
