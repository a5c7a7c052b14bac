import Foundation
import Testing
import TestSupport

@Suite("medselect bench")
struct BenchCLITests {
    /// The processor's flags from /proc/cpuinfo.
    var cpuFlags: Set<String> {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        return Set(line.split(separator: " ").map(String.init))
    }

    @Test("bench unet --json reports oneDNN's ISA, the block that follows it, the spread, and no activation conversions on either ISA; both reach the same loss")
    func unetISA() throws {
        let hasAVX512 = cpuFlags.contains("avx512f") && cpuFlags.contains("avx512bw")
        var runs: [([String: String], String, Int)] = [(["ONEDNN_MAX_CPU_ISA": "AVX2"], "avx2", 8)]
        if hasAVX512 { runs.append((["ONEDNN_MAX_CPU_ISA": ""], "avx512", 16)) }
        var losses: [Double] = []
        for (environment, isa, block) in runs {
            let r = try Tool.run(["bench", "unet", "--size", "64", "--batch", "1", "--iters", "2", "--warmup", "1", "--json"], environment: environment)
            #expect(r.status == 0, "\(r.stderr)")
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            #expect((obj["isa"] as? String)?.hasPrefix(isa) == true, "\(obj)")
            #expect(obj["kernels_isa"] as? String == isa)
            #expect(obj["block"] as? Int == block)
            #expect(obj["activation_reorders_per_step"] as? Double == 0)
            let (lo, mid, hi) = (obj["min_ms"] as? Double ?? -1, obj["median_ms"] as? Double ?? -1, obj["max_ms"] as? Double ?? -1)
            #expect(lo > 0 && lo <= mid && mid <= hi)
            losses.append(obj["last_loss"] as? Double ?? .nan)
        }
        // The same three training steps on both instruction sets end at the same loss (up to rounding: FMA, order).
        if losses.count == 2 { #expect(abs(losses[0] - losses[1]) <= 1e-3 * abs(losses[1]), "\(losses)") }
    }
}
