import Foundation
import Testing
import TestSupport

@Suite("medselect pick")
struct PickCLITests {
    /// Two scanners' images in plain folders, with masks beside them that are not PNG files at all: opening any of
    /// them would fail the command.
    static func hospital(_ s: Scratch, from data: String) throws -> String {
        let fm = FileManager.default
        let root = s.file("hospital")
        for (site, from) in [("scannerA", "CHN"), ("scannerB", "SiteE")] {
            try fm.createDirectory(atPath: root + "/" + site + "/masks", withIntermediateDirectories: true)
            for f in try fm.contentsOfDirectory(atPath: data + "/" + from + "/CXR_png") {
                try fm.copyItem(atPath: data + "/" + from + "/CXR_png/" + f, toPath: root + "/" + site + "/" + f)
                try Data("not a png".utf8).write(to: URL(fileURLWithPath: root + "/" + site + "/masks/" + f))
                try Data("not a png".utf8).write(to: URL(fileURLWithPath: root + "/" + site + "/" + f.replacingOccurrences(of: ".png", with: "_mask.png")))
            }
        }
        return root
    }

    static let small = ["--source-epochs", "2", "--encoder-epochs", "2", "--size", "32", "--encoder-size", "16"]

    @Test("the worklist holds exactly the budget, no target mask is opened, a re-run computes nothing, a new budget recomputes only the selection, and the report is offline")
    func pick() throws {
        let s = Scratch("cli-pick")
        defer { s.cleanup() }
        let data = s.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "8", "--size", "48", "--seed", "3", "--out", data, "--quiet"]).status == 0)
        let hospital = try Self.hospital(s, from: data)
        let plan = s.file("plan")
        let args = ["pick", "--target", hospital, "--source-data", data, "--source-sites", "MCU", "--out", plan] + Self.small
        let first = try Tool.run(args + ["--budget", "3"])
        #expect(first.status == 0, "\(first.stderr)")
        // Two scanners x 8 images x 2 mask files each.
        #expect(first.stderr.contains("32 file(s) that look like masks were skipped unread"), "\(first.stderr)")
        #expect(first.stdout.contains("picked 3 of 16 images") && first.stdout.contains("6 stage(s) computed"), "\(first.stdout)")
        let rows = try String(contentsOfFile: plan + "/worklist.csv", encoding: .utf8).split(separator: "\n")
        #expect(rows.count == 4 && rows[0].hasPrefix("rank,case,site,image,density,diversity,novelty,score,reason"), "\(rows)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: plan + "/worklist/images").count == 3)
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: plan + "/plan.json"))) as? [String: Any]
        let picks = record?["picks"] as? [[String: Any]] ?? []
        #expect(picks.count == 3 && picks.allSatisfy { ($0["site"] as? String)?.hasPrefix("scanner") == true && !($0["reason"] as? String ?? "").isEmpty })
        // The picks are the selection's, in its order.
        let selection = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: plan + "/selection.json"))) as? [String: Any]
        #expect(picks.compactMap { $0["id"] as? String } == selection?["selected"] as? [String])

        // The report stands alone: every image inline, nothing fetched from elsewhere.
        let html = try String(contentsOfFile: plan + "/report.html", encoding: .utf8)
        #expect(html.contains("<img") && !html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("url(http"))
        let images = html.components(separatedBy: "<img").dropFirst()
        #expect(images.count >= 3 && images.allSatisfy { $0.contains("src=\"data:image/png;base64,") })

        // Again: everything reused.
        let again = try Tool.run(args + ["--budget", "3"])
        #expect(again.status == 0 && again.stdout.contains("nothing to compute"), "\(again.stdout)\(again.stderr)")
        // Another budget: the selection only, the worklist rewritten.
        let four = try Tool.run(args + ["--budget", "4"])
        #expect(four.status == 0 && four.stdout.contains("1 stage(s) computed, 5 reused"), "\(four.stdout)\(four.stderr)")
        for stage in ["source", "encoder", "embed", "sites", "view"] {
            #expect(try FileManager.default.contentsOfDirectory(atPath: plan + "/items/" + stage).count == 1, "\(stage)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: plan + "/items/select").count == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: plan + "/worklist/images").count == 4)

        // Annotators saved a mask: a different pick would overwrite their work, so it is refused.
        let first4 = try String(contentsOfFile: plan + "/worklist.csv", encoding: .utf8).split(separator: "\n")[1].split(separator: ",")[1]
        Thread.sleep(forTimeInterval: 1.2)
        try Data([1]).write(to: URL(fileURLWithPath: plan + "/worklist/labels/\(first4).png"))
        let blocked = try Tool.run(args + ["--budget", "2"])
        #expect(blocked.status == 1 && blocked.stderr.contains("saved for the previous picks"), "\(blocked.stderr)")

        // A model whose channels do not fit the images (the gray source model on colour fundus images).
        let riga = s.file("riga"), fundus = s.file("fundus")
        #expect(try Tool.run(["phantom", "--benchmark", "fundus", "--count", "3", "--size", "32", "--out", riga, "--quiet"]).status == 0)
        // The colour photographs only (RIGA+ names its masks image1-1.png), in one folder per camera.
        for site in try FileManager.default.contentsOfDirectory(atPath: riga) where !site.contains(".") {
            try FileManager.default.createDirectory(atPath: fundus + "/" + site, withIntermediateDirectories: true)
            for f in try FileManager.default.contentsOfDirectory(atPath: riga + "/" + site) where f.hasSuffix(".png") && !f.contains("-") {
                try FileManager.default.copyItem(atPath: riga + "/" + site + "/" + f, toPath: fundus + "/" + site + "/" + f)
            }
        }
        let checkpoint = try FileManager.default.contentsOfDirectory(atPath: plan + "/items/source").map { plan + "/items/source/" + $0 + "/checkpoint.safetensors" }[0]
        let rgb = try Tool.run(["pick", "--target", fundus, "--model", checkpoint, "--out", s.file("rgb")])
        #expect(rgb.status == 1 && rgb.stderr.contains("takes 1-channel images; the target's are 3-channel"), "\(rgb.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.file("rgb")))
    }

    @Test("bad input: an empty target, a budget above the images, a source without labels, budgets of 0 or above 100 %: one line, nothing written")
    func badInput() throws {
        let s = Scratch("cli-pick-bad")
        defer { s.cleanup() }
        let data = s.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "5", "--size", "32", "--out", data, "--quiet"]).status == 0)
        let hospital = try Self.hospital(s, from: data)
        let empty = s.file("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let out = s.file("never")
        let cases: [([String], String)] = [
            (["--target", empty, "--source-data", data, "--source-sites", "MCU"], "no images found"),
            (["--target", hospital, "--source-data", data, "--source-sites", "MCU", "--budget", "11"], "only 10 unlabeled target images"),
            (["--target", hospital, "--source-data", hospital], "has no labeled cases"),
            (["--target", hospital, "--source-data", data, "--source-sites", "NOPE"], "no source site NOPE"),
            (["--target", hospital, "--source-data", data, "--budget", "0"], "--budget"),
            (["--target", hospital, "--source-data", data, "--budget", "150%"], "--budget"),
            (["--target", hospital], "--source-data"),
        ]
        for (args, message) in cases {
            let r = try Tool.run(["pick"] + args + ["--out", out])
            #expect(r.status != 0 && r.stderr.contains(message), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").filter { $0.hasPrefix("error") || $0.hasPrefix("Error") }.count == 1, "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out), "\(args) wrote \(out)")
        }
    }
}
