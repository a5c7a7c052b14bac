import Foundation
import Testing
import TestSupport
import MedFormats

@Suite("medselect select")
struct SelectCLITests {
    /// Three well-separated clusters of 30, 10 and 4 points in 8-D.
    func writePool(_ s: Scratch) throws -> String {
        var g = SplitMix(state: 77)
        var v: [Float] = []
        for (c, size) in [30, 10, 4].enumerated() {
            for _ in 0..<size { v += (0..<8).map { j in Float(j == c ? 100 : 0) + Float.random(in: -1...1, using: &g) } }
        }
        try NPYWriter.write(NDArray(float32: v, shape: [44, 8], fortranOrder: false), to: s.file("pool.npy"))
        _ = s.write(Array(("id\n" + (0..<44).map { "case\($0)" }.joined(separator: "\n") + "\n").utf8), "ids.csv")
        return s.file("pool.npy")
    }

    func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    @Test("xssr, coreset and random write JSON and CSV; xssr covers the three clusters with 3 picks", arguments: ["xssr", "coreset", "random", "typiclust", "probcover", "coldstart"])
    func strategies(strategy: String) throws {
        let s = Scratch("sel"); defer { s.cleanup() }
        let pool = try writePool(s)
        let extra = strategy == "coldstart" ? ["--perplexity", "5"] : []
        let r = try Tool.run(["select", "--embeddings", pool, "--ids", s.file("ids.csv"), "--strategy", strategy,
                              "--budget", "3", "--seed", "5", "--out", s.file("sel.json")] + extra)
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try json(s.file("sel.json"))
        let selected = try #require(obj["selected"] as? [String])
        #expect(selected.count == 3 && Set(selected).count == 3 && selected.allSatisfy { $0.hasPrefix("case") })
        #expect(obj["seed"] as? Int == 5 && obj["strategy"] as? String == strategy)
        #expect(((obj["inputs"] as? [String: Any])?["embeddings"] as? [String: Any])?["hash"] as? String != nil)
        let csv = try String(contentsOfFile: s.file("sel.csv"), encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 4 && csv[0] == "rank,id,index,score,density,novelty,diversity,uncertainty")
        if strategy != "random" {
            let clusters = Set(selected.map { Int($0.dropFirst(4))! }.map { $0 < 30 ? 0 : ($0 < 40 ? 1 : 2) })
            #expect(clusters.count == 3)
        }
        // Same seed, same selection.
        _ = try Tool.run(["select", "--embeddings", pool, "--ids", s.file("ids.csv"), "--strategy", strategy,
                          "--budget", "3", "--seed", "5", "--out", s.file("again.json")] + extra)
        #expect(try json(s.file("again.json"))["selected"] as? [String] == selected)
    }

    @Test("percent budgets, labeled ids, source embeddings and the alpha curve")
    func options() throws {
        let s = Scratch("sel"); defer { s.cleanup() }
        let pool = try writePool(s)
        try NPYWriter.write(NDArray(float32: [Float](repeating: 0, count: 16), shape: [2, 8], fortranOrder: false), to: s.file("src.npy"))
        let r = try Tool.run(["select", "--embeddings", pool, "--ids", s.file("ids.csv"), "--source", s.file("src.npy"),
                              "--labeled", "case0,case1", "--strategy", "xssr", "--budget", "10%", "--out", s.file("x.json")])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try json(s.file("x.json"))
        let selected = try #require(obj["selected"] as? [String])
        #expect(selected.count == 4 && !selected.contains("case0") && !selected.contains("case1"))   // 10% of 44 = 4.4 -> 4
        #expect((obj["coverage_curve"] as? [Any])?.count == 11 && obj["alpha"] as? Double != nil)
    }

    @Test("bad inputs are clear errors", arguments: [
        ["--strategy", "magic", "--budget", "3"], ["--strategy", "xssr", "--budget", "0"], ["--strategy", "xssr", "--budget", "150%"],
        ["--strategy", "xssr", "--budget", "3", "--terms", "density,nonsense"], ["--strategy", "xssr", "--budget", "100"],
        ["--strategy", "xssr", "--budget", "3", "--labeled", "nobody"],
    ])
    func errors(args: [String]) throws {
        let s = Scratch("sel"); defer { s.cleanup() }
        let pool = try writePool(s)
        let r = try Tool.run(["select", "--embeddings", pool, "--ids", s.file("ids.csv"), "--out", s.file("e.json")] + args)
        #expect(r.status != 0)
        #expect(!FileManager.default.fileExists(atPath: s.file("e.json")))
    }

    @Test("a 3-D array or mismatched ids are refused with the path")
    func shapes() throws {
        let s = Scratch("sel"); defer { s.cleanup() }
        try NPYWriter.write(NDArray(float32: [Float](repeating: 1, count: 8), shape: [2, 2, 2], fortranOrder: false), to: s.file("cube.npy"))
        let r = try Tool.run(["select", "--embeddings", s.file("cube.npy"), "--strategy", "random", "--budget", "1", "--out", s.file("o.json")])
        #expect(r.status == 1 && r.stderr.hasPrefix("error: \(s.file("cube.npy")): embeddings must be a 2-D array"))
        let pool = try writePool(s)
        _ = s.write(Array("a\nb\n".utf8), "few.csv")
        let m = try Tool.run(["select", "--embeddings", pool, "--ids", s.file("few.csv"), "--strategy", "random", "--budget", "1", "--out", s.file("o.json")])
        #expect(m.status == 1 && m.stderr.contains("2 ids for 44 embedding rows"))
    }
}
