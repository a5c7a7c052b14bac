import Foundation
import Testing
import TestSupport
import MedFormats
import MedTensor

@Suite("medselect pretrain --method hssl, train --init-from, embed --shard, embed-merge")
struct HSSLCLITests {
    static let network = ["--size", "32", "--base", "4", "--levels", "2"]

    /// Two tiny phantom benchmarks (chest X-ray and fundus) in `scratch`.
    static func data(_ scratch: Scratch) throws -> (cxr: String, fundus: String) {
        let (cxr, fundus) = (scratch.file("cxr"), scratch.file("fundus"))
        for (b, out) in [("cxr", cxr), ("fundus", fundus)] {
            let r = try Tool.run(["phantom", "--benchmark", b, "--count", "3", "--size", "48", "--seed", "4", "--out", out, "--quiet"])
            #expect(r.status == 0, "\(r.stderr)")
        }
        return (cxr, fundus)
    }

    @Test("HSSL on two benchmarks: domains, files, exact resume after a kill; embed rows per case; fine-tuning loads exactly the encoder's tensors; mismatches refused in one line")
    func pretrainFineTuneEmbed() throws {
        let scratch = Scratch("cli-hssl")
        defer { scratch.cleanup() }
        let (cxr, fundus) = try Self.data(scratch)
        let args = ["pretrain", "--method", "hssl", "--data", cxr, "--data", fundus] + Self.network + ["--epochs", "3", "--batch", "4", "--seed", "3"]
        let a = try Tool.run(args + ["--out", scratch.file("a")])
        #expect(a.status == 0, "\(a.stderr)")
        #expect(a.stderr.contains("2 domains by dataset"), "\(a.stderr)")
        for f in ["encoder.safetensors", "checkpoint.safetensors", "history.csv", "curve.svg"] {
            #expect(FileManager.default.fileExists(atPath: scratch.file("a/" + f)), "\(f) missing")
        }
        let history = try String(contentsOfFile: scratch.file("a/history.csv"), encoding: .utf8)
        #expect(history.split(separator: "\n").count == 4 && history.hasPrefix("epoch,train_loss,validation_loss"))
        let killed = try Tool.runKilled(args + ["--out", scratch.file("b")], after: "epoch 1/3:")
        #expect(killed.killed, "finished before the kill: \(killed.stderr)")
        let b = try Tool.run(args + ["--out", scratch.file("b")])
        #expect(b.status == 0 && !b.stderr.contains("epoch 1/3:"), "\(b.stderr)")
        let (wa, meta) = try Safetensors.read(scratch.file("a/encoder.safetensors"))
        let (wb, _) = try Safetensors.read(scratch.file("b/encoder.safetensors"))
        #expect(wa.keys.sorted() == wb.keys.sorted())
        for n in wa.keys { #expect(wa[n]!.data == wb[n]!.data, "\(n) differs after the resume") }
        #expect(meta["domains"] == "riga,shenzhen" && !wa.keys.contains { $0.hasPrefix("head.") })

        // Embedding: one 16-wide row (4 · 2² bottleneck channels) per case, gray for the colour fundus images too.
        for data in [cxr, fundus] {
            let e = try Tool.run(["embed", "--data", data, "--encoder", scratch.file("a/encoder.safetensors"), "--out", scratch.file("e.npy")])
            #expect(e.status == 0, "\(e.stderr)")
            #expect(try NPYReader.read(scratch.file("e.npy")).shape == [15, 16])
        }

        // Fine-tuning from the encoder only: the summary counts exactly the file's down.* and bottleneck.* tensors.
        let encoderTensors = wa.keys.filter { $0.hasPrefix("down.") || $0.hasPrefix("bottleneck.") }.count
        let t = try Tool.run(["train", "--data", cxr, "--size", "32", "--base", "4", "--levels", "2", "--epochs", "1", "--batch", "4",
                              "--init-from", scratch.file("a/encoder.safetensors"), "--init-part", "encoder", "--out", scratch.file("ft")])
        #expect(t.status == 0, "\(t.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch.file("ft/summary.json")))) as? [String: Any])
        #expect(summary["initialized_tensors"] as? Int == encoderTensors && summary["init_part"] as? String == "encoder")
        #expect(encoderTensors == 30)   // (2 levels + bottleneck) x 2 convolutions x (weight + 4 batch-norm tensors)
        // The start is reported before the first epoch, not after training.
        let lines = t.stderr.split(separator: "\n")
        let startLine = lines.firstIndex { $0.hasPrefix("[train] starting from 30 tensors") }
        let firstEpoch = lines.firstIndex { $0.hasPrefix("[train] epoch 1/") }
        #expect(startLine != nil && firstEpoch != nil && startLine! < firstEpoch!, "\(t.stderr)")
        // The colour fundus images fine-tune from the gray encoder too (first kernels spread over the channels).
        let colour = try Tool.run(["train", "--data", fundus, "--size", "32", "--base", "4", "--levels", "2", "--epochs", "1", "--batch", "4",
                                   "--init-from", scratch.file("a/encoder.safetensors"), "--out", scratch.file("ft-fundus")])
        #expect(colour.status == 0, "\(colour.stderr)")
        // Another base width: one line naming both networks.
        let bad = try Tool.run(["train", "--data", cxr, "--size", "32", "--base", "8", "--levels", "2", "--epochs", "1", "--batch", "4",
                                "--init-from", scratch.file("a/encoder.safetensors"), "--out", scratch.file("bad")])
        let errorLines = bad.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }
        #expect(bad.status != 0 && errorLines.count == 1 && bad.stderr.split(separator: "\n").last?.hasPrefix("error:") == true, "\(bad.stderr)")
        #expect(bad.stderr.contains("base 4") && bad.stderr.contains("base 8"), "\(bad.stderr)")
        // The encoder is not a trained model: predict refuses it.
        let p = try Tool.run(["predict", "--checkpoint", scratch.file("a/encoder.safetensors"), "--input", cxr, "--out", scratch.file("p")])
        #expect(p.status != 0 && p.stderr.contains("fine-tune it first"), "\(p.stderr)")
        // Bad options.
        #expect(try Tool.run(["train", "--data", cxr, "--init-from", scratch.file("a/encoder.safetensors"), "--init-part", "decoder", "--out", scratch.file("x")]).stderr.contains("Please provide one of 'encoder' and 'all'"))
        #expect(try Tool.run(["train", "--data", cxr, "--init-part", "encoder", "--out", scratch.file("x")]).stderr.contains("--init-part goes with --init-from"))
        #expect(try Tool.run(["pretrain", "--method", "hssl", "--data", cxr, "--domain", "scanner", "--out", scratch.file("x")]).stderr.contains("The value 'scanner' is invalid for '--domain"))
        #expect(try Tool.run(["pretrain", "--method", "hssl", "--data", cxr, "--size", "36", "--out", scratch.file("x")]).stderr.contains("multiple of 16"))
    }

