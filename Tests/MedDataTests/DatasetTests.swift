import Foundation
import Testing
import MedFoundation
import TestSupport
@testable import MedData
import MedFormats
import MedImage

/// Writes a small phantom benchmark and returns its folder.
func phantom(_ benchmark: PhantomBenchmark, _ scratch: Scratch, sites: Int = 2, count: Int = 4, size: Int = 32, preset: String = "graded") throws -> String {
    var config = try PhantomConfig.preset(preset, benchmark: benchmark)
    config.sites = Array(config.sites.prefix(sites))
    let folder = scratch.file("\(benchmark.rawValue)-\(preset)")
    try PhantomGenerator(config: config, seed: 2, count: count, size: size).write(to: folder)
    return folder
}

func writeMask(_ values: [Float], _ w: Int, _ h: Int, to path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try PNGWriter.write(MedicalImage(shape: ImageShape(w, h), voxels: values, kind: .labelMap, info: ImageInfo(storedType: .uint8)), to: path,
                        options: .init(bitDepth: 8))
}

@Suite("Dataset adapters")
struct AdapterTests {
    @Test("six-site prostate: aliases, _Segmentation spelling, missing segmentation and stray label values are reported, labels binarised")
    func prostate() throws {
        let scratch = Scratch("adapter-prostate")
        defer { scratch.cleanup() }
        let root = try phantom(.prostate, scratch, sites: 6, count: 2, size: 24, preset: "six-site")
        let fm = FileManager.default
        try fm.moveItem(atPath: root + "/RUNMC", toPath: root + "/ISBI")
        try fm.moveItem(atPath: root + "/I2CVB", toPath: root + "/HCRUDB")
        try fm.removeItem(atPath: root + "/UCL/Case01_segmentation.nii.gz")
        // A stray value 2 in one BMC mask.
        var seg = try ImageIO.read(root + "/BMC/Case00_segmentation.nii.gz")
        if let k = seg.voxels.firstIndex(of: 1) { seg.voxels[k] = 2 }
        try NIfTIWriter.write(seg, to: root + "/BMC/Case00_segmentation.nii.gz", options: .init(storedType: .uint8))
        #expect(try DatasetAdapters.detect(root).name == "prostate")
        let d = try DatasetAdapters.load(root)
        #expect(Set(d.sites.map(\.name)) == ["RUNMC", "BMC", "I2CVB", "UCL", "BIDMC", "HK"])
        #expect(d.samples.count == 12 && d.report.labeled == 11)
        #expect(d.report.notes.contains("folder ISBI is site RUNMC") && d.report.notes.contains("folder HCRUDB is site I2CVB"))
        #expect(d.report.problems.contains { $0.path.hasSuffix("UCL/Case01.nii.gz") && $0.reason.contains("no segmentation") })
        #expect(d.report.problems.contains { $0.path.hasSuffix("BMC/Case00_segmentation.nii.gz") && $0.reason.contains("unexpected label values [2]") })
        let hk = d.samples.first { $0.site == "HK" }!
        #expect(hk.labels[0].hasSuffix("Case00_Segmentation.nii.gz"))
        #expect(d.samples.first { $0.site == "BMC" }!.scanner?.vendor == "Philips")
        let label = try d.samples.first { $0.id == "BMC_Case00" }!.loadLabel()!
        #expect(Set(label.voxels) == [0, 1])
    }

