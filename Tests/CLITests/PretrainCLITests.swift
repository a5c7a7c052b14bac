import Foundation
import Testing
import TestSupport
import MedFormats
import MedTensor

@Suite("medselect pretrain, embed --encoder")
struct PretrainCLITests {
    static let model = ["--size", "32", "--patch", "8", "--width", "32", "--depth", "2", "--heads", "2",
                        "--decoder-width", "16", "--decoder-depth", "1", "--decoder-heads", "2"]

    @Test("killed mid-run and started again, pretraining ends with the same weights; history, curve, preview and encoder are written")
    func killAndResume() throws {
        let scratch = Scratch("cli-pretrain")
        defer { scratch.cleanup() }
        let data = scratch.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "8", "--size", "48", "--seed", "2", "--out", data, "--quiet"]).status == 0)
        let args = ["pretrain", "--data", data, "--sites", "MCU,CHN"] + Self.model + ["--epochs", "4", "--batch", "4", "--seed", "5"]
        let a = try Tool.run(args + ["--out", scratch.file("a")])
        #expect(a.status == 0, "\(a.stderr)")
        let killed = try Tool.runKilled(args + ["--out", scratch.file("b")], after: "epoch 2/4:")
        #expect(killed.killed, "finished before the kill: \(killed.stderr)")
        let b = try Tool.run(args + ["--out", scratch.file("b")])
        #expect(b.status == 0, "\(b.stderr)")
        #expect(!b.stderr.contains("epoch 1/4:") && b.stderr.contains("epoch 4/4:"), "the resumed run should start after the checkpointed epochs: \(b.stderr)")
        for file in ["checkpoint.safetensors", "encoder.safetensors"] {
            let (wa, _) = try Safetensors.read(scratch.file("a/" + file))
            let (wb, _) = try Safetensors.read(scratch.file("b/" + file))
            #expect(wa.keys.sorted() == wb.keys.sorted() && !wa.isEmpty)
            for n in wa.keys { #expect(wa[n]!.data == wb[n]!.data, "\(file): \(n) differs") }
        }
        // The encoder file holds the encoder alone (no decoder tensors), named as the PyTorch reference model.
        let (encoder, _) = try Safetensors.read(scratch.file("a/encoder.safetensors"))
        #expect(encoder.keys.contains("patch_embed.weight") && encoder.keys.contains("blocks.1.qkv.weight") && encoder.keys.contains("norm.weight"))
        #expect(!encoder.keys.contains { $0.hasPrefix("dec") || $0.hasPrefix("pred") || $0 == "mask_token" })
        let history = try String(contentsOfFile: scratch.file("b/history.csv"), encoding: .utf8)
        #expect(history.split(separator: "\n").count == 5)
        let preview = try ImageIO.read(scratch.file("a/preview.png"))
        #expect(preview.shape.x > 3 * 128 && preview.shape.y > 128)   // three columns enlarged to 128 px
        #expect(try String(contentsOfFile: scratch.file("a/curve.svg"), encoding: .utf8).contains("<svg"))

        // A different configuration in the same folder is refused rather than mixed with the old weights.
        let other = try Tool.run(["pretrain", "--data", data, "--sites", "MCU,CHN"] + Self.model + ["--epochs", "4", "--batch", "4", "--seed", "6", "--out", scratch.file("a")])
        #expect(other.status == 1 && other.stderr.contains("error: ") && other.stderr.contains("another configuration"), "\(other.stderr)")
    }

    @Test("embed --encoder: one row per case in the thumbnail method's id order, reproducible; pooling changes the rows; wrong files are refused in one line")
    func embedWithEncoder() throws {
        let scratch = Scratch("cli-embed-encoder")
        defer { scratch.cleanup() }
        let data = scratch.file("cxr")
        #expect(try Tool.run(["phantom", "--benchmark", "cxr", "--count", "6", "--size", "40", "--seed", "3", "--out", data, "--quiet"]).status == 0)
        let run = scratch.file("mae")
        let p = try Tool.run(["pretrain", "--data", data, "--sites", "MCU"] + Self.model + ["--epochs", "2", "--batch", "4", "--out", run])
        #expect(p.status == 0, "\(p.stderr)")
        let encoder = run + "/encoder.safetensors"
        let thumb = try Tool.run(["embed", "--data", data, "--out", scratch.file("t.npy")])
        #expect(thumb.status == 0, "\(thumb.stderr)")
        var matrices: [String: NDArray] = [:]
        for (name, extra) in [("cls", [String]()), ("cls2", []), ("mean", ["--pool", "mean"])] {
            let r = try Tool.run(["embed", "--data", data, "--encoder", encoder, "--out", scratch.file(name + ".npy")] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            matrices[name] = try NPYReader.read(scratch.file(name + ".npy"))
            let ids = try String(contentsOfFile: scratch.file(name + ".ids.csv"), encoding: .utf8)
            #expect(ids == (try String(contentsOfFile: scratch.file("t.ids.csv"), encoding: .utf8)))
        }
        let cases = try String(contentsOfFile: scratch.file("t.ids.csv"), encoding: .utf8).split(separator: "\n").count - 1
        #expect(cases == 30)   // 6 per site, 5 sites
        let cls = try #require(matrices["cls"]), mean = try #require(matrices["mean"])
        #expect(cls.shape == [cases, 32] && mean.shape == [cases, 32])
        let (c, m, c2) = (cls.floats(), mean.floats(), matrices["cls2"]!.floats())
        #expect(c.allSatisfy(\.isFinite) && c == c2)
        #expect(c != m)
        // Rows differ between cases: the encoder does not collapse every image to one point.
        #expect(Set((0..<cases).map { Array(c[($0 * 32)..<($0 * 32 + 32)]) }).count == cases)

        // Refused in one line: a U-Net checkpoint, a truncated encoder, a text file.
        let unet = scratch.file("unet.safetensors")
        #expect(try Tool.run(["bench", "unet", "--size", "16", "--batch", "1", "--iters", "1", "--warmup", "0", "--save", unet]).status == 0)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: encoder)))
        let truncated = scratch.write(Array(bytes.prefix(bytes.count / 2)), "truncated.safetensors")
        for (bad, reason) in [(unet, "not a masked-autoencoder encoder"), (truncated, "truncated.safetensors"), (data + "/phantom_cases.csv", "phantom_cases.csv")] {
            let r = try Tool.run(["embed", "--data", data, "--encoder", bad, "--out", scratch.file("x.npy")])
            let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
            #expect(r.status == 1 && errors.count == 1 && errors[0].contains(reason), "\(bad): \(r.stderr)")
        }
        // Options that cannot work are refused before any reading.
        let badSize = try Tool.run(["pretrain", "--data", data, "--size", "30", "--patch", "8", "--out", scratch.file("y")])
        #expect(badSize.status != 0 && badSize.stderr.contains("patch"), "\(badSize.stderr)")
    }
}
