import Foundation
import Testing
import TestSupport
import MedTensor
import MedFormats
import MedImage

@Suite("medselect phantom, index, summary, export")
struct DataCLITests {
    @Test("index killed mid-way leaves a consistent database; the next run completes it and a third reads nothing")
    func killedIndex() throws {
        let scratch = Scratch("cli-index-kill")
        defer { scratch.cleanup() }
        let root = scratch.file("cxr")
        let gen = try Tool.run(["phantom", "--benchmark", "cxr", "--count", "150", "--size", "24", "--seed", "1", "--out", root, "--quiet"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let db = scratch.file("index.sqlite")
        // Start indexing with tiny transactions and kill it as soon as it reports its first committed batch.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Tool.binary)
        p.arguments = ["index", root, "--db", db, "--batch-size", "5"]
        p.environment = ProcessInfo.processInfo.environment.merging(["MEDSELECT_PROGRESS_INTERVAL": "0"]) { $1 }   // a line per batch
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        var seen = ""
        while !seen.contains("files (") {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal, "the run finished before it could be killed: \(seen)")
        let second = try Tool.run(["index", root, "--db", db, "--quiet"])
        #expect(second.status == 0, "\(second.stderr)")
        // "files: N (R read, U unchanged, ...)": the killed run had committed some files, the second finished the rest.
        func counts(_ text: String) -> (files: Int, read: Int, unchanged: Int)? {
            guard let r = text.range(of: #"files: (\d+) \((\d+) read, (\d+) unchanged"#, options: .regularExpression) else { return nil }
            let n = text[r].split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            return (n[0], n[1], n[2])
        }
        let c2 = try #require(counts(second.stdout), "\(second.stdout)")
        #expect(c2.unchanged >= 5 && c2.read > 0 && c2.read + c2.unchanged == c2.files, "\(second.stdout)")
        let third = try Tool.run(["index", root, "--db", db, "--quiet"])
        let c3 = try #require(counts(third.stdout))
        #expect(c3.read == 0 && c3.unchanged == c2.files)
        let summary = try Tool.run(["summary", "--db", db, "--json"])
        let rows = try JSONSerialization.jsonObject(with: Data(summary.stdout.utf8)) as! [[String: Any]]
        #expect(rows.map { $0["cases"] as! Int }.reduce(0, +) == 750)
    }

    @Test("bad input reaches the user as one line and exit 1")
    func errors() throws {
        let scratch = Scratch("cli-data-errors")
        defer { scratch.cleanup() }
        let badSites = scratch.file("sites.json")
        try #"{"benchmark": "cxr", "sites": [{"name": "A", "distance": 0, "noise": 3}]}"#.write(toFile: badSites, atomically: true, encoding: .utf8)
        for args in [["phantom", "--benchmark", "cxr", "--sites", badSites, "--out", scratch.file("o")],
                     ["index", scratch.file("nowhere"), "--db", scratch.file("i.sqlite")],
                     ["summary", "--db", scratch.file("missing.sqlite")],
                     ["index", scratch.path, "--db", scratch.file("i2.sqlite"), "--benchmark", "nope"]] {
            let r = try Tool.run(args)
            #expect(r.status == 1, "\(args)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("error: "), "\(args): \(r.stderr)")
        }
    }
}

@Suite("medselect train")
struct TrainCLITests {
    @Test("killed mid-run and started again, training ends with the same weights as an uninterrupted run")
    func killAndResume() throws {
        let scratch = Scratch("cli-train")
        defer { scratch.cleanup() }
        let data = scratch.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "10", "--size", "32", "--seed", "2", "--out", data, "--quiet"]).status == 0)
        let args = ["train", "--data", data, "--sites", "MCU", "--size", "32", "--epochs", "5", "--batch", "4", "--base", "4", "--levels", "2", "--seed", "3"]
        let a = try Tool.run(args + ["--out", scratch.file("a")])
        #expect(a.status == 0, "\(a.stderr)")
        // Second run: kill it once it has finished two epochs (mid-way through the third), then run the same command.
        let killed = try Tool.runKilled(args + ["--out", scratch.file("b")], after: "epoch 2/5")
        #expect(killed.killed, "finished before the kill: \(killed.stderr)")
        let b = try Tool.run(args + ["--out", scratch.file("b")])
        #expect(b.status == 0, "\(b.stderr)")
        #expect(!b.stderr.contains("epoch 1/5"), "the resumed run should start after the checkpointed epochs: \(b.stderr)")
        let (wa, _) = try Safetensors.read(scratch.file("a/checkpoint.safetensors"))
        let (wb, _) = try Safetensors.read(scratch.file("b/checkpoint.safetensors"))
        let names = wa.keys.sorted()
        #expect(names.contains("head.weight") && names.contains("down.0.1.running_mean") && names == wb.keys.sorted())
        for n in names { #expect(wa[n]!.data == wb[n]!.data, "\(n) differs") }
        #expect(FileManager.default.fileExists(atPath: scratch.file("b/curve.svg")))
        let history = try String(contentsOfFile: scratch.file("b/history.csv"), encoding: .utf8)
        #expect(history.split(separator: "\n").count == 6)
        // Prediction writes one label map per image, on the image's own grid, at native size or resampled.
        for extra in [[], ["--native", "--tta"]] {
            let out = scratch.file("pred\(extra.count)")
            let r = try Tool.run(["predict", "--checkpoint", scratch.file("a/checkpoint.safetensors"), "--input", data + "/MCU/CXR_png", "--out", out] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            for f in try FileManager.default.contentsOfDirectory(atPath: data + "/MCU/CXR_png") {
                let image = try ImageIO.read(data + "/MCU/CXR_png/" + f), label = try ImageIO.read(out + "/" + f)
                #expect(label.shape == ImageShape(image.shape.x, image.shape.y) && Set(label.voxels).isSubset(of: [0, 1]))
                #expect(zip(label.spacing, image.spacing).allSatisfy { abs($0 - $1) < 1e-3 })
            }
        }
        let bad = try Tool.run(["predict", "--checkpoint", data + "/phantom_cases.csv", "--input", data, "--out", scratch.file("x")])
        #expect(bad.status == 1 && bad.stderr.hasPrefix("error: "))
    }
}

@Suite("medselect embed, select, train --selection --init-from")
struct SelectionFlowCLITests {
    @Test("embed follows train's split; a selection fine-tunes the source model; leaks, unknown ids and mismatched models are refused")
    func flow() throws {
        let scratch = Scratch("cli-flow")
        defer { scratch.cleanup() }
        let data = scratch.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "10", "--size", "32", "--seed", "4", "--out", data, "--quiet"]).status == 0)
        let small = ["--size", "32", "--batch", "4", "--base", "4", "--levels", "2"]
        let source = try Tool.run(["train", "--data", data, "--sites", "MCU", "--epochs", "3", "--seed", "0", "--out", scratch.file("source")] + small)
        #expect(source.status == 0, "\(source.stderr)")
        // Train and validation parts of the target sites: disjoint, together every labeled target case.
        func ids(_ npy: String) throws -> [String] {
            let text = try String(contentsOfFile: String(npy.dropLast(4)) + ".ids.csv", encoding: .utf8)
            return text.split(separator: "\n").dropFirst().map { String($0.split(separator: ",")[0]) }
        }
        var parts: [String: [String]] = [:]
        for split in ["train", "validation", "all"] {
            let out = scratch.file("\(split).npy")
            let r = try Tool.run(["embed", "--data", data, "--source-sites", "MCU", "--source-out", scratch.file("src-\(split).npy"),
                                  "--split", split, "--pca", "5", "--out", out])
            #expect(r.status == 0, "\(r.stderr)")
            parts[split] = try ids(out)
            let m = try NPYReader.read(out)
            #expect(m.shape == [parts[split]!.count, 5])
            #expect(try ids(scratch.file("src-\(split).npy")).allSatisfy { $0.hasPrefix("MCU") })
        }
        let train = Set(parts["train"]!), validation = Set(parts["validation"]!)
        #expect(train.isDisjoint(with: validation) && !validation.isEmpty)
        #expect(train.union(validation).isSubset(of: Set(parts["all"]!)) && !train.contains { $0.hasPrefix("MCU") })
        // No PCA: the thumbnail pixels (32 x 32 = 1,024 values per case).
        #expect(try Tool.run(["embed", "--data", data, "--sites", "MCU", "--pca", "0", "--out", scratch.file("raw.npy")]).status == 0)
        #expect(try NPYReader.read(scratch.file("raw.npy")).shape.last == 1024)