    @Test("PROMISE12: MetaImage cases per part folder, segmentation optional")
    func promise12() throws {
        let scratch = Scratch("adapter-promise")
        defer { scratch.cleanup() }
        let root = scratch.file("promise")
        try FileManager.default.createDirectory(atPath: root + "/TrainingData_Part1", withIntermediateDirectories: true)
        let img = MedicalImage(shape: ImageShape(6, 5, 4), voxels: (0..<120).map(Float.init), affine: .diagonal(spacing: [0.6, 0.6, 3.6]),
                               info: ImageInfo(storedType: .int16))
        let seg = MedicalImage(shape: ImageShape(6, 5, 4), voxels: (0..<120).map { $0 % 7 == 0 ? 1 : 0 }, affine: .diagonal(spacing: [0.6, 0.6, 3.6]),
                               kind: .labelMap, info: ImageInfo(storedType: .uint8))
        try MetaImageWriter.write(img, to: root + "/TrainingData_Part1/Case00.mhd")
        try MetaImageWriter.write(seg, to: root + "/TrainingData_Part1/Case00_segmentation.mhd")
        try MetaImageWriter.write(img, to: root + "/TrainingData_Part1/Case01.mhd")
        #expect(try DatasetAdapters.detect(root).name == "promise12")
        let d = try DatasetAdapters.load(root)
        #expect(d.samples.map(\.id) == ["Case00", "Case01"] && d.report.labeled == 1)
        #expect(d.report.problems.count == 1)
        #expect(try d.samples[0].loadLabel()!.voxels == seg.voxels)
    }

    @Test("Montgomery: left and right masks merged, TB suffix kept, a case with one mask reported and unlabeled")
    func montgomery() throws {
        let scratch = Scratch("adapter-mcu")
        defer { scratch.cleanup() }
        let root = try phantom(.cxr, scratch, sites: 1, count: 5, size: 40) + "/MCU"
        let first = listing(root + "/CXR_png")[0]
        let left = try ImageIO.read(root + "/ManualMask/leftMask/" + first), right = try ImageIO.read(root + "/ManualMask/rightMask/" + first)
        try FileManager.default.removeItem(atPath: root + "/ManualMask/rightMask/" + listing(root + "/CXR_png")[1])
        #expect(try DatasetAdapters.detect(root).name == "montgomery")
        let d = try DatasetAdapters.load(root)
        #expect(d.samples.count == 5 && d.report.labeled == 4)
        #expect(d.report.problems.first?.reason.contains("only one lung mask") == true)
        #expect(d.samples.allSatisfy { $0.tags["tb"] == "0" || $0.tags["tb"] == "1" })
        let merged = try d.samples[0].loadLabel()!
        let expected = zip(left.voxels, right.voxels).map { $0 > 0 || $1 > 0 ? Float(1) : 0 }
        #expect(merged.voxels == expected && expected.contains(1))
    }

    @Test("Shenzhen: *_mask.png found under the site; images without masks are unlabeled samples; masks without images reported")
    func shenzhen() throws {
        let scratch = Scratch("adapter-chn")
        defer { scratch.cleanup() }
        let root = try phantom(.cxr, scratch, sites: 2, count: 12, size: 32)
        let chn = root + "/CHN"
        try writeMask([Float](repeating: 0, count: 16), 4, 4, to: chn + "/mask/CHNCXR_9999_0_mask.png")
        #expect(try DatasetAdapters.detect(chn).name == "shenzhen")
        let d = try DatasetAdapters.load(chn)
        let masks = listing(chn + "/mask").count - 1
        #expect(d.samples.count == 12 && d.report.labeled == masks && masks < 12)
        #expect(d.report.problems.contains { $0.path.hasSuffix("CHNCXR_9999_0_mask.png") })
        // The phantom root mixes a Montgomery-layout and a Shenzhen-layout site: read whole, one site per folder.
        let both = try DatasetAdapters.load(root)
        #expect(Set(both.sites.map(\.name)) == ["MCU", "CHN"] && both.samples.count == 24)
    }

