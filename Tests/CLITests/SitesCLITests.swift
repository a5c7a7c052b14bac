import Foundation
import Testing
import TestSupport
import MedFormats

@Suite("medselect sites")
struct SitesCLITests {
    func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    @Test("graded phantom: outputs, every measure ranks the sites by their known distance, the farthest site differs significantly, results correlate")
    func graded() throws {
        let s = Scratch("sites"); defer { s.cleanup() }
        let data = s.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "24", "--size", "48", "--seed", "2", "--out", data, "--quiet"]).status == 0)
        // Per-case results: a made-up Dice that falls with the site's known distance (as a model trained on MCU would).
        let cases = try String(contentsOfFile: data + "/phantom_cases.csv", encoding: .utf8).split(separator: "\n").dropFirst().map { $0.split(separator: ",") }
        let results = "case,dice,hausdorff95_mm\n" + cases.map { "\($0[3]),\(0.95 - 0.3 * Double($0[2])!),\(2 + 10 * Double($0[2])!)" }.joined(separator: "\n") + "\n"
        _ = s.write(Array(results.utf8), "results.csv")
        let r = try Tool.run(["sites", "--data", data, "--source", "MCU", "--results", s.file("results.csv"), "--permutations", "199", "--out", s.file("report")])
        #expect(r.status == 0, "\(r.stderr)")
        for f in ["sites.json", "sites.csv", "cases.csv", "report.html"] { #expect(FileManager.default.fileExists(atPath: s.file("report/" + f)), "\(f)") }
        let obj = try json(s.file("report/sites.json"))
        let sites = try #require(obj["sites"] as? [[String: Any]])
        #expect(sites.count == 5 && obj["source"] as? [String] == ["MCU"])
        let truth = ["CHN": 0.25, "SiteC": 0.5, "SiteD": 0.75, "SiteE": 1.0]
        let targets = sites.filter { ($0["is_source"] as? Bool) == false }
        // Spearman of each embedding measure with the known distances, over the four target sites (the issue asks
        // for at least 0.8: one swap of neighbouring sites at most).
        func ranks(_ v: [Double]) -> [Double] { v.map { x in Double(v.filter { $0 < x }.count) + 1 } }
        for m in ["mmd", "frechet", "knn", "intensity_w1"] {
            let values = targets.map { (($0["distance_to_source"] as? [String: Any])?[m] as? Double ?? .nan, truth[$0["name"] as! String]!) }
            let (a, b) = (ranks(values.map(\.0)), ranks(values.map(\.1)))
            let spearman = 1 - 6 * zip(a, b).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(4 * 15)
            #expect(spearman >= 0.8, "\(m): Spearman \(spearman), \(values)")
        }
        let farthest = try #require(targets.first { $0["name"] as? String == "SiteE" })
        #expect((farthest["mmd_p_value_holm"] as? Double ?? 1) < 0.05 && (farthest["mmd_p_value"] as? Double ?? 0) > 0)
        let pair = try #require(obj["pairwise"] as? [String: Any])
        #expect((pair["mmd"] as? [[Double]])?.count == 5 && (pair["mmd_p_value_holm"] as? [[Double]])?[0][0] == 1)
        // Dice falls with every embedding distance: negative Spearman, with an interval.
        let perf = try #require(obj["performance"] as? [String: Any])
        let knn = try #require((perf["correlations"] as? [[String: Any]])?.first { $0["measure"] as? String == "knn" && $0["outcome"] as? String == "dice" })
        #expect(knn["spearman"] as? Double == -1 && (knn["spearman_95"] as? [Double])?.count == 2)
        let html = try String(contentsOfFile: s.file("report/report.html"), encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("data:image/png;base64,") && !html.contains("<script") && !html.contains("http://www.w3.org/2000/svg\" src"))
        #expect(html.contains("SiteE: strongest shift"))
        let csvRows = try String(contentsOfFile: s.file("report/cases.csv"), encoding: .utf8).split(separator: "\n")
        #expect(csvRows.count == 1 + 5 * 24 && csvRows[0].hasPrefix("id,site,distance_to_source,mean,range,cv,snr"))
    }

    @Test("from an index alone, and from embed's embeddings: the same sites, cases and measures as from the folder")
    func indexAndEmbeddings() throws {
        let s = Scratch("sites"); defer { s.cleanup() }
        let data = s.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "10", "--size", "40", "--seed", "4", "--out", data, "--quiet"]).status == 0)
        #expect(try Tool.run(["index", data, "--db", s.file("index.sqlite")]).status == 0)
        #expect(try Tool.run(["embed", "--data", data, "--out", s.file("e.npy")]).status == 0)
        let runs = [("folder", ["--data", data]), ("index", ["--db", s.file("index.sqlite")]),
                    ("embeddings", ["--data", data, "--embeddings", s.file("e.npy")])]
        var reports: [String: [String: [String: Any]]] = [:]
        for (name, args) in runs {
            let r = try Tool.run(["sites"] + args + ["--source", "MCU", "--permutations", "99", "--out", s.file(name)])
            #expect(r.status == 0, "\(name): \(r.stderr)")
            let sites = try #require(try json(s.file(name + "/sites.json"))["sites"] as? [[String: Any]])
            reports[name] = Dictionary(uniqueKeysWithValues: sites.map { ($0["name"] as! String, $0) })
        }
        let folder = try #require(reports["folder"])
        #expect(folder.keys.sorted() == ["CHN", "MCU", "SiteC", "SiteD", "SiteE"])
        for other in ["index", "embeddings"] {
            let o = try #require(reports[other])
            #expect(o.keys.sorted() == folder.keys.sorted(), "\(other)")
            for (site, f) in folder {
                #expect(o[site]?["cases"] as? Int == f["cases"] as? Int && f["cases"] as? Int == 10, "\(other) \(site)")
                // Quality and intensities come from the images whatever the route; the embedding measures agree
                // because embed makes the same thumbnail + PCA rows the command makes itself.
                let (qa, qb) = (f["quality"] as? [String: Double] ?? [:], o[site]?["quality"] as? [String: Double] ?? [:])
                #expect(!qa.isEmpty && qa.keys.allSatisfy { abs(qa[$0]! - (qb[$0] ?? .nan)) <= 1e-9 * max(1, abs(qa[$0]!)) }, "\(other) \(site)")
                guard site != "MCU" else { continue }
                let (da, db) = (f["distance_to_source"] as! [String: Any], o[site]!["distance_to_source"] as! [String: Any])
                for m in ["mmd", "frechet", "knn", "intensity_w1"] {
                    let (x, y) = (da[m] as? Double ?? .nan, db[m] as? Double ?? .nan)
                    #expect(abs(x - y) <= 1e-3 * max(1, abs(x)), "\(other) \(site) \(m): \(x) vs \(y)")
                }
            }
        }
    }

    @Test("bad input is one clear line: a one-case site, an unknown source, embeddings and ids of different lengths, results whose ids do not match")
    func badInput() throws {
        let s = Scratch("sites"); defer { s.cleanup() }
        let data = s.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "3", "--size", "32", "--seed", "3", "--out", data, "--quiet"]).status == 0)
        func oneLine(_ args: [String], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let r = try Tool.run(["sites", "--data", data] + args + ["--out", s.file("r")])
            let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
            #expect(r.status == 1 && errors.count == 1 && r.stderr.contains(fragment), "\(r.stderr)", sourceLocation: sourceLocation)
        }
        try oneLine(["--source", "XYZ"], "the source site XYZ is not in the data (sites: CHN, MCU, SiteC, SiteD, SiteE)")
        // A site with one case: keep only one of SiteE's images.
        let one = s.file("one")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "3", "--size", "32", "--seed", "3", "--out", one, "--quiet"]).status == 0)
        for name in try FileManager.default.contentsOfDirectory(atPath: one + "/SiteE/CXR_png").sorted().dropFirst() {
            try FileManager.default.removeItem(atPath: one + "/SiteE/CXR_png/" + name)
        }
        let r1 = try Tool.run(["sites", "--data", one, "--source", "MCU", "--out", s.file("r1")])
        #expect(r1.status == 1 && r1.stderr.contains("site SiteE has 1 case; every site needs at least 2"), "\(r1.stderr)")
        // Embeddings and ids of different lengths.
        try NPYWriter.write(NDArray(float32: [Float](repeating: 1, count: 14 * 4), shape: [14, 4], fortranOrder: false), to: s.file("e.npy"))
        _ = s.write(Array(("id\n" + (0..<15).map { "c\($0)" }.joined(separator: "\n") + "\n").utf8), "e.ids.csv")
        try oneLine(["--source", "MCU", "--embeddings", s.file("e.npy")], "15 ids for 14 embedding rows")
        // Results whose ids are not cases.
        _ = s.write(Array("case,dice\nnobody,0.5\n".utf8), "res.csv")
        try oneLine(["--source", "MCU", "--results", s.file("res.csv")], "none of its case ids is a case of the data (first: nobody)")
    }

    @Test("--model: the Dice estimated without labels falls between the known Dice of the sites either side of it, and the report says where the model will work")
    func estimate() throws {
        let s = Scratch("cli-sites-estimate")
        defer { s.cleanup() }
        // A source model trained on one phantom's MCU; a second phantom of the same settings is analysed (its MCU cases,
        // labeled and never trained on, calibrate the estimate) and predicted + evaluated for the true Dice.
        for (seed, name) in [("3", "d1"), ("4", "d2")] {
            #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--preset", "hard", "--count", "16", "--size", "64", "--seed", seed, "--out", s.file(name), "--quiet"]).status == 0)
        }
        let trained = try Tool.run(["train", "--data", s.file("d1"), "--sites", "MCU", "--size", "32", "--epochs", "12", "--out", s.file("model")])
        #expect(trained.status == 0, "\(trained.stderr)")
        let sites = ["MCU", "CHN", "SiteC", "SiteD", "SiteE"]
        var truth = ""
        for site in sites {
            #expect(try Tool.run(["predict", "--checkpoint", s.file("model/checkpoint.safetensors"), "--input", s.file("d2/\(site)/CXR_png"), "--out", s.file("pred/\(site)")]).status == 0)
            #expect(try Tool.run(["evaluate", "--pred", s.file("pred/\(site)"), "--ref-data", s.file("d2"), "--csv", s.file("\(site).csv")]).status == 0)
            let lines = try String(contentsOfFile: s.file("\(site).csv"), encoding: .utf8).split(separator: "\n")
            truth += (truth.isEmpty ? lines : Array(lines.dropFirst())).joined(separator: "\n") + "\n"
        }
        try truth.write(toFile: s.file("true.csv"), atomically: true, encoding: .utf8)
        let r = try Tool.run(["sites", "--data", s.file("d2"), "--source", "MCU", "--model", s.file("model/checkpoint.safetensors"), "--results", s.file("true.csv"),
                              "--permutations", "99", "--out", s.file("out")])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("out/sites.json")))) as? [String: Any] ?? [:]
        let rows = Dictionary(uniqueKeysWithValues: (json["sites"] as? [[String: Any]] ?? []).map { ($0["name"] as? String ?? "", $0) })
        func estimate(_ site: String) -> Double { (rows[site]?["estimated_dice"] as? [String: Any])?["mean"] as? Double ?? .nan }
        func dice(_ site: String) -> Double { rows[site]?["mean_dice"] as? Double ?? .nan }
        // The middle site's estimate lies between the true Dice of the sites nearer and farther from the source; the far
        // sites' estimates lie below the near ones'.
        #expect(dice("SiteD") < estimate("SiteC") && estimate("SiteC") < dice("CHN"), "SiteC estimate \(estimate("SiteC")), CHN \(dice("CHN")), SiteD \(dice("SiteD"))")
        #expect(max(estimate("SiteD"), estimate("SiteE")) < min(estimate("CHN"), estimate("MCU")))
        let e = rows["SiteC"]?["estimated_dice"] as? [String: Any] ?? [:]
        #expect((e["low"] as? Double ?? 1) <= estimate("SiteC") && estimate("SiteC") <= (e["high"] as? Double ?? 0) && e["method"] as? String == "capped-regression")
        let account = json["dice_estimate"] as? [String: Any] ?? [:]
        #expect(account["calibration_cases"] as? Int == 16 && (account["check"] as? [String: Any])?.count == 6, "\(account)")
        // cases.csv: the estimate per case beside the true Dice; the report answers the question with contours.
        let header = try String(contentsOfFile: s.file("out/cases.csv"), encoding: .utf8).split(separator: "\n")[0]
        #expect(header.contains(",estimated_dice,estimated_dice_agreement,") && header.hasSuffix(",dice,hausdorff95_mm"))
        let html = try String(contentsOfFile: s.file("out/report.html"), encoding: .utf8)
        #expect(html.contains("Will the model work here?") && html.contains("SiteE: lowest estimates") && html.contains("Estimated against true Dice per site"))

        // With a model its encoder gives the embeddings by default; --embeddings thumbnails asks for thumbnails; the
        // encoder without a model is one clear line.
        #expect((json["embeddings"] as? String ?? "").hasPrefix("the source model's encoder features"), "\(json["embeddings"] ?? "")")
        let thumbnails = try Tool.run(["sites", "--data", s.file("d2"), "--source", "MCU", "--model", s.file("model/checkpoint.safetensors"), "--embeddings", "thumbnails",
                                       "--permutations", "99", "--out", s.file("thumbs")])
        #expect(thumbnails.status == 0, "\(thumbnails.stderr)")
        let described = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("thumbs/sites.json")))) as? [String: Any]
        #expect((described?["embeddings"] as? String ?? "").hasPrefix("thumbnail embeddings"), "\(described?["embeddings"] ?? "")")
        let missing = try Tool.run(["sites", "--data", s.file("d2"), "--source", "MCU", "--embeddings", "model", "--out", s.file("nomodel")])
        #expect(missing.status != 0 && missing.stderr.contains("--embeddings model uses the source model's encoder; give --model"))
        #expect(!FileManager.default.fileExists(atPath: s.file("nomodel")))
        let stray = try Tool.run(["sites", "--data", s.file("d2"), "--source", "MCU", "--embeddings", "thumbnails", "--ids", s.file("true.csv"), "--out", s.file("stray")])
        #expect(stray.status != 0 && stray.stderr.contains("--ids names the rows of an --embeddings file"))
    }
}