        let target = ["--data", data, "--sites", "CHN,SiteC,SiteD,SiteE"] + small
        let initArgs = ["--init-from", scratch.file("source/checkpoint.safetensors")]
        // Zero epochs from the source model = scoring it: on MCU's own split it reproduces the source run's figure.
        let again = try Tool.run(["train", "--data", data, "--sites", "MCU", "--epochs", "0", "--seed", "0", "--out", scratch.file("again")] + small + initArgs)
        #expect(again.status == 0, "\(again.stderr)")
        func summary(_ run: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch.file(run + "/summary.json")))) as! [String: Any]
        }
        let d0 = try summary("source")["validation_dice_native"] as! Double, d1 = try summary("again")["validation_dice_native"] as! Double
        #expect(abs(d0 - d1) < 1e-9, "\(d0) vs \(d1)")

        let pick = try Tool.run(["select", "--embeddings", scratch.file("train.npy"), "--ids", scratch.file("train.ids.csv"),
                                 "--source", scratch.file("src-train.npy"), "--strategy", "xssr", "--budget", "3", "--seed", "0", "--out", scratch.file("sel.json")])
        #expect(pick.status == 0, "\(pick.stderr)")
        let tuned = try Tool.run(["train"] + target + ["--epochs", "2", "--seed", "5", "--split-seed", "0", "--selection", scratch.file("sel.json"),
                                                     "--out", scratch.file("tuned")] + initArgs)
        #expect(tuned.status == 0, "\(tuned.stderr)")
        let s = try summary("tuned")
        #expect(s["training_cases"] as? Int == 3 && s["validation_cases"] as? Int == validation.count)

        // Round 2: the tuned model's uncertainty on the pool; with alpha = 1 acquisition takes the most uncertain
        // unlabeled cases, in order; training on the round's JSON uses the labeled and the new cases.
        let u = try Tool.run(["uncertainty", "--checkpoint", scratch.file("tuned/checkpoint.safetensors"), "--data", data,
                              "--sites", "CHN,SiteC,SiteD,SiteE", "--split", "train", "--out", scratch.file("u.csv")])
        #expect(u.status == 0, "\(u.stderr)")
        let rows = try String(contentsOfFile: scratch.file("u.csv"), encoding: .utf8).split(separator: "\n").dropFirst().map { $0.split(separator: ",") }
        let scores = Dictionary(uniqueKeysWithValues: rows.map { (String($0[0]), Double($0[2])!) })
        #expect(Set(scores.keys) == train && scores.values.allSatisfy { (0...1).contains($0) })
        let round1 = (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch.file("sel.json")))) as! [String: Any])["selected"] as! [String]
        let acq = try Tool.run(["select", "--embeddings", scratch.file("train.npy"), "--ids", scratch.file("train.ids.csv"), "--strategy", "acquisition",
                                "--uncertainty", scratch.file("u.csv"), "--alpha", "1", "--labeled", round1.joined(separator: ","), "--budget", "2",
                                "--out", scratch.file("round2.json")])
        #expect(acq.status == 0, "\(acq.stderr)")
        let round2 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch.file("round2.json")))) as! [String: Any]
        let expected = scores.filter { !round1.contains($0.key) }.sorted { $0.value > $1.value }.prefix(2).map(\.key)
        #expect(round2["selected"] as! [String] == expected && round2["labeled"] as! [String] == round1)
        let tuned2 = try Tool.run(["train"] + target + ["--epochs", "1", "--seed", "5", "--split-seed", "0", "--selection", scratch.file("round2.json"),
                                                      "--out", scratch.file("tuned2")] + ["--init-from", scratch.file("tuned/checkpoint.safetensors")])
        #expect(tuned2.status == 0, "\(tuned2.stderr)")
        #expect(try summary("tuned2")["training_cases"] as? Int == 5)
        let partial = scratch.file("partial.csv")
        try "id,site,uncertainty\n\(expected[0]),X,0.5\n".write(toFile: partial, atomically: true, encoding: .utf8)
        // Uncertainty with a file that is not a checkpoint, or on images with another channel count (RGB fundus for a
        // gray model), is refused with the path and the reason.
        let fundus = scratch.file("fundus")
        #expect(try Tool.run(["phantom", "--benchmark", "fundus", "--count", "4", "--size", "32", "--seed", "1", "--out", fundus, "--quiet"]).status == 0)
        for args in [["--checkpoint", data + "/phantom_cases.csv", "--data", data],
                     ["--checkpoint", scratch.file("tuned/checkpoint.safetensors"), "--data", fundus]] {
            let r = try Tool.run(["uncertainty"] + args + ["--out", scratch.file("bad.csv")])
            #expect(r.status == 1 && r.stderr.hasPrefix("error: ") && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
        for args in [["--strategy", "acquisition"], ["--strategy", "acquisition", "--uncertainty", partial]] {
            let r = try Tool.run(["select", "--embeddings", scratch.file("train.npy"), "--ids", scratch.file("train.ids.csv"), "--budget", "1",
                                  "--out", scratch.file("bad.json")] + args)
            #expect(r.status != 0 && r.stderr.lowercased().contains("error"), "\(args): \(r.stderr)")
        }

        // A selection holding a validation case, or an id the dataset does not have, is refused with the reason.
        for (name, chosen) in [("leak", [parts["validation"]![0]]), ("unknown", ["NOT_A_CASE"])] {
            let path = scratch.file("\(name).json")
            try JSONSerialization.data(withJSONObject: ["selected": chosen]).write(to: URL(fileURLWithPath: path))
            let r = try Tool.run(["train"] + target + ["--epochs", "1", "--seed", "0", "--selection", path, "--out", scratch.file(name)])
            #expect(r.status == 1 && r.stderr.hasPrefix("error: ") && r.stderr.contains(name == "leak" ? "validation cases" : "not training cases"), "\(r.stderr)")
        }
        // A truncated image stops embed with its path and the reason (cases are read in parallel).
        let broken = data + "/CHN/CXR_png/" + (try FileManager.default.contentsOfDirectory(atPath: data + "/CHN/CXR_png").sorted()[0])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: broken))
        try bytes.prefix(100).write(to: URL(fileURLWithPath: broken))
        let cut = try Tool.run(["embed", "--data", data, "--out", scratch.file("cut.npy")])
        #expect(cut.status == 1 && cut.stderr.hasPrefix("error: \(broken): ") && cut.stderr.contains("truncated"), "\(cut.stderr)")
        try bytes.write(to: URL(fileURLWithPath: broken))
        let mismatch = try Tool.run(["train"] + target + ["--epochs", "1", "--base", "8", "--out", scratch.file("mm")] + initArgs)
        #expect(mismatch.status == 1 && mismatch.stderr.contains("does not match"), "\(mismatch.stderr)")
        for args in [["embed", "--data", data, "--method", "mae", "--out", scratch.file("x.npy")],
                     ["embed", "--data", data, "--source-sites", "MCU", "--out", scratch.file("x.npy")],
                     ["embed", "--data", data, "--sites", "Nowhere", "--out", scratch.file("x.npy")]] {
            let r = try Tool.run(args)
            #expect(r.status != 0 && (r.stderr.hasPrefix("Error: ") || r.stderr.hasPrefix("error: ")), "\(args): \(r.stderr)")
        }
    }
}