    @Test("plain image trees: a case per image, sites from the first sub-folder, masks listed and never read, loose files beside site folders left out, repeated stems named by their path")
    func imageTree() throws {
        let scratch = Scratch("adapter-images")
        defer { scratch.cleanup() }
        let root = scratch.file("hospital")
        let image = [Float](repeating: 7, count: 16)
        for (site, files) in [("A", ["IM1.png", "IM2.png", "deep/IM3.png"]), ("B", ["IM1.png", "IM4.png"])] {
            for f in files { try writeMask(image, 4, 4, to: "\(root)/\(site)/\(f)") }
        }
        // Masks in both conventions: a mask folder, and mask-like names. Not PNG files: opening one would fail.
        for f in ["A/labels/IM1.png", "A/IM2_seg.png", "B/ManualMask/IM4.png", "B/IM4.seg.nrrd", "B/IM1_mask.png"] {
            try FileManager.default.createDirectory(atPath: (root + "/" + f as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data("not an image".utf8).write(to: URL(fileURLWithPath: root + "/" + f))
        }
        try writeMask(image, 4, 4, to: root + "/contact_sheet.png")
        try Data("notes".utf8).write(to: URL(fileURLWithPath: root + "/A/readme.txt"))
        #expect(try DatasetAdapters.detect(root).name == "images")
        let d = try DatasetAdapters.load(root)
        #expect(d.samples.map(\.id).sorted() == ["A__IM1", "B__IM1", "IM2", "IM3", "IM4"])
        #expect(Dictionary(uniqueKeysWithValues: d.samples.map { ($0.id, $0.site) }) == ["A__IM1": "A", "B__IM1": "B", "IM2": "A", "IM3": "A", "IM4": "B"])
        #expect(d.samples.allSatisfy { !$0.isLabeled } && d.report.labeled == 0)
        let notRead = d.report.problems.filter { $0.reason.hasPrefix("looks like a mask") }.map { String($0.path.dropFirst(root.count + 1)) }.sorted()
        #expect(notRead == ["A/IM2_seg.png", "A/labels/IM1.png", "B/IM1_mask.png", "B/IM4.seg.nrrd", "B/ManualMask/IM4.png"])
        #expect(d.report.problems.contains { $0.path.hasSuffix("/contact_sheet.png") && $0.reason.contains("beside the site folders") })
        #expect(d.report.problems.contains { $0.path.hasSuffix("/readme.txt") })
        for s in d.samples { #expect(try s.loadImage().voxels.allSatisfy { $0 == 7 }) }
        // One folder of images and nothing else: the folder's name is the site.
        let flat = try ImageTreeAdapter.load(root + "/B")
        #expect(flat.samples.map(\.site) == ["B", "B"] && flat.samples.map(\.id).sorted() == ["IM1", "IM4"])
        // Nothing but masks to read.
        #expect(!ImageTreeAdapter.detect(scratch.file("none")))
        try FileManager.default.createDirectory(atPath: scratch.file("masks-only/labels"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: scratch.file("masks-only/labels/a.png")))
        #expect(!ImageTreeAdapter.detect(scratch.file("masks-only")))
    }

    @Test("JSRT: raw big-endian 2048x2048 images, half-resolution SCR masks upsampled, wrong sizes refused")
    func jsrt() throws {
        let scratch = Scratch("adapter-jsrt")
        defer { scratch.cleanup() }
        let root = scratch.file("jsrt")
        try FileManager.default.createDirectory(atPath: root + "/images", withIntermediateDirectories: true)
        let n = 2048
        var bytes = [UInt8](repeating: 0, count: 2 * n * n)
        for i in 0..<(n * n) { let v = UInt16((i * 7) % 4096); bytes[2 * i] = UInt8(v >> 8); bytes[2 * i + 1] = UInt8(v & 0xff) }
        _ = FileManager.default.createFile(atPath: root + "/images/JPCLN001.IMG", contents: Data(bytes))
        _ = FileManager.default.createFile(atPath: root + "/images/JPCNN002.IMG", contents: Data(bytes.prefix(1000)))
        var half = [Float](repeating: 0, count: 1024 * 1024)
        half[0] = 255; half[1024 * 1024 - 1] = 255
        try writeMask(half, 1024, 1024, to: root + "/masks/left lung/JPCLN001.png")
        try writeMask([Float](repeating: 0, count: 1024 * 1024), 1024, 1024, to: root + "/masks/right lung/JPCLN001.png")
        #expect(try DatasetAdapters.detect(root).name == "jsrt")
        let d = try DatasetAdapters.load(root)
        #expect(d.samples.count == 2 && d.report.labeled == 1)
        let s = d.samples.first { $0.id == "JPCLN001" }!
        #expect(s.tags["nodule"] == "1")
        let image = try s.loadImage()
        #expect(image.shape.x == 2048 && image.voxels[5] == 35 && image.voxels[1000] == Float((1000 * 7) % 4096))
        #expect(abs(image.spacing[0] - 0.175) < 1e-9)
        let label = try s.loadLabel()!
        #expect(label.shape.x == 2048 && label.voxels[0] == 1 && label.voxels[1] == 1 && label.voxels[2048] == 1 && label.voxels[2] == 0)
        #expect(label.voxels.reduce(0, +) == 8)
        #expect(throws: DataError.self) { try d.samples.first { $0.id == "JPCNN002" }!.loadImage() }
    }

    @Test("RIGA+: CSV splits, disc/cup encoding detected on the data (either convention), TIFF rows reported with advice")
    func riga() throws {
        let scratch = Scratch("adapter-riga")
        defer { scratch.cleanup() }
        let root = try phantom(.fundus, scratch, sites: 2, count: 5, size: 48)
        // Re-encode one domain's masks the other way round (127 disc rim, 255 cup).
        for f in listing(root + "/Magrabia") where f.hasSuffix("-1.png") {
            let m = try ImageIO.read(root + "/Magrabia/" + f)
            try writeMask(m.voxels.map { $0 == 255 ? 127 : $0 == 128 ? 255 : 0 }, m.shape.x, m.shape.y, to: root + "/Magrabia/" + f)
        }
        var csv = try String(contentsOfFile: root + "/BinRushed_test.csv", encoding: .utf8)
        csv += "BinRushed/image99.tif,BinRushed/image99-1.tif\n"
        try csv.write(toFile: root + "/BinRushed_test.csv", atomically: true, encoding: .utf8)
        #expect(try DatasetAdapters.detect(root).name == "riga")
        let d = try DatasetAdapters.load(root)
        #expect(d.samples.count == 10 && d.report.labeled == 10)
        #expect(d.samples.filter { $0.split == "train" }.count == 8)
        #expect(d.report.problems.contains { $0.path.hasSuffix("image99.tif") && $0.reason.contains("TIFF") && $0.reason.contains("PNG") })
        #expect(d.report.notes.contains { $0.contains("BinRushed: mask encoding disc rim 255, cup 128") })
        #expect(d.report.notes.contains { $0.contains("Magrabia: mask encoding disc rim 127, cup 255") })
        for s in d.samples {
            let l = try s.loadLabel()!
            #expect(Set(l.voxels).isSubset(of: [0, 1, 2]) && l.voxels.contains(2))
        }
    }

    @Test("CheXmask: run-length masks (1-based starts, row-major) decode to lungs 1 and heart 2 for the images the user has")
    func chexmask() throws {
        let scratch = Scratch("adapter-chexmask")
        defer { scratch.cleanup() }
        let root = scratch.file("cx")
        try writeMask([Float](repeating: 10, count: 12), 4, 3, to: root + "/imgs/a.png")
        try writeMask([Float](repeating: 10, count: 12), 4, 3, to: root + "/imgs/b.png")
        // 4 wide, 3 high: left lung pixels 1-2 (row 0, x 0-1), right lung 4 and 8 (x 3 of rows 0 and 1), heart 10-11.
        let table = "dicom_id,Dice RCA (Mean),Left Lung,Right Lung,Heart,Height,Width\na,0.9,1 2,4 1 8 1,10 2,3,4\nzzz,0.8,1 1,,,3,4\n"
        try table.write(toFile: root + "/MIMIC.csv", atomically: true, encoding: .utf8)
        #expect(try DatasetAdapters.detect(root).name == "chexmask")
        let d = try DatasetAdapters.load(root)
        #expect(d.samples.count == 2 && d.report.labeled == 1)
        #expect(d.report.notes.first?.contains("1 CheXmask rows") == true)
        let l = try d.samples.first { $0.id == "a" }!.loadLabel()!
        #expect(l.voxels == [1, 1, 0, 1, 0, 0, 0, 1, 0, 2, 2, 0])
        #expect(try d.samples.first { $0.id == "b" }!.loadLabel() == nil)
        #expect(throws: DataError.self) { try CheXmask.decodeRLE("11 5", height: 3, width: 4) }
        #expect(throws: DataError.self) { try CheXmask.decodeRLE("1 x", height: 3, width: 4) }
    }

    @Test("generic images/ + labels/ with sites.csv")
    func generic() throws {
        let scratch = Scratch("adapter-generic")
        defer { scratch.cleanup() }
        let root = scratch.file("g")
        try writeMask([1, 2, 3, 4], 2, 2, to: root + "/images/x1.png")
        try writeMask([1, 2, 3, 4], 2, 2, to: root + "/images/x2.png")
        try writeMask([0, 1, 0, 1], 2, 2, to: root + "/labels/x1.png")
        try writeMask([0, 1, 0, 1], 2, 2, to: root + "/labels/orphan.png")
        try "image,site,scanner\nx1.png,A,ge\nx2.png,B,siemens\n".write(toFile: root + "/sites.csv", atomically: true, encoding: .utf8)
        let d = try DatasetAdapters.load(root)
        #expect(d.report.adapter == "folder")
        #expect(d.samples.map(\.site) == ["A", "B"] && d.samples[0].tags["scanner"] == "ge" && d.samples[0].isLabeled && !d.samples[1].isLabeled)
        #expect(d.report.problems.count == 1)
        #expect(throws: DataError.self) { try DatasetAdapters.load(root, benchmark: "nope") }
        #expect(throws: DataError.self) { try DatasetAdapters.load(scratch.file("missing")) }
    }

    @Test("splits are deterministic, stratified by site, and cover every sample once; slices and prefetching")
    func splitsAndViews() throws {
        let scratch = Scratch("dataset-views")
        defer { scratch.cleanup() }
        let root = try phantom(.prostate, scratch, sites: 3, count: 5, size: 24)
        let d = try DatasetAdapters.load(root)
        let a = d.split(seed: 1, fractions: [("train", 0.6), ("test", 0.4)]), b = d.split(seed: 1, fractions: [("train", 0.6), ("test", 0.4)])
        #expect(a["train"]!.map(\.id) == b["train"]!.map(\.id))
        #expect(a["train"]!.count == 9 && a["test"]!.count == 6)
        for site in d.sites.map(\.name) { #expect(a["test"]!.filter { $0.site == site }.count == 2) }
        #expect(Set(a["train"]!.map(\.id) + a["test"]!.map(\.id)).count == 15)
        #expect(d.split(seed: 2, fractions: [("train", 0.6), ("test", 0.4)])["test"]!.map(\.id) != a["test"]!.map(\.id))
        // A site splits the same way whatever other sites are present (the stream follows the site's name).
        for site in d.sites.map(\.name) {
            let alone = d.filtered(sites: [site]).split(seed: 1, fractions: [("train", 0.6), ("test", 0.4)])
            #expect(alone["test"]!.map(\.id) == a["test"]!.filter { $0.site == site }.map(\.id))
        }
        let one = d.filtered(sites: [d.sites[0].name])
        let slices = try one.slices()
        let nz = try one.samples.map { try ImageIO.readGeometry($0.images[0]).shape[2] }.reduce(0, +)
        #expect(slices.count == nz)
        let withGland = try one.slices(labeledOnly: true)
        #expect(withGland.count > 0 && withGland.count < nz)
        var seen: [String] = []
        try one.forEachLoaded(prefetch: 2) { s, image, label in
            seen.append(s.id)
            #expect(image.shape.x == 24 && label != nil)
        }
        #expect(seen == one.samples.map(\.id))
    }
}

@Suite("Dataset index")
struct IndexTests {
    @Test("SHA-256 of known vectors")
    func sha() {
        #expect(SHA256.hex(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(of: []) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(of: Array(String(repeating: "a", count: 1000).utf8)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test("incremental: a second run reads nothing, a changed file is re-read, a removed one is marked; interrupted runs complete")
    func incremental() throws {
        let scratch = Scratch("index")
        defer { scratch.cleanup() }
        let root = try phantom(.cxr, scratch, sites: 2, count: 10, size: 24)
        let db = scratch.file("index.sqlite")
        let index = try DatasetIndex(path: db)
        // Interrupted: only 7 files, in batches of 3; the database stays consistent.
        let (partial, _) = try index.update(root: root, options: .init(batchSize: 3, limit: 7))
        #expect(partial.read == 7)
        #expect(try index.integrityCheck() == "ok")
        #expect(try index.rows("SELECT COUNT(*) AS n FROM files").first?["n"]?.int == 7)
        let (first, dataset) = try index.update(root: root, options: .init(hash: true))
        #expect(first.read == first.files - 7 + 7 || first.read == first.files)   // hashes were requested: everything is read
        #expect(first.failed == 0)
        let (second, _) = try index.update(root: root, options: .init(hash: true))
        #expect(second.read == 0 && second.unchanged == second.files)
        // Change one image (new bytes and a later mtime), remove one mask.
        let image = dataset.samples[0].images[0]
        let old = try ImageIO.read(image)
        try PNGWriter.write(old, to: image, options: .init(bitDepth: 16, compressionLevel: 9))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(10)], ofItemAtPath: image)
        let removedMask = dataset.samples.first { $0.site == "CHN" && $0.isLabeled }!.labels[0]
        try FileManager.default.removeItem(atPath: removedMask)
        let (third, _) = try index.update(root: root)
        #expect(third.read == 1 && third.removed == 1)
        #expect(try index.rows("SELECT present FROM files WHERE path = ?", [.text(removedMask)]).first?["present"]?.int == 0)
        let rows = try index.rows("SELECT nx, ny, sx, format, sha256 FROM files WHERE path = ?", [.text(dataset.samples[1].images[0])])
        #expect(rows.first?["format"]?.string == "png" && rows.first?["sha256"]?.string?.count == 64)
        // Summary: label volumes after the label rule (left + right lung -> 1).
        let summary = try index.summary()
        #expect(Set(summary.map(\.site)) == ["MCU", "CHN"])
        let mcu = summary.first { $0.site == "MCU" }!, chn = summary.first { $0.site == "CHN" }!
        #expect(mcu.labelVolumes.keys.sorted() == ["1"] && mcu.labeled == 10)
        #expect(chn.cases == 10 && chn.labeled < 10)
        #expect(DatasetIndex.markdown(summary).contains("| MCU | 10 | 10 |"))
        // Datasets back from the index equal the adapter's view (present samples).
        let back = try index.datasets()
        #expect(back.count == 1 && back[0].samples.count == 20)
    }

    @Test("an index written by a future schema is refused with the path and the reason")
    func schema() throws {
        let scratch = Scratch("index-schema")
        defer { scratch.cleanup() }
        let db = scratch.file("i.sqlite")
        let index = try DatasetIndex(path: db)
        try index.db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        #expect(throws: DataError.self) { try DatasetIndex(path: db) }
        _ = FileManager.default.createFile(atPath: scratch.file("junk.sqlite"), contents: Data("not a database at all, just text".utf8))
        #expect(throws: DataError.self) { try DatasetIndex(path: scratch.file("junk.sqlite")) }
    }
}

@Suite("Export")
struct ExportTests {
    func checkNNUNet(_ folder: String, expectedCases: Int) throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/dataset.json"))) as! [String: Any]
        let ending = json["file_ending"] as! String
        let labels = json["labels"] as! [String: Int]
        #expect(labels["background"] == 0)
        #expect(labels.values.sorted() == Array(0..<labels.count), "labels must be consecutive from 0")
        let channels = json["channel_names"] as! [String: String]
        #expect(json["numTraining"] as? Int == expectedCases)
        let images = listing(folder + "/imagesTr"), labelFiles = listing(folder + "/labelsTr")
        #expect(labelFiles.count == expectedCases)
        for l in labelFiles {
            let c = String(l.dropLast(ending.count))
            let channelFiles = images.filter { $0.hasPrefix(c + "_") && $0.hasSuffix(ending) && $0.dropLast(ending.count).count == c.count + 5 }
            let perFile = ending == ".png" ? channels.count : 1
            #expect(channelFiles.count * perFile == channels.count, "\(c): channel files \(channelFiles)")
            #expect(channelFiles.first == c + "_0000" + ending)
            let g = try ImageIO.readGeometry(folder + "/imagesTr/" + channelFiles[0]), lg = try ImageIO.readGeometry(folder + "/labelsTr/" + l)
            #expect(Array(g.shape.prefix(3)) == Array(lg.shape.prefix(3)))
            #expect(zip(g.affine, lg.affine).allSatisfy { abs($0 - $1) < 1e-6 })
            let values = Set(try ImageIO.read(folder + "/labelsTr/" + l).voxels.map { Int($0) })
            #expect(values.isSubset(of: Set(labels.values)))
        }
    }

    @Test("nnU-Net v2 raw export of 3-D MRI, of axial slices and of RGB fundus follows the format's rules")
    func nnunet() throws {
        let scratch = Scratch("export-nnunet")
        defer { scratch.cleanup() }
        let prostate = try DatasetAdapters.load(try phantom(.prostate, scratch, sites: 2, count: 3, size: 20))
        let r = try DatasetExport.nnunet([prostate], parent: scratch.file("raw"), options: .init(id: 7, name: "P"))
        #expect(r.folder.hasSuffix("Dataset007_P") && r.training == 6 && r.fileEnding == ".nii.gz")
        try checkNNUNet(r.folder, expectedCases: 6)
        let folds = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: r.folder + "/splits_final.json"))) as! [[String: [String]]]
        #expect(folds.count == 2 && folds.allSatisfy { Set($0["train"]!).isDisjoint(with: $0["val"]!) && $0["train"]!.count + $0["val"]!.count == 6 })
        // The export reads back through the nnU-Net adapter with the same samples.
        let back = try DatasetAdapters.load(r.folder)
        #expect(back.report.adapter == "nnunet" && back.samples.count == 6 && back.report.problems.isEmpty)
        let slices = try DatasetExport.nnunet([prostate], parent: scratch.file("raw"), options: .init(id: 8, name: "S", axialSlices: true))
        let nz = try prostate.samples.map { try ImageIO.readGeometry($0.images[0]).shape[2] }.reduce(0, +)
        #expect(slices.training == nz)
        try checkNNUNet(slices.folder, expectedCases: nz)
        let fundus = try DatasetAdapters.load(try phantom(.fundus, scratch, sites: 2, count: 3, size: 32))
        let f = try DatasetExport.nnunet([fundus], parent: scratch.file("raw"), options: .init(id: 9, name: "F"))
        #expect(f.fileEnding == ".png" && f.labelMapping == [0: 0, 1: 1, 2: 2])
        try checkNNUNet(f.folder, expectedCases: 6)
        // 0/255 masks become consecutive 0/1.
        let cxr = try DatasetAdapters.load(try phantom(.cxr, scratch, sites: 1, count: 3, size: 32) + "/MCU")
        let c = try DatasetExport.nnunet([cxr], parent: scratch.file("raw"), options: .init(id: 10, name: "C"))
        try checkNNUNet(c.folder, expectedCases: 3)
    }

    @Test("MONAI datalist: one image and one label path per entry, combined labels written once, splits kept")
    func monai() throws {
        let scratch = Scratch("export-monai")
        defer { scratch.cleanup() }
        let cxr = try DatasetAdapters.load(try phantom(.cxr, scratch, sites: 1, count: 10, size: 24) + "/MCU")
        let r = try DatasetExport.monai([cxr], to: scratch.file("out/datalist.json"), validationFraction: 0.2, seed: 3)
        #expect(r.training == 8 && r.validation == 2)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch.file("out/datalist.json")))) as! [String: Any]
        for e in (json["training"] as! [[String: String]]) + (json["validation"] as! [[String: String]]) {
            let label = try ImageIO.read(e["label"]!)
            #expect(Set(label.voxels).isSubset(of: [0, 1]))
            #expect(try ImageIO.readGeometry(e["image"]!).shape.prefix(2) == (try ImageIO.readGeometry(e["label"]!)).shape.prefix(2))
        }
    }

    @Test("the preprocessing cache computes once per parameter set and recomputes changed sources")
    func cache() throws {
        let scratch = Scratch("cache")
        defer { scratch.cleanup() }
        let d = try DatasetAdapters.load(try phantom(.prostate, scratch, sites: 1, count: 3, size: 20))
        let params = PreprocessCache.Parameters(spacing: [4, 4, 4], normalize: "zscore")
        let cache = try PreprocessCache(root: scratch.file("cache"), parameters: params)
        let (entries, computed) = try cache.prepare(d.samples)
        #expect(computed == 3 && entries.count == 3)
        let array = try NPYReader.read(cache.folder + "/" + entries[0].image)
        let values = array.floats()
        let mean = values.reduce(0, +) / Float(values.count)
        #expect(abs(mean) < 1e-3)
        #expect(abs(entries[0].spacing[2] - 4) < 1e-6)
        #expect(try cache.prepare(d.samples).computed == 0)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(5)], ofItemAtPath: d.samples[1].images[0])
        #expect(try cache.prepare(d.samples).computed == 1)
        let other = try PreprocessCache(root: scratch.file("cache"), parameters: .init(normalize: "minmax"))
        #expect(other.folder != cache.folder)
        #expect(throws: DataError.self) { try PreprocessCache(root: scratch.path, parameters: .init(normalize: "bogus")) }
    }
}

