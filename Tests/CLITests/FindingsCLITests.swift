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

@Suite("Findings: silent wrong results in the workflow")
struct WorkflowFindingsCLITests {
    func oneLineError(_ r: (status: Int32, stdout: String, stderr: String), _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 1, "status \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        #expect(errors.count == 1 && r.stderr.hasSuffix("\n") && r.stderr.split(separator: "\n").last?.hasPrefix("error: ") == true, "\(r.stderr)",
                sourceLocation: sourceLocation)
        #expect(r.stderr.contains(fragment), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test("predictions 0/1 against masks 0/255 are refused with advice; --remap and --ref-data (the benchmark's label rule) score them (Dice was 0 everywhere)")
    func disjointLabels() throws {
        let s = Scratch("wf"); defer { s.cleanup() }
        let data = s.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "4", "--size", "32", "--seed", "3", "--out", data, "--quiet"]).status == 0)
        // "Predictions": the Shenzhen-layout site's masks as 0/1 label maps named like its images.
        let masks = try FileManager.default.contentsOfDirectory(atPath: data + "/CHN/mask").filter { $0.hasSuffix("_mask.png") }.sorted()
        #expect(!masks.isEmpty)
        try FileManager.default.createDirectory(atPath: s.file("pred"), withIntermediateDirectories: true)
        for m in masks {
            let name = m.replacingOccurrences(of: "_mask.png", with: ".png")
            #expect(try Tool.run(["convert", data + "/CHN/mask/" + m, s.file("pred/" + name), "--label", "--remap", "255:1"]).status == 0)
        }
        oneLineError(try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref", data + "/CHN/mask"]), "share no foreground value, so every score would be 0: relabel the reference (--remap 255:1)")
        oneLineError(try Tool.run(["metrics", s.file("pred/" + masks[0].replacingOccurrences(of: "_mask.png", with: ".png")), data + "/CHN/mask/" + masks[0]]), "--remap 255:1")
        for args in [["--ref", data + "/CHN/mask", "--remap", "255:1"], ["--ref-data", data]] {
            let r = try Tool.run(["evaluate", "--pred", s.file("pred")] + args + ["--csv", s.file("m.csv")])
            #expect(r.status == 0, "\(r.stderr)")
            let rows = try String(contentsOfFile: s.file("m.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
            #expect(rows.count == masks.count && rows.allSatisfy { $0.contains(",1,1.0000,") }, "\(rows)")
        }
        // Per-site columns come from the benchmark with --ref-data.
        #expect(try String(contentsOfFile: s.file("m.csv"), encoding: .utf8).hasPrefix("case,site,label,dice"))
        // With the benchmark's label rule the labels are known: a prediction of label 2 only, where the reference has
        // label 1 only, is a wrong prediction and scores Dice 0 (a poor model on a shifted site), not a refusal.
        try FileManager.default.createDirectory(atPath: s.file("pred2"), withIntermediateDirectories: true)
        for m in masks {
            let name = m.replacingOccurrences(of: "_mask.png", with: ".png")
            #expect(try Tool.run(["convert", data + "/CHN/mask/" + m, s.file("pred2/" + name), "--label", "--remap", "255:2"]).status == 0)
        }
        let wrong = try Tool.run(["evaluate", "--pred", s.file("pred2"), "--ref-data", data, "--csv", s.file("m2.csv")])
        #expect(wrong.status == 0, "\(wrong.stderr)")
        let wrongRows = try String(contentsOfFile: s.file("m2.csv"), encoding: .utf8).split(separator: "\n").dropFirst().filter { $0.contains(",1,") }
        #expect(wrongRows.count == masks.count && wrongRows.allSatisfy { $0.contains(",1,0.0000,") }, "\(wrongRows)")
        // An output folder that does not exist is refused before any work.
        oneLineError(try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref-data", data, "--csv", s.file("nodir/m.csv")]), "does not exist")
    }

    @Test("a run folder is resumed only by the same run (a 32-px run reused 64-px weights); phantom refuses a non-empty folder unless --replace (old cases mixed in)")
    func staleState() throws {
        let s = Scratch("wf"); defer { s.cleanup() }
        let data = s.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "6", "--size", "32", "--seed", "4", "--out", data, "--quiet"]).status == 0)
        let run = s.file("run")
        let first = try Tool.run(["train", "--data", data, "--sites", "MCU", "--size", "32", "--epochs", "1", "--batch", "2", "--out", run])
        #expect(first.status == 0, "\(first.stderr)")
        oneLineError(try Tool.run(["train", "--data", data, "--sites", "MCU", "--size", "16", "--epochs", "1", "--batch", "2", "--out", run]),
                     "holds a run with another configuration (image size 16 (this run) vs 32 (the folder's run))")
        // The same command resumes (nothing left to do) and succeeds.
        #expect(try Tool.run(["train", "--data", data, "--sites", "MCU", "--size", "32", "--epochs", "1", "--batch", "2", "--out", run]).status == 0)
        // Scoring without training: no claim of files it does not write.
        let scored = try Tool.run(["train", "--data", data, "--sites", "MCU", "--size", "32", "--epochs", "0", "--batch", "2",
                                   "--init-from", run + "/checkpoint.safetensors", "--out", s.file("scored")])
        #expect(scored.status == 0 && scored.stdout.hasPrefix("scored ") && !scored.stdout.contains("curve.svg") && !scored.stdout.contains("nan"), "\(scored.stdout)")
        // (Hidden files aside: .medselect.lock holds the folder while a command writes into it.)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: s.file("scored")).filter { !$0.hasPrefix(".") }) == ["summary.json", "validation_metrics.csv"])
        oneLineError(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "2", "--size", "32", "--out", data, "--quiet"]), "the folder is not empty")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "2", "--size", "32", "--out", data, "--replace", "--quiet"]).status == 0)
        let cases = try String(contentsOfFile: data + "/phantom_cases.csv", encoding: .utf8).split(separator: "\n").count - 1
        #expect(cases == 2 * 5, "only the new cases remain")   // 5 sites in the graded preset
        // --replace does not empty a folder that phantom did not write.
        oneLineError(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "2", "--size", "32", "--out", run, "--replace", "--quiet"]), "only empties a folder that medselect phantom wrote")
    }

    @Test("select picks up embed's ids file; --stratify-by with the id,site file gives site quotas; other strategies refuse it (ids were row numbers; quotas ignored)")
    func selectIds() throws {
        let s = Scratch("wf"); defer { s.cleanup() }
        let data = s.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "8", "--size", "32", "--seed", "5", "--out", data, "--quiet"]).status == 0)
        #expect(try Tool.run(["embed", "--data", data, "--sites", "CHN,SiteC", "--out", s.file("t.npy")]).status == 0)
        let r = try Tool.run(["select", "--embeddings", s.file("t.npy"), "--strategy", "random", "--budget", "4", "--stratify-by", s.file("t.ids.csv"), "--out", s.file("sel.json")])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("sel.json")))) as? [String: Any])
        let picked = try #require(obj["selected"] as? [String])
        #expect(picked.filter { $0.hasPrefix("CHN") }.count == 2 && picked.filter { $0.hasPrefix("SC") }.count == 2, "\(picked)")
        let c = try Tool.run(["select", "--embeddings", s.file("t.npy"), "--strategy", "coreset", "--budget", "4", "--stratify-by", s.file("t.ids.csv"), "--out", s.file("c.json")])
        #expect(c.status != 0 && c.stderr.contains("--stratify-by applies to --strategy random only"))
    }

    @Test("predict skips files named like label maps and refuses a folder with no image (it exited 0 having written nothing)")
    func predictInputs() throws {
        let s = Scratch("wf"); defer { s.cleanup() }
        let data = s.file("pr")
        #expect(try Tool.run(["phantom", "--benchmark", "prostate", "--count", "2", "--size", "32", "--seed", "6", "--out", data, "--quiet"]).status == 0)
        let site = try #require(try FileManager.default.contentsOfDirectory(atPath: data).sorted().first { !$0.contains(".") })
        #expect(try Tool.run(["train", "--data", data, "--size", "32", "--epochs", "1", "--batch", "2", "--validation-fraction", "0", "--out", s.file("run")]).status == 0)
        let r = try Tool.run(["predict", "--checkpoint", s.file("run/checkpoint.safetensors"), "--input", data + "/" + site, "--out", s.file("pred")])
        #expect(r.status == 0 && r.stderr.contains("note: skipped 2 files named like label maps"), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.file("pred")).filter { !$0.hasPrefix(".") }.sorted() == ["Case00.nii.gz", "Case01.nii.gz", "predictions.csv"])
        try FileManager.default.createDirectory(atPath: s.file("empty"), withIntermediateDirectories: true)
        oneLineError(try Tool.run(["predict", "--checkpoint", s.file("run/checkpoint.safetensors"), "--input", s.file("empty"), "--out", s.file("p2")]), "no image to segment")
    }
}

