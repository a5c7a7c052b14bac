import Foundation
import Testing
import TestSupport
import MedFormats
import MedImage

/// Issue 22's reproductions (findings, round 2): each failed (crash, silent wrong result, lost data) before its fix.
@Suite("Findings, round 2: crashes, silent wrong results, lost data")
struct FindingsRound2CLITests {
    func oneLineError(_ r: (status: Int32, stdout: String, stderr: String), _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 1, "status \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        #expect(errors.count == 1 && r.stderr.split(separator: "\n").last?.hasPrefix("error: ") == true, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(fragment), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    func phantom(_ s: Scratch, _ benchmark: String = "cxr", count: Int = 6, size: Int = 32, seed: Int = 1, name: String? = nil) throws -> String {
        let data = s.file(name ?? benchmark)
        let r = try Tool.run(["phantom", "--benchmark", benchmark, "--count", String(count), "--size", String(size), "--seed", String(seed), "--out", data, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        return data
    }

    func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    func csvRows(_ path: String) throws -> [[String]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    // 1.
    @Test("an MAE whose attention cannot fit is refused before reading any image, naming the size, the patch and what fits (it aborted asking for 34 GB)")
    func maeMemory() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s)
        let r = try Tool.run(["pretrain", "--data", data, "--sites", "MCU", "--width", "48", "--depth", "2", "--heads", "3", "--epochs", "1", "--batch", "8",
                              "--size", "1024", "--patch", "8", "--out", s.file("mae")])
        oneLineError(r, "--size 1024 with --patch 8 has 16384 patches per image")
        #expect(r.stderr.contains("above the memory limit of 4.0 GiB") && r.stderr.contains("fits: --size "), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.file("mae")))
        // What it names fits the limit at that patch: a multiple of the patch, below the size asked for.
        let fit = try #require(r.stderr.range(of: #"--size (\d+) or less"#, options: .regularExpression).map { String(r.stderr[$0].split(separator: " ")[1]) })
        #expect(Int(fit).map { $0 % 8 == 0 && $0 < 1024 && $0 >= 8 } == true, "\(fit)")
    }

    // 2.
    @Test("evaluate --ref-data pairs predictions with their own site's cases (HK's Case00 was scored against UCL's); an ambiguous name is refused with its candidates")
    func evaluateAcrossSites() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s, "prostate", count: 2, size: 32)
        #expect(try Tool.run(["train", "--data", data, "--sites", "UCL,RUNMC", "--size", "32", "--epochs", "1", "--batch", "2", "--base", "4", "--levels", "2",
                              "--validation-fraction", "0", "--out", s.file("m")]).status == 0)
        let p = try Tool.run(["predict", "--checkpoint", s.file("m/checkpoint.safetensors"), "--input", data + "/HK", "--out", s.file("pred_hk")])
        #expect(p.status == 0, "\(p.stderr)")
        // The independent expectation: the same predictions against HK's own label files.
        try FileManager.default.createDirectory(atPath: s.file("hk_ref"), withIntermediateDirectories: true)
        for f in try FileManager.default.contentsOfDirectory(atPath: data + "/HK") where f.contains("_Segmentation") {
            try FileManager.default.copyItem(atPath: data + "/HK/" + f, toPath: s.file("hk_ref/" + f))
        }
        #expect(try Tool.run(["evaluate", "--pred", s.file("pred_hk"), "--ref", s.file("hk_ref"), "--csv", s.file("own.csv")]).status == 0)
        let r = try Tool.run(["evaluate", "--pred", s.file("pred_hk"), "--ref-data", data, "--csv", s.file("data.csv")])
        #expect(r.status == 0, "\(r.stderr)")
        let own = try csvRows(s.file("own.csv")).dropFirst(), byData = try csvRows(s.file("data.csv")).dropFirst()
        #expect(byData.count == 2 && byData.allSatisfy { $0[1] == "HK" }, "\(byData)")
        // case,label,dice against case,site,label,dice: the same Dice per case; --ref-data names the benchmark's cases.
        #expect(own.map { [$0[0], $0[2]] } == byData.map { [String($0[0].dropFirst(3)), $0[3]] } && byData.map { $0[0] } == ["HK_Case00", "HK_Case01"],
                "\(own) vs \(byData)")
        // Without predict's record of the images, a name every site has is ambiguous: refused, candidates named.
        try FileManager.default.createDirectory(atPath: s.file("bare"), withIntermediateDirectories: true)
        for f in ["Case00.nii.gz", "Case01.nii.gz"] { try FileManager.default.copyItem(atPath: s.file("pred_hk/" + f), toPath: s.file("bare/" + f)) }
        oneLineError(try Tool.run(["evaluate", "--pred", s.file("bare"), "--ref-data", data]), "matches 5 labeled cases")
        let narrowed = try Tool.run(["evaluate", "--pred", s.file("bare"), "--ref-data", data, "--ref-sites", "HK", "--csv", s.file("n.csv")])
        #expect(narrowed.status == 0, "\(narrowed.stderr)")
        #expect(try csvRows(s.file("n.csv")).dropFirst().map { $0[3] } == byData.map { $0[3] })
    }

    // 3.
    @Test("sites --results with an experiment's cases.csv uses the unadapted model's rows, takes --strategy/--budget, and refuses several models per case (it blended them all)")
    func sitesResults() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s)
        #expect(try Tool.run(["embed", "--data", data, "--split", "all", "--out", s.file("e.npy")]).status == 0)
        let ids = try csvRows(s.file("e.ids.csv")).dropFirst().filter { $0.count == 2 }
        // Dice by model: none 0.5, random at budget 3 0.8, random at budget 5 0.9 (two seeds each), for every case.
        var text = "strategy,budget,seed,round,case,site,label,dice,hausdorff95_mm,assd_mm\n"
        for r in ids {
            text += "none,0,0,1,\(r[0]),\(r[1]),1,0.5,1,1\n"
            for seed in 0..<2 { text += "random,3,\(seed),1,\(r[0]),\(r[1]),1,0.8,1,1\nrandom,5,\(seed),1,\(r[0]),\(r[1]),1,0.9,1,1\n" }
        }
        let cases = s.write(Array(text.utf8), "cases.csv")
        func meanDice(_ out: String) throws -> [String] {
            let rows = try csvRows(out + "/sites.csv")
            let c = try #require(rows[0].firstIndex(of: "mean_dice"))
            return rows.dropFirst().filter { $0.count > c && $0[2] == "0" }.map { $0[c] }
        }
        let base = ["sites", "--data", data, "--source", "MCU", "--embeddings", s.file("e.npy"), "--permutations", "19", "--results", cases]
        #expect(try Tool.run(base + ["--out", s.file("a")]).status == 0)
        let a = try meanDice(s.file("a"))
        #expect(a.count == 4 && a.allSatisfy { Double($0) == 0.5 }, "\(a)")
        oneLineError(try Tool.run(base + ["--strategy", "random", "--out", s.file("b")]), "strategy random has 2 models per case")
        #expect(try Tool.run(base + ["--strategy", "random", "--budget", "3", "--out", s.file("c")]).status == 0)
        #expect(try meanDice(s.file("c")).allSatisfy { abs((Double($0) ?? 0) - 0.8) < 1e-9 })
        oneLineError(try Tool.run(base + ["--strategy", "coreset", "--out", s.file("d")]), "no rows of strategy coreset")
    }

    // 4.
    @Test("budgets that resolve to the same count are refused (rows were duplicated and pairs counted twice)")
    func duplicateBudgets() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s, count: 8)
        func config(_ budgets: String) -> String {
            s.write(Array(#"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN"], "strategies": ["random"], "budgets": \#(budgets)}"#.utf8), "e\(budgets.hashValue).json")
        }
        let plan = try Tool.run(["run", config("[3]"), "--out", s.file("p"), "--plan-only"])
        #expect(plan.status == 0, "\(plan.stderr)")
        let pool = try #require(plan.stderr.range(of: #"(\d+) target pool cases"#, options: .regularExpression).map { Int(plan.stderr[$0].split(separator: " ")[0]) ?? 0 })
        // A share that rounds to 3 cases of this pool.
        let share = String(format: "%.4f%%", 3.0 / Double(pool) * 100)
        oneLineError(try Tool.run(["run", config(#"[3, "\#(share)"]"#), "--out", s.file("q")]), "budgets 3 and \(share) are both 3 cases")
        let r = try Tool.run(["run", config("[3, 3]"), "--out", s.file("r")])
        #expect(r.status == 1 && r.stderr.contains("budgets 3 and 3 are both 3 cases"), "\(r.stderr)")
    }

    // 5, 9.
    @Test("embed-merge checks each part's ids against its manifest (an edited ids file merged) and refuses to write over a part")
    func mergeChecks() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s)
        for i in 0..<2 {
            let r = try Tool.run(["embed", "--data", data, "--size", "8", "--shard", "\(i)/2", "--out", s.file("part-\(i).npy")])
            #expect(r.status == 0 && r.stderr.contains("sharded thumbnails are not projected"), "\(r.stderr)")
        }
        let parts = [s.file("part-0.npy"), s.file("part-1.npy")]
        #expect(try Tool.run(["embed-merge"] + parts + ["--out", s.file("all.npy")]).status == 0)
        // Writing over a part (or its ids) is refused and the part is left as it was.
        let before = try Data(contentsOf: URL(fileURLWithPath: parts[0]))
        oneLineError(try Tool.run(["embed-merge"] + parts + ["--out", parts[0]]), "is one of the parts to merge")
        #expect(try Data(contentsOf: URL(fileURLWithPath: parts[0])) == before)
        // An edited ids file: two ids swapped.
        var lines = try String(contentsOfFile: s.file("part-0.ids.csv"), encoding: .utf8).split(separator: "\n").map(String.init)
        lines.swapAt(1, 2)
        try (lines.joined(separator: "\n") + "\n").write(toFile: s.file("part-0.ids.csv"), atomically: true, encoding: .utf8)
        oneLineError(try Tool.run(["embed-merge"] + parts + ["--out", s.file("bad.npy")]), "part-0.ids.csv: its ids")
        #expect(!FileManager.default.fileExists(atPath: s.file("bad.npy")))
        // A manifest from before the per-part hash: the whole list is still checked against the cases' fingerprint.
        var manifest = try json(s.file("part-0.shard.json"))
        manifest.removeValue(forKey: "part_ids")
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: s.file("part-0.shard.json")))
        oneLineError(try Tool.run(["embed-merge"] + parts + ["--out", s.file("bad.npy")]), "are not the cases their manifests record")
    }

    // 7.
    @Test("the site report gives one classifier AUC (and MMD) per pair: the heat map's source pairs equal the table's")
    func oneAUC() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s, count: 8)
        #expect(try Tool.run(["sites", "--data", data, "--source", "MCU", "--permutations", "19", "--out", s.file("r")]).status == 0)
        let report = try json(s.file("r/sites.json"))
        let sites = try #require(report["sites"] as? [[String: Any]])
        let pairwise = try #require(report["pairwise"] as? [String: Any])
        let names = try #require(pairwise["sites"] as? [String])
        let auc = try #require(pairwise["classifier_auc"] as? [[Double]]), mmd = try #require(pairwise["mmd"] as? [[Double]])
        let source = try #require(names.firstIndex(of: "MCU"))
        var checked = 0
        for site in sites where (site["is_source"] as? Bool) == false {
            let name = try #require(site["name"] as? String), j = try #require(names.firstIndex(of: name))
            let d = try #require(site["distance_to_source"] as? [String: Any])
            #expect(d["classifier_auc"] as? Double == auc[source][j] && auc[j][source] == auc[source][j], "\(name)")
            #expect(d["mmd"] as? Double == mmd[source][j], "\(name)")
            checked += 1
        }
        #expect(checked == 4)
    }

    // 8, 12, and the summary's label volume (16).
    @Test("imported labels belong to the index (absolute copies beside it): the hand-off folder can go and train --db works from another directory; a selection from an unlabeled pool trains without a validation split taken from it")
    func importedLabelsOwned() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s, count: 6)
        try FileManager.default.removeItem(atPath: data + "/CHN/mask")   // the hospital's site: unlabeled
        let db = s.file("i.sqlite")
        #expect(try Tool.run(["index", data, "--db", db, "--quiet"]).status == 0)
        // The real flow: embed --split all, select, worklist, annotate, import (from inside the scratch folder, with
        // relative paths, as a user would).
        #expect(try Tool.run(["embed", "--db", "i.sqlite", "--sites", "CHN", "--split", "all", "--out", "pool.npy"], directory: s.path).status == 0)
        #expect(try Tool.run(["select", "--embeddings", "pool.npy", "--strategy", "coreset", "--budget", "3", "--out", "sel.json"], directory: s.path).status == 0)
        #expect(try Tool.run(["worklist", "sel.json", "--db", "i.sqlite", "--out", "todo"], directory: s.path).status == 0)
        let picked = try json(s.file("sel.json"))["selected"] as? [String] ?? []
        #expect(picked.count == 3)
        func annotate(_ id: String) throws {
            let image = try ImageIO.read(data + "/CHN/CXR_png/" + id + ".png")
            var label = MedicalImage(shape: ImageShape(image.shape.x, image.shape.y), affine: image.affine, kind: .labelMap)
            for j in 6..<20 { for i in 6..<20 { label.voxels[j * image.shape.x + i] = 1 } }
            try ImageIO.write(label, to: s.file("todo/labels/" + id + ".png"), options: .init(storedType: .uint8, pngBitDepth: 8))
        }
        // Two of three annotated: training on the selection says which case still waits for its label.
        for id in picked.prefix(2) { try annotate(id) }
        #expect(try Tool.run(["import-labels", "todo", "--db", "i.sqlite"], directory: s.path).stdout.contains("imported 2"))
        oneLineError(try Tool.run(["train", "--db", db, "--sites", "CHN", "--selection", s.file("sel.json"), "--size", "32", "--epochs", "1", "--batch", "2",
                                   "--base", "4", "--levels", "2", "--out", s.file("early")]), "1 selected case has no label yet (first: \(picked[2]))")
        try annotate(picked[2])
        let imported = try Tool.run(["import-labels", "todo", "--db", "i.sqlite"], directory: s.path)
        #expect(imported.status == 0 && imported.stdout.contains("imported 3"), "\(imported.stderr)")
        // The hand-off folder goes; the index still has its labels, and the summary their area (14 x 14 pixels).
        try FileManager.default.removeItem(atPath: s.file("todo"))
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: s.file("i.labels"))) == Set(picked.map { $0 + ".png" }))
        let summary = try Tool.run(["summary", "--db", db, "--json"])
        #expect(summary.status == 0)
        let chn = (try JSONSerialization.jsonObject(with: Data(summary.stdout.utf8)) as? [[String: Any]])?.first { $0["site"] as? String == "CHN" }
        let volumes = chn?["label_volumes_mm3_mean_sd"] as? [String: Any]
        #expect(volumes?["1"] != nil, "\(String(describing: chn))")
        // Training from another directory on the selection: no refusal about validation cases; the 3 selected train.
        try FileManager.default.createDirectory(atPath: s.file("elsewhere"), withIntermediateDirectories: true)
        let t = try Tool.run(["train", "--db", db, "--sites", "CHN", "--selection", s.file("sel.json"), "--size", "32", "--epochs", "1", "--batch", "2",
                              "--base", "4", "--levels", "2", "--out", "run"], directory: s.file("elsewhere"))
        #expect(t.status == 0 && t.stderr.contains("[train] 3 training and 0 validation cases") && t.stderr.contains("none is held out"), "\(t.stderr)")
    }

    // 10.
    @Test("Ctrl-C on run --workers 2 stops the local worker too (it went on writing items after the parent exited)")
    func interruptStopsWorkers() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s, count: 8)
        let text = #"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN", "SiteC"], "strategies": ["random", "coreset"], "budgets": ["3"], "seeds": [0, 1, 2], "#
            + #""train": {"size": 32, "epochs": 40, "source_epochs": 40, "base": 4, "levels": 2}}"#
        let exp = s.write(Array(text.utf8), "exp.json")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Tool.binary)
        p.arguments = ["run", exp, "--out", s.file("run"), "--workers", "2"]
        p.standardOutput = Pipe(); p.standardError = Pipe()
        try p.run()
        func workers() -> [Int32] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
                guard let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
                let args = String(decoding: cmd, as: UTF8.self)
                return args.contains("--worker\u{0}") && args.contains(s.file("run"))
            }
        }
        var started = Date()
        while workers().isEmpty && Date().timeIntervalSince(started) < 60 { usleep(100_000) }
        #expect(!workers().isEmpty, "no local worker appeared")
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        #expect(p.terminationStatus == 128 + SIGINT, "parent status \(p.terminationStatus)")
        started = Date()
        while !workers().isEmpty && Date().timeIntervalSince(started) < 30 { usleep(100_000) }
        #expect(workers().isEmpty, "workers still running: \(workers())")
    }

    // 11.
    @Test("a second train into a folder another train is writing is refused; predict into a folder of predictions needs --overwrite")
    func oneWriter() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s, count: 6)
        let args = ["train", "--data", data, "--sites", "MCU", "--size", "32", "--batch", "2", "--base", "4", "--levels", "2", "--out", s.file("run")]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Tool.binary)
        p.arguments = args + ["--epochs", "200"]
        p.standardOutput = Pipe(); p.standardError = Pipe()
        try p.run()
        let started = Date()
        while !((try? String(contentsOfFile: s.file("run/.medselect.lock"), encoding: .utf8)) ?? "").contains("medselect train") && Date().timeIntervalSince(started) < 60 {
            usleep(50_000)
        }
        let second = try Tool.run(args + ["--epochs", "1"])
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        oneLineError(second, "another medselect process is writing into this folder (medselect train, process \(p.processIdentifier)")
        // Once the first is gone (killed: the kernel drops its lock), the folder is free again.
        #expect(try Tool.run(["train", "--data", data, "--sites", "MCU", "--size", "32", "--batch", "2", "--base", "4", "--levels", "2", "--epochs", "1",
                              "--out", s.file("run2")]).status == 0)
        let predict = ["predict", "--checkpoint", s.file("run2/checkpoint.safetensors"), "--input", data + "/MCU/CXR_png", "--out", s.file("pred")]
        #expect(try Tool.run(predict).status == 0)
        oneLineError(try Tool.run(predict), "already holds predictions")
        #expect(try Tool.run(predict + ["--overwrite"]).status == 0)
    }

    // 13.
    @Test("evaluate names and counts predictions without a reference (they were dropped silently); an empty folder says so")
    func evaluateUnmatched() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s, count: 3)
        let masks = try FileManager.default.contentsOfDirectory(atPath: data + "/CHN/mask").filter { $0.hasSuffix("_mask.png") }.sorted()
        try FileManager.default.createDirectory(atPath: s.file("pred"), withIntermediateDirectories: true)
        for m in masks { try FileManager.default.copyItem(atPath: data + "/CHN/mask/" + m, toPath: s.file("pred/" + m.replacingOccurrences(of: "_mask", with: ""))) }
        try FileManager.default.copyItem(atPath: data + "/CHN/mask/" + masks[0], toPath: s.file("pred/STRAY_0001.png"))
        let r = try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref", data + "/CHN/mask"])
        #expect(r.status == 0 && r.stderr.contains("1 of \(masks.count + 1) predictions have no reference") && r.stderr.contains("STRAY_0001"), "\(r.stderr)")
        #expect(r.stdout.contains("\(masks.count) of \(masks.count + 1) predictions scored, 1 without a reference skipped"), "\(r.stdout)")
        try FileManager.default.createDirectory(atPath: s.file("empty"), withIntermediateDirectories: true)
        oneLineError(try Tool.run(["evaluate", "--pred", s.file("empty"), "--ref", data + "/CHN/mask"]), "holds no prediction")
    }

    // 15, 16 (embed).
    @Test("embed checks its output folders first, names the sites when --sites is wrong, skips non-images with a note and damaged images with --skip-unreadable, and reports its usage errors with its own usage")
    func embedFirstContact() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s, count: 4)
        oneLineError(try Tool.run(["embed", "--data", data, "--out", s.file("missing/e.npy")]), "does not exist")
        oneLineError(try Tool.run(["embed", "--data", data, "--source-sites", "MCU", "--source-out", s.file("missing/s.npy"), "--out", s.file("e.npy")]), "does not exist")
        oneLineError(try Tool.run(["embed", "--data", data, "--sites", "NOPE", "--out", s.file("e.npy")]), "--sites: no site NOPE (sites: CHN, MCU, SiteC, SiteD, SiteE)")
        let usage = try Tool.run(["embed", "--out", s.file("e.npy")])
        #expect(usage.status == 64 && usage.stderr.contains("give --data DIR") && usage.stderr.contains("medselect embed"), "\(usage.stderr)")
        // The plainest layout: images/ with a stray readme.txt and a truncated PNG.
        let folder = s.file("plain")
        try FileManager.default.createDirectory(atPath: folder + "/images", withIntermediateDirectories: true)
        let pngs = try FileManager.default.contentsOfDirectory(atPath: data + "/CHN/CXR_png").sorted()
        for f in pngs { try FileManager.default.copyItem(atPath: data + "/CHN/CXR_png/" + f, toPath: folder + "/images/" + f) }
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: folder + "/images/readme.txt"))
        let ok = try Tool.run(["embed", "--data", folder, "--benchmark", "folder", "--out", s.file("p.npy")])
        #expect(ok.status == 0 && ok.stderr.contains("1 file not used (e.g. \(folder)/images/readme.txt: not an image file; ignored)"), "\(ok.stderr)")
        #expect(ok.stdout.contains("embedded \(pngs.count) cases"))
        let whole = try Data(contentsOf: URL(fileURLWithPath: folder + "/images/" + pngs[0]))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: folder + "/images/" + pngs[0]))
        #expect(try Tool.run(["embed", "--data", folder, "--benchmark", "folder", "--out", s.file("q.npy")]).status == 1)
        let skipped = try Tool.run(["embed", "--data", folder, "--benchmark", "folder", "--skip-unreadable", "--out", s.file("q.npy")])
        #expect(skipped.status == 0 && skipped.stderr.contains("skipped 1 unreadable case") && skipped.stdout.contains("embedded \(pngs.count - 1) cases"), "\(skipped.stderr)")
        let ids = try csvRows(s.file("q.ids.csv")).dropFirst().filter { $0.count == 2 }.map { $0[0] }
        #expect(ids.count == pngs.count - 1 && !ids.contains((pngs[0] as NSString).deletingPathExtension))
        #expect(try NPYReader.readMatrix(s.file("q.npy")).rows == pngs.count - 1)
    }

    @Test("the new options' bad values: --ref-sites, --xssr-alpha, sites --strategy without --results, a damaged predictions.csv, an output folder that cannot be made")
    func newOptionsBadInput() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s, count: 3)
        let masks = try FileManager.default.contentsOfDirectory(atPath: data + "/CHN/mask").filter { $0.hasSuffix("_mask.png") }.sorted()
        try FileManager.default.createDirectory(atPath: s.file("pred"), withIntermediateDirectories: true)
        for m in masks { try FileManager.default.copyItem(atPath: data + "/CHN/mask/" + m, toPath: s.file("pred/" + m.replacingOccurrences(of: "_mask", with: ""))) }
        oneLineError(try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref-data", data, "--ref-sites", "NOPE"]), "--ref-sites: no site NOPE")
        let noData = try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref", data + "/CHN/mask", "--ref-sites", "CHN"])
        #expect(noData.status == 64 && noData.stderr.contains("--ref-sites needs --ref-data"), "\(noData.stderr)")
        try Data("prediction,image\nonly-one-field\n".utf8).write(to: URL(fileURLWithPath: s.file("pred/predictions.csv")))
        oneLineError(try Tool.run(["evaluate", "--pred", s.file("pred"), "--ref-data", data]), "predictions.csv: row 1 has no prediction and image")
        try NPYWriter.write(NDArray(float32: (0..<40).map { Float($0 % 7) }, shape: [10, 4], fortranOrder: false), to: s.file("e.npy"))
        for (args, message) in [(["--strategy", "coreset", "--xssr-alpha", "0.5"], "--xssr-alpha goes with --strategy xssr"),
                                (["--strategy", "xssr", "--xssr-alpha", "2"], "--xssr-alpha must be in [0, 1]")] {
            let r = try Tool.run(["select", "--embeddings", s.file("e.npy"), "--budget", "2", "--out", s.file("x.json")] + args)
            #expect(r.status == 64 && r.stderr.contains(message), "\(r.stderr)")
        }
        let sites = try Tool.run(["sites", "--data", data, "--source", "MCU", "--strategy", "none", "--out", s.file("s")])
        #expect(sites.status == 64 && sites.stderr.contains("--strategy and --budget choose rows of --results"), "\(sites.stderr)")
        // An output "folder" that is a file cannot be made: one line, before any work.
        let file = s.write(Array("x".utf8), "afile")
        oneLineError(try Tool.run(["train", "--data", data, "--sites", "MCU", "--size", "32", "--epochs", "1", "--out", file + "/run"]), "cannot create the output folder")
    }

    // 16 (select).
    @Test("select: --budget -1 is a bad value (not a missing one), 100% with --labeled means all that remain, (0, D) and identical embeddings say what is wrong, XSSR without --source says so")
    func selectRoughEdges() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        var values: [Float] = []
        var g = SystemRandomNumberGenerator()
        for _ in 0..<(12 * 4) { values.append(Float.random(in: 0...1, using: &g)) }
        try NPYWriter.write(NDArray(float32: values, shape: [12, 4], fortranOrder: false), to: s.file("e.npy"))
        let minus = try Tool.run(["select", "--embeddings", s.file("e.npy"), "--strategy", "random", "--budget", "-1", "--out", s.file("a.json")])
        #expect(minus.status == 64 && minus.stderr.contains("The value '-1' is invalid for '--budget"), "\(minus.stderr)")
        let all = try Tool.run(["select", "--embeddings", s.file("e.npy"), "--strategy", "coreset", "--budget", "100%", "--labeled", "0,1,2", "--out", s.file("b.json")])
        #expect(all.status == 0, "\(all.stderr)")
        let picked = try json(s.file("b.json"))["selected"] as? [String] ?? []
        #expect(Set(picked) == Set((3..<12).map(String.init)), "\(picked)")
        try NPYWriter.write(NDArray(float32: [], shape: [0, 4], fortranOrder: false), to: s.file("empty.npy"))
        oneLineError(try Tool.run(["select", "--embeddings", s.file("empty.npy"), "--strategy", "random", "--budget", "1", "--out", s.file("c.json")]), "has no rows")
        try NPYWriter.write(NDArray(float32: [Float](repeating: 0.25, count: 48), shape: [12, 4], fortranOrder: false), to: s.file("same.npy"))
        oneLineError(try Tool.run(["select", "--embeddings", s.file("same.npy"), "--strategy", "coldstart", "--budget", "3", "--out", s.file("d.json")]), "all 12 rows are identical")
        let xssr = try Tool.run(["select", "--embeddings", s.file("e.npy"), "--strategy", "xssr", "--budget", "3", "--out", s.file("x.json")])
        #expect(xssr.status == 0 && xssr.stderr.contains("note: xssr ran without --source: the novelty term"), "\(xssr.stderr)")
        #expect((try json(s.file("x.json"))["notes"] as? [String])?.first?.contains("without --source") == true)
    }

    // 16 (pretrain).
    @Test("pretrain: --mask-ratio 0 is a usage error, a longer resumed run says its schedule changed, a diverging run warns")
    func pretrainRoughEdges() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        let data = try phantom(s, count: 4)
        let base = ["pretrain", "--data", data, "--sites", "MCU", "--size", "16", "--patch", "8", "--width", "8", "--depth", "1", "--heads", "2",
                    "--decoder-width", "8", "--decoder-depth", "1", "--decoder-heads", "2", "--batch", "2", "--preview-every", "0"]
        let zero = try Tool.run(base + ["--mask-ratio", "0", "--epochs", "1", "--out", s.file("z")])
        #expect(zero.status == 64 && zero.stderr.contains("must hide at least one patch"), "\(zero.stderr)")
        #expect(try Tool.run(base + ["--epochs", "1", "--out", s.file("a")]).status == 0)
        let longer = try Tool.run(base + ["--epochs", "2", "--out", s.file("a")])
        #expect(longer.status == 0 && longer.stderr.contains("holds a run of 1 epoch, resumed as a run of 2"), "\(longer.stderr)")
        let wild = try Tool.run(base + ["--epochs", "3", "--lr", "1e6", "--out", s.file("w")])
        #expect(wild.status == 0 && wild.stderr.contains("warning: the pretraining diverged"), "\(wild.stderr)")
    }

    // 16 (advise, metrics).
    @Test("advise gives no interval from two seeds and writes '10 to more than 28'-style intervals in words; metrics with both masks empty says there is nothing to score")
    func adviseAndMetrics() throws {
        let s = Scratch("f2"); defer { s.cleanup() }
        var text = "strategy,budget,seed,round,site,labeled,cases,dice,hd95,assd,selection\n"
        for seed in 0..<2 {
            for (n, d) in [(2, 0.60), (4, 0.75), (8, 0.85), (16, 0.90)] { text += "random,\(n),\(seed),1,A,\(n),5,\(d + 0.01 * Double(seed)),1,1,\n" }
            text += "full,100%,\(seed),1,A,28,5,0.93,1,1,\n"
        }
        let results = s.write(Array(text.utf8), "results.csv")
        let r = try Tool.run(["advise", results])
        #expect(r.status == 0 && r.stdout.contains("no interval: 2 seeds: an interval over seeds needs at least 3") && !r.stdout.contains("-> "), "\(r.stdout)")
        let zeros = [Float](repeating: 0, count: 64)
        try NPYWriter.write(NDArray(float32: zeros, shape: [8, 8], fortranOrder: false), to: s.file("z.npy"))
        let m = try Tool.run(["metrics", s.file("z.npy"), s.file("z.npy")])
        #expect(m.status == 0 && m.stdout.hasPrefix("no foreground label in the prediction or the reference: nothing to score"), "\(m.stdout)")
    }
}