@Suite("Patient-grouped splits")
struct PatientSplitTests {
    /// 40 cases of 13 patients over two sites (some patients scanned at both), 5 cases without a key.
    func dataset() -> Dataset {
        var samples: [Sample] = []
        for i in 0..<35 {
            let patient = "p\(i % 13)"
            samples.append(Sample(id: "c\(i)", images: ["/x/c\(i).nii"], labels: ["/x/c\(i)_seg.nii"], site: i % 2 == 0 ? "A" : "B",
                                  tags: ["patient": patient]))
        }
        for i in 35..<40 { samples.append(Sample(id: "c\(i)", images: ["/x/c\(i).nii"], labels: ["/x/c\(i)_seg.nii"], site: "A")) }
        let report = AdapterReport(adapter: "test", samples: samples.count, labeled: samples.count, problems: [], notes: [])
        return Dataset(name: "t", root: "/x", samples: samples, sites: [Site(name: "A", modality: ""), Site(name: "B", modality: "")], report: report)
    }

    @Test("no patient on both sides, every case placed once, parts near their shares, seeded")
    func split() {
        let d = dataset()
        for seed: UInt64 in [1, 2, 3] {
            let (train, held) = d.trainValidationSplit(seed: seed, validationFraction: 0.25)
            #expect(train.count + held.count == 40)
            #expect(Set((train + held).map(\.id)).count == 40)
            let trainPatients = Set(train.compactMap { $0.tags["patient"] }), heldPatients = Set(held.compactMap { $0.tags["patient"] })
            #expect(trainPatients.isDisjoint(with: heldPatients))
            // Patients hold up to 3 cases: the held-out part is within one patient of its 10-case share.
            #expect(abs(held.count - 10) <= 3)
            let again = d.trainValidationSplit(seed: seed, validationFraction: 0.25)
            #expect(again.validation.map(\.id) == held.map(\.id))
        }
        #expect(d.trainValidationSplit(seed: 1, validationFraction: 0.25).validation.map(\.id)
                != d.trainValidationSplit(seed: 2, validationFraction: 0.25).validation.map(\.id))
    }
}
