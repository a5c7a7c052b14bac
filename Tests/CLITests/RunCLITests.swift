import Foundation
import Testing
import TestSupport
import MedFormats

@Suite("medselect run (experiments)")
struct RunCLITests {
    /// A tiny experiment on a fresh phantom: 2 target sites, 3 strategies, 1 budget, `seeds`.
    func config(_ s: Scratch, data: String, seeds: [Int] = [0], extra: String = "", name: String = "exp.json") -> String {
        let text = """
        {"data": "\(data)", "source_sites": ["MCU"], "target_sites": ["CHN", "SiteC"],
         "encoder": {"method": "mae", "epochs": 3, "size": 32, "patch": 8, "width": 16, "depth": 1, "heads": 2,
                     "decoder_width": 16, "decoder_depth": 1, "decoder_heads": 2},
         "strategies": ["random", "coreset", "xssr"], "budgets": ["3"], "seeds": \(seeds),
         "train": {"size": 32, "epochs": 2, "source_epochs": 3, "base": 4, "levels": 2}\(extra)}
        """
        return s.write(Array(text.utf8), name)
    }

    func phantom(_ s: Scratch) throws -> String {
        let data = s.file("cxr")
        let r = try Tool.run(["phantom", "--benchmark", "cxr", "--count", "8", "--size", "32", "--seed", "4", "--out", data, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        return data
    }

    func computed(_ stdout: String) -> Int? {
        guard let r = stdout.range(of: #"(\d+) item\(s\) computed"#, options: .regularExpression) else { return nil }
        return Int(stdout[r].split(separator: " ")[0])
    }

    @Test("a tiny experiment end to end: results per strategy x seed x site; a second run recomputes nothing; a new seed computes only its items; killed and restarted, or on two workers, the same results")
    func endToEnd() throws {
        let s = Scratch("cli-run")
        defer { s.cleanup() }
        let data = try phantom(s)
        let exp = config(s, data: data)
        let first = try Tool.run(["run", exp, "--out", s.file("a"), "--threads", "1"])
        #expect(first.status == 0, "\(first.stderr)")
        // Items: source model, encoder, embeddings, site analysis, baseline score, 3 selections + 3 fine-tunings,
        // full-data reference.
        #expect(computed(first.stdout) == 12, "\(first.stdout)")
        let results = try String(contentsOfFile: s.file("a/results.csv"), encoding: .utf8)
        // Published items keep their checkpoints, not the optimiser state an exact resume needed (twice their size).
        let kept = FileManager.default.enumerator(atPath: s.file("a/items"))?.compactMap { $0 as? String } ?? []
        #expect(kept.contains { $0.hasSuffix("checkpoint.safetensors") } && !kept.contains { ($0 as NSString).lastPathComponent.hasPrefix("optimizer-") }, "\(kept)")
        let lines = results.split(separator: "\n").map(String.init)
        #expect(lines[0] == "strategy,budget,seed,round,site,labeled,cases,dice,hd95,assd,selection")
        // (baseline + 3 strategies + full) x 2 target sites.
        #expect(lines.count == 1 + 5 * 2)
        let rows = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(Set(rows.map { $0[0] }) == ["none", "random", "coreset", "xssr", "full"])
        #expect(Set(rows.map { $0[4] }) == ["CHN", "SiteC"])
        for r in rows where ["random", "coreset", "xssr"].contains(r[0]) {
            #expect(r[5] == "3")
            let selection = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("a/" + r[10])))) as? [String: Any]
            let picked = selection?["selected"] as? [String] ?? []
            #expect(picked.count == 3 && Set(picked).count == 3)
            // Picks come from the target sites' pool only.
            #expect(picked.allSatisfy { $0.hasPrefix("CHNCXR") || $0.hasPrefix("SCCXR") }, "\(picked)")
            #expect((0...1).contains(Double(r[7]) ?? -1))
        }
        // The report: one self-contained page with the comparisons, the win matrix, the pool map and the picks.
        let report = try String(contentsOfFile: s.file("a/report.html"), encoding: .utf8)
        for part in ["Paired comparisons", "Win matrix", "The target pool and the picks", "data:image/png;base64,", "<svg",
                     "Dice against distance to the source"] {
            #expect(report.contains(part), "report.html lacks \(part)")
        }
        #expect(!report.contains("<script") && !report.contains("src=\"http") && !report.contains("href=\"http"))   // offline: nothing fetched
        // Each pair of strategies once in the report's table (results.json keeps both directions).
        #expect(report.contains("<td>coreset</td><td>random</td>") && !report.contains("<td>random</td><td>coreset</td>"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("a/results.json")))) as? [String: Any]
        #expect((json?["summary"] as? [[String: Any]])?.count == 5 && json?["config"] != nil && json?["medselect_version"] != nil)
        // The site analysis beside the results.
        let sitesCSV = try String(contentsOfFile: s.file("a/sites/sites.csv"), encoding: .utf8)
        #expect(FileManager.default.fileExists(atPath: s.file("a/sites/report.html")) && sitesCSV.split(separator: "\n").count == 4)
        // Every item published: no claim or work folder left behind.
        for stage in try FileManager.default.contentsOfDirectory(atPath: s.file("a/items")) {
            let entries = try FileManager.default.contentsOfDirectory(atPath: s.file("a/items/" + stage))
            #expect(entries.allSatisfy { !$0.hasSuffix(".lock") && !$0.hasSuffix(".work") }, "\(stage): \(entries)")
        }

        // Again: nothing to compute, same bytes.
        let again = try Tool.run(["run", exp, "--out", s.file("a"), "--threads", "1"])
        #expect(again.status == 0 && computed(again.stdout) == 0, "\(again.stdout)\(again.stderr)")
        #expect(try String(contentsOfFile: s.file("a/results.csv"), encoding: .utf8) == results)
        // A second seed: its 3 selections, 3 fine-tunings and full-data reference only.
        let twoSeeds = config(s, data: data, seeds: [0, 1], name: "exp2.json")
        let more = try Tool.run(["run", twoSeeds, "--out", s.file("a"), "--threads", "1"])
        #expect(more.status == 0 && computed(more.stdout) == 7, "\(more.stdout)\(more.stderr)")

        // An active-learning round after XSSR: acquisition and random continuations, 2 items each, nothing else.
        let rounds = config(s, data: data, extra: #", "active_learning": {"rounds": 2, "budget": 3, "after": ["xssr"]}"#, name: "exp3.json")
        let al = try Tool.run(["run", rounds, "--out", s.file("a"), "--threads", "1"])
        #expect(al.status == 0 && computed(al.stdout) == 4, "\(al.stdout)\(al.stderr)")
        let alRows = try String(contentsOfFile: s.file("a/results.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }.filter { $0[3] == "2" }
        #expect(Set(alRows.map { $0[0] }) == ["xssr+acquisition", "xssr+random"] && alRows.allSatisfy { $0[5] == "6" }, "\(alRows)")
        for r in alRows {
            let o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("a/" + r[10])))) as? [String: Any]
            let (labeled, picked) = (o?["labeled"] as? [String] ?? [], o?["selected"] as? [String] ?? [])
            #expect(labeled.count == 3 && picked.count == 3 && Set(labeled).isDisjoint(with: picked), "round 2 picks again what round 1 labeled")
        }
        #expect(try String(contentsOfFile: s.file("a/report.html"), encoding: .utf8).contains("Active-learning rounds"))

        // Two local workers: the same results as one.
        let two = try Tool.run(["run", exp, "--out", s.file("b"), "--workers", "2", "--threads", "1"])
        #expect(two.status == 0, "\(two.stderr)")
        #expect(try String(contentsOfFile: s.file("b/results.csv"), encoding: .utf8) == results)
        // Every item computed exactly once across the two workers.
        let counts = two.stderr.split(separator: "\n").filter { $0.contains("] [") && $0.contains("/12] ") }
        #expect(counts.count == 12, "\(two.stderr)")

        // Killed in the middle and started again: the same results.
        let killed = try Tool.runKilled(["run", exp, "--out", s.file("c"), "--threads", "1"], after: "/12] fine-tune")
        #expect(killed.killed, "finished before the kill: \(killed.stderr)")
        let resumed = try Tool.run(["run", exp, "--out", s.file("c"), "--threads", "1"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect((computed(resumed.stdout) ?? 0) < 12)
        #expect(try String(contentsOfFile: s.file("c/results.csv"), encoding: .utf8) == results)

        // Validating every 2nd epoch (and the last) instead of every epoch: the same items (the setting is not in
        // their keys) with the same final scores; the curves skip epoch 1 of the fine-tunings and 1 of the source model.
        let sparse = s.write(Array(try String(contentsOfFile: exp, encoding: .utf8)
            .replacingOccurrences(of: #""levels": 2}"#, with: #""levels": 2, "validate_every": 2}"#).utf8), "sparse.json")
        let d = try Tool.run(["run", sparse, "--out", s.file("d"), "--threads", "1"])
        #expect(d.status == 0 && computed(d.stdout) == 12, "\(d.stderr)")
        #expect(try String(contentsOfFile: s.file("d/results.csv"), encoding: .utf8) == results)
        let histories = (FileManager.default.enumerator(atPath: s.file("d/items"))?.compactMap { $0 as? String } ?? []).filter { $0.hasPrefix("train/") && $0.hasSuffix("/history.csv") }
        #expect(histories.count == 4)
        for h in histories {
            let validation = try String(contentsOfFile: s.file("d/items/\(h)"), encoding: .utf8).split(separator: "\n").dropFirst().map { $0.split(separator: ",")[2] }
            #expect(validation.count == 2 && validation[0] == "nan" && validation[1] != "nan", "\(h): \(validation)")
        }
    }

    @Test("XSSR ablations run at the alpha the full XSSR chose for the same budget and seed (they could only equal it when the sweep chose alpha 0)")
    func ablationsAtFullAlpha() throws {
        let s = Scratch("cli-run-alpha")
        defer { s.cleanup() }
        let data = try phantom(s)
        let text = #"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN", "SiteC"], "strategies": ["xssr", "xssr:density/diversity", "xssr:novelty/diversity"], "#
            + #""budgets": ["3"], "seeds": [0, 1], "site_analysis": false, "train": {"size": 32, "epochs": 1, "source_epochs": 1, "base": 4, "levels": 2}}"#
        let r = try Tool.run(["run", s.write(Array(text.utf8), "a.json"), "--out", s.file("a"), "--threads", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try String(contentsOfFile: s.file("a/results.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        func selection(_ strategy: String, _ seed: String) throws -> [String: Any] {
            let path = try #require(rows.first { $0[0] == strategy && $0[2] == seed }?[10])
            return try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("a/" + path)))) as? [String: Any])
        }
        for seed in ["0", "1"] {
            let full = try #require(try selection("xssr", seed)["alpha"] as? Double)
            #expect((try selection("xssr", seed)["parameters"] as? [String: Any])?["alpha_fixed"] == nil)
            for ablation in ["xssr:density/diversity", "xssr:novelty/diversity"] {
                let a = try selection(ablation, seed)
                #expect((a["parameters"] as? [String: Any])?["alpha_fixed"] as? Double == full, "\(ablation) seed \(seed)")
                #expect((a["coverage_curve"] as? [[String: Any]])?.count == 1)
            }
        }
        // The same through the command: select --xssr-alpha runs only that alpha.
        let one = try Tool.run(["select", "--embeddings", s.file("a/items/embed/" + (try FileManager.default.contentsOfDirectory(atPath: s.file("a/items/embed")).first { !$0.contains(".") } ?? "") + "/pool.npy"),
                                "--strategy", "xssr", "--xssr-alpha", "0.3", "--budget", "3", "--out", s.file("x.json")])
        #expect(one.status == 0, "\(one.stderr)")
        let x = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("x.json")))) as? [String: Any])
        #expect(x["alpha"] as? Double == 0.3 && (x["coverage_curve"] as? [Any])?.count == 1)
    }

