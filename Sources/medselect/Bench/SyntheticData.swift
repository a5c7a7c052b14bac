import Foundation
import MedCompute
import MedFoundation

/// What the bench commands share: synthetic embeddings drawn from Gaussian blobs, and the process's peak memory.
enum SyntheticData {
    /// `count` rows from the given blobs (uniformly chosen), Gaussian with standard deviation 4; chunks drawn in
    /// parallel from per-chunk seeds so the result does not depend on the thread count.
    static func blobs(_ count: Int, _ d: Int, centres: [Float], blobs: Range<Int>, seed: UInt64) -> [Float] {
        var out = [Float](repeating: 0, count: count * d)
        let chunk = 4096
        let chunks = (count + chunk - 1) / chunk
        out.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let p = buffer.baseAddress!
            parallelFor(chunks) { c in
                var g = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(c))
                for i in (c * chunk)..<min(count, (c + 1) * chunk) {
                    let b = Int.random(in: blobs, using: &g)
                    var j = 0
                    while j < d {
                        // Box-Muller: two normals per pair of uniforms.
                        let u1 = max(Float.random(in: 0..<1, using: &g), 1e-12), u2 = Float.random(in: 0..<1, using: &g)
                        let r = (-2 * Foundation.log(u1)).squareRoot()
                        p[i * d + j] = centres[b * d + j] + 4 * r * cos(2 * .pi * u2)
                        if j + 1 < d { p[i * d + j + 1] = centres[b * d + j + 1] + 4 * r * sin(2 * .pi * u2) }
                        j += 2
                    }
                }
            }
        }
        return out
    }

    /// Peak resident memory of this process (VmHWM), in MB.
    static func peakRSSMegabytes() -> Double {
        guard let f = fopen("/proc/self/status", "r") else { return 0 }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, 256, f) != nil {
            let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if s.hasPrefix("VmHWM:") {
                let kb = Double(s.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "0") ?? 0
                return (kb / 1024).rounded()
            }
        }
        return 0
    }
}