    @Test("embed --shard: three shards run as three processes at once merge into the unsharded matrix byte for byte; missing, repeated and foreign parts refused")
    func shards() throws {
        let scratch = Scratch("cli-shards")
        defer { scratch.cleanup() }
        let (cxr, _) = try Self.data(scratch)
        let common = ["embed", "--data", cxr, "--method", "thumbnail", "--size", "8", "--pca", "0"]
        #expect(try Tool.run(common + ["--out", scratch.file("whole.npy")]).status == 0)
        // The three tasks of a job array, started together.
        let processes = try (0..<3).map { i -> Process in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Tool.binary)
            p.arguments = common + ["--shard", "\(i)/3", "--out", scratch.file("part-\(i).npy")]
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        for p in processes { p.waitUntilExit(); #expect(p.terminationStatus == 0) }
        let m = try Tool.run(["embed-merge", scratch.file("part-2.npy"), scratch.file("part-0.npy"), scratch.file("part-1.npy"), "--out", scratch.file("merged.npy")])
        #expect(m.status == 0, "\(m.stderr)")
        #expect(FileManager.default.contents(atPath: scratch.file("merged.npy")) == FileManager.default.contents(atPath: scratch.file("whole.npy")))
        #expect(FileManager.default.contents(atPath: scratch.file("merged.ids.csv")) == FileManager.default.contents(atPath: scratch.file("whole.ids.csv")))
        #expect(try NPYReader.read(scratch.file("part-1.npy")).shape == [5, 64])

        func refused(_ parts: [String], _ needle: String) throws {
            let r = try Tool.run(["embed-merge"] + parts.map(scratch.file) + ["--out", scratch.file("x.npy")])
            #expect(r.status != 0 && r.stderr.hasPrefix("error:") && r.stderr.contains(needle), "\(parts): \(r.stderr)")
        }
        try refused(["part-0.npy", "part-2.npy"], "missing shards: 1")
        try refused(["part-0.npy", "part-1.npy", "part-1.npy", "part-2.npy"], "overlap")
        try refused(["part-0.npy", "part-1.npy", "part-2.npy", "whole.npy"], "no shard manifest")
        // A part of other data (one site fewer) and of another embedding (another thumbnail size).
        #expect(try Tool.run(common + ["--sites", "MCU,CHN", "--shard", "1/3", "--out", scratch.file("other-1.npy")]).status == 0)
        try refused(["part-0.npy", "other-1.npy", "part-2.npy"], "other cases")
        #expect(try Tool.run(["embed", "--data", cxr, "--method", "thumbnail", "--size", "4", "--pca", "0", "--shard", "1/3", "--out", scratch.file("small-1.npy")]).status == 0)
        try refused(["part-0.npy", "small-1.npy", "part-2.npy"], "another embedding")
        // Bad shard options.
        #expect(try Tool.run(common + ["--shard", "3/3", "--out", scratch.file("y.npy")]).stderr.contains("--shard must be I/N"))
        #expect(try Tool.run(["embed", "--data", cxr, "--shard", "0/2", "--pca", "8", "--out", scratch.file("y.npy")]).stderr.contains("--shard needs --pca 0"))
    }
}