@Suite("Findings: first contact")
struct FirstContactCLITests {
    static let commands = ["inspect", "convert", "metrics", "evaluate", "distance-map", "embed", "uncertainty", "select", "phantom", "index",
                           "summary", "export", "cache", "train", "predict", "bench io", "bench ops", "bench select", "bench scale", "bench unet"]

    @Test("help texts are paragraphs wrapped by the terminal, not hard-wrapped lines re-wrapped at 80 columns", arguments: commands)
    func helpIsNotRagged(command: String) throws {
        let r = try Tool.run(command.split(separator: " ").map(String.init) + ["--help"], environment: ["COLUMNS": "80"])
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let usage = try #require(lines.firstIndex { $0.hasPrefix("USAGE:") })
        // In the overview and discussion, a line shorter than 50 characters followed by more text of the same
        // paragraph (not an example, a list item or a heading) is a hard break re-wrapped.
        for i in 0..<max(0, usage - 1) {
            let (line, next) = (lines[i], lines[i + 1])
            guard !line.isEmpty, !next.isEmpty, !next.hasPrefix("Example"), !next.hasPrefix("-"), !line.hasSuffix(":") else { continue }
            #expect(line.count >= 50, "ragged help line in \(command): '\(line)' followed by '\(next)'")
        }
    }
}

@Suite("Findings: clear errors before work")
struct ClearErrorsCLITests {
    @Test("a failed first index run leaves no empty database; embeddings with NaN name the row and id")
    func nothingLeftBehind() throws {
        let s = Scratch("ce"); defer { s.cleanup() }
        let r = try Tool.run(["index", s.file("nowhere"), "--db", s.file("i.sqlite")])
        #expect(r.status == 1 && !FileManager.default.fileExists(atPath: s.file("i.sqlite")), "\(r.stderr)")
        var v = [Float](repeating: 1, count: 12)
        v[7] = .nan
        try NPYWriter.write(NDArray(float32: v, shape: [4, 3], fortranOrder: false), to: s.file("e.npy"))
        _ = s.write(Array("id\na\nb\nc\nd\n".utf8), "e.ids.csv")
        let sel = try Tool.run(["select", "--embeddings", s.file("e.npy"), "--strategy", "coreset", "--budget", "2", "--out", s.file("x.json")])
        #expect(sel.status == 1 && sel.stderr.contains("row 2 (id c), column 1 of the embeddings is nan"), "\(sel.stderr)")
    }
}