    @Test("bad configurations get one line per problem and exit 1")
    func badConfigs() throws {
        let s = Scratch("cli-run-bad")
        defer { s.cleanup() }
        let data = try phantom(s)
        let cases: [(String, [String])] = [
            (#"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN"], "strategies": ["random"], "budgets": ["3"], "colour": 1}"#,
             ["unknown key 'colour'"]),
            (#"{"data": "nowhere", "source_sites": ["MCU"], "target_sites": ["CHN"], "strategies": ["random", "magic"], "budgets": ["0%"], "train": {"sise": 3}}"#,
             ["'data': no such folder", "unknown strategy 'magic'", "budget 0%", "unknown key 'train.sise'"]),
            (#"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN", "Mars"], "strategies": ["random"], "budgets": ["3"]}"#,
             ["site 'Mars' is not in"]),
            (#"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN"], "strategies": ["random"], "budgets": [400]}"#,
             ["budget 400 (400 cases) is larger than the target pool"]),
            ("not json", ["not a JSON object"]),
            (#"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN"], "strategies": ["xssr:density/magic", "xssr:novelty,density"], "budgets": [2]}"#,
             ["strategy 'xssr:density/magic'", "strategy 'xssr:novelty,density'"]),
            (#"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN"], "strategies": ["xssr:density/diversity"], "budgets": [1]}"#,
             ["budget 1 is 1 case"]),
            (#"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN"], "strategies": ["random"], "budgets": [2], "site_analysis": "yes", "train": {"start": ["scratch", "warm"]}}"#,
             ["'site_analysis' must be true or false", "'train.start' warm must be source, scratch, pretrained or single-domain"]),
            (#"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN"], "strategies": ["random"], "budgets": [2], "full_data": ["scratch"], "train": {"start": ["source", "single-domain"]}}"#,
             ["'full_data' names the start 'scratch', which is not in 'train.start'", "'train.start' single-domain needs 'encoder.method' hssl"]),
            (#"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN"], "strategies": ["random"], "budgets": [2], "full_data": "scratch"}"#,
             ["'full_data' must be true, false or a list of starts"]),
        ]
        for (i, (text, expected)) in cases.enumerated() {
            let path = s.write(Array(text.utf8), "bad\(i).json")
            let r = try Tool.run(["run", path, "--out", s.file("r\(i)")])
            let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
            #expect(r.status == 1 && errors.count == expected.count, "\(text): \(r.stderr)")
            for e in expected { #expect(errors.contains { $0.contains(e) }, "\(e) missing in \(r.stderr)") }
        }
    }

    @Test("a preset writes the protocol's full configuration to the run folder, then validates it like a file")
    func presets() throws {
        let s = Scratch("cli-run-preset")
        defer { s.cleanup() }
        let data = try phantom(s)
        let r = try Tool.run(["run", "--preset", "xssr", "--data", data, "--source-sites", "MCU", "--size", "32", "--budget", "400", "--out", s.file("p")])
        #expect(r.status == 1 && r.stderr.contains("budget 400 (400 cases) is larger than the target pool"), "\(r.stderr)")
        // A preset that fails validation writes nothing, so the corrected command is not blocked by it.
        #expect(!FileManager.default.fileExists(atPath: s.file("p/experiment.json")))
        let planned = try Tool.run(["run", "--preset", "xssr", "--data", data, "--source-sites", "MCU", "--size", "32", "--budget", "3", "--out", s.file("p"), "--plan-only"])
        #expect(planned.status == 0 && planned.stdout.contains("nothing computed (--plan-only)") && planned.stdout.contains("to do\tsource/"), "\(planned.stdout)\(planned.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.file("p/items")))
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("p/experiment.json")))) as? [String: Any]
        #expect(config?["strategies"] as? [String] == ["random", "coreset", "xssr", "xssr:novelty/diversity", "xssr:density/diversity", "xssr:density/novelty"])
        #expect(Set(config?["target_sites"] as? [String] ?? []) == ["CHN", "SiteC", "SiteD", "SiteE"])
        #expect((config?["encoder"] as? [String: Any])?["method"] as? String == "mae")
        // The same preset with other options into the same folder is refused.
        let other = try Tool.run(["run", "--preset", "xssr", "--data", data, "--source-sites", "MCU", "--size", "64", "--budget", "3", "--out", s.file("p")])
        #expect(other.status == 1 && other.stderr.contains("holds another configuration"), "\(other.stderr)")
        // HSSL: scratch, multi-domain and single-domain starts on the same random picks at 5 % (a phantom large enough
        // for 5 % to be 2 cases or more); the whole pool from scratch only; --pretrain-epochs sets the pretraining's.
        let larger = s.file("cxr20")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "20", "--size", "32", "--seed", "4", "--out", larger, "--quiet"]).status == 0)
        let hssl = try Tool.run(["run", "--preset", "hssl", "--data", larger, "--source-sites", "MCU", "--size", "32", "--budget", "5%", "--seeds", "0,1",
                                 "--pretrain-epochs", "7", "--out", s.file("h"), "--plan-only"])
        #expect(hssl.status == 0, "\(hssl.stderr)")
        let h = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("h/experiment.json")))) as? [String: Any]
        let hsslEncoder = h?["encoder"] as? [String: Any]
        #expect(hsslEncoder?["method"] as? String == "hssl" && hsslEncoder?["epochs"] as? Int == 7 && h?["budgets"] as? [String] == ["5%"], "\(hssl.stderr)")
        #expect((h?["train"] as? [String: Any])?["start"] as? [String] == ["scratch", "pretrained", "single-domain"])
        #expect(h?["full_data"] as? [String] == ["scratch"])
        let zero = try Tool.run(["run", "--preset", "hssl", "--data", larger, "--source-sites", "MCU", "--pretrain-epochs", "0", "--out", s.file("z"), "--plan-only"])
        #expect(zero.status != 0 && zero.stderr.contains("--pretrain-epochs must be at least 1") && !FileManager.default.fileExists(atPath: s.file("z/experiment.json")), "\(zero.stderr)")
        // Items: source, two pretrainings, embeddings, site analysis, baseline; per seed one selection, three
        // fine-tunings and one full-data reference.
        let labels = hssl.stdout.split(separator: "\n").filter { $0.hasPrefix("to do") }.map { $0.split(separator: "\t").last.map(String.init) ?? "" }
        #expect(labels.count == 6 + 2 * 5, "\(labels)")
        #expect(labels.filter { $0.hasPrefix("HSSL pretraining") }.sorted() == ["HSSL pretraining on every site", "HSSL pretraining on every site as one domain"])
        #expect(labels.filter { $0.hasPrefix("full-data reference") } == ["full-data reference, seed 0", "full-data reference, seed 1"])
        #expect(labels.filter { $0.hasPrefix("fine-tune on random@single-domain") }.count == 2)
        // --no-full-data: the same plan without the full-data references; every other item keeps its key.
        let without = try Tool.run(["run", "--preset", "hssl", "--data", larger, "--source-sites", "MCU", "--size", "32", "--budget", "5%", "--seeds", "0,1",
                                    "--pretrain-epochs", "7", "--no-full-data", "--out", s.file("h2"), "--plan-only"])
        #expect(without.status == 0, "\(without.stderr)")
        let w = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("h2/experiment.json")))) as? [String: Any]
        #expect(w?["full_data"] as? Bool == false)
        let items = { (text: String) in Set(text.split(separator: "\n").filter { $0.hasPrefix("to do") }.map { String($0.split(separator: "\t")[1]) }) }
        let full = Set(hssl.stdout.split(separator: "\n").filter { $0.hasSuffix("\tfull-data reference, seed 0") || $0.hasSuffix("\tfull-data reference, seed 1") }
            .map { String($0.split(separator: "\t")[1]) })
        #expect(full.count == 2 && items(without.stdout) == items(hssl.stdout).subtracting(full))
    }

    @Test("HSSL in an experiment: the U-Net pretrained on every site, each selection trained from scratch and from the pretrained weights (strategy@pretrained); pretrained without hssl refused")
    func hsslExperiment() throws {
        let s = Scratch("cli-run-hssl")
        defer { s.cleanup() }
        let data = try phantom(s)
        let text = #"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN", "SiteC"], "encoder": {"method": "hssl", "epochs": 2, "batch": 4}, "#
            + #""strategies": ["random"], "budgets": ["3"], "seeds": [0], "site_analysis": false, "#
            + #""train": {"size": 32, "epochs": 1, "source_epochs": 1, "batch": 4, "base": 4, "levels": 2, "start": ["scratch", "pretrained"]}}"#
        let exp = s.write(Array(text.utf8), "hssl.json")
        let r = try Tool.run(["run", exp, "--out", s.file("h"), "--threads", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try String(contentsOfFile: s.file("h/results.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(Set(rows.map { $0[0] }) == ["none", "random", "random@pretrained", "full", "full@pretrained"], "\(rows)")
        // The same picks for both starts.
        let picks = Dictionary(grouping: rows.filter { $0[0].hasPrefix("random") }, by: { $0[0] }).mapValues { Set($0.map { $0[10] }) }
        #expect(picks["random"] == picks["random@pretrained"] && picks["random"]?.count == 1)
        #expect(FileManager.default.fileExists(atPath: s.file("h/items/encoder")))
        let report = try String(contentsOfFile: s.file("h/report.html"), encoding: .utf8)
        #expect(report.contains("random@pretrained") && report.contains("HSSL-pretrained U-Net fine-tuned"))

        // The single-domain control beside it, in the same run folder: one more pretraining (the same images, one
        // domain), one more fine-tuning on the same picks; the full-data reference from scratch only, so the
        // earlier items are all reused.
        let single = text.replacingOccurrences(of: #""start": ["scratch", "pretrained"]"#, with: #""start": ["scratch", "pretrained", "single-domain"]"#)
            .replacingOccurrences(of: #""site_analysis": false,"#, with: #""site_analysis": false, "full_data": ["scratch"],"#)
        let r2 = try Tool.run(["run", s.write(Array(single.utf8), "single.json"), "--out", s.file("h"), "--threads", "1"])
        #expect(r2.status == 0 && r2.stdout.contains("2 item(s) computed here"), "\(r2.stdout)\(r2.stderr)")
        let rows2 = try String(contentsOfFile: s.file("h/results.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(Set(rows2.map { $0[0] }) == ["none", "random", "random@pretrained", "random@single-domain", "full"], "\(rows2)")
        let picks2 = Dictionary(grouping: rows2.filter { $0[0].hasPrefix("random") }, by: { $0[0] }).mapValues { Set($0.map { $0[10] }) }
        #expect(picks2["random@single-domain"] == picks["random"])
        // The two pretrainings: every site a domain, and one domain.
        let encoders = try FileManager.default.contentsOfDirectory(atPath: s.file("h/items/encoder")).filter { !$0.contains(".") }
        #expect(encoders.count == 2)
        let domainLists = try encoders.map { folder -> String in
            // The safetensors header: 8 bytes of length (little-endian), then JSON with "__metadata__".
            let bytes = try Data(contentsOf: URL(fileURLWithPath: s.file("h/items/encoder/\(folder)/encoder.safetensors")))
            let length = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + length))) as? [String: Any]
            return (header?["__metadata__"] as? [String: String])?["domains"] ?? ""
        }
        #expect(Set(domainLists) == ["CHN,MCU,SiteC", "all"], "\(domainLists)")
        // What the multi-domain objective adds is compared with the single-domain start.
        let results = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("h/results.json")))) as? [String: Any]
        let pairs = (results?["comparisons"] as? [[String: Any]] ?? []).map { "\($0["a"] ?? "") vs \($0["b"] ?? "")" }
        #expect(pairs.contains("random@pretrained vs random@single-domain") && pairs.contains("random@single-domain vs random"), "\(pairs)")
        let report2 = try String(contentsOfFile: s.file("h/report.html"), encoding: .utf8)
        #expect(report2.contains("as one domain") && report2.contains("<td>random@pretrained</td><td>random@single-domain</td>"), "the report's comparison with the single-domain start")
        // Every item of the plan is listed (source, two pretrainings, embeddings, baseline, one selection, three
        // fine-tunings, the full-data reference), and each records what it cost (one thread: CPU time about the wall time).
        let folders = results?["item_folders"] as? [String] ?? []
        #expect(folders.count == 10 && Set(folders).count == 10, "\(folders)")
        // The processor, as /proc/cpuinfo names it.
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.components(separatedBy: "\n").first { $0.hasPrefix("model name") }?.components(separatedBy: ": ").last ?? "?"
        for f in folders {
            let cost = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("h/\(f)/cost.json")))) as? [String: Any]
            let (cpu, wall) = (cost?["cpu_seconds"] as? Double ?? -1, cost?["wall_seconds"] as? Double ?? -1)
            #expect(cost?["threads"] as? Int == 1 && wall > 0 && cpu >= 0 && cpu < 1.5 * wall + 0.05, "\(f): \(String(describing: cost))")
            #expect((cost?["machine"] as? String)?.hasPrefix(model + ", AVX") == true, "\(f): \(String(describing: cost))")
        }
        let badText = #"{"data": "\#(data)", "source_sites": ["MCU"], "target_sites": ["CHN"], "strategies": ["random"], "budgets": ["3"], "train": {"start": "pretrained"}}"#
        let bad = s.write(Array(badText.utf8), "bad.json")
        let b = try Tool.run(["run", bad, "--out", s.file("b")])
        #expect(b.status == 1 && b.stderr.contains("'train.start' pretrained needs 'encoder.method' hssl"), "\(b.stderr)")
    }

    @Test("advise reads results.csv and names the budget that reaches the target share of the full-data Dice; a file that is not results.csv is refused")
    func advise() throws {
        let s = Scratch("cli-advise")
        defer { s.cleanup() }
        // Dice = 0.9 − 0.5/n for 3 seeds at 5 budgets, full data 0.9: 95 % of 0.9 is reached at n = 12.
        var csv = "strategy,budget,seed,round,site,labeled,cases,dice,hd95,assd,selection\n"
        for seed in 0..<3 {
            for n in [2, 4, 8, 16, 32] { csv += "random,\(n),\(seed),1,A,\(n),2,\(0.9 - 0.5 / Double(n) + Double(seed - 1) * 0.002),1,1,\n" }
            csv += "full,100%,\(seed),1,A,100,2,0.9,1,1,\n"
        }
        let path = s.write(Array(csv.utf8), "results.csv")
        let r = try Tool.run(["advise", path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let a = (o?["advice"] as? [[String: Any]])?.first
        #expect(a?["strategy"] as? String == "random" && a?["predicted_budget"] as? Int == 12 && a?["model"] as? String == "inverse power law", "\(r.stdout)")
        let text = try Tool.run(["advise", path])
        #expect(text.stdout.contains("random: 12 labeled cases"), "\(text.stdout)")
        let bad = try Tool.run(["advise", s.write(Array("a,b\n1,2\n".utf8), "other.csv")])
        #expect(bad.status == 1 && bad.stderr.contains("not a medselect run results.csv"), "\(bad.stderr)")
    }
}
