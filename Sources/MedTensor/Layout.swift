import Foundation

/// The order of a tensor's stored values.
///
/// `plain` is row-major (NCHW for images). `blocked16` is oneDNN's nChw16c for 4-D tensors with a channel count that
/// is a multiple of 16: channels in blocks of 16, each block stored pixel by pixel with its 16 channel values together,
/// `[n][c / 16][h][w][c % 16]`. oneDNN's direct convolutions read and write that layout, and per-channel work
/// (normalisation, pooling, ReLU) runs on 16 channels at once in one SIMD register, so a U-Net keeps its activations
/// blocked from the first convolution to the head and never converts in between.
public enum Layout: Sendable, Equatable {
    case plain
    case blocked16

    /// Whether a tensor of `shape` can be stored blocked.
    public static func canBlock(_ shape: [Int]) -> Bool { shape.count == 4 && shape[1] % 16 == 0 && shape[1] > 0 }

    /// Plain values of a blocked buffer.
    static func plain(from blocked: [Float], shape: [Int]) -> [Float] { convert(blocked, shape: shape, toBlocked: false) }

    /// Blocked values of a plain buffer.
    static func blocked(from plain: [Float], shape: [Int]) -> [Float] { convert(plain, shape: shape, toBlocked: true) }

    static func convert(_ source: [Float], shape: [Int], toBlocked: Bool) -> [Float] {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let hw = h * w, blocks = c / 16
        return [Float](unsafeUninitializedCapacity: source.count) { out, initialized in
            source.withUnsafeBufferPointer { src in
                nonisolated(unsafe) let (s, d) = (src.baseAddress!, out.baseAddress!)
                parallelFor(n * blocks) { item in
                    let base = item * hw * 16
                    for lane in 0..<16 {
                        // Plain plane of channel (item % blocks) * 16 + lane of image item / blocks.
                        let plane = base + lane * hw
                        if toBlocked { for p in 0..<hw { d[base + p * 16 + lane] = s[plane + p] } }
                        else { for p in 0..<hw { d[plane + p] = s[base + p * 16 + lane] } }
                    }
                }
            }
            initialized = source.count
        }
    }
}

/// Runs body(i) for i in 0..<count over the cores (serially for one item).
func parallelFor(_ count: Int, _ body: @Sendable (Int) -> Void) {
    if count < 2 { for i in 0..<count { body(i) }; return }
    DispatchQueue.concurrentPerform(iterations: count, execute: body)
}
